"""bench/parity_curriculum in its --quick mode: the data, the curriculum's teacher order, every method on
every seed, an honest summary and a rendered table."""

import math

import pytest
import torch

from bench import parity_curriculum as pc

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, object]:
    out = tmp_path_factory.mktemp("parity")
    threads = torch.get_num_threads()
    result = pc.run(True, out)
    result["threads_before_and_after"] = (threads, torch.get_num_threads())
    return result, out


def test_labels_are_the_parity_of_the_hidden_support():
    data = pc.parity_data(pc.QUICK, seed=3)
    assert len(data.support) == pc.QUICK.k and len(set(data.support)) == pc.QUICK.k
    assert set(data.x.unique().tolist()) == {-1.0, 1.0}
    product = data.x[:, data.support].prod(dim=1)
    assert torch.equal(data.y, (product > 0).long())
    assert 0.4 < data.y.float().mean() < 0.6  # a parity of uniform bits is balanced


def test_curriculum_follows_the_checkpoints_in_order_then_stays_on_the_final_one():
    s = pc.QUICK
    checkpoints: list = [object() for _ in range(3)]
    path = pc.curriculum(s, checkpoints)
    assert len(path) == s.student_steps // s.interval
    assert path[:3] == checkpoints and all(t is checkpoints[-1] for t in path[3:])
    many: list = [object() for _ in range(100)]
    assert pc.curriculum(s, many)[-1] is many[-1]  # the final teacher is never cut off


def test_every_method_runs_on_every_seed_with_the_same_budget(quick):
    result, _ = quick
    assert [r["seed"] for r in result["seeds"]] == list(pc.QUICK.seeds)
    for r in result["seeds"]:
        assert r["checkpoints"] >= 2
        for method in pc.METHODS:
            steps, curve = r[method]["steps"], r[method]["curve"]
            assert curve and curve[-1][0] <= pc.QUICK.student_steps
            assert all(0.0 <= acc <= 1.0 for _, acc in curve)
            if steps is None:  # never reached the target: it used the whole budget
                assert curve[-1][0] == pc.QUICK.student_steps and max(a for _, a in curve) < pc.QUICK.target
            else:
                assert curve[-1][0] == steps and curve[-1][1] >= pc.QUICK.target  # it stopped there


def test_summary_counts_seeds_that_missed_the_target_as_beyond_the_budget(quick):
    result, _ = quick
    for name in (*pc.METHODS, "teacher"):
        m = result["summary"][name]
        assert m["of"] == len(pc.QUICK.seeds)
        assert m["reached"] == sum(x is not None for x in m["steps"])
        if m["reached"] <= m["of"] / 2:
            assert m["median"] is None
        assert math.isfinite(m["mean_cpu_seconds"])
    faster = result["summary"]["curriculum_faster_than"]
    assert set(faster) == {"final", "labels"} and all(0 <= v <= len(pc.QUICK.seeds) for v in faster.values())


def test_run_leaves_torch_on_the_threads_it_found(quick):
    before, after = quick[0]["threads_before_and_after"]
    assert after == before


def test_markdown_renders_the_table_the_reading_and_the_plot(quick):
    result, out = quick
    text = pc.markdown(result)
    for name in (*pc.METHODS, "teacher"):
        assert f"| {name} |" in text
    assert "**Reading.**" in text and f"({pc.QUICK.d}, {pc.QUICK.k})-sparse parity" in text
    assert (out / "parity_curriculum.png").stat().st_size > 0
