"""Settings from TIERED_* variables, `tiered serve` / `python -m app`, and one real server on a free port."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from app import cli
from app.settings import Settings
from cli import main


def test_settings_have_safe_defaults(clean_env):
    s = Settings()
    assert (str(s.models_dir), s.host, s.port) == ("models/store", "127.0.0.1", 8000)
    assert (s.workers, s.ort_threads) == (1, 1)
    assert s.admin_token is None and s.cors_origins == [] and not s.bench_routes
    assert s.max_body_bytes == 4 << 20


def test_settings_read_tiered_variables(clean_env):
    clean_env.setenv("TIERED_PORT", "9001")
    clean_env.setenv("TIERED_MODELS_DIR", "/models")
    clean_env.setenv("TIERED_CORS_ORIGINS", "https://a.example, https://b.example")
    clean_env.setenv("TIERED_REGIME_CRISIS", "4.5")
    clean_env.setenv("TIERED_ADMIN_TOKEN", "0123456789abcdef")
    s = Settings()
    assert s.port == 9001 and str(s.models_dir) == "/models"
    assert s.cors_origins == ["https://a.example", "https://b.example"]
    assert s.threshold_overrides()["crisis"] == 4.5 and s.threshold_overrides()["calm"] is None
    assert s.admin_token is not None and s.admin_token.get_secret_value() == "0123456789abcdef"
    assert "0123456789abcdef" not in repr(s)


def test_settings_refuse_a_short_admin_token(clean_env):
    clean_env.setenv("TIERED_ADMIN_TOKEN", "short")
    with pytest.raises(ValidationError, match="at least 16"):
        Settings()


def test_an_empty_admin_token_means_admin_off(clean_env):
    clean_env.setenv("TIERED_ADMIN_TOKEN", "")
    assert Settings().admin_token is None


def test_serve_command_is_what_the_container_runs():
    assert cli.SERVE_COMMAND == ("tiered", "serve")


def test_serve_stops_with_one_line_when_the_store_has_no_family(tmp_path, capsys, clean_env):
    with pytest.raises(SystemExit) as e:
        main(["serve", "--models", str(tmp_path / "empty")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "CURRENT is missing" in err and err.startswith("tiered serve:")


def test_serve_stops_with_one_line_on_a_bad_setting(tmp_path, capsys, clean_env):
    clean_env.setenv("TIERED_PORT", "70000")
    with pytest.raises(SystemExit) as e:
        main(["serve", "--models", str(tmp_path)])
    assert e.value.code == 2 and "port" in capsys.readouterr().err


def test_grpc_is_off_unless_a_port_is_given_and_then_needs_a_port_of_its_own(clean_env):
    assert Settings().grpc_port is None
    clean_env.setenv("TIERED_GRPC_PORT", "8081")
    assert Settings().grpc_port == 8081
    with pytest.raises(ValidationError, match="port of its own"):
        Settings(port=8081)


def test_serve_stops_with_one_line_when_the_grpc_port_is_taken(quick_store, capsys, clean_env, free_port):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", free_port()))
        holder.listen()
        taken = holder.getsockname()[1]
        with pytest.raises(SystemExit) as e:
            main(["serve", "--models", str(quick_store), "--grpc-port", str(taken)])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1
    assert err.startswith(f"tiered serve: grpc_port: cannot listen on 127.0.0.1:{taken}"), err


def test_python_dash_m_app_is_tiered_serve(tmp_path, clean_env):
    run = subprocess.run([sys.executable, "-m", "app", "--models", str(tmp_path / "none")],
                         capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert run.returncode == 2 and "CURRENT is missing" in run.stderr
    helped = subprocess.run([sys.executable, "-m", "app", "--help"], capture_output=True, text=True,
                            timeout=60)
    assert helped.returncode == 0 and "--workers" in helped.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[str], seconds: float = 60.0) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the server exited early: {process.communicate()[1][-2000:]}"
        try:
            r = httpx.get(url, timeout=2.0)
            if r.status_code == 200:
                return r
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} was not ready within {seconds} s")


@pytest.mark.slow
def test_the_real_server_serves_and_exits_cleanly_on_sigterm(quick_store, make_body, clean_env):
    port = free_port()
    env = {**os.environ, "TIERED_MODELS_DIR": str(quick_store), "TIERED_HOST": "127.0.0.1",
           "TIERED_PORT": str(port), "TIERED_SHUTDOWN_GRACE_SECONDS": "5", "TIERED_LOG_LEVEL": "warning"}
    tiered = Path(sys.executable).parent / "tiered"
    process = subprocess.Popen([str(tiered), *cli.SERVE_COMMAND[1:]], env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        ready = wait_ready(f"http://127.0.0.1:{port}/readyz", process)
        assert ready.json()["status"] == "ready"
        r = httpx.post(f"http://127.0.0.1:{port}/predict", content=json.dumps(make_body()),
                       headers={"content-type": "application/json"}, timeout=10.0)
        assert r.status_code == 200 and r.json()["family_id"] == ready.json()["family_id"]
        assert "server" not in r.headers, "the server does not advertise itself"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            _, stderr = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 0, stderr[-2000:]
