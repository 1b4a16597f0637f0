"""TrainingConfig as plain data: validation with clear errors, derived orders, relative paths, descriptions.

How the fields land on pacemaker's keys is the template's: tests/unit/test_trainer_template.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from mlip_autopipec.config import TrainingConfig, validate_config
from mlip_autopipec.config.schemas.training import EarlyStoppingConfig
from mlip_autopipec.exceptions import ConfigurationError


@pytest.mark.parametrize(
    "block",
    [
        {"nradmax_by_orders": [8, 2], "lmax_by_orders": [0]},
        {"nradmax_by_orders": [0], "lmax_by_orders": [0]},
        {"nradmax_by_orders": [5]},
    ],
)
def test_bad_basis_blocks_are_refused(block):
    with pytest.raises(ValidationError):
        TrainingConfig(basis_blocks={"BINARY": block})
    with pytest.raises(ValidationError):
        TrainingConfig(basis_blocks={"SEXTERNARY": {"nradmax_by_orders": [5], "lmax_by_orders": [0]}})


def test_one_order_list_takes_the_default_other_of_its_length():
    assert TrainingConfig(nradmax_by_orders=[10, 4, 2]).orders == ([10, 4, 2], [0, 3, 3])
    assert TrainingConfig(lmax_by_orders=[0, 1]).orders == ([15, 6], [0, 1])


def test_initial_potential_relative_path_resolves_against_config_dir(tmp_path):
    cfg = TrainingConfig(initial_potential=Path("pots/gen0.yaml")).resolve_paths(tmp_path)
    assert cfg.initial_potential == tmp_path / "pots" / "gen0.yaml"


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"energy_weight": 0.0, "force_weight": 0.0}, "both zero"),
        ({"cutoff": -1.0}, "cutoff"),
        ({"cutoff": 0.0}, "cutoff"),
        ({"batch_size": 0}, "batch_size"),
        ({"max_num_epochs": 0}, "max_num_epochs"),
        ({"energy_weight": -1.0}, "energy_weight"),
        ({"ladder_step": [0]}, "ladder_step"),
        ({"ladder_step": [-5]}, "ladder_step"),
        ({"ladder_step": [1.5]}, "neither an integer"),
        ({"ladder_step": [10, 20]}, "one integer and/or one fraction"),
        ({"ladder_step": [0.1, 0.2]}, "one integer and/or one fraction"),
        ({"ladder_step": [10, 0.02, 5]}, "at most two"),
        ({"ladder_step": ["ten"]}, "ladder_step"),
        ({"ladder_step": [True]}, "ladder_step"),
        ({"cutof": 5.0}, "unknown field"),
        ({"evaluator": "torch"}, "evaluator"),
        ({"optimizer": "Adam"}, "optimizer"),
        ({"test_size": 1.0}, "test_size"),
        ({"fs_parameters": [1, 1, 1]}, "2 x ndensity"),
        ({"nradmax_by_orders": [10, 2], "lmax_by_orders": [0]}, "same length"),
        ({"max_order": 7}, "max_order"),
        ({"max_order": 3, "nradmax_by_orders": [5, 2]}, "max_order"),
        ({"nradmax_by_orders": []}, "1 to 6 entries"),
        ({"nradmax_by_orders": [0, 2]}, ">= 1"),
        ({"reference_energies": {"Xx": 1.0}}, "unknown chemical symbol"),
        ({"reference_energies": "manual"}, "reference_energies"),
        ({"early_stopping": {"patience": 10}}, "early_stopping"),
        ({"timeout_s": 0}, "timeout_s"),
    ],
)
def test_invalid_values_are_rejected(data, fragment):
    with pytest.raises(ConfigurationError) as err:
        validate_config(TrainingConfig, data, "run.yaml: training")
    assert fragment in str(err.value)
    assert "run.yaml: training" in str(err.value)


def test_every_field_has_a_description():
    for model in (TrainingConfig, EarlyStoppingConfig):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"
