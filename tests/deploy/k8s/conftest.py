"""Fixtures for deploy/k8s: every kustomization rendered with `kubectl kustomize`, read as `Manifests`.

`overlay` is parametrised over the kustomizations that serve (pytest_generate_tests): the base and the
KServe overlay, and, once the service's settings have `grpc_port`, each of them with components/grpc;
`kserve_overlay` over those with the InferenceService.
The training Job's kustomization (deploy/k8s/train) is rendered beside them as `k8s["train"]`.

An InferenceService is a custom resource no schema here knows, so `Manifests.serving()` also builds the
Deployment that KServe's raw deployment mode makes of it (`kserve_deployment`), and the suite checks that
one like the base's own.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings
from pydantic_settings import PydanticBaseSettingsSource as Source

from app.settings import Settings

REPO = Path(__file__).resolve().parents[3]
K8S = REPO / "deploy" / "k8s"

Object = dict[str, Any]


def serving_overlays() -> dict[str, str]:
    """Name → kustomization directory below deploy/k8s (the with-grpc ones are written by `k8s`)."""
    overlays = {"base": "base", "kserve": "overlays/kserve"}
    # gRPC joins only when the service has the setting; before that TIERED_GRPC_PORT would name nothing.
    if "grpc_port" in Settings.model_fields:
        overlays |= {"base+grpc": "with-grpc/base", "kserve+grpc": "with-grpc/kserve"}
    return overlays


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "overlay" in metafunc.fixturenames:
        metafunc.parametrize("overlay", list(serving_overlays()))
    if "kserve_overlay" in metafunc.fixturenames:
        metafunc.parametrize("kserve_overlay", [name for name in serving_overlays() if "kserve" in name])


@pytest.fixture(scope="session")
def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.skip("kubectl is not installed, so deploy/k8s cannot be rendered (kubectl 1.27+ embeds "
                    "kustomize)")
    return path


@pytest.fixture(scope="session")
def k8s(kubectl: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Manifests]:
    """Every kustomization rendered, from a copy of deploy/k8s (kustomize refuses absolute resource paths,
    so the gRPC compositions are written beside the copy)."""
    tree = tmp_path_factory.mktemp("deploy") / "k8s"
    shutil.copytree(K8S, tree)
    for name, path in {"base": "base", "kserve": "overlays/kserve"}.items():
        (tree / "with-grpc" / name).mkdir(parents=True)
        (tree / "with-grpc" / name / "kustomization.yaml").write_text(
            f"resources: [../../{path}]\ncomponents: [../../components/grpc]\n")
    return {name: Manifests(name, render(kubectl, tree / path))
            for name, path in {**serving_overlays(), "train": "train"}.items()}


def render(kubectl: str, directory: Path) -> list[Object]:
    result = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True,
                            check=False, timeout=60)
    assert result.returncode == 0, f"kubectl kustomize {directory.name} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@dataclass
class Manifests:
    name: str
    objects: list[Object]

    def all(self, kind: str) -> list[Object]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> Object:
        found = [obj for obj in self.all(kind) if name is None or obj["metadata"]["name"] == name]
        assert len(found) == 1, f"{self.name}: expected one {kind} {name or ''}, found {len(found)}"
        return found[0]

    def serving(self) -> Object:
        """The Deployment whose pods serve: the rendered one, or the one KServe makes of the
        InferenceService."""
        if self.all("InferenceService"):
            return kserve_deployment(self.one("InferenceService"))
        return self.one("Deployment")

    def container(self) -> Object:
        """The serving container: the pod's first (KServe requires kserve-container to be it)."""
        return self.serving()["spec"]["template"]["spec"]["containers"][0]

    def environment(self, container: Object | None = None) -> dict[str, str | None]:
        """A container's variables (the serving one's by default): its ConfigMaps, which must be rendered
        here, then its own `env`; a value taken from a Secret or a field is None."""
        container = self.container() if container is None else container
        env: dict[str, str | None] = {}
        for source in container.get("envFrom", []):
            assert set(source) == {"configMapRef"}, f"{container['name']}: envFrom {source}: not a ConfigMap"
            env |= self.one("ConfigMap", source["configMapRef"]["name"]).get("data", {})
        for variable in container.get("env", []):
            env[variable["name"]] = variable.get("value")
        return env

    def settings(self) -> Settings:
        """The settings the serving container starts with: its TIERED_ variables parsed by Settings
        (a test token for the Secret's), nothing from this machine's environment."""
        values = {name.removeprefix("TIERED_").lower(): "a-test-token-0123456789" if value is None else value
                  for name, value in self.environment().items() if name.startswith("TIERED_")}
        return PodSettings(**values)


class PodSettings(Settings):
    """Settings from keyword arguments alone: the pod's variables, not the test runner's."""

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: Source,
                                   **others: Source) -> tuple[Source, ...]:
        return (init_settings,)


# What KServe's raw deployment mode makes of an InferenceService's predictor, from kserve's sources:
# components/predictor.go (buildObjectMeta: pod labels), reconcilers/deployment/deployment_reconciler.go
# (the Deployment and its selector) and webhook/admission/pod/storage_initializer_injector.go (a pvc://
# STORAGE_URI is mounted, not copied, at /mnt/models, read-only by default).
KSERVE_MODEL_MOUNT = "/mnt/models"
# The predictor's fields that are not the pod's (PredictorSpec and ComponentExtensionSpec); the rest of
# the predictor is a PodSpec, inline.
KSERVE_PREDICTOR_FIELDS = frozenset({
    "sklearn", "xgboost", "tensorflow", "pytorch", "triton", "onnx", "huggingface", "pmml", "lightgbm",
    "paddle", "model", "storageUris", "storageContainerName", "workerSpec", "minReplicas", "maxReplicas",
    "scaleTarget", "scaleMetric", "scaleMetricType", "autoScaling", "containerConcurrency", "timeout",
    "canaryTrafficPercent", "logger", "batcher", "labels", "annotations", "deploymentStrategy"})


def kserve_deployment(isvc: Object) -> Object:
    name, predictor = isvc["metadata"]["name"], isvc["spec"]["predictor"]
    component = f"{name}-predictor"
    selector = {"app": f"isvc.{component}"}
    labels = {**isvc["metadata"].get("labels", {}), **predictor.get("labels", {}),
              "serving.kserve.io/inferenceservice": name, "component": "predictor", **selector}
    pod_spec = mount_storage({key: value for key, value in predictor.items()
                              if key not in KSERVE_PREDICTOR_FIELDS})
    spec = {"replicas": predictor.get("minReplicas", 1), "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec}}
    if "deploymentStrategy" in predictor:
        spec["strategy"] = predictor["deploymentStrategy"]
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": component, "labels": labels},
            "spec": spec}


def mount_storage(pod_spec: Object) -> Object:
    """The pod spec with kserve-container's pvc:// STORAGE_URI mounted as KServe's webhook does."""
    pod_spec = copy.deepcopy(pod_spec)
    for container in pod_spec["containers"]:
        uri = next((v.get("value", "") for v in container.get("env", []) if v["name"] == "STORAGE_URI"), "")
        if container["name"] == "kserve-container" and uri.startswith("pvc://"):
            claim, _, sub_path = uri.removeprefix("pvc://").partition("/")
            mount = {"name": "kserve-pvc-source", "mountPath": KSERVE_MODEL_MOUNT, "readOnly": True}
            mount |= {"subPath": sub_path} if sub_path else {}
            container.setdefault("volumeMounts", []).append(mount)
            pod_spec.setdefault("volumes", []).append(
                {"name": "kserve-pvc-source", "persistentVolumeClaim": {"claimName": claim}})
    return pod_spec
