"""`tiered train --quick` end to end: the family on disk, its manifest, its ONNX files and its report."""

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from cli import main
from market import features
from market.regime import DEFAULT_TIER_MAP
from market.synthetic import simulate
from models.store import load_current, sha256_file
from training.report import TIER_FIELDS

pytestmark = pytest.mark.slow
BTC_1H = (Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "ohlcv"
          / "binance_spot_BTCUSDT_1h_20220429_20250428.csv")


def test_quick_family_has_every_tier_baseline_and_report_file(quick_store):
    family, manifest = load_current(quick_store)
    assert [t.name for t in manifest.tiers] == ["M0", "M1", "M2", "M3"]
    assert sorted(manifest.baselines) == ["direct", "one_shot"]
    for name in ("M0.onnx", "M1.onnx", "M2.onnx", "M3.onnx", "one_shot.onnx", "direct.onnx",
                 "report.json", "report.md", "report.png"):
        assert (family / name).is_file(), f"{name} missing from {family}"
    assert manifest.features.window == features.WINDOW
    assert manifest.input.name == "features" and manifest.input.shape == [None, len(features.FEATURE_NAMES)]
    assert manifest.output.name == "return" and manifest.output.shape == [None, 1]
    target = manifest.target
    assert (target.name, target.horizon, target.kind) == ("return", 1, "regression")
    assert sorted(manifest.classical) == ["mean", "ridge"]
    assert manifest.skill.best_baseline in manifest.classical
    assert set(manifest.skill.overall) == {"M0", "M1", "M2", "M3", "one_shot", "direct"}


def test_every_exported_model_loads_matches_its_hash_and_takes_any_batch_size(quick_store):
    family, manifest = load_current(quick_store)
    rows = np.random.default_rng(0).normal(size=(5, len(features.FEATURE_NAMES))).astype(np.float32)
    for tier in [*manifest.tiers, *manifest.baselines.values()]:
        assert sha256_file(family / tier.file) == tier.sha256
        assert tier.parity_max_abs_diff <= 1e-5, f"{tier.name}: parity {tier.parity_max_abs_diff}"
        sess = ort.InferenceSession(str(family / tier.file), providers=["CPUExecutionProvider"])
        for batch in (1, 5):
            (out,) = sess.run([manifest.output.name], {"features": rows[:batch]})
            assert out.shape == (batch, 1) and np.isfinite(out).all()


def test_a_fixed_tier_map_is_the_write_ups_and_still_carries_the_learned_maps_evidence(quick_store):
    _, manifest = load_current(quick_store)  # trained with --tier-map fixed
    section = manifest.regime
    assert manifest.config["routing"] == {"tier_map": "fixed", "tolerance": 0.02}
    assert section.tier_map_source == "fixed" and section.tier_map == DEFAULT_TIER_MAP
    assert section.learned is not None and section.learned.split == "validation"
    assert section.learned.metric == "r2" and set(section.learned.reasons) == set(section.names)
    assert all(set(q) == {"M0", "M1", "M2", "M3"} for q in section.learned.quality.values())


def learned_map_is_in_force(manifest) -> bool:
    section = manifest.regime
    return (manifest.config["routing"]["tier_map"] == section.tier_map_source == "learned"
            and section.learned is not None and section.tier_map == section.learned.chosen)


def test_distillation_settings_are_recorded_per_stage_and_the_last_stage_distills(quick_store):
    _, manifest = load_current(quick_store)
    m0, *students = manifest.tiers
    assert m0.alpha is None and m0.teacher is None
    assert [s.teacher for s in students] == ["M0", "M1", "M2"]
    assert all(s.alpha is not None and s.alpha > 0 for s in students)
    assert manifest.baselines["one_shot"].teacher == "M0" and manifest.baselines["direct"].alpha is None
    assert manifest.config["stages"][-1]["alpha"] == students[-1].alpha


def test_report_json_has_exactly_the_documented_fields(quick_store):
    family, manifest = load_current(quick_store)
    report = json.loads((family / "report.json").read_text())
    assert set(report) == {"family_id", "source", "target", "references", "regime_detector", "tiers",
                           "baselines", "classical", "skill", "timing"}
    assert report["family_id"] == manifest.family_id and report["references"]["oracle"]["metrics"]["r2"] > 0
    assert set(report["regime_detector"]) == {"balanced_accuracy", "confusion_matrix"}
    rows = [*report["tiers"], *report["baselines"].values()]
    assert [set(r) for r in rows] == [set(TIER_FIELDS)] * 6
    assert report["tiers"][0]["metrics"]["retention"] == 1.0 and report["tiers"][3]["compression"] > 50
    assert report["timing"]["total_seconds"] > 0 and "M0" in report["timing"] and "skill" in report["timing"]
    text = (family / "report.md").read_text()
    assert manifest.skill.verdict in text and "block bootstrap" in text


def test_the_same_seed_and_config_give_byte_identical_onnx_files(quick_store, tmp_path):
    _, manifest = load_current(quick_store)
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--quick", "--seed", "0", "--out", str(tmp_path)])
    assert exit_info.value.code == 0
    _, again = load_current(tmp_path)
    assert [t.sha256 for t in again.tiers] == [t.sha256 for t in manifest.tiers]
    hashes = lambda m: {k: t.sha256 for k, t in m.baselines.items()}  # noqa: E731
    assert hashes(again) == hashes(manifest)


def test_quick_direction_family_with_the_checkpoint_curriculum_outputs_class_probabilities(
        tmp_path, client_for):
    curriculum = tmp_path / "curriculum.json"
    curriculum.write_text('{"curriculum": {"checkpoints": 3}}')
    store = tmp_path / "store"
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--quick", "--target", "direction", "--config", str(curriculum), "--seed", "1",
              "--out", str(store)])
    assert exit_info.value.code == 0
    family, manifest = load_current(store)
    assert manifest.config["curriculum"] == {"checkpoints": 3}
    assert manifest.target.classes == ["down", "flat", "up"] and manifest.output.shape == [None, 3]
    assert manifest.target.params["band"] > 0 and sorted(manifest.classical) == ["logistic", "mean"]
    assert all(t.temperature is not None and t.temperature > 0 for t in manifest.tiers[1:])
    assert all(t.metrics.balanced_accuracy is not None and t.metrics.r2 is None for t in manifest.tiers)
    assert set(manifest.skill.skills["M0"]) == {"flat_vs_moving", "up_vs_down"}
    assert "oracle" in manifest.references  # one bar ahead, the simulator knows the class probabilities
    sess = ort.InferenceSession(str(family / "M3.onnx"), providers=["CPUExecutionProvider"])
    zeros = np.zeros((4, len(features.FEATURE_NAMES)), dtype=np.float32)
    (probs,) = sess.run(["direction"], {"features": zeros})
    assert probs.shape == (4, 3) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    assert "flat vs moving" in (family / "report.md").read_text()
    out = answer(store, client_for)
    assert out["target"]["name"] == "direction"
    assert set(out["prediction"]["probabilities"]) == {"down", "flat", "up"}


TINY = {"data": {"bars": 6_000}, "family": {"shapes": [[2, 32], [2, 24], [1, 16], [1, 8]]},
        "teacher": {"max_epochs": 1}, "student": {"max_epochs": 1}}


@pytest.mark.parametrize(("target", "baselines", "reference"), [
    ("volatility", ["HAR", "mean", "persistence", "ridge"], "sigma_reference"),
    ("range", ["HAR", "mean", "persistence", "ridge"], "sigma_reference"),
    ("volume", ["HAR", "mean", "persistence", "ridge"], None)])
def test_every_regression_target_trains_a_family_the_service_answers_for(
        tmp_path, client_for, target, baselines, reference):
    tiny = tmp_path / "tiny.json"
    tiny.write_text(json.dumps(TINY))
    store = tmp_path / "store"
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--quick", "--config", str(tiny), "--target", target, "--out", str(store)])
    assert exit_info.value.code == 0
    _, manifest = load_current(store)
    assert manifest.target.name == manifest.output.name == target
    assert learned_map_is_in_force(manifest)  # the default
    assert sorted(manifest.classical) == baselines and ("oracle" not in manifest.references)
    assert list(manifest.references) == ([reference] if reference else [])
    out = answer(store, client_for)
    assert out["target"] == {"name": target, "horizon": manifest.target.horizon,
                             "units": manifest.target.units}
    assert isinstance(out["prediction"], float) and np.isfinite(out["prediction"])


def answer(store, client_for, end=3_000):
    """/predict on the family's own synthetic market, for the window ending at bar `end`."""
    _, manifest = load_current(store)
    c = simulate(int(manifest.source["rows"]), int(manifest.source["seed"])).candles
    candles = [{"ts": int(c.ts[t]), "open": float(c.open[t]), "high": float(c.high[t]),
                "low": float(c.low[t]), "close": float(c.close[t]), "volume": float(c.volume[t]),
                "taker_buy_volume": float(c.taker_buy_volume[t])}
               for t in range(end - features.WINDOW + 1, end + 1)]
    with client_for(store) as client:
        response = client.post("/predict", json={"candles": candles})
    assert response.status_code == 200, response.text
    return response.json()


def test_quick_family_trains_on_real_candles_with_detected_regimes(tmp_path):
    if not BTC_1H.is_file():
        pytest.skip(f"{BTC_1H} is not there (the shared data folder sits beside the repo checkout)")
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--quick", "--source", f"csv:{BTC_1H}", "--out", str(tmp_path)])
    assert exit_info.value.code == 0
    family, manifest = load_current(tmp_path)
    report = json.loads((family / "report.json").read_text())
    assert manifest.source["kind"] == "csv" and manifest.source["rows"] == 26_279
    assert not manifest.features.use_book
    assert report["references"] == {} and report["regime_detector"] is None
    assert manifest.tiers[0].per_regime and all(t.metrics.oracle_share is None for t in manifest.tiers)


def test_train_refuses_an_unknown_config_key_with_exit_code_2(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"teacher": {"learning_rate": 0.1}}')
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--config", str(bad), "--out", str(tmp_path / "store")])
    assert exit_info.value.code == 2
    assert "teacher.learning_rate" in capsys.readouterr().err
    assert not (tmp_path / "store").exists()
