"""Fixtures for deploy/k8s: every kustomization rendered with `kubectl kustomize`, read as `Manifests`.

`overlay` is parametrised over the kustomizations that serve (pytest_generate_tests): for now the base.
The training Job's kustomization (deploy/k8s/train) is rendered beside them as `k8s["train"]`.
"""

from __future__ import annotations

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
    """Name → kustomization directory below deploy/k8s."""
    return {"base": "base"}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "overlay" in metafunc.fixturenames:
        metafunc.parametrize("overlay", list(serving_overlays()))


@pytest.fixture(scope="session")
def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.skip("kubectl is not installed, so deploy/k8s cannot be rendered (kubectl 1.27+ embeds "
                    "kustomize)")
    return path


@pytest.fixture(scope="session")
def k8s(kubectl: str) -> dict[str, Manifests]:
    """Every kustomization rendered."""
    return {name: Manifests(name, render(kubectl, K8S / path))
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
        """The Deployment whose pods serve."""
        return self.one("Deployment")

    def container(self) -> Object:
        """The serving container: the pod's first."""
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
