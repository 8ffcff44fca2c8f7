"""The smaller findings of issue 13, against the real server (`tiered serve`): HEAD on GET routes, no
redirect built from a client's Host header, an override to an unavailable tier answered by that tier's
nearest neighbour, and a family directory whose manifest names another family refused with the reason.

Also over the real server, though decided elsewhere (the rules in tests/app/test_validation.py): taker-buy
volume above the volume is a 422 naming the candle; a key sent twice keeps its last value, by a
documented decision (app/wire.py: finding duplicates costs 9x msgspec's decoding per window).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.main import create_app
from models.store import MANIFEST, read_current, set_current
from tests.conftest import copy_store
from tests.reliability.conftest import copy_family, server_environment

pytestmark = pytest.mark.slow

BROKEN = "M1"
NEAREST = "M0"  # M1's larger neighbour, which the router tries first


@pytest.fixture(scope="module")
def store(quick_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the quick store whose family has a broken M1."""
    store = tmp_path_factory.mktemp("edges-store")
    family_id = copy_store(quick_store, store).name
    (store / family_id / f"{BROKEN}.onnx").write_bytes(b"not a model")
    return store


@pytest.fixture(scope="module")
def server(store: Path, serve: Any, tmp_path_factory: pytest.TempPathFactory,
           admin_token: str) -> Iterator[Any]:
    with serve(store, tmp_path_factory.mktemp("edges") / "server.log", TIERED_ADMIN_TOKEN=admin_token) as s:
        yield s


def get_routes() -> list[str]:
    """Every GET route of the app's OpenAPI document, and the document itself; a tier stands in for a
    path parameter."""
    paths = {path for path, operations in create_app().openapi()["paths"].items() if "get" in operations}
    return sorted(p.replace("{name}", "M2").replace("{tier}", "M2") for p in paths | {"/openapi.json"})


def test_the_get_routes_are_found():
    assert {"/healthz", "/readyz", "/metrics", "/tiers", "/tiers/M2", "/v2/health/ready"} <= set(get_routes())


@pytest.mark.parametrize("path", get_routes())
def test_head_on_a_get_route_answers_as_get_without_a_body(server, path):
    got = httpx.get(f"{server.url}{path}", timeout=10.0)
    head = httpx.head(f"{server.url}{path}", timeout=10.0)
    assert head.status_code == got.status_code, (head.status_code, got.status_code)
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]


def test_head_on_a_post_route_is_405_like_get(server):
    assert httpx.head(f"{server.url}/predict", timeout=10.0).status_code == 405


@pytest.mark.parametrize("path", ["/tiers/", "/readyz/", "/v2/", "/metrics/", "/docs/"])
def test_a_trailing_slash_with_a_hostile_host_header_is_a_404_that_points_nowhere(server, path):
    r = httpx.get(f"{server.url}{path}", headers={"Host": "evil.example"}, timeout=10.0,
                  follow_redirects=False)
    assert r.status_code == 404, (r.status_code, r.headers)
    assert "location" not in r.headers and "evil.example" not in r.text


def test_an_override_to_an_unavailable_tier_is_answered_by_its_nearest_neighbour(server, requests_by_regime):
    body = {**requests_by_regime["calm"][0], "tier": BROKEN}  # the calm regime's own tier is M3
    r = httpx.post(f"{server.url}/predict", json=body, timeout=10.0)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert (answer["requested_tier"], answer["tier"], answer["reason"]) == (BROKEN, NEAREST, "fallback")


def test_taker_buy_volume_above_the_volume_is_a_422_naming_the_candle(server, requests_by_regime):
    body = json.loads(json.dumps(requests_by_regime["calm"][0]))
    for candle in body["candles"]:
        candle["taker_buy_volume"] = candle["volume"] / 2
    body["candles"][7]["taker_buy_volume"] = body["candles"][7]["volume"] * 5  # the 5x
    r = httpx.post(f"{server.url}/predict", json=body, timeout=10.0)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == "candles[7].taker_buy_volume"


def test_a_key_sent_twice_keeps_its_last_value(server, requests_by_regime):
    body = json.dumps({**requests_by_regime["calm"][0], "tier": "M0"})
    twice = body[:-1] + ', "tier": "M2"}'
    r = httpx.post(f"{server.url}/predict", content=twice, headers={"content-type": "application/json"},
                   timeout=10.0)
    assert r.status_code == 200, r.text
    assert (r.json()["requested_tier"], r.json()["reason"]) == ("M2", "override")


def renamed_directory(store: Path, family_id: str, directory: str) -> Path:
    """A copy of the family in a directory named `directory`, its manifest still naming `family_id`."""
    copy = copy_family(store, family_id, directory)
    manifest = json.loads((copy / MANIFEST).read_text())
    (copy / MANIFEST).write_text(json.dumps({**manifest, "family_id": family_id}))
    return copy


def test_a_family_whose_manifest_names_another_id_is_refused_on_reload_and_at_start(
        server, store, admin_token, tmp_path):
    serving = read_current(store)
    impostor = renamed_directory(store, serving, "fam-impostor")
    set_current(store, impostor.name)
    r = httpx.post(f"{server.url}/admin/reload", headers={"Authorization": f"Bearer {admin_token}"},
                   timeout=120.0)
    assert r.status_code == 409, r.text
    message = r.json()["error"]["message"]
    assert "fam-impostor" in message and serving in message and "its own id" in message, message
    assert httpx.get(f"{server.url}/readyz", timeout=10.0).json()["family_id"] == serving

    tiered = Path(sys.executable).parent / "tiered"
    env = server_environment(store, 9, {})  # never listens: it stops before binding
    started = subprocess.run([str(tiered), "serve"], env=env, capture_output=True, text=True, timeout=60,
                             check=False)
    assert started.returncode == 2, started.stderr
    lines = started.stderr.strip().splitlines()
    assert len(lines) == 1 and "fam-impostor" in lines[0] and "its own id" in lines[0], started.stderr
