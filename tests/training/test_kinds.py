"""Targets and kinds are one concept each: no branch on the task or kind outside their own modules, and
the number of classes comes from the target."""

import re
from pathlib import Path

import numpy as np
import pytest

from market import targets
from training import kinds

ROOT = Path(__file__).resolve().parents[2]
OWN = ("market/targets/", "training/kinds/")
PACKAGES = ("app", "bench", "market", "models", "training")
# `task ==`, or a comparison with the name of a task or kind ("regression", "classification", "classes")
BRANCH = re.compile(r"""\btask\s*[!=]=|[!=]=\s*["'](regression|classification|classes)["']|"""
                    r"""["'](regression|classification|classes)["']\s*[!=]=""")


def test_no_module_outside_the_target_and_kind_modules_branches_on_the_task_or_kind():
    found = []
    paths = [ROOT / "cli.py", *(p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py")))]
    for path in paths:
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(OWN):
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if BRANCH.search(line):
                found.append(f"{rel}:{number}: {line.strip()}")
    assert not found, "\n".join(found)


@pytest.mark.parametrize("name", targets.names())
def test_every_target_has_a_kind_whose_head_and_metrics_fit_its_width(name):
    target = targets.get(name)
    kind = kinds.of(target)
    n = 51
    y = np.arange(n) % target.width if target.classes else np.linspace(-1, 1, n)
    # a forecast that knows nothing: uniform probabilities, or the mean
    pred = np.full((n, target.width), 1.0 / target.width if target.classes else 0.0)
    values = kind.from_sums(target, kind.row_stats(target, pred, y).sum(axis=0))
    assert kind.headline in values and np.isfinite(values[kind.headline])
    assert kind.no_skill(target) == pytest.approx(values[kind.headline], abs=1e-9)
