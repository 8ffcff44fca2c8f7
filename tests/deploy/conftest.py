"""Fixtures for the deploy checks: the repo's Dockerfile read into stages, docker-compose.yml parsed, and
deploy/rollout.sh and deploy/k8s/rollout.sh run against stand-in `docker` and `kubectl` clients.

There is no Docker engine here, so the deploy files are checked by reading them. A stage is a list of
(KEYWORD, arguments) pairs in file order, its FROM first; continuation lines are joined and comments
dropped, as Docker does.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

Instruction = tuple[str, str]


def read_stages(text: str) -> dict[str, list[Instruction]]:
    """Stages by name (the `AS` name, else the index), each a list of (KEYWORD, arguments).

    Global ARGs (before the first FROM) are kept under the name "".
    """
    stages: dict[str, list[Instruction]] = {}
    current: list[Instruction] = []
    for keyword, args in read_instructions(text):
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(stages))
            current = stages[name] = []
        elif not stages:
            current = stages.setdefault("", [])
        current.append((keyword, args))
    return stages


def read_instructions(text: str) -> list[Instruction]:
    instructions: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        # Comment lines are dropped even inside a continuation, like Docker does.
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        instructions.append((keyword.upper(), " ".join(args.split())))
        pending = ""
    assert not pending, f"the Dockerfile ends inside a continued line: {pending!r}"
    return instructions


def base_of(stage: list[Instruction]) -> str:
    return stage[0][1].split()[0]


@pytest.fixture(scope="session")
def stages() -> dict[str, list[Instruction]]:
    return read_stages((REPO / "Dockerfile").read_text())


@pytest.fixture(scope="session")
def serve_chain(stages: dict[str, list[Instruction]]) -> list[Instruction]:
    """The instructions that make the serve image: its own and those of the stages it builds FROM."""
    return chain_of("serve", stages)


@pytest.fixture(scope="session")
def train_chain(stages: dict[str, list[Instruction]]) -> list[Instruction]:
    return chain_of("train", stages)


def chain_of(name: str, stages: dict[str, list[Instruction]]) -> list[Instruction]:
    assert name in stages, f"the Dockerfile has no stage named {name!r}; it has {list(stages)}"
    stage = stages[name]
    parent = base_of(stage)
    return ([*chain_of(parent, stages)] if parent in stages else []) + stage


@pytest.fixture(scope="session")
def builder_sources(stages: dict[str, list[Instruction]]) -> list[str]:
    """What the builder stage COPYs from the build context (files and directories, repo-relative)."""
    sources: list[str] = []
    for keyword, args in stages["builder"]:
        if keyword == "COPY" and "--from=" not in args:
            words = [word for word in args.split() if not word.startswith("--")]
            sources += [word.rstrip("/") for word in words[:-1]]
    return sources


@pytest.fixture(scope="session")
def in_build_context() -> Callable[[str], bool]:
    """Whether a repo-relative path reaches the build context past .dockerignore."""
    lines = (REPO / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return lambda path: not ignored(path, patterns)


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern that matches decides; `!` lets a path back in."""
    verdict = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern.lstrip("!").strip("/")
        regex = re.escape(body).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        regex = re.sub(r"\\\[([^]]*)\\\]", r"[\1]", regex)  # character classes like *.py[cod]
        # A pattern that names a directory covers everything below it.
        if re.fullmatch(f"{regex}(/.*)?", path):
            verdict = not negated
    return verdict


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict), f"docker-compose.yml is not a mapping: {loaded!r}"
    return loaded


# Records each call on one line; answers `compose ps -q api` with $STUB_CONTAINERS and `inspect` with
# $STUB_HEALTH; `exec CONTAINER CMD...` runs CMD here, as if inside the container, when $STUB_EXEC is "run".
STUB_DOCKER = """#!/bin/sh
printf '%s' "$*" | tr '\\n' ' ' >> "$STUB_CALLS" && echo >> "$STUB_CALLS"
case "$1" in
    compose) for c in $STUB_CONTAINERS; do echo "$c"; done ;;
    inspect) echo "$STUB_HEALTH" ;;
    exec) shift 2; [ "$STUB_EXEC" = run ] && exec "$@" ;;
esac
exit 0
"""

# The same for `kubectl`: a Deployment's selector is STUB_SELECTOR (go-template form), its running pods
# $STUB_PODS, `rollout status` exits with $STUB_STATUS; `exec POD -c C -- CMD...` fails for the pods in
# $STUB_REFUSE (as a refused reload does) and otherwise runs CMD here when $STUB_EXEC is "run".
STUB_KUBECTL = """#!/bin/sh
printf '%s' "$*" | tr '\\n' ' ' >> "$STUB_CALLS" && echo >> "$STUB_CALLS"
[ "$1" = --namespace ] && shift 2
case "$1" in
    get) case "$2" in
            deployment/*) printf '%s' "$STUB_SELECTOR" ;;
            pods) for p in $STUB_PODS; do echo "pod/$p"; done ;;
         esac ;;
    rollout) [ "$2" = status ] && exit "$STUB_STATUS" ;;
    exec) pod="${2#pod/}"; shift 5
          case " $STUB_REFUSE " in *" $pod "*) echo "rollout: reload refused (409)" >&2; exit 1 ;; esac
          [ "$STUB_EXEC" = run ] && exec "$@" ;;
esac
exit 0
"""

Ran = tuple[subprocess.CompletedProcess[str], list[str]]  # the script's result and the client's calls
Rollout = Callable[..., Ran]


def stubbed(tmp_path: Path, client: str, stub: str, script: Path) -> Rollout:
    """Runs `script` with a stand-in `client` first on PATH; each run returns the result and the client's
    calls. Keyword arguments become the stub's STUB_* variables; `env` replaces the inherited environment."""
    stub_dir = tmp_path / f"{client}-stub"
    stub_dir.mkdir()
    (stub_dir / client).write_text(stub)
    (stub_dir / client).chmod(0o755)
    calls = tmp_path / f"{client}-calls.txt"

    def run(*args: str, env: dict[str, str] | None = None, **stub_env: str) -> Ran:
        calls.write_text("")
        base = dict(os.environ if env is None else env)
        full_env = {**base, "PATH": f"{stub_dir}{os.pathsep}{base.get('PATH', '')}", "STUB_CALLS": str(calls),
                    **{f"STUB_{name.upper()}": value for name, value in stub_env.items()}}
        result = subprocess.run(["sh", str(script), *args], capture_output=True, text=True, env=full_env,
                                cwd=REPO, check=False, timeout=600)
        return result, calls.read_text().splitlines()

    return run


@pytest.fixture
def rollout(tmp_path: Path) -> Rollout:
    """Runs deploy/rollout.sh with a stub `docker` first on PATH; returns the result and the docker calls."""
    run = stubbed(tmp_path, "docker", STUB_DOCKER, REPO / "deploy" / "rollout.sh")

    def with_defaults(*args: str, health: str = "healthy", containers: str = "c1 c2",
                      exec_mode: str = "record", env: dict[str, str] | None = None) -> Ran:
        return run(*args, env=env, health=health, containers=containers, exec=exec_mode)

    return with_defaults


@pytest.fixture
def k8s_rollout(tmp_path: Path) -> Rollout:
    """Runs deploy/k8s/rollout.sh with a stub `kubectl` first on PATH; returns the result and its calls."""
    run = stubbed(tmp_path, "kubectl", STUB_KUBECTL, REPO / "deploy" / "k8s" / "rollout.sh")

    def with_defaults(*args: str, pods: str = "p1 p2", refuse: str = "", status: str = "0",
                      exec_mode: str = "record", env: dict[str, str] | None = None) -> Ran:
        return run(*args, env=env, pods=pods, refuse=refuse, status=status, exec=exec_mode,
                   selector="app.kubernetes.io/component=serve,app.kubernetes.io/name=tiered,")

    return with_defaults
