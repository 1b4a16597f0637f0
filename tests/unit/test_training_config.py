"""TrainingConfig: every field lands on pacemaker's real key; invalid values are rejected with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from mlip_autopipec.config import TrainingConfig, validate_config
from mlip_autopipec.config.schemas.training import EarlyStoppingConfig
from mlip_autopipec.exceptions import ConfigurationError

DATA = "/data/train.pckl.gzip"


def read_back(config: TrainingConfig, elements=("Cu",), **kwargs) -> dict:
    return yaml.safe_load(config.to_input_yaml(DATA, list(elements), **kwargs))


def test_defaults_make_a_complete_pacemaker_input():
    doc = read_back(TrainingConfig())
    assert set(doc) == {"seed", "metadata", "potential", "data", "fit", "backend"}
    assert "cutoff" not in doc  # pacemaker ignores a top-level cutoff; rcut is per bond
    assert doc["backend"]["evaluator"] == "tensorpot"  # pacemaker crashes without a backend section
    assert doc["potential"]["elements"] == ["Cu"]
    assert doc["data"] == {"filename": DATA, "test_size": 0.1}


@pytest.mark.parametrize(
    ("field", "value", "path", "expected"),
    [
        ("batch_size", 17, ("backend", "batch_size"), 17),
        ("max_num_epochs", 123, ("fit", "maxiter"), 123),
        ("cutoff", 4.5, ("potential", "bonds", "ALL", "rcut"), 4.5),
        ("number_of_functions_per_element", 42, ("potential", "functions", "number_of_functions_per_element"), 42),
        ("npot", "FinnisSinclair", ("potential", "embeddings", "ALL", "npot"), "FinnisSinclair"),
        ("radial_basis", "ChebExpCos", ("potential", "bonds", "ALL", "radbase"), "ChebExpCos"),
        ("radial_parameters", [3.0], ("potential", "bonds", "ALL", "radparameters"), [3.0]),
        ("nradmax_by_orders", [10, 4, 2], ("potential", "functions", "ALL", "nradmax_by_orders"), [10, 4, 2]),
        ("optimizer", "L-BFGS-B", ("fit", "optimizer"), "L-BFGS-B"),
        ("evaluator", "pyace", ("backend", "evaluator"), "pyace"),
        ("display_step", 7, ("backend", "display_step"), 7),
        ("test_size", 0.25, ("data", "test_size"), 0.25),
        ("reference_energies", "auto", ("data", "reference_energy"), "auto"),
        ("reference_energies", {"Cu": -1.5}, ("data", "reference_energy"), {"Cu": -1.5}),
        ("seed", 7, ("seed",), 7),
        ("l1_coeff", 1e-6, ("fit", "loss", "L1_coeffs"), 1e-6),
        ("l2_coeff", 2e-6, ("fit", "loss", "L2_coeffs"), 2e-6),
        ("ladder_step", [10], ("fit", "ladder_step"), 10),
        ("ladder_step", [10, 0.02], ("fit", "ladder_step"), [10, 0.02]),
        ("ladder_step", [0.02, 10], ("fit", "ladder_step"), [10, 0.02]),
        ("ladder_step", [0.05], ("fit", "ladder_step"), 0.05),
        ("ladder_step", 25, ("fit", "ladder_step"), 25),
    ],
)
def test_field_maps_onto_pacemaker_key(field, value, path, expected):
    doc = read_back(TrainingConfig(**{field: value}))
    node = doc
    for key in path:
        node = node[key]
    assert node == expected


def test_embedding_and_lmax_mapping():
    cfg = TrainingConfig(fs_parameters=[1, 1], ndensity=1, nradmax_by_orders=[9, 3], lmax_by_orders=[0, 2])
    doc = read_back(cfg)
    assert doc["potential"]["embeddings"]["ALL"] == {
        "npot": "FinnisSinclairShiftedScaled",
        "fs_parameters": [1.0, 1.0],
        "ndensity": 1,
    }
    assert doc["potential"]["functions"]["ALL"] == {"nradmax_by_orders": [9, 3], "lmax_by_orders": [0, 2]}


def test_max_order_cuts_the_orders():
    doc = read_back(TrainingConfig(max_order=2))
    assert doc["potential"]["functions"]["UNARY"] == {"nradmax_by_orders": [15, 6], "lmax_by_orders": [0, 3]}
    assert doc["potential"]["functions"]["ALL"] == {"nradmax_by_orders": [15, 3], "lmax_by_orders": [0, 2]}
    doc = read_back(TrainingConfig(max_order=2, nradmax_by_orders=[9, 3, 2]))
    assert doc["potential"]["functions"]["ALL"] == {"nradmax_by_orders": [9, 3], "lmax_by_orders": [0, 3]}


def test_default_basis_is_pacemakers_template_per_combination_block():
    functions = read_back(TrainingConfig(), elements=["Cu", "Au"])["potential"]["functions"]
    assert list(functions) == ["number_of_functions_per_element", "UNARY", "BINARY", "TERNARY", "ALL"]
    assert functions["UNARY"] == {"nradmax_by_orders": [15, 6, 4, 3, 2, 2], "lmax_by_orders": [0, 3, 3, 2, 2, 1]}
    assert functions["BINARY"] == {"nradmax_by_orders": [15, 6, 3, 2, 2, 1], "lmax_by_orders": [0, 3, 2, 1, 1, 0]}
    assert functions["TERNARY"] == {"nradmax_by_orders": [15, 3, 3, 2, 1], "lmax_by_orders": [0, 2, 2, 1, 1]}
    assert functions["ALL"] == {"nradmax_by_orders": [15, 3, 2, 1, 1], "lmax_by_orders": [0, 2, 2, 1, 1]}


def test_a_basis_block_replaces_the_default_of_its_name():
    cfg = TrainingConfig(basis_blocks={"BINARY": {"nradmax_by_orders": [8, 2], "lmax_by_orders": [0, 1]}})
    functions = read_back(cfg)["potential"]["functions"]
    assert functions["BINARY"] == {"nradmax_by_orders": [8, 2], "lmax_by_orders": [0, 1]}
    assert functions["UNARY"]["nradmax_by_orders"] == [15, 6, 4, 3, 2, 2]
    assert cfg.block_source("BINARY") == "training.basis_blocks.BINARY"
    # explicit orders are the ALL block; basis_blocks still refine it
    cfg = TrainingConfig(
        nradmax_by_orders=[8, 3],
        lmax_by_orders=[0, 2],
        basis_blocks={"UNARY": {"nradmax_by_orders": [9, 4], "lmax_by_orders": [0, 3]}},
    )
    assert set(cfg.function_blocks()) == {"UNARY", "ALL"}


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


@pytest.mark.parametrize(
    ("energy_weight", "force_weight", "kappa"), [(1.0, 1.0, 0.5), (0.0, 2.0, 1.0), (3.0, 0.0, 0.0), (0.7, 0.3, 0.3)]
)
def test_weights_become_kappa(energy_weight, force_weight, kappa):
    doc = read_back(TrainingConfig(energy_weight=energy_weight, force_weight=force_weight))
    assert doc["fit"]["loss"]["kappa"] == pytest.approx(kappa)


def test_no_ladder_means_no_ladder_keys():
    fit = read_back(TrainingConfig(ladder_step=[]))["fit"]
    assert "ladder_step" not in fit and "ladder_type" not in fit
    fit = read_back(TrainingConfig(ladder_step=[5], ladder_type="power_order"))["fit"]
    assert fit["ladder_type"] == "power_order"


def test_repulsion_mapping():
    assert read_back(TrainingConfig(repulsion="auto"))["fit"]["repulsion"] == "auto"
    assert "repulsion" not in read_back(TrainingConfig(repulsion="none"))["fit"]


def test_zero_test_size_leaves_the_key_out():
    # pacemaker crashes on `test_size: 0` (train_test_split has no branch for it)
    assert "test_size" not in read_back(TrainingConfig(test_size=0))["data"]


def test_test_dataset_replaces_the_split(tmp_path):
    data = read_back(TrainingConfig(test_size=0.2), test_dataset_path=tmp_path / "val.pckl.gzip")["data"]
    assert data == {"filename": DATA, "test_filename": str(tmp_path / "val.pckl.gzip")}


def test_no_reference_energy_key_by_default():
    assert "reference_energy" not in read_back(TrainingConfig())["data"]


def test_early_stopping_mapping():
    cfg = TrainingConfig(
        early_stopping={
            "patience": 30,
            "min_relative_train_loss_per_iter": 5e-5,
            "min_relative_test_loss_per_iter": 1e-5,
        }
    )
    fit = read_back(cfg)["fit"]
    assert fit["early_stopping_patience"] == 30
    assert fit["min_relative_train_loss_per_iter"] == pytest.approx(5e-5)
    assert fit["min_relative_test_loss_per_iter"] == pytest.approx(1e-5)
    fit = read_back(TrainingConfig())["fit"]
    assert not any(k.startswith(("min_relative", "early_stopping")) for k in fit)


def test_several_elements_share_the_ALL_blocks():
    cfg = TrainingConfig(cutoff=5.5)
    pot = read_back(cfg, elements=["Ni", "Al", "Ni"])["potential"]
    assert pot["elements"] == ["Al", "Ni"]
    assert set(pot["bonds"]) == {"ALL"} and set(pot["embeddings"]) == {"ALL"}
    assert pot["bonds"]["ALL"]["rcut"] == 5.5


def test_initial_potential_continue_and_extend(tmp_path):
    start = tmp_path / "gen0.yaml"
    cont = read_back(TrainingConfig(initial_potential=start))["potential"]
    assert cont == {"filename": str(start)}  # refit the earlier basis from its coefficients
    ext = read_back(TrainingConfig(initial_potential=start, initial_potential_mode="extend", cutoff=4.0))["potential"]
    assert ext["initial_potential"] == str(start)
    assert ext["bonds"]["ALL"]["rcut"] == 4.0  # the target basis is still described


def test_initial_potential_relative_path_resolves_against_config_dir(tmp_path):
    cfg = TrainingConfig(initial_potential=Path("pots/gen0.yaml")).resolve_paths(tmp_path)
    assert cfg.initial_potential == tmp_path / "pots" / "gen0.yaml"


def test_dataset_path_is_written_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    doc = yaml.safe_load(TrainingConfig().to_input_yaml("train.pckl.gzip", ["Cu"]))
    assert doc["data"]["filename"] == str(tmp_path / "train.pckl.gzip")


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


def test_elements_are_checked():
    with pytest.raises(ConfigurationError, match="no elements"):
        TrainingConfig().to_input_yaml(DATA, [])
    with pytest.raises(ConfigurationError, match="unknown chemical symbol"):
        TrainingConfig().to_input_yaml(DATA, ["Cu", "Qq"])


def test_every_field_has_a_description():
    for model in (TrainingConfig, EarlyStoppingConfig):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"
