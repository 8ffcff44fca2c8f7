"""POST /admin/reload: the token guards it, a verified family is swapped in, a broken one is refused."""

from __future__ import annotations

import os

import pytest


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_reload_swaps_in_the_new_current_family(
        store_copy, client_for, make_body, family_maker, admin_token):
    store, family_dir = store_copy
    with client_for(store) as c:
        old = c.post("/predict", json=make_body()).json()["family_id"]
        family_maker(family_dir, "fam-new")
        assert c.post("/predict", json=make_body()).json()["family_id"] == old, "no reload yet"
        r = c.post("/admin/reload", headers=bearer(admin_token))
        assert r.status_code == 200, r.text
        assert r.json() == {"family_id": "fam-new", "previous_family_id": old,
                            "available": ["M0", "M1", "M2", "M3"],
                            "workers": [{"pid": os.getpid(), "family_id": "fam-new", "state": "serving"}]}
        assert c.post("/predict", json=make_body()).json()["family_id"] == "fam-new"
        assert c.get("/tiers").json()["family_id"] == "fam-new"
        assert 'family_id="fam-new"' in c.get("/metrics").text


@pytest.mark.parametrize("breakage", ["tier", "manifest", "current"])
def test_reload_refuses_a_broken_family_and_the_old_one_serves_on(
        store_copy, client_for, make_body, family_maker, admin_token, breakage):
    store, family_dir = store_copy
    with client_for(store) as c:
        old = c.get("/tiers").json()["family_id"]
        broken = family_maker(family_dir, "fam-broken")
        if breakage == "tier":
            (broken / "M2.onnx").write_bytes(b"garbage")
        elif breakage == "manifest":
            (broken / "manifest.json").write_text("{")
        else:
            (store / "CURRENT").write_text("../../etc\n")
        r = c.post("/admin/reload", headers=bearer(admin_token))
        assert r.status_code == 409, r.text
        error = r.json()["error"]
        assert error["code"] == "family_refused" and str(store) not in error["message"]
        after = c.post("/predict", json=make_body())
    assert after.status_code == 200 and after.json()["family_id"] == old
    if breakage == "tier":
        assert "M2" in error["message"] and "sha256" in error["message"] and old in error["message"]


WRONG = [{}, bearer("wrong-token-of-enough-length"), {"Authorization": "Basic abc"}, bearer("")]


@pytest.mark.parametrize("headers", WRONG)
def test_reload_without_the_right_token_is_401_and_reloads_nothing(
        store_copy, client_for, family_maker, headers):
    store, family_dir = store_copy
    with client_for(store) as c:
        old = c.get("/tiers").json()["family_id"]
        family_maker(family_dir, "fam-unwanted")
        r = c.post("/admin/reload", headers=headers)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "unauthorized" and r.headers["www-authenticate"] == "Bearer"
        assert c.get("/tiers").json()["family_id"] == old


def test_reload_is_off_without_a_configured_token(quick_store, client_for, admin_token):
    with client_for(quick_store, admin_token=None) as c:
        r = c.post("/admin/reload", headers=bearer(admin_token))
    assert r.status_code == 403
    error = r.json()["error"]
    assert error["code"] == "admin_disabled" and "TIERED_ADMIN_TOKEN" in error["message"]
