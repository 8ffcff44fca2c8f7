"""The typed config: defaults ship with the package, layers merge in order, unknown keys are refused."""

import json

import pytest

from training import config
from training.errors import ConfigError


def test_the_shipped_default_and_quick_configs_are_valid():
    default = config.load()
    quick = config.load(quick=True)
    assert default.source == "synthetic" and default.target.name == "return"
    assert default.target.build().horizon == 1
    assert quick.data.bars < default.data.bars and quick.teacher.lr == default.teacher.lr


@pytest.mark.parametrize("extra", [{"colour": "red"}, {"teacher": {"learning_rate": 0.1}},
                                   {"schedule": {"T_max": 2.0}}])
def test_config_rejects_unknown_keys_and_names_them(tmp_path, extra):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(extra))
    with pytest.raises(ConfigError, match="remove it or check its spelling") as info:
        config.load(path)
    assert next(iter(extra)) in str(info.value)


def test_a_file_overrides_defaults_and_the_command_line_overrides_the_file(tmp_path):
    path = tmp_path / "c.json"
    target = {"name": "volatility", "horizon": 10}
    path.write_text(json.dumps({"seed": 3, "student": {"lr": 0.01}, "target": target}))
    cfg = config.load(path, overrides={"seed": 9, "target": None})
    assert cfg.seed == 9 and cfg.target.build().horizon == 10 and cfg.student.lr == 0.01
    assert cfg.student.batch_size == config.load().student.batch_size


@pytest.mark.parametrize("bad", [{"schedule": {"t_min": 100.0}}, {"target": {"name": "ranking"}},
                                 {"target": {"name": "volatility", "horizon": 480}}, {"task": "regression"},
                                 {"data": {"train_fraction": 0.9, "val_fraction": 0.09}},
                                 {"family": {"shapes": [[2, 64]]}}, {"export": {"tolerance": 0.1}}])
def test_config_rejects_values_out_of_range(tmp_path, bad):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(ConfigError):
        config.load(path)


def test_an_unknown_target_is_refused_with_the_known_ones(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"target": {"name": "ranking"}}))
    with pytest.raises(ConfigError, match="known targets: direction, range, return, volatility, volume"):
        config.load(path)


def test_a_config_file_that_is_not_json_is_refused_with_its_name(tmp_path):
    path = tmp_path / "c.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match=r"c\.json is not JSON"):
        config.load(path)
