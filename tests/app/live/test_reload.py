"""A reload while following: the bars before it are answered by the old family, every bar after it by the
new one, and the symbol's hysteresis is rebuilt on the new family's thresholds (warmed on the history)."""

from __future__ import annotations

import shutil

import pytest

from models.store import set_current
from tests.app.live.conftest import listen, run
from tests.app.live.test_following import HISTORY, following
from tests.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.slow  # every test here starts the real server and an exchange


def test_a_reload_applies_from_the_next_bar_with_the_new_thresholds(store_copy, manifest_editor):
    store, family_dir = store_copy
    old = family_dir.name
    stressed = store / "fam-stressed"
    shutil.copytree(family_dir, stressed)

    def every_window_in_crisis(m):  # stress is a log: every window is above -98
        m["family_id"] = stressed.name
        m["regime"]["thresholds"].update(calm=-100.0, volatile=-99.0, crisis=-98.0)
    manifest_editor(stressed, every_window_in_crisis)

    async def scenario():
        async with following(store, admin_token=ADMIN_TOKEN) as (exchange, client):
            stream = await listen(client, "BTCUSDT")
            await exchange.publish("BTCUSDT", 3)
            await stream.until(lambda s: len(s.bars) >= 3)
            set_current(store, stressed.name)
            reload = await client.post("/admin/reload", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
            await exchange.publish("BTCUSDT", 3)
            await stream.until(lambda s: len(s.bars) >= 6)
            latest = (await client.get("/symbols/BTCUSDT")).json()
            await stream.close()
            return exchange.series["BTCUSDT"], reload, stream, latest

    btc, reload, stream, latest = run(scenario())
    assert reload.status_code == 200, reload.text
    assert stream.ids == btc.ts[HISTORY:HISTORY + 6].tolist()
    before, after = [body for _, body in stream.bars[:3]], [body for _, body in stream.bars[3:]]
    assert {b["family_id"] for b in before} == {old} and {b["family_id"] for b in after} == {stressed.name}
    assert any(b["regime"]["name"] != "crisis" for b in before), "the quick family's own regimes first"
    for b in after:  # a hysteresis kept from the old thresholds would hold the old regime for bars
        regime = b["regime"]
        assert (regime["name"], regime["detected"], regime["held"]) == ("crisis", "crisis", False)
        assert b["tier"] == "M0" and b["reason"] == "regime"
    assert latest["family_id"] == stressed.name
