"""Hot reload under load, against the real server: a second family trained into the live store is
swapped in by POST /admin/reload while 2,000 requests run over 8 connections; none fails, each names
a complete family, and after the swap only the new one answers. A reload to a broken family is refused
mid-load and the family in service serves on; a wrong or missing token reloads nothing.

tests/app/test_admin.py covers reload in-process (token checks, refusals for a broken tier, manifest or
CURRENT, the admin API off without a token); this adds the concurrency and the constant-time compare.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from models.store import read_current, set_current
from tests.reliability.conftest import copy_family

REQUESTS = 2000
CONNECTIONS = 8
GOOD_RELOAD_AT = 600  # answered requests before the reload to the new family
BAD_RELOAD_AT = 1400  # ... before the reload to a broken family
WRONG_TOKEN_AT = 200  # ... before reloads with a wrong and with no token


@dataclass(frozen=True)
class Answer:
    connection: int
    started: float
    finished: float
    status: int
    family_id: str | None


@dataclass
class Reload:
    at: int  # answered requests when it was sent
    headers: dict[str, str]
    started: float = 0.0
    finished: float = 0.0
    status: int = 0
    body: dict[str, Any] = field(default_factory=dict)


@dataclass
class Run:
    answers: list[Answer] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    reloads: list[Reload] = field(default_factory=list)


async def drive(url: str, bodies: list[bytes], reloads: list[Reload], before_bad: Any) -> Run:
    """REQUESTS /predict calls over CONNECTIONS clients (one connection each); the reloads fire when
    their number of answers is reached, from a client of their own."""
    run, sent = Run(reloads=reloads), [0]
    headers = {"content-type": "application/json"}

    async def connection(k: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=60.0,
                                     limits=httpx.Limits(max_connections=1)) as client:
            while sent[0] < REQUESTS:
                i, sent[0] = sent[0], sent[0] + 1
                started = time.monotonic()
                try:
                    r = await client.post("/predict", content=bodies[i % len(bodies)], headers=headers)
                except httpx.HTTPError as e:
                    run.failures.append(f"request {i}: {type(e).__name__}: {e}")
                    continue
                family = r.json().get("family_id") if r.status_code == 200 else None
                run.answers.append(Answer(k, started, time.monotonic(), r.status_code, family))
                if r.status_code != 200:
                    run.failures.append(f"request {i}: {r.status_code} {r.text[:300]}")

    async def admin() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=120.0) as client:
            for reload in reloads:
                while len(run.answers) < reload.at and sent[0] < REQUESTS:
                    await asyncio.sleep(0.005)
                if reload.at == BAD_RELOAD_AT:
                    before_bad()
                reload.started = time.monotonic()
                r = await client.post("/admin/reload", headers=reload.headers)
                reload.finished, reload.status, reload.body = time.monotonic(), r.status_code, r.json()

    await asyncio.gather(admin(), *(connection(k) for k in range(CONNECTIONS)))
    return run


def break_a_copy(store: Path, family_id: str, broken_id: str) -> None:
    """A copy of the family with one tier file changed, made CURRENT."""
    broken = copy_family(store, family_id, broken_id)
    (broken / "M2.onnx").write_bytes(b"not a model")
    set_current(store, broken_id)


@pytest.mark.slow
def test_reload_under_load_fails_no_request_and_switches_family_atomically(
        store_copy, serve, tmp_path, batch_body, admin_token):
    store, family_dir = store_copy
    old = family_dir.name
    bodies = [json.dumps(item).encode() for item in batch_body["items"]]
    token = {"Authorization": f"Bearer {admin_token}"}
    with serve(store, tmp_path / "server.log", TIERED_ADMIN_TOKEN=admin_token) as server:
        # The second family is trained into the live store: CURRENT moves, the server serves on unaware.
        tiered = Path(sys.executable).parent / "tiered"
        with (tmp_path / "train.log").open("wb") as log:
            subprocess.run([str(tiered), "train", "--quick", "--seed", "1", "--out", str(store)],
                           stdout=log, stderr=subprocess.STDOUT, check=True, timeout=600)
        new = read_current(store)
        assert new != old
        reloads = [Reload(WRONG_TOKEN_AT, {"Authorization": "Bearer wrong-token-of-the-right-length"}),
                   Reload(WRONG_TOKEN_AT, {}), Reload(GOOD_RELOAD_AT, token), Reload(BAD_RELOAD_AT, token)]
        run = asyncio.run(drive(server.url, bodies, reloads, lambda: break_a_copy(store, new, "fam-broken")))
        ready = httpx.get(f"{server.url}/readyz").json()

    assert run.failures == [] and len(run.answers) == REQUESTS
    wrong, missing, good, bad = run.reloads
    assert (wrong.status, missing.status) == (401, 401)
    assert good.status == 200, good.body
    assert {k: v for k, v in good.body.items() if k != "workers"} == {
        "family_id": new, "previous_family_id": old, "available": ["M0", "M1", "M2", "M3"]}
    assert [(w["family_id"], w["state"]) for w in good.body["workers"]] == [(new, "serving")]
    assert bad.status == 409 and bad.body["error"]["code"] == "family_refused"
    assert "fam-broken" in bad.body["error"]["message"] and "M2" in bad.body["error"]["message"]
    assert ready["family_id"] == new and ready["status"] == "ready"

    assert {a.family_id for a in run.answers} == {old, new}
    # Until the good reload began, nothing changed, the two refused tokens included.
    assert all(a.family_id == old for a in run.answers if a.finished < good.started)
    # Once it answered, only the new family serves, through the broken family's refusal and after.
    after = [a for a in run.answers if a.started > good.finished]
    assert len(after) >= REQUESTS - BAD_RELOAD_AT and all(a.family_id == new for a in after)
    # On each connection the switch happens once: old answers, then new ones, never a mix.
    for k in range(CONNECTIONS):
        ids = [a.family_id for a in sorted(run.answers, key=lambda a: a.started) if a.connection == k]
        assert ids == sorted(ids, key=lambda f: f == new), f"connection {k} went back to the old family"


def test_the_admin_token_is_compared_in_constant_time(quick_store, client_for, admin_token, monkeypatch):
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)
    monkeypatch.setattr(hmac, "compare_digest", spy)
    with client_for(quick_store) as c:
        for given in ("x" * 16, admin_token[:-1] + "?", admin_token + "-and-more", admin_token):
            c.post("/admin/reload", headers={"Authorization": f"Bearer {given}"})
    # Every token went through compare_digest, as SHA-256 digests: equal lengths, whatever was sent.
    assert len(compared) == 4
    assert all(len(a) == len(b) == 32 for a, b in compared)
    assert {b for _, b in compared} == {hashlib.sha256(admin_token.encode()).digest()}
