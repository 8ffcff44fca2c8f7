"""bench/distill in its --quick mode: every variant on every data set, finite scores, retention against M0."""

import math

import pytest
import torch

from bench import distill, distill_report

pytestmark = pytest.mark.slow

MAIN = ("M0", "chain", "one-shot", "direct")


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, object]:
    out = tmp_path_factory.mktemp("distill")
    threads = torch.get_num_threads()
    result = distill.run(True, out)
    result["threads_before_and_after"] = (threads, torch.get_num_threads())
    return result, out


def rows_of(source: dict, variant: str) -> list[dict]:
    return [r for r in source["rows"] if r["variant"] == variant]


def test_quick_run_covers_every_variant_on_the_synthetic_market(quick):
    result, _ = quick
    returns, direction = result["sources"][:2]
    assert returns["target"]["name"] == "return" and direction["target"]["name"] == "direction"
    fixed = {"return": ("fixed α=0.5", "fixed α=0.9", "write-up schedule"),
             "direction": ("fixed α=0.5 T=2", "fixed α=0.9 T=4", "write-up schedule")}
    for source in (returns, direction):
        name = source["target"]["name"]
        paired = {f"{kind}, {f}" for kind in ("chain", "one-shot") for f in fixed[name]}
        shapes = {"chain, width-only", "chain, depth-only"} if name == "return" else set()
        assert {r["variant"] for r in source["rows"]} == {*MAIN, *paired, *shapes}
        for r in source["rows"]:
            tiers = [x["tier"] for x in rows_of(source, r["variant"])]
            assert tiers == (["M1", "M2", "M3"] if r["variant"].startswith("chain") else [r["tier"]])
            assert r["tier"] == "M3" or r["variant"] == "M0" or r["variant"].startswith("chain")
        paired_chains = {f"chain, {f}" for f in fixed[name]}
        assert set(source["chain_beats_one_shot"]) == {"chain", *paired_chains}


def test_every_score_is_finite_and_there_is_one_per_seed(quick):
    result, _ = quick
    for source in result["sources"]:
        signed = ("directional_accuracy",) if source["target"]["name"] == "return" else ()
        for row in source["rows"]:
            for key in (source["metric"], *signed, "seconds"):
                values = row["runs"][key]
                main = row["variant"] in ("chain", "one-shot", "direct")
                shape = row["variant"].endswith("-only")
                seeds = "seeds" if main else "shape_seeds" if shape else "variant_seeds"
                runs = 1 if row["variant"] == "M0" else len(source[seeds])
                assert len(values) == runs and all(math.isfinite(v) for v in values), (row, key)
            assert row["compression"] >= 1.0


def test_retention_is_each_models_score_over_m0s_on_the_same_seed(quick):
    result, _ = quick
    source = result["sources"][0]
    (m0,) = rows_of(source, "M0")[0]["runs"]["r2"]
    for row in source["rows"]:
        for r2, retention in zip(row["runs"]["r2"], row["runs"]["retention"], strict=True):
            assert retention == (pytest.approx(r2 / m0) if m0 > 0 else None), (row["variant"], row["tier"])
    assert rows_of(source, "M0")[0]["runs"]["retention"] == ([1.0] if m0 > 0 else [None])
    direction = result["sources"][1]
    (m0,) = rows_of(direction, "M0")[0]["runs"]["balanced_accuracy"]
    for row in direction["rows"]:  # for classes: the share of M0's balanced accuracy above chance
        for value, retention in zip(row["runs"]["balanced_accuracy"], row["runs"]["retention"], strict=True):
            assert retention == (pytest.approx((value - 1 / 3) / (m0 - 1 / 3)) if m0 > 1 / 3 else None)


def test_oracle_share_is_reported_on_synthetic_data_only(quick):
    result, _ = quick
    for synthetic in result["sources"][:2]:  # one bar ahead, both targets have an exact oracle
        assert synthetic["oracle"] > 0
        assert all(v is not None for v in rows_of(synthetic, "chain")[-1]["runs"]["oracle_share"])
    for source in result["sources"][2:]:
        assert source["oracle"] is None and source["source"]["kind"] == "csv"


def test_real_candles_are_measured_when_present_and_skipped_cleanly_when_absent(quick):
    result, _ = quick
    files = sorted(distill.OHLCV.glob("*.csv")) if distill.OHLCV.is_dir() else []
    assert [s["name"] for s in result["sources"][2:]] == [f.name for f in files]
    assert bool(result["skipped"]) == (not files)


def test_chain_and_one_shot_training_times_are_compared_per_seed(quick):
    result, _ = quick
    for source in result["sources"]:
        timing = source["timing"]
        assert len(timing["ratio"]) == len(source["seeds"])
        assert all(r > 0 and math.isfinite(r) for r in timing["ratio"] + timing["ratio_with_m0"])
        assert 0 <= source["chain_beats_one_shot"]["chain"]["wins"] <= len(source["seeds"])
        assert all(0 <= w["wins"] <= w["seeds"] == len(source["variant_seeds"])
                   for v, w in source["chain_beats_one_shot"].items() if v != "chain")


def test_run_leaves_torch_on_the_threads_it_found(quick):
    before, after = quick[0]["threads_before_and_after"]
    assert after == before


def test_markdown_renders_every_data_set_the_reading_and_the_plot(quick):
    result, out = quick
    text = distill_report.markdown(result)
    for source in result["sources"]:
        assert f"### {source['name']}" in text
    assert "chain ÷ one-shot" in text and "**Reading.**" in text
    assert (out / "distill.png").stat().st_size > 0
