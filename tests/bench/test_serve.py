"""bench.serve in its --quick mode over the suite's quick family: every row is measured against the real
server, no request fails, the figures are finite and positive, and the tables render. Also the pieces
the full mode adds (wrk) and the server's lifecycle: it is always stopped, and a refused family fails fast.
"""

from __future__ import annotations

import json
import math
import socket
from pathlib import Path
from typing import Any

import pytest

from bench import bodies, loadgen, serve, server

pytestmark = pytest.mark.slow

ROWS = {"bare", "objects", "columns", "bybit", "tier M0", "tier M3", "bare @1", "objects @1", "columns @1",
        "batch 1", "batch 64", *(f"{name} ×{size}" for name in serve.OIP_ROWS for size in serve.OIP_BATCHES),
        *(f"shadow {rate:g}" for rate in serve.SHADOW_RATES)}


@pytest.fixture(scope="module")
def quick(quick_store: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("serve")
    return serve.run(True, out, models=quick_store), out


def _positive(value: float) -> bool:
    return math.isfinite(value) and value > 0


def test_quick_run_measures_every_row_with_one_worker(quick):
    result, _ = quick
    assert {(r["workers"], r["row"]) for r in result["http"]} == {(1, row) for row in ROWS}


def test_shadow_rows_shadow_as_many_answers_as_their_rate_asks(quick):
    result, _ = quick
    rows = {r["shadow_rate"]: r for r in result["http"] if "shadow_rate" in r}
    assert set(rows) == set(serve.SHADOW_RATES)
    assert rows[0.0]["comparisons"] == 0
    busy = rows[max(rows)]
    assert busy["served"] > 0 and busy["comparisons"] > 0, busy


def test_quick_run_answers_every_request_without_an_error(quick):
    result, _ = quick
    for r in result["http"]:
        assert r["errors"] == 0, r
        assert r["requests"] > 0, r


def test_quick_run_figures_are_finite_and_positive(quick):
    result, _ = quick
    for r in result["http"]:
        for key in ("rps", "predictions_per_s", "p50_ms", "p99_ms"):
            assert _positive(r[key]), (r["row"], key, r[key])
        assert r["p99_ms"] >= r["p50_ms"]
    for o in result["onnxruntime"]:
        assert _positive(o["batch1_us"]) and _positive(o["batch1024_per_s"]), o
    assert all(_positive(v) for v in result["features_us"].values())
    assert all(_positive(v) for v in result["parse_us"].values())
    assert set(result["pipeline"]) == {"1", "64"} and all(_positive(v) for v in result["pipeline"].values())
    for h in result["headline"]:
        assert all(_positive(h[k]) for k in serve.TARGETS), h


def test_quick_run_times_onnxruntime_for_every_tier(quick):
    result, _ = quick
    assert [o["tier"] for o in result["onnxruntime"]] == ["M0", "M1", "M2", "M3"]


def test_routed_rotation_is_answered_by_every_tier(quick):
    result, _ = quick
    shares = result["served_mix"]["tier"]
    assert set(shares) == {"M0", "M1", "M2", "M3"}
    assert math.isclose(sum(shares.values()), 1.0)


def test_quick_result_is_plain_json(quick):
    result, _ = quick
    assert json.loads(json.dumps(result))["client"] == "python"


def test_markdown_shows_every_row_the_headline_and_the_plot_is_written(quick):
    result, out = quick
    text = serve.markdown(result)
    for row in ROWS:
        assert f" {row} |" in text, row
    for head in serve.HEADS.values():
        assert head in text, head
    assert "No request failed." in text
    assert (out / "serve.png").stat().st_size > 0


def test_bodies_rotate_through_every_true_regime():
    windows = bodies.regime_mixed(4)
    assert sorted(set(windows.market.regime[windows.ends].tolist())) == [0, 1, 2, 3]
    assert len(json.loads(windows.body(0, tier="M2"))["candles"]) == windows.window
    assert len(json.loads(windows.body(0, "columns"))["candles"]["close"]) == windows.window
    assert len(json.loads(windows.body(0, "bybit"))["bybit_kline"]) == windows.window


@pytest.mark.skipif(not loadgen.wrk_installed(), reason="wrk is not installed")
def test_wrk_drives_the_real_server_which_is_stopped_afterwards(quick_store, tmp_path):
    windows = bodies.regime_mixed(2)
    payloads = [windows.body(k) for k in range(len(windows.ends))]
    with server.running(quick_store, 1, tmp_path / "server.log") as url:
        for path in ("/bench/bare", "/predict"):
            m = loadgen.run_wrk(url, loadgen.Load(path, payloads, 4, 1.0))
            assert m.errors == 0 and m.requests > 0 and _positive(m.p99_ms), (path, m)
    port = int(url.rsplit(":", 1)[1])
    with pytest.raises(OSError), socket.create_connection((server.HOST, port), timeout=1.0):
        pass


def test_a_store_without_a_family_fails_fast_with_the_servers_message(tmp_path):
    with pytest.raises(server.ServerFailed, match="CURRENT"), \
            server.running(tmp_path, 1, tmp_path / "server.log"):
        pass
