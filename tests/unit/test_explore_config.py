"""ActiveLearningConfig validation and the MD conditions it expands to."""

from __future__ import annotations

import pytest

from mlip_autopipec.config.loader import validate_config
from mlip_autopipec.config.schemas.active_learning import ActiveLearningConfig
from mlip_autopipec.exceptions import ConfigurationError
from mlip_autopipec.explore.md import MDCondition, md_conditions


def test_defaults_are_valid_and_thresholds_ordered():
    cfg = ActiveLearningConfig()
    assert 1.0 <= cfg.gamma_select < cfg.gamma_halt
    assert cfg.continue_from_previous is True
    assert cfg.max_oracle_calls is None


def test_every_field_is_described():
    for name, info in ActiveLearningConfig.model_fields.items():
        assert info.description and len(info.description) > 10, name


@pytest.mark.parametrize(
    "data, field",
    [
        ({"gamma_select": 5.0, "gamma_halt": 5.0}, "gamma_halt"),
        ({"gamma_select": 0.5}, "gamma_select"),
        ({"temperatures": [300.0, -1.0]}, "temperatures"),
        ({"temperatures": []}, "temperatures"),
        ({"pressures": [float("nan")]}, "pressures"),
        ({"ensembles": ["nvt", "nvt"]}, "ensembles"),
        ({"ensembles": ["nve"]}, "ensembles"),
        ({"timestep": 0.0}, "timestep"),
        ({"sample_interval": 0}, "sample_interval"),
        ({"rattle_stdev": -0.1}, "rattle_stdev"),
        ({"max_new_per_generation": 0}, "max_new_per_generation"),
        ({"selection_memory_limit": 0}, "selection_memory_limit"),
        ({"gamma_treshold": 3.0}, "gamma_treshold"),
    ],
)
def test_invalid_values_name_the_field(data, field):
    with pytest.raises(ConfigurationError) as err:
        validate_config(ActiveLearningConfig, data, "al.yaml")
    assert "al.yaml" in str(err.value)
    assert field in str(err.value)


def test_assignment_is_validated():
    cfg = ActiveLearningConfig()
    with pytest.raises(ValueError):
        cfg.gamma_halt = 1.5  # below gamma_select 2.0


def test_conditions_cover_every_ensemble_temperature_and_pressure():
    cfg = ActiveLearningConfig(temperatures=[300, 900], pressures=[-5, 0, 5], ensembles=["nvt", "npt"])
    conds = md_conditions(cfg)
    assert len(conds) == 2 + 2 * 3
    assert [c for c in conds if c.ensemble == "nvt"] == [MDCondition("nvt", 300.0), MDCondition("nvt", 900.0)]
    assert {(c.temperature, c.pressure) for c in conds if c.ensemble == "npt"} == {
        (t, p) for t in (300.0, 900.0) for p in (-5.0, 0.0, 5.0)
    }
    labels = [c.label for c in conds]
    assert len(set(labels)) == len(labels)
    assert "npt_900K_-5GPa" in labels and "nvt_300K" in labels


def test_nvt_only_ignores_pressures():
    conds = md_conditions(ActiveLearningConfig(ensembles=["nvt"], temperatures=[500], pressures=[1, 2]))
    assert conds == [MDCondition("nvt", 500.0)]


@pytest.mark.parametrize(
    "args",
    [("npt", 300.0, None), ("nvt", 300.0, 1.0), ("nvt", 0.0, None), ("nve", 300.0, None)],
)
def test_invalid_condition_rejected(args):
    with pytest.raises(ValueError):
        MDCondition(*args)
