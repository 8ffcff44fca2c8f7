"""The serve image's install, replayed without Docker: the builder's sources built into a wheel, the wheel
installed without extras into a fresh virtual environment, then the image's command run from there.

It proves the service installs and answers /readyz without torch, and that the reload of deploy/rollout.sh
and of deploy/k8s/rollout.sh works against it, with two workers, and stops at a family it refuses. It
needs the package registry (the fresh environment installs the serving dependencies; pip's cache makes
it quick).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from models.store import MANIFEST, set_current

REPO = Path(__file__).resolve().parents[2]
READY_SECONDS = 60.0
TOKEN = "a-test-token-of-more-than-16-characters"
WORKERS = 2  # the rollouts' reload must reach every worker of a replica

Instruction = tuple[str, str]
Rollout = Callable[..., tuple[subprocess.CompletedProcess[str], list[str]]]


@pytest.fixture
def serve_command() -> tuple[str, ...]:
    from app import cli

    command = getattr(cli, "SERVE_COMMAND", None)
    if command is None:
        pytest.skip("app.cli has no SERVE_COMMAND yet (issue 4): the image's command cannot be run")
    return tuple(command)


def copy_build_context(sources: list[str], in_build_context: Callable[[str], bool], into: Path) -> Path:
    """The files the builder stage sees: its COPY sources, less what .dockerignore leaves out."""
    for source in sources:
        root = REPO / source
        files = [root] if root.is_file() else sorted(path for path in root.rglob("*") if path.is_file())
        for path in files:
            relative = path.relative_to(REPO).as_posix()
            if in_build_context(relative):
                (into / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, into / relative)
    return into


def run(*command: str | Path) -> None:
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True, check=False,
                            timeout=300)
    assert result.returncode == 0, f"{' '.join(map(str, command))} failed:\n{result.stdout}\n{result.stderr}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serving_env(serve_chain: list[Instruction], bin_dir: Path, store: Path, port: int) -> dict[str, str]:
    """The image's TIERED_* defaults (its ENV lines), then what compose sets, pointed at this machine."""
    image: dict[str, str] = {}
    for keyword, args in serve_chain:
        if keyword == "ENV":
            image |= dict(pair.split("=", 1) for pair in args.split())
    leave_out = {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}
    inherited = {name: value for name, value in os.environ.items()
                 if not name.startswith("TIERED_") and name not in leave_out}
    return {**inherited, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            **{name: value for name, value in image.items() if name.startswith("TIERED_")},
            "TIERED_MODELS_DIR": str(store), "TIERED_HOST": "127.0.0.1", "TIERED_PORT": str(port),
            "TIERED_ADMIN_TOKEN": TOKEN, "TIERED_WORKERS": str(WORKERS)}


def wait_until_ready(url: str, server: subprocess.Popen[bytes]) -> int | None:
    """The first /readyz status the server gives, or None if it exits or stays silent too long."""
    deadline = time.monotonic() + READY_SECONDS
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline and server.poll() is None:
            try:
                response = client.get(url)
            except httpx.TransportError:
                time.sleep(0.2)
                continue
            if response.status_code == 200:
                return 200
            time.sleep(0.2)
        return None


def move_current_to_a_broken_copy(store: Path, family_dir: Path) -> None:
    """A new family whose M2 file no longer matches its manifest's sha256, made CURRENT."""
    broken = store / "fam-broken"
    shutil.copytree(family_dir, broken)
    manifest = json.loads((broken / MANIFEST).read_text())
    (broken / MANIFEST).write_text(json.dumps({**manifest, "family_id": broken.name}))
    (broken / "M2.onnx").write_bytes(b"not an onnx graph")
    set_current(store, broken.name)


@pytest.mark.slow
def test_serve_stage_install_has_no_torch_and_answers_readyz(
        serve_command: tuple[str, ...], tmp_path: Path, store_copy: tuple[Path, Path],
        builder_sources: list[str], in_build_context: Callable[[str], bool], serve_chain: list[Instruction],
        rollout: Rollout, k8s_rollout: Rollout) -> None:
    store, family_dir = store_copy
    context = copy_build_context(builder_sources, in_build_context, tmp_path / "context")
    venv, dist = tmp_path / "venv", tmp_path / "dist"
    bin_dir = venv / "bin"
    run(sys.executable, "-m", "venv", venv)
    # The builder's `pip wheel --no-deps`, then the serve stage's `pip install` of that wheel: no extras.
    run(bin_dir / "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", dist, context)
    wheels = sorted(dist.glob("tiered-*.whl"))
    assert len(wheels) == 1, f"expected one project wheel, found {wheels}"
    run(bin_dir / "pip", "install", "--quiet", wheels[0])

    find_torch = "import importlib.util; print(importlib.util.find_spec('torch'))"
    torch = subprocess.run([bin_dir / "python", "-c", find_torch], capture_output=True, text=True, check=True,
                           cwd=tmp_path)
    assert torch.stdout.strip() == "None", f"torch is importable in the serving install: {torch.stdout}"

    port = free_port()
    env = serving_env(serve_chain, bin_dir, store, port)
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        # cwd outside the repo, so nothing is imported from the checkout instead of the installed wheel.
        server = subprocess.Popen([bin_dir / serve_command[0], *serve_command[1:]], env=env, cwd=tmp_path,
                                  stdout=log, stderr=subprocess.STDOUT)
        try:
            status = wait_until_ready(f"http://127.0.0.1:{port}/readyz", server)
            assert status == 200, f"no 200 from /readyz in {READY_SECONDS:.0f} s:\n{log_path.read_text()}"
            # The hot reload deploy/rollout.sh runs inside each replica, here against this server.
            reloaded, _ = rollout("reload", containers="replica-1", exec_mode="run", env=env)
            assert reloaded.returncode == 0 and '"family_id"' in reloaded.stdout, (
                f"rollout.sh reload:\n{reloaded.stdout}{reloaded.stderr}\n{log_path.read_text()}")
            assert reloaded.stdout.count('"state":"serving"') == WORKERS, reloaded.stdout
            # deploy/k8s/rollout.sh's reload, as inside each pod: taken, then a family the server refuses
            # stops the rollout at the first pod, the second untouched.
            reloaded, _ = k8s_rollout("reload", pods="pod-1", exec_mode="run", env=env)
            assert reloaded.returncode == 0 and '"family_id"' in reloaded.stdout, reloaded.stderr
            move_current_to_a_broken_copy(store, family_dir)
            refused, calls = k8s_rollout("reload", pods="pod-1 pod-2", exec_mode="run", env=env)
            assert refused.returncode == 1 and "reload refused (409)" in refused.stderr, refused.stderr
            assert "family_refused" in refused.stderr and "M2.onnx has sha256" in refused.stderr, (
                refused.stderr)
            assert [call.split()[1] for call in calls if call.startswith("exec")] == ["pod/pod-1"], calls
            server.send_signal(signal.SIGTERM)
            code = server.wait(timeout=30)
            assert code == 0, f"{serve_command} exited with {code} on SIGTERM:\n{log_path.read_text()}"
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
