"""deploy/k8s/rollout.sh, run against a stand-in `kubectl` (the process boundary, see
tests/deploy/conftest.py): it restarts through the Deployment (or the InferenceService KServe owns it
through) and waits, or reloads the pods one at a time and stops at the first one that refuses the family.
tests/deploy/test_serve_install.py runs its reload against a real server, tests/deploy/test_rollout.py
checks it parses as POSIX shell."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

Rollout = Callable[..., tuple[subprocess.CompletedProcess[str], list[str]]]


def test_restart_is_the_default_and_waits_for_the_deployment(k8s_rollout: Rollout) -> None:
    result, calls = k8s_rollout()
    assert result.returncode == 0, result.stderr
    assert calls == ["rollout restart deployment/tiered",
                     "rollout status deployment/tiered --timeout=600s"], calls


def test_restart_goes_through_the_inference_service_kserve_owns(k8s_rollout: Rollout) -> None:
    result, calls = k8s_rollout("-n", "models", "restart", "inferenceservice/tiered")
    assert result.returncode == 0, result.stderr
    patch, status = calls
    assert patch.startswith("--namespace models patch inferenceservice/tiered --type merge -p "), patch
    assert '"predictor":{"annotations":{"tiered/restarted-at":' in patch, patch
    assert status == "--namespace models rollout status deployment/tiered-predictor --timeout=600s"


def test_restart_that_never_gets_ready_fails_and_says_the_old_pods_serve_on(k8s_rollout: Rollout) -> None:
    result, _ = k8s_rollout("restart", status="1")
    assert result.returncode == 1
    assert "not ready" in result.stderr and "serve the old family" in result.stderr, result.stderr


def test_reload_execs_into_each_running_pod_of_the_deployment_in_turn(k8s_rollout: Rollout) -> None:
    result, calls = k8s_rollout("reload", pods="p1 p2 p3")
    assert result.returncode == 0, result.stderr
    assert calls[0] == "get deployment/tiered -o go-template={{range $k, $v := .spec.selector.matchLabels}}" \
                       "{{$k}}={{$v}},{{end}}"
    assert calls[1] == ("get pods --selector app.kubernetes.io/component=serve,app.kubernetes.io/name=tiered "
                        "--field-selector status.phase=Running -o name")
    execs = [call.split()[:6] for call in calls[2:]]
    assert execs == [["exec", f"pod/{pod}", "-c", "tiered", "--", "python"] for pod in ("p1", "p2", "p3")]
    assert all("/admin/reload" in call and "Bearer" in call for call in calls[2:])


def test_reload_stops_at_the_first_pod_that_refuses_the_family(k8s_rollout: Rollout) -> None:
    result, calls = k8s_rollout("reload", "inferenceservice/tiered", pods="p1 p2 p3", refuse="p2")
    assert result.returncode == 1
    assert [call.split()[1] for call in calls if call.startswith("exec")] == ["pod/p1", "pod/p2"], calls
    assert all(" -c kserve-container " in call for call in calls if call.startswith("exec"))
    assert "pod/p2 did not take the new family; stopping, later pods untouched" in result.stderr


@pytest.mark.parametrize(("args", "pods", "message"), [
    (("sideways",), "p1", "unknown mode 'sideways'"),
    (("reload", "statefulset/tiered"), "p1", "unknown target 'statefulset/tiered'"),
    (("reload",), "", "no running pod of deployment/tiered"),
])
def test_rollout_refuses_a_bad_mode_a_bad_target_or_no_pods(k8s_rollout: Rollout, args: tuple[str, ...],
                                                             pods: str, message: str) -> None:
    result, calls = k8s_rollout(*args, pods=pods)
    assert result.returncode != 0 and message in result.stderr, result.stderr
    assert not [call for call in calls if call.startswith(("exec", "rollout", "patch"))], calls
