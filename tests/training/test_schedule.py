"""The temperature / α schedule: positive temperature everywhere, and the last stage still distills."""

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training import config, schedule
from training.config import ScheduleConfig
from training.schedule import stages


@st.composite
def schedules(draw):
    t_max = draw(st.floats(0.01, 50.0))
    alpha_max = draw(st.floats(0.001, 1.0))
    return ScheduleConfig(t_max=t_max, gamma=draw(st.floats(0.0, 8.0)), alpha_max=alpha_max,
                          offset=draw(st.floats(0.0, 5.0)), t_min=draw(st.floats(1e-4, 1.0)) * t_max,
                          alpha_min=draw(st.floats(1e-4, 1.0)) * alpha_max)


@settings(deadline=None)  # a busy machine must not turn a slow example into a failure
@given(cfg=schedules(), n=st.integers(1, 10))
def test_schedule_never_gives_a_non_positive_temperature_and_the_last_stage_distills(cfg, n):
    out = stages(cfg, n)
    assert [s.k for s in out] == list(range(1, n + 1))
    assert all(s.temperature > 0 and 0 < s.alpha <= 1 for s in out), out
    assert out[-1].alpha >= cfg.alpha_min > 0
    assert all(a.temperature >= b.temperature and a.alpha >= b.alpha for a, b in itertools.pairwise(out))


def test_literal_schedule_hits_the_floors_at_the_last_stage():
    cfg = ScheduleConfig(t_max=4.0, gamma=1.0, alpha_max=0.9, offset=0.0, t_min=0.5, alpha_min=0.1)
    out = stages(cfg, 3)
    assert [round(s.temperature, 6) for s in out] == [pytest.approx(8 / 3), pytest.approx(4 / 3), 0.5]
    assert [round(s.alpha, 6) for s in out] == [0.6, 0.3, 0.1]


def test_an_offset_keeps_the_last_stage_inside_the_schedule():
    cfg = ScheduleConfig(t_max=4.0, gamma=1.0, alpha_max=0.9, offset=1.0, t_min=0.01, alpha_min=0.01)
    assert [(s.alpha, s.temperature) for s in stages(cfg, 3)] == [
        pytest.approx((0.675, 3.0)), pytest.approx((0.45, 2.0)), pytest.approx((0.225, 1.0))]


def test_the_default_holds_alpha_and_the_write_ups_curriculum_stays_selectable():
    # bench distill measured a held α = 0.9 above the falling α on the default market: it is the default,
    # and training/curriculum.json (`--config`) gives the write-up's schedule back.
    default = config.load()
    assert {s.alpha for s in schedule.stages(default.schedule, 3)} == {0.9}
    writeup = schedule.stages(config.curriculum(default).schedule, 3)
    assert [round(s.alpha, 3) for s in writeup] == [0.675, 0.45, 0.3]
    assert [s.temperature for s in writeup] == [s.temperature for s in schedule.stages(default.schedule, 3)]
