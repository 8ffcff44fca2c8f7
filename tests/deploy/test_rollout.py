"""deploy/rollout.sh, run against a stand-in `docker` client (the process boundary, see conftest.py): it
walks the api replicas one at a time and stops at the first one that does not take the new family.
deploy/reload.py, the reload it runs inside each replica, is run against a real server with two workers
in tests/deploy/test_serve_install.py."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROLLOUT = REPO / "deploy" / "rollout.sh"

Rollout = Callable[..., tuple[subprocess.CompletedProcess[str], list[str]]]


@pytest.mark.parametrize("script", [ROLLOUT, REPO / "deploy" / "k8s" / "rollout.sh"], ids=["compose", "k8s"])
def test_rollout_scripts_are_valid_posix_shell(script: Path) -> None:
    subprocess.run(["sh", "-n", str(script)], check=True)


def test_rollout_reloads_every_replica_in_turn_inside_its_container(rollout: Rollout) -> None:
    result, calls = rollout()
    assert result.returncode == 0, result.stderr
    assert calls[0] == "compose ps -q api"
    assert [call.split()[:3] for call in calls[1:]] == [["exec", "c1", "python"], ["exec", "c2", "python"]]
    assert all("/admin/reload" in call and "Bearer" in call for call in calls[1:])


def test_rollout_restart_waits_for_each_replica_to_be_healthy(rollout: Rollout) -> None:
    result, calls = rollout("restart")
    assert result.returncode == 0, result.stderr
    restarted = [call.split()[1] for call in calls if call.startswith("restart")]
    assert restarted == ["c1", "c2"]


def test_rollout_restart_stops_at_a_replica_that_comes_back_unhealthy(rollout: Rollout) -> None:
    result, calls = rollout("restart", health="unhealthy")
    assert result.returncode == 1
    assert [call for call in calls if call.startswith("restart")] == ["restart c1"], calls
    assert "c1 is unhealthy" in result.stderr


@pytest.mark.parametrize(("args", "containers", "message"), [
    (("sideways",), "c1", "unknown mode 'sideways'"),
    ((), "", "no running api replica"),
])
def test_rollout_refuses_a_bad_mode_or_an_empty_deployment(rollout: Rollout, args: tuple[str, ...],
                                                           containers: str, message: str) -> None:
    result, calls = rollout(*args, containers=containers)
    assert result.returncode != 0 and message in result.stderr, result.stderr
    assert not [call for call in calls if call.startswith(("exec", "restart"))], calls
