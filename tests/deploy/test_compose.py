"""docker-compose.yml and deploy/nginx.conf, checked by reading them (and by `docker compose config` when
the compose plugin is installed; it needs no engine)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
NGINX_CONF = REPO / "deploy" / "nginx.conf"
INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<word>[^}]*))?\}")
TOKEN = "a-test-token-of-more-than-16-characters"

Instruction = tuple[str, str]


def mounts(service: dict[str, Any]) -> list[dict[str, Any]]:
    """The service's volumes as {type, source, target, read_only}, whichever form the file uses."""
    result = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target, *mode = volume.split(":")
            kind = "bind" if source.startswith((".", "/", "~")) else "volume"
            volume = {"type": kind, "source": source, "target": target, "read_only": mode == ["ro"]}
        result.append({"read_only": False, **volume})
    return result


def condition_on(service: dict[str, Any], dependency: str) -> str | None:
    depends_on = service.get("depends_on", {})
    if isinstance(depends_on, list):
        return "service_started" if dependency in depends_on else None
    return depends_on.get(dependency, {}).get("condition", "service_started")


def test_compose_has_train_api_and_lb_with_a_named_models_volume(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"train", "api", "lb"}, list(compose["services"])
    assert "models" in compose.get("volumes", {}), "the family's store must be a named volume"


def test_train_is_a_one_shot_job_writing_the_family_into_the_volume(compose: dict[str, Any]) -> None:
    train = compose["services"]["train"]
    assert train["build"]["target"] == "train"
    assert {"type": "volume", "source": "models", "target": "/models", "read_only": False} in mounts(train)
    assert str(train.get("restart", "no")) == "no", "a one-shot job must not be restarted"
    assert "--out /models" in " ".join(train["command"]), train["command"]


def test_api_serves_the_volume_read_only_after_train_succeeded(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]
    assert api["build"]["target"] == "serve"
    models = [m for m in mounts(api) if m["source"] == "models"]
    assert models == [{"type": "volume", "source": "models", "target": "/models", "read_only": True}], models
    assert condition_on(api, "train") == "service_completed_successfully"
    assert api["environment"]["TIERED_MODELS_DIR"] == "/models"


def test_api_publishes_no_port_so_it_can_scale_behind_lb(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]
    assert "ports" not in api, f"api publishes {api['ports']}: replicas would fight over the host port"
    assert "container_name" not in api, "a fixed container name forbids --scale"


def test_api_healthcheck_is_the_images_readyz_probe(compose: dict[str, Any],
                                                     serve_chain: list[Instruction]) -> None:
    test = compose["services"]["api"]["healthcheck"]["test"]
    image_probe = next(args for kw, args in serve_chain if kw == "HEALTHCHECK").partition(" CMD ")[2]
    assert test == ["CMD", *json.loads(image_probe)], "compose and the image probe readiness differently"
    assert "/readyz" in " ".join(test)


def test_lb_is_a_pinned_nginx_that_re_resolves_replicas(compose: dict[str, Any]) -> None:
    lb = compose["services"]["lb"]
    match = re.fullmatch(r"nginx:(\d+)\.(\d+)\.(\d+)(-[\w.]+)?", lb["image"])
    assert match, f"pin nginx by version, not {lb['image']!r}"
    # `server ... resolve` in an upstream arrived in open-source nginx 1.27.3.
    assert tuple(int(part) for part in match.groups()[:3]) >= (1, 27, 3), lb["image"]
    assert condition_on(lb, "api") in {"service_healthy", "service_started"}
    assert "healthcheck" in lb
    assert any(m["source"] == "./deploy/nginx.conf" and m["read_only"] for m in mounts(lb)), mounts(lb)
    assert lb["ports"], "lb is the one service that publishes a port"


def test_nginx_proxies_every_replica_of_api_on_the_services_port(compose: dict[str, Any]) -> None:
    conf = NGINX_CONF.read_text()
    port = compose["services"]["api"]["environment"]["TIERED_PORT"]
    upstream = re.search(r"upstream\s+(\w+)\s*\{(.*?)\}", conf, re.S)
    assert upstream, "nginx.conf has no upstream block"
    name, body = upstream.groups()
    assert re.search(rf"^\s*server\s+api:{port}\s+resolve\s*;", body, re.M), body
    assert re.search(r"^\s*resolver\s+127\.0\.0\.11\b", body, re.M), "use Docker's embedded DNS resolver"
    assert re.search(r"^\s*zone\s+\w+", body, re.M), "`resolve` needs a shared memory zone"
    assert re.search(rf"^\s*proxy_pass\s+http://{name}\s*;", conf, re.M), f"nothing proxies to {name}"
    listen = re.search(r"^\s*listen\s+(\d+)\s*;", conf, re.M)
    published = compose["services"]["lb"]["ports"][0]
    assert listen and published.endswith(f":{listen.group(1)}"), (published, listen)


def test_admin_token_is_required_and_every_other_setting_has_a_default() -> None:
    found = {m["name"]: m for m in INTERPOLATION.finditer(COMPOSE.read_text())}
    token = found.pop("TIERED_ADMIN_TOKEN", None)
    assert token and token["op"] == ":?" and token["word"].strip(), (
        "TIERED_ADMIN_TOKEN must be required as ${TIERED_ADMIN_TOKEN:?message}")
    without_default = {name for name, m in found.items() if m["op"] != ":-"}
    assert not without_default, f"give these a safe default (${{VAR:-default}}): {sorted(without_default)}"


def test_api_environment_names_real_settings_and_its_defaults_are_valid(
        compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from app.settings import Settings

    environment = compose["services"]["api"]["environment"]
    fields = {f"TIERED_{field.upper()}" for field in Settings.model_fields}
    unknown = set(environment) - fields
    assert not unknown, f"docker-compose.yml sets {sorted(unknown)}, which Settings does not have"
    for name in [name for name in os.environ if name.startswith("TIERED_")]:
        monkeypatch.delenv(name)
    for name, value in environment.items():
        if value is not None:  # a bare name is passed through only when set on the host
            monkeypatch.setenv(name, resolve_with_nothing_set(str(value)))
    settings = Settings()
    assert str(settings.models_dir) == "/models" and settings.admin_token is not None


def resolve_with_nothing_set(value: str) -> str:
    """What compose puts in the container when the host sets nothing but the required token."""
    def replace(match: re.Match[str]) -> str:
        return TOKEN if match["op"] == ":?" else match["word"] or ""
    return INTERPOLATION.sub(replace, value)


def compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", "compose", "-f", str(COMPOSE), "config", "--format", "json"],
                          capture_output=True, text=True, cwd=REPO, env=env, check=False, timeout=60)


def host_env() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if not name.startswith("TIERED_")}


@pytest.fixture(scope="module")
def compose_plugin() -> None:
    try:
        version = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True,
                                 check=False, timeout=30)
    except FileNotFoundError:
        pytest.skip("no docker client on this machine: `docker compose config` cannot be run")
    if version.returncode != 0:
        said = (version.stderr.strip() or version.stdout.strip()).splitlines()[:1]
        pytest.skip(f"the docker compose plugin is not installed ({said}): `docker compose config` not run")


@pytest.mark.usefixtures("compose_plugin")
def test_docker_compose_renders_the_config_when_the_token_is_set() -> None:
    result = compose_config({**host_env(), "TIERED_ADMIN_TOKEN": TOKEN})
    assert result.returncode == 0, result.stderr
    rendered = json.loads(result.stdout)
    assert set(rendered["services"]) == {"train", "api", "lb"}
    assert rendered["services"]["api"]["environment"]["TIERED_ADMIN_TOKEN"] == TOKEN


@pytest.mark.usefixtures("compose_plugin")
def test_docker_compose_refuses_to_start_without_the_admin_token() -> None:
    result = compose_config(host_env())
    assert result.returncode != 0, "compose rendered a config without TIERED_ADMIN_TOKEN"
    assert "TIERED_ADMIN_TOKEN" in result.stderr, result.stderr
