"""pacemaker's template (like ASE's ``CalculatorTemplate``): write a fit's ``input.yaml``, read its results.

Every :class:`~mlip_autopipec.config.schemas.training.TrainingConfig` field maps onto one of
pacemaker's real keys (python-ace 0.4.0rc1); the mapping lives in :func:`input_dict` and its
section functions, and nowhere else:

==============================================  ==============================================
TrainingConfig                                  pacemaker input.yaml
==============================================  ==============================================
batch_size                                      backend.batch_size
max_num_epochs                                  fit.maxiter
energy_weight, force_weight                     fit.loss.kappa = F / (E + F)
l1_coeff, l2_coeff                              fit.loss.L1_coeffs, fit.loss.L2_coeffs
cutoff                                          potential.bonds.ALL.rcut (pacemaker ignores a
                                                top-level ``cutoff``)
ladder_step, ladder_type                        fit.ladder_step, fit.ladder_type
number_of_functions_per_element                 potential.functions.number_of_functions_per_element
npot, fs_parameters, ndensity                   potential.embeddings.ALL
radial_basis, radial_parameters                 potential.bonds.ALL.radbase, .radparameters
nradmax_by_orders, lmax_by_orders, max_order    potential.functions.ALL (one shape for every
                                                element combination)
basis_blocks (default: pacemaker's template)    potential.functions.UNARY/BINARY/TERNARY/
                                                QUATERNARY/ALL
evaluator, display_step                         backend.evaluator, backend.display_step
optimizer                                       fit.optimizer
test_size                                       data.test_size (left out when 0)
reference_energies                              data.reference_energy
repulsion                                       fit.repulsion
seed                                            seed
early_stopping                                  fit.min_relative_{train,test}_loss_per_iter,
                                                fit.early_stopping_patience
initial_potential (mode continue)               potential.filename
initial_potential (mode extend)                 potential.initial_potential
==============================================  ==============================================

The readers take a finished run directory and hand its files to the pure parsers of
:mod:`mlip_autopipec.trainer.parsing`.  Starting the programs is the profile's job
(:class:`~mlip_autopipec.trainer.profile.PacemakerProfile`), and
:class:`~mlip_autopipec.trainer.pace.PacemakerRunner` ties profile and template together.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from ase.data import chemical_symbols

from mlip_autopipec.config.schemas.training import BLOCK_NAMES, DEFAULT_BASIS_BLOCKS, TrainingConfig
from mlip_autopipec.exceptions import ConfigurationError, TrainerError
from mlip_autopipec.trainer.parsing import (
    TrainingMetrics,
    metrics_from_tables,
    parse_final_metrics,
    parse_reference_energy,
    prediction_errors,
)

log = logging.getLogger(__name__)

# The files of one run directory.
INPUT_NAME = "input.yaml"
LOG_NAME = "pacemaker.log"
POTENTIAL_YAML = "output_potential.yaml"
POTENTIAL_YACE = "output_potential.yace"
INITIAL_POTENTIAL_COPY = "initial_potential.yaml"
TRAIN_TABLE = "cycle_metrics.txt"
TEST_TABLE = "test_cycle_metrics.txt"
TEST_PREDICTIONS = "test_pred.pckl.gzip"
#: files read after a run; removed first, so a stale one from an earlier run is never taken for this run's
OUTPUTS = (POTENTIAL_YAML, POTENTIAL_YACE, LOG_NAME, "log.txt", TRAIN_TABLE, TEST_TABLE, TEST_PREDICTIONS)

# Width (Å) of the smooth cut-off region at rcut and the potential's spline step; pacemaker's template values.
CUTOFF_SMOOTHING_DCUT = 0.01
DELTA_SPLINE_BINS = 0.001


# --- input --------------------------------------------------------------------------------------------
def kappa(training: TrainingConfig) -> float:
    """pacemaker's force share of the loss (fit.loss.kappa): force_weight / (energy_weight + force_weight)."""
    return training.force_weight / (training.energy_weight + training.force_weight)


def function_blocks(training: TrainingConfig) -> dict[str, dict[str, list[int]]]:
    """pacemaker's ``potential.functions`` blocks (without number_of_functions_per_element), cut to max_order."""
    if training.nradmax_by_orders is None and training.lmax_by_orders is None:
        blocks = {k: (list(n), list(lm)) for k, (n, lm) in DEFAULT_BASIS_BLOCKS.items()}
    else:
        blocks = {"ALL": training.orders}
    for name, block in (training.basis_blocks or {}).items():
        blocks[name] = (list(block.nradmax_by_orders), list(block.lmax_by_orders))
    cut = training.max_order
    ordered = [k for k in BLOCK_NAMES if k in blocks]
    return {k: {"nradmax_by_orders": blocks[k][0][:cut], "lmax_by_orders": blocks[k][1][:cut]} for k in ordered}


def block_source(training: TrainingConfig, block: str) -> str:
    """The config field that sets a block of :func:`function_blocks`, for error messages."""
    if training.basis_blocks and block in training.basis_blocks:
        return f"training.basis_blocks.{block}"
    if training.nradmax_by_orders is not None or training.lmax_by_orders is not None:
        return (
            "training.nradmax_by_orders / training.lmax_by_orders "
            "(the ALL block: one shape for every element combination)"
        )
    return f"the default {block} block (pacemaker's template; set training.basis_blocks.{block})"


def check_elements(elements: Sequence[str]) -> list[str]:
    """The potential's elements sorted and de-duplicated; :class:`ConfigurationError` when none or unknown."""
    if isinstance(elements, str):
        elements = [elements]
    unique = sorted(set(elements))
    if not unique:
        raise ConfigurationError("no elements given for the potential: the dataset seems to be empty")
    unknown = [el for el in unique if el not in chemical_symbols[1:]]
    if unknown:
        raise ConfigurationError(f"unknown chemical symbol(s) for the potential: {unknown}")
    return unique


def potential_section(training: TrainingConfig, elements: list[str]) -> dict[str, Any]:
    """``potential``: the initial potential's file (mode continue), else the basis (and the potential it extends)."""
    if training.initial_potential is not None and training.initial_potential_mode == "continue":
        return {"filename": str(Path(training.initial_potential).absolute())}
    potential: dict[str, Any] = {
        "deltaSplineBins": DELTA_SPLINE_BINS,
        "elements": elements,
        "embeddings": {
            "ALL": {"npot": training.npot, "fs_parameters": list(training.fs_parameters), "ndensity": training.ndensity}
        },
        "bonds": {
            "ALL": {
                "radbase": training.radial_basis,
                "radparameters": list(training.radial_parameters),
                "rcut": training.cutoff,
                "dcut": CUTOFF_SMOOTHING_DCUT,
                "NameOfCutoffFunction": "cos",
            }
        },
        "functions": {
            "number_of_functions_per_element": training.number_of_functions_per_element,
            **function_blocks(training),
        },
    }
    if training.initial_potential is not None:
        potential["initial_potential"] = str(Path(training.initial_potential).absolute())
    return potential


def data_section(
    training: TrainingConfig, dataset_path: str | Path, test_dataset_path: str | Path | None = None
) -> dict[str, Any]:
    """``data``: the training file, the test file or split, the reference energies."""
    data: dict[str, Any] = {"filename": str(Path(dataset_path).absolute())}
    if test_dataset_path is not None:
        data["test_filename"] = str(Path(test_dataset_path).absolute())
    elif training.test_size > 0.0:
        # pacemaker crashes on test_size: 0, so no split means no key.
        data["test_size"] = training.test_size
    references = training.reference_energies
    if references is not None:
        data["reference_energy"] = references if isinstance(references, str) else dict(references)
    return data


def fit_section(training: TrainingConfig) -> dict[str, Any]:
    """``fit``: loss, minimiser, repulsion, ladder and early stopping."""
    fit: dict[str, Any] = {
        "loss": {"kappa": kappa(training), "L1_coeffs": training.l1_coeff, "L2_coeffs": training.l2_coeff},
        "optimizer": training.optimizer,
        "maxiter": training.max_num_epochs,
    }
    if training.repulsion == "auto":
        fit["repulsion"] = "auto"
    ladder = training.ladder_step
    if ladder:
        fit["ladder_step"] = ladder[0] if len(ladder) == 1 else list(ladder)
        fit["ladder_type"] = training.ladder_type
    es = training.early_stopping
    if es is not None:
        fit["early_stopping_patience"] = es.patience
        if es.min_relative_train_loss_per_iter is not None:
            fit["min_relative_train_loss_per_iter"] = es.min_relative_train_loss_per_iter
        if es.min_relative_test_loss_per_iter is not None:
            fit["min_relative_test_loss_per_iter"] = es.min_relative_test_loss_per_iter
    return fit


def backend_section(training: TrainingConfig) -> dict[str, Any]:
    """``backend`` (pacemaker 0.4.0rc1 crashes without one)."""
    return {"evaluator": training.evaluator, "batch_size": training.batch_size, "display_step": training.display_step}


def input_dict(
    training: TrainingConfig,
    dataset_path: str | Path,
    elements: Sequence[str],
    test_dataset_path: str | Path | None = None,
) -> dict[str, Any]:
    """pacemaker's input as a dict (see :func:`input_yaml`)."""
    return {
        "seed": training.seed,
        "metadata": {"origin": "mlip-autopipec"},
        "potential": potential_section(training, check_elements(elements)),
        "data": data_section(training, dataset_path, test_dataset_path),
        "fit": fit_section(training),
        "backend": backend_section(training),
    }


def input_yaml(
    training: TrainingConfig,
    dataset_path: str | Path,
    elements: Sequence[str],
    test_dataset_path: str | Path | None = None,
) -> str:
    """Text of pacemaker's ``input.yaml`` for ``dataset_path`` (a pacemaker .pckl.gzip DataFrame).

    ``elements`` are the chemical symbols present in the dataset (sorted and de-duplicated
    here).  Paths are written absolute, so the file works from any directory.  With
    ``test_dataset_path`` pacemaker evaluates that file as its test set instead of
    splitting ``test_size`` off the training data.
    """
    doc = input_dict(training, dataset_path, elements, test_dataset_path)
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=None)


def remove_outputs(directory: Path) -> None:
    """Delete an earlier run's :data:`OUTPUTS` from ``directory``."""
    for name in OUTPUTS:
        (directory / name).unlink(missing_ok=True)


def stage_initial_potential(training: TrainingConfig, directory: Path) -> TrainingConfig:
    """Copy the initial potential into the run directory (provenance; safe to continue in the same directory).

    Returns ``training`` pointing at the copy.
    """
    if training.initial_potential is None:
        return training
    source = Path(training.initial_potential).absolute()
    if not source.is_file():
        raise TrainerError(f"initial_potential not found: {source}")
    target = directory / INITIAL_POTENTIAL_COPY
    if source != target:
        shutil.copyfile(source, target)
    return training.model_copy(update={"initial_potential": target})


def write_input(
    directory: Path,
    training: TrainingConfig,
    dataset_path: Path,
    elements: Sequence[str],
    test_dataset_path: Path | None = None,
) -> Path:
    """Stage the initial potential and write ``directory/input.yaml``; returns its path."""
    staged = stage_initial_potential(training, directory)
    path = directory / INPUT_NAME
    path.write_text(input_yaml(staged, dataset_path, elements, test_dataset_path))
    return path


# --- results ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FitOutputs:
    """What a finished pacemaker run left in its directory, read back."""

    metrics: TrainingMetrics
    reference_energy: dict[str, float] | None


def read_results(directory: Path) -> FitOutputs:
    """The errors and reference energies of the finished run in ``directory`` (its potential must exist)."""
    log_path = directory / LOG_NAME
    log_text = log_path.read_text(errors="replace") if log_path.exists() else ""
    metrics = read_metrics(directory, log_text, log_path)
    return FitOutputs(metrics, parse_reference_energy((directory / POTENTIAL_YAML).read_text()))


def read_metrics(directory: Path, log_text: str, log_path: Path) -> TrainingMetrics:
    """The cycle tables first (full precision), else the log; test errors from test_pred.pckl.gzip if neither
    has them."""
    train_table = directory / TRAIN_TABLE
    test_table = directory / TEST_TABLE
    metrics = None
    if train_table.is_file():
        try:
            metrics = metrics_from_tables(
                train_table.read_text(), test_table.read_text() if test_table.is_file() else None
            )
        except (ValueError, KeyError) as err:
            log.warning("cannot read %s (%s); taking the metrics from %s", train_table, err, log_path)
    if metrics is None:
        metrics = parse_final_metrics(log_text)
    if metrics is None:
        raise TrainerError(
            f"pacemaker finished in {directory} but reported no final errors in {train_table.name} or {log_path}"
        )
    if metrics.test_energy_rmse_mev_per_atom is None:
        metrics = _with_predicted_test_errors(metrics, directory / TEST_PREDICTIONS)
    return metrics


def _with_predicted_test_errors(metrics: TrainingMetrics, predictions: Path) -> TrainingMetrics:
    """``metrics`` with the test errors of pacemaker's test predictions, when that file exists and reads."""
    if not predictions.is_file():
        return metrics
    import pandas as pd

    try:
        e_rmse, f_rmse = prediction_errors(pd.read_pickle(predictions, compression="gzip"))
    except Exception as err:  # a damaged file only costs the test numbers
        log.warning("cannot read the test predictions %s: %s", predictions, err)
        return metrics
    return metrics.model_copy(update={"test_energy_rmse_mev_per_atom": e_rmse, "test_force_rmse_mev_per_a": f_rmse})


__all__ = [
    "INPUT_NAME",
    "LOG_NAME",
    "OUTPUTS",
    "POTENTIAL_YACE",
    "POTENTIAL_YAML",
    "TEST_PREDICTIONS",
    "FitOutputs",
    "block_source",
    "check_elements",
    "function_blocks",
    "input_dict",
    "input_yaml",
    "kappa",
    "read_metrics",
    "read_results",
    "remove_outputs",
    "stage_initial_potential",
    "write_input",
]
