"""`tiered market`: the synthetic market as a CSV the reader reads back, and the detector report."""

import numpy as np
import pytest

from cli import main
from market.csvfile import read_candles
from market.synthetic import simulate


def test_market_writes_a_csv_the_candle_reader_reads_back(tmp_path, capsys):
    out = tmp_path / "synthetic.csv"
    with pytest.raises(SystemExit) as e:
        main(["market", "--bars", "3000", "--seed", "5", "--out", str(out)])
    assert e.value.code == 0
    loaded = read_candles(out)
    truth = simulate(3000, 5).candles
    assert len(loaded.candles) == 3000 and loaded.gaps == []
    assert np.array_equal(loaded.candles.ts, truth.ts)
    assert np.allclose(loaded.candles.close, truth.close, rtol=1e-9)
    assert "oracle R²" in capsys.readouterr().out


def test_market_evaluates_the_detector_with_a_confusion_matrix(capsys):
    with pytest.raises(SystemExit):
        main(["market", "--bars", "30000", "--seed", "3", "--evaluate-detector"])
    out = capsys.readouterr().out
    assert "balanced accuracy" in out and "true \\ detected" in out


def test_market_evaluates_the_detector_on_candle_estimates_when_asked(capsys):
    with pytest.raises(SystemExit):
        main(["market", "--bars", "30000", "--seed", "3", "--evaluate-detector", "--without-book"])
    assert "candle estimates (no book)" in capsys.readouterr().out
