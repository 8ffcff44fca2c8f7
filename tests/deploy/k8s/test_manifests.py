"""deploy/k8s, checked without a cluster: every kustomization renders, its core objects pass Kubernetes'
own schemas in strict mode, and what no schema sees is checked against the app, its settings and the
Dockerfile: selectors against pod labels, probes against the app's routes, variables against Settings,
uids against USER, the grace period against the drain, the store's mounts against the training Job.

The schemas are kubernetes-validate's (offline copies of Kubernetes' OpenAPI): 1.27, the oldest minor
these manifests are written for (topology spread's matchLabelKeys and nodeTaintsPolicy, and the PDB's
unhealthyPodEvictionPolicy, are on by default from there), and 1.37, the newest the package ships.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from fastapi import FastAPI

from app.main import create_app
from app.settings import Settings

REPO = Path(__file__).resolve().parents[3]
KUBERNETES_VERSIONS = ("1.27", "1.37")
SHARED_KINDS = {"ServiceAccount", "ConfigMap", "PersistentVolumeClaim", "PodDisruptionBudget",
                "NetworkPolicy"}
WORKLOADS = {"base": {"Deployment", "Service", "HorizontalPodAutoscaler"}, "kserve": {"InferenceService"}}

Object = dict[str, Any]
Instruction = tuple[str, str]


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_app(Settings())


def pod(deployment: Object) -> Object:
    spec: Object = deployment["spec"]["template"]["spec"]
    return spec


def job_pod(k8s: Any) -> Object:
    """The training Job's pod spec."""
    spec: Object = k8s["train"].one("Job")["spec"]["template"]["spec"]
    return spec


def containers(pod_spec: Object) -> list[Object]:
    return [*pod_spec.get("initContainers", []), *pod_spec["containers"]]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and selector.items() <= labels.items()


def port_number(container: Object, port: int | str) -> int:
    """A probe's or Service's port, named or numbered, as the container's port number."""
    numbers = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    assert port in numbers or port in numbers.values(), f"port {port!r} is not one of {numbers}"
    return numbers[port] if isinstance(port, str) else port


def user_of(chain: list[Instruction]) -> tuple[int, int]:
    user, _, group = [args for keyword, args in chain if keyword == "USER"][-1].partition(":")
    return int(user), int(group or user)


def test_every_kustomization_renders_the_objects_it_promises(k8s: Any, overlay: str) -> None:
    kinds = {obj["kind"] for obj in k8s[overlay].objects}
    assert kinds == SHARED_KINDS | WORKLOADS[overlay.partition("+")[0]], f"{overlay} renders {sorted(kinds)}"
    assert {obj["kind"] for obj in k8s["train"].objects} == {"Job"}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_core_objects_pass_kubernetes_validate_in_strict_mode(k8s: Any, overlay: str, version: str) -> None:
    manifests = k8s[overlay]
    # The InferenceService has no core schema; the Deployment KServe makes of it has.
    objects = [obj for obj in manifests.objects if obj["kind"] != "InferenceService"] + k8s["train"].objects
    if manifests.all("InferenceService"):
        objects.append(manifests.serving())
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            where = ".".join(map(str, e.path))
            pytest.fail(f"{overlay}: {obj['kind']}/{obj['metadata']['name']} is not valid Kubernetes "
                        f"{version} at {where}: {e.message}")


def test_selectors_find_the_serving_pods_and_never_the_training_job(k8s: Any, overlay: str) -> None:
    manifests = k8s[overlay]
    deployment = manifests.serving()
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    train_labels = k8s["train"].one("Job")["spec"]["template"]["metadata"]["labels"]
    budget, policy = manifests.one("PodDisruptionBudget"), manifests.one("NetworkPolicy")
    selectors = {"Deployment": deployment["spec"]["selector"]["matchLabels"],
                 "PodDisruptionBudget": budget["spec"]["selector"]["matchLabels"],
                 "NetworkPolicy": policy["spec"]["podSelector"]["matchLabels"]}
    if manifests.all("Service"):
        selectors["Service"] = manifests.one("Service")["spec"]["selector"]
    for number, spread in enumerate(pod(deployment).get("topologySpreadConstraints", [])):
        selectors[f"topologySpreadConstraints[{number}]"] = spread["labelSelector"]["matchLabels"]
    for owner, selector in selectors.items():
        assert selects(selector, labels), f"{overlay}: {owner} selects {selector}, the pods carry {labels}"
        assert not selects(selector, train_labels), f"{overlay}: {owner}'s {selector} selects the Job's pods"
    for hpa in manifests.all("HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        assert (target["apiVersion"], target["kind"], target["name"]) == (
            "apps/v1", "Deployment", deployment["metadata"]["name"]), target


def test_probes_ask_the_apps_health_routes_on_the_serving_port(k8s: Any, overlay: str, app: FastAPI) -> None:
    manifests = k8s[overlay]
    container, settings = manifests.container(), manifests.settings()
    # The routes by their functions in app/routes/health.py: liveness (also for startup) and readiness.
    expected = {"startupProbe": "healthz", "readinessProbe": "readyz", "livenessProbe": "healthz"}
    methods = {path: set(verbs) for path, verbs in app.openapi()["paths"].items()}
    for probe, route in expected.items():
        action = container[probe]["httpGet"]
        assert action["path"] == app.url_path_for(route), f"{overlay}: {probe} asks {action}, not {route}"
        assert "get" in methods[action["path"]], f"{action['path']} does not answer GET"
        assert port_number(container, action["port"]) == settings.port, (
            f"{overlay}: {probe} probes port {action['port']}, the server listens on {settings.port}")


def test_service_and_network_policy_open_the_serving_ports_and_nothing_else(k8s: Any, overlay: str) -> None:
    manifests = k8s[overlay]
    container, settings = manifests.container(), manifests.settings()
    grpc_port = getattr(settings, "grpc_port", None)  # a setting other work adds; None until it exists
    serving_ports = {settings.port} | ({grpc_port} if grpc_port else set())
    assert {p["containerPort"] for p in container["ports"]} == serving_ports, container["ports"]
    policy = manifests.one("NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress"] and len(policy["ingress"]) == 1, policy
    assert {port_number(container, p["port"]) for p in policy["ingress"][0]["ports"]} == serving_ports, policy
    for service in manifests.all("Service"):
        ports = {p["name"]: port_number(container, p["targetPort"]) for p in service["spec"]["ports"]}
        assert ports.get("http") == settings.port and set(ports.values()) == serving_ports, ports


def test_every_tiered_variable_is_a_setting_and_parses(k8s: Any, overlay: str) -> None:
    fields = {f"TIERED_{name.upper()}" for name in Settings.model_fields}
    manifests = k8s[overlay]
    for rendered, pod_spec in [(manifests, pod(manifests.serving())), (k8s["train"], job_pod(k8s))]:
        for container in containers(pod_spec):
            names = {name for name in rendered.environment(container) if name.startswith("TIERED_")}
            assert names <= fields, f"{overlay}: {container['name']} sets {sorted(names - fields)}, unknown"
    for config_map in manifests.all("ConfigMap"):
        unknown = set(config_map.get("data", {})) - fields
        assert not unknown, f"{overlay}: ConfigMap {config_map['metadata']['name']} sets {sorted(unknown)}"
    assert manifests.settings().host == "0.0.0.0", "the server must listen beyond the pod's loopback"


def test_pods_run_as_the_images_user_with_nothing_to_escalate(k8s: Any, overlay: str,
                                                              serve_chain: list[Instruction],
                                                              train_chain: list[Instruction]) -> None:
    for pod_spec, chain in [(pod(k8s[overlay].serving()), serve_chain),
                            (job_pod(k8s), train_chain)]:
        uid, gid = user_of(chain)
        context = pod_spec["securityContext"]
        assert context == {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": gid, "fsGroup": gid,
                           "fsGroupChangePolicy": "OnRootMismatch",
                           "seccompProfile": {"type": "RuntimeDefault"}}, f"{overlay}: {context}"
        assert pod_spec["automountServiceAccountToken"] is False
        for container in containers(pod_spec):
            assert container["securityContext"] == {"allowPrivilegeEscalation": False,
                                                    "readOnlyRootFilesystem": True,
                                                    "capabilities": {"drop": ["ALL"]}}, container["name"]
        volumes = {v["name"]: v for v in pod_spec["volumes"]}
        for container in pod_spec["containers"]:  # the init container only waits, writing nothing
            tmp = [volumes[m["name"]] for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
            assert tmp and "emptyDir" in tmp[0], f"{container['name']}: a read-only root needs /tmp writable"


def test_grace_period_outlasts_the_prestop_pause_and_the_drain(k8s: Any, overlay: str) -> None:
    manifests = k8s[overlay]
    container, grace = manifests.container(), pod(manifests.serving())["terminationGracePeriodSeconds"]
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep" and len(command) == 2, command
    drain = manifests.settings().shutdown_grace_seconds
    assert grace > int(command[1]) + drain, (
        f"{overlay}: terminationGracePeriodSeconds {grace} must exceed the {command[1]} s preStop pause plus "
        f"TIERED_SHUTDOWN_GRACE_SECONDS ({drain} s), or SIGKILL cuts the drain short")


def test_rollout_keeps_every_replica_and_the_autoscaler_agrees(k8s: Any, overlay: str) -> None:
    manifests = k8s[overlay]
    spec = manifests.serving()["spec"]
    assert spec["replicas"] >= 2, spec["replicas"]
    assert spec["strategy"]["type"] == "RollingUpdate", spec["strategy"]
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0, "a rollout must not drop a serving pod"
    budget = manifests.one("PodDisruptionBudget")["spec"]
    assert budget.get("maxUnavailable") == 1 and "minAvailable" not in budget, budget
    for hpa in manifests.all("HorizontalPodAutoscaler"):
        assert hpa["apiVersion"] == "autoscaling/v2" and hpa["spec"]["minReplicas"] == spec["replicas"], hpa
        assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"], hpa["spec"]["metrics"]


def test_requests_equal_limits_and_the_cpu_covers_the_workers(k8s: Any, overlay: str) -> None:
    manifests = k8s[overlay]
    for pod_spec in (pod(manifests.serving()), job_pod(k8s)):
        for container in containers(pod_spec):
            resources = container["resources"]
            assert resources["requests"] == resources["limits"], f"{container['name']}: {resources}"
    settings, cpu = manifests.settings(), manifests.container()["resources"]["limits"]["cpu"]
    cores = int(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)
    assert cores >= settings.workers * settings.ort_threads, (
        f"{overlay}: {settings.workers} workers x {settings.ort_threads} onnxruntime threads on {cpu} CPU")


def test_the_store_is_read_only_for_serving_and_written_by_the_job(k8s: Any, overlay: str) -> None:
    manifests = k8s[overlay]
    pod_spec, container = pod(manifests.serving()), manifests.container()
    claims = {v["name"]: v["persistentVolumeClaim"] for v in pod_spec["volumes"]
              if "persistentVolumeClaim" in v}
    store = [m for m in container["volumeMounts"] if m["name"] in claims]
    assert len(store) == 1 and store[0]["readOnly"] is True, container["volumeMounts"]
    assert store[0]["mountPath"] == str(manifests.settings().models_dir)
    claim = manifests.one("PersistentVolumeClaim", claims[store[0]["name"]]["claimName"])
    assert "ReadWriteMany" in claim["spec"]["accessModes"], "pods on several nodes mount the store at once"
    job = job_pod(k8s)
    (writer,) = job["containers"]
    writes = {v["name"] for v in job["volumes"]
              if v.get("persistentVolumeClaim", {}).get("claimName") == claim["metadata"]["name"]}
    (mount,) = [m for m in writer["volumeMounts"] if m["name"] in writes]
    assert not mount.get("readOnly") and writer["command"][-2:] == ["--out", mount["mountPath"]], writer


def test_the_admin_token_comes_from_a_secret_the_user_creates(k8s: Any, overlay: str) -> None:
    manifests = k8s[overlay]
    (token,) = [v for v in manifests.container()["env"] if v["name"] == "TIERED_ADMIN_TOKEN"]
    assert token["valueFrom"] == {"secretKeyRef": {"name": "tiered-admin", "key": "token"}}, token
    assert not manifests.all("Secret"), "no default secret: the user creates tiered-admin"
    readme = (REPO / "README.md").read_text()
    assert "kubectl create secret generic tiered-admin --from-literal=token=" in readme


def test_images_are_the_dockerfiles_builds_and_pinned(k8s: Any, overlay: str, stages: dict[str, Any]) -> None:
    builds = {stage or list(stages)[-1]: image for stage, image in re.findall(
        r"docker build (?:--target (\w+) )?-t ([\w./-]+) \.", (REPO / "Dockerfile").read_text())}
    version = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M)
    assert version and set(builds) == {"serve", "train"}, builds
    for pod_spec, stage in [(pod(k8s[overlay].serving()), "serve"),
                            (job_pod(k8s), "train")]:
        for container in containers(pod_spec):
            assert container["image"] == f"{builds[stage]}:{version.group(1)}", container["image"]
