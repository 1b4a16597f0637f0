"""pacemaker's template: every TrainingConfig field lands on pacemaker's real key; a run directory is written and read.

The input for the project's configs must stay byte for byte what pacemaker has been fitted with
(the golden text below); the readers take the real run files kept in tests/data/pacemaker_*.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from mlip_autopipec.config import TrainingConfig
from mlip_autopipec.exceptions import ConfigurationError, TrainerError
from mlip_autopipec.trainer.template import (
    INITIAL_POTENTIAL_COPY,
    INPUT_NAME,
    LOG_NAME,
    OUTPUTS,
    POTENTIAL_YAML,
    TEST_PREDICTIONS,
    block_source,
    function_blocks,
    input_dict,
    input_yaml,
    read_results,
    remove_outputs,
    write_input,
)

DATA = "/data/train.pckl.gzip"
RUN_FILES = Path(__file__).resolve().parents[1] / "data"

DEFAULT_INPUT_YAML = """\
seed: 42
metadata: {origin: mlip-autopipec}
potential:
  deltaSplineBins: 0.001
  elements: [Cu]
  embeddings:
    ALL:
      npot: FinnisSinclairShiftedScaled
      fs_parameters: [1.0, 1.0, 1.0, 0.5]
      ndensity: 2
  bonds:
    ALL:
      radbase: SBessel
      radparameters: [5.25]
      rcut: 6.0
      dcut: 0.01
      NameOfCutoffFunction: cos
  functions:
    number_of_functions_per_element: 300
    UNARY:
      nradmax_by_orders: [15, 6, 4, 3, 2, 2]
      lmax_by_orders: [0, 3, 3, 2, 2, 1]
    BINARY:
      nradmax_by_orders: [15, 6, 3, 2, 2, 1]
      lmax_by_orders: [0, 3, 2, 1, 1, 0]
    TERNARY:
      nradmax_by_orders: [15, 3, 3, 2, 1]
      lmax_by_orders: [0, 2, 2, 1, 1]
    ALL:
      nradmax_by_orders: [15, 3, 2, 1, 1]
      lmax_by_orders: [0, 2, 2, 1, 1]
data: {filename: /data/train.pckl.gzip, test_size: 0.1}
fit:
  loss: {kappa: 0.3, L1_coeffs: 1.0e-08, L2_coeffs: 1.0e-08}
  optimizer: BFGS
  maxiter: 500
  repulsion: auto
backend: {evaluator: tensorpot, batch_size: 100, display_step: 50}
"""


def read_back(config: TrainingConfig, elements=("Cu",), **kwargs) -> dict:
    return yaml.safe_load(input_yaml(config, DATA, list(elements), **kwargs))


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
    assert block_source(cfg, "BINARY") == "training.basis_blocks.BINARY"
    # explicit orders are the ALL block; basis_blocks still refine it
    cfg = TrainingConfig(
        nradmax_by_orders=[8, 3],
        lmax_by_orders=[0, 2],
        basis_blocks={"UNARY": {"nradmax_by_orders": [9, 4], "lmax_by_orders": [0, 3]}},
    )
    assert set(function_blocks(cfg)) == {"UNARY", "ALL"}


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


def test_dataset_path_is_written_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    doc = yaml.safe_load(input_yaml(TrainingConfig(), "train.pckl.gzip", ["Cu"]))
    assert doc["data"]["filename"] == str(tmp_path / "train.pckl.gzip")


def test_elements_are_checked():
    with pytest.raises(ConfigurationError, match="no elements"):
        input_yaml(TrainingConfig(), DATA, [])
    with pytest.raises(ConfigurationError, match="unknown chemical symbol"):
        input_yaml(TrainingConfig(), DATA, ["Cu", "Qq"])


# --- the text, byte for byte -------------------------------------------------------------------------
def test_default_input_yaml_is_byte_for_byte_the_same():
    assert input_yaml(TrainingConfig(), DATA, ["Cu"]) == DEFAULT_INPUT_YAML


def test_a_full_input_from_data_on_is_the_same():
    cfg = TrainingConfig(
        cutoff=5.5,
        number_of_functions_per_element=60,
        max_num_epochs=150,
        batch_size=500,
        energy_weight=0.3,
        force_weight=0.7,
        test_size=0,
        seed=1,
        display_step=1000,
        repulsion="none",
        ladder_step=[10, 0.02],
        early_stopping={"patience": 30, "min_relative_train_loss_per_iter": 5e-5},
        reference_energies={"Cu": -1.5, "Au": -3.25},
    )
    text = input_yaml(cfg, DATA, ["Cu", "Au"], "/data/val.pckl.gzip")
    assert text.splitlines()[:2] == ["seed: 1", "metadata: {origin: mlip-autopipec}"]
    assert text.split("\ndata:", 1)[1] == (
        "\n"
        "  filename: /data/train.pckl.gzip\n"
        "  test_filename: /data/val.pckl.gzip\n"
        "  reference_energy: {Cu: -1.5, Au: -3.25}\n"
        "fit:\n"
        "  loss: {kappa: 0.7, L1_coeffs: 1.0e-08, L2_coeffs: 1.0e-08}\n"
        "  optimizer: BFGS\n"
        "  maxiter: 150\n"
        "  ladder_step: [10, 0.02]\n"
        "  ladder_type: body_order\n"
        "  early_stopping_patience: 30\n"
        "  min_relative_train_loss_per_iter: 5.0e-05\n"
        "backend: {evaluator: tensorpot, batch_size: 500, display_step: 1000}\n"
    )
    assert yaml.safe_load(text) == input_dict(cfg, DATA, ["Cu", "Au"], "/data/val.pckl.gzip")


def test_block_source_names_the_field_that_set_a_block():
    assert block_source(TrainingConfig(), "TERNARY") == (
        "the default TERNARY block (pacemaker's template; set training.basis_blocks.TERNARY)"
    )
    assert block_source(TrainingConfig(lmax_by_orders=[0, 2]), "ALL").startswith("training.nradmax_by_orders")


# --- the run directory ---------------------------------------------------------------------------------
def test_write_input_stages_the_initial_potential(tmp_path):
    start = tmp_path / "gen0" / POTENTIAL_YAML
    start.parent.mkdir()
    shutil.copy(RUN_FILES / "pacemaker_output_potential.yaml", start)
    run = tmp_path / "gen1"
    run.mkdir()
    path = write_input(run, TrainingConfig(initial_potential=start), Path(DATA), ["Cu"])
    assert path == run / INPUT_NAME
    assert yaml.safe_load(path.read_text())["potential"] == {"filename": str(run / INITIAL_POTENTIAL_COPY)}
    assert (run / INITIAL_POTENTIAL_COPY).read_bytes() == start.read_bytes()
    again = write_input(run, TrainingConfig(initial_potential=run / INITIAL_POTENTIAL_COPY), Path(DATA), ["Cu"])
    assert again.read_text() == path.read_text()  # continuing in the same directory: the copy is its own source
    with pytest.raises(TrainerError, match="initial_potential not found"):
        write_input(run, TrainingConfig(initial_potential=tmp_path / "none.yaml"), Path(DATA), ["Cu"])


def test_remove_outputs_leaves_the_input_and_the_initial_potential(tmp_path):
    for name in (*OUTPUTS, INPUT_NAME, INITIAL_POTENTIAL_COPY):
        (tmp_path / name).write_text("x")
    remove_outputs(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([INPUT_NAME, INITIAL_POTENTIAL_COPY])


def _finished_run(folder: Path, log: str, tables: bool, potential: str = "pacemaker_output_potential.yaml") -> Path:
    folder.mkdir()
    shutil.copy(RUN_FILES / log, folder / LOG_NAME)
    shutil.copy(RUN_FILES / potential, folder / POTENTIAL_YAML)
    if tables:
        shutil.copy(RUN_FILES / "pacemaker_cycle_metrics.txt", folder / "cycle_metrics.txt")
        shutil.copy(RUN_FILES / "pacemaker_test_cycle_metrics.txt", folder / "test_cycle_metrics.txt")
    return folder


def test_read_results_prefers_the_tables_then_the_log(tmp_path):
    tables = read_results(_finished_run(tmp_path / "a", "pacemaker_tensorpot.log", tables=True))
    assert tables.metrics.train_energy_rmse_mev_per_atom == pytest.approx(1.872982209425179, rel=1e-12)
    assert tables.metrics.test_force_rmse_mev_per_a == pytest.approx(8.760687040119244, rel=1e-12)
    assert tables.reference_energy is None
    logged = read_results(_finished_run(tmp_path / "b", "pacemaker_tensorpot.log", tables=False))
    assert (logged.metrics.train_energy_rmse_mev_per_atom, logged.metrics.test_energy_rmse_mev_per_atom) == (1.87, 2.69)


def test_read_results_takes_test_errors_from_the_predictions_and_reference_energies(tmp_path):
    folder = _finished_run(
        tmp_path / "fit", "pacemaker_pyace.log", tables=False, potential="pacemaker_output_potential_refenergy.yaml"
    )
    assert read_results(folder).metrics.test_energy_rmse_mev_per_atom is None  # pyace prints no test errors
    shutil.copy(RUN_FILES / "pacemaker_test_pred.pckl.gzip", folder / TEST_PREDICTIONS)
    result = read_results(folder)
    assert result.metrics.test_energy_rmse_mev_per_atom is not None and result.metrics.test_force_rmse_mev_per_a
    assert result.reference_energy == pytest.approx({"Cu": 0.05274078122496825, "shift": -0.02326627142724258})


def test_read_results_without_errors_is_an_error(tmp_path):
    folder = _finished_run(tmp_path / "fit", "pacemaker_broken_dataset.log", tables=False)
    with pytest.raises(TrainerError, match=f"pacemaker finished in {folder} but reported no final errors"):
        read_results(folder)
