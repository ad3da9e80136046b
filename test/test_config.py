"""Configuration: the YAML under config/ is the single source of truth and typos fail loudly."""
from __future__ import annotations

import dataclasses

import pytest

from firework_common.config import config_dir, from_dict, load_section, read_yaml, to_dict
from firework_common.errors import ConfigError
from firework_sim.config import OperatorConfig, SimConfig
from firework_sim.tasks import TASKS


def test_sim_yaml_loads_into_typed_dataclasses():
    sim = load_section(SimConfig, "sim.yaml", "sim")
    assert sim.cameras.names == ("agentview", "eye_in_hand")
    assert sim.control_freq_hz == 20
    assert isinstance(sim.cameras.height, int)
    op = load_section(OperatorConfig, "sim.yaml", "operator")
    assert 0 <= op.imperfect.noise_correlation < 1


def test_yaml_sets_every_field_of_the_dataclasses():
    """The YAML documents every knob: a field missing from YAML would silently use a code default."""
    data = read_yaml(config_dir() / "sim.yaml")

    def check(cls, section, where):
        for f in dataclasses.fields(cls):
            assert f.name in section, f"{where}.{f.name} missing from config/sim.yaml"
            if dataclasses.is_dataclass(f.type) or (isinstance(f.type, str) and f.type.endswith("Config")):
                sub = getattr(cls(), f.name)
                check(type(sub), section[f.name], f"{where}.{f.name}")

    check(SimConfig, data["sim"], "sim")
    check(OperatorConfig, data["operator"], "operator")


def test_every_task_has_a_step_budget():
    sim = load_section(SimConfig, "sim.yaml", "sim")
    assert set(sim.max_steps) == {t.name for t in TASKS}


def test_unknown_key_names_the_key_and_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['camera_hieght'\]"):
        from_dict(SimConfig, {"camera_hieght": 84}, "sim.yaml:sim")


def test_wrong_type_names_the_field_and_value():
    with pytest.raises(ConfigError, match=r"sim\.control_freq_hz: expected int, got 'fast'"):
        from_dict(SimConfig, {"control_freq_hz": "fast"}, "sim")


def test_invalid_value_is_rejected_with_the_field_name():
    with pytest.raises(ConfigError, match="gl_backend"):
        from_dict(SimConfig, {"render": {"gl_backend": "vulkan"}}, "sim")
    with pytest.raises(ConfigError, match="robosuite_names"):
        from_dict(SimConfig, {"cameras": {"names": ["a"], "robosuite_names": ["x", "y"]}}, "sim")


def test_round_trip_through_dict():
    sim = load_section(SimConfig, "sim.yaml", "sim")
    assert from_dict(SimConfig, to_dict(sim), "sim") == sim


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_section(SimConfig, "sim.yaml", "sim", path=tmp_path / "nope.yaml")
