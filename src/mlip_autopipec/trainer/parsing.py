"""Pure parsers of pacemaker's output (text in, values out; no files, no processes).

Formats are those of python-ace 0.4.0rc1 (``pyace/metrics_aggregator.py``), checked
against real logs kept in ``tests/data/pacemaker_*.log``:

* one line per minimiser iteration::

    ... INFO - Iteration   #7    (12 evals):       Loss: 7.6590e-03 | RMSE Energy(low): 36.15 (36.15) meV/at |
        Forces(low): 86.56 (86.56) meV/A | Time/eval: ...

  (one line, wrapped here; ``Initial state:#0`` for the first, ``Initial(TEST):#0`` for the test set);
* every ``display_step`` iterations, and at the end of each fit cycle, a block::

    --------------------------------------------FIT STATS--------------------------------------------
    Iteration:  #10  Loss:    Total:  4.6420e-03 (100%)
    ...
       RMSE:            8.31                 8.31                71.44                   71.44

  titled ``FIT STATS`` / ``TEST STATS`` (progress), ``Cycle last iteration:`` /
  ``TEST Cycle last iteration:`` (the result of a fit cycle), ``INIT STATS``, ``LADDER STEP``...;
  the RMSE columns are energy per atom (meV/atom), its low-energy subset, force per
  Cartesian component (meV/Å), its low-energy subset;
* tables ``cycle_metrics.txt`` / ``test_cycle_metrics.txt``: a header of column names, then
  one whitespace-separated row per fit cycle, in eV, eV/atom and eV/Å.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field

_FLOAT = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf)"
_DETAIL_RE = re.compile(
    r"(?P<title>Initial state:|Initial\(TEST\):|Iteration)\s*#(?P<it>\d+)\s+\((?P<evals>\d+) evals\):\s*"
    rf"Loss:\s*(?P<loss>{_FLOAT})\s*\|\s*RMSE Energy\(low\):\s*(?P<e>{_FLOAT})\s*\(.*?\)\s*meV/at\s*\|\s*"
    rf"Forces\(low\):\s*(?P<f>{_FLOAT})"
)
_HEADER_RE = re.compile(r"^-{5,}(?P<title>[^-].*?)-{5,}\s*$")
_BLOCK_ITER_RE = re.compile(rf"^Iteration:\s*#(?P<it>\d+)\s+Loss:\s+Total:\s*(?P<loss>{_FLOAT})")
_RMSE_RE = re.compile(rf"^\s*RMSE:\s+(?P<e>{_FLOAT})\s+(?P<e_low>{_FLOAT})\s+(?P<f>{_FLOAT})\s+(?P<f_low>{_FLOAT})")
_MAE_RE = re.compile(rf"^\s*MAE:\s+(?P<e>{_FLOAT})\s+(?P<e_low>{_FLOAT})\s+(?P<f>{_FLOAT})\s+(?P<f_low>{_FLOAT})")
_PARAMS_RE = re.compile(r"Number of params\./funcs:\s*(?P<ncoefs>\d+)/(?P<nfuncs>\d+)")
_LINE_BREAK_RE = re.compile(r"\r\n|\r|\n")
# logging lines at level ERROR or above, in the two formats pacemaker's output uses
_ERROR_LINE_RE = re.compile(r"(?: - (?:ERROR|CRITICAL) - |^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d [EC] - )(?P<message>.*)$")

_PROGRESS_BLOCKS = {"FIT STATS": "train", "TEST STATS": "test"}
_FINAL_BLOCKS = {"Cycle last iteration:": "train", "TEST Cycle last iteration:": "test"}


@dataclass(frozen=True)
class FitProgress:
    """One progress report of a running fit."""

    phase: Literal["train", "test"]
    iteration: int
    loss: float
    energy_rmse_mev_per_atom: float | None = None
    force_rmse_mev_per_a: float | None = None
    elapsed_s: float | None = None  # filled in by the runner (wall-clock seconds since pacemaker started)


class TrainingMetrics(BaseModel):
    """The errors pacemaker reports at the end of the fit (forces: RMSE per Cartesian component, as pacemaker
    prints)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    train_energy_rmse_mev_per_atom: float = Field(description="Energy RMSE on pacemaker's training set (meV/atom).")
    train_force_rmse_mev_per_a: float = Field(
        description="Force RMSE per Cartesian component on the training set (meV/Å)."
    )
    test_energy_rmse_mev_per_atom: float | None = Field(
        None, description="Energy RMSE on pacemaker's test set (meV/atom); null without a test set."
    )
    test_force_rmse_mev_per_a: float | None = Field(
        None, description="Force RMSE per component on the test set (meV/Å); null without a test set."
    )
    train_loss: float | None = Field(
        None, description="Final value of pacemaker's loss on the training set (dimensionless)."
    )
    test_loss: float | None = Field(
        None, description="Loss on the test set at the end (dimensionless); null without a test set."
    )
    n_functions: int | None = Field(None, description="Number of basis functions of the final potential.")


class ProgressParser:
    """Turns pacemaker's output, fed line by line, into :class:`FitProgress` reports.

    It keeps only the state of the statistics block being read, so a line is never
    parsed twice; blocks that repeat an earlier iteration (INIT STATS, Cycle last
    iteration, LADDER STEP) are not reported again.
    """

    def __init__(self) -> None:
        self._block: str | None = None
        self._iteration: int | None = None
        self._loss: float | None = None

    def feed(self, line: str) -> FitProgress | None:
        """Read one line; return a report when the line completes one."""
        m = _DETAIL_RE.search(line)
        if m:
            self._block = None
            phase: Literal["train", "test"] = "test" if m["title"] == "Initial(TEST):" else "train"
            return FitProgress(phase, int(m["it"]), float(m["loss"]), float(m["e"]), float(m["f"]))
        m = _HEADER_RE.match(line)
        if m:
            self._block = m["title"].strip()
            self._iteration = self._loss = None
            return None
        if self._block is None:
            return None
        m = _BLOCK_ITER_RE.match(line)
        if m:
            self._iteration, self._loss = int(m["it"]), float(m["loss"])
            return None
        m = _RMSE_RE.match(line)
        if m:
            block, self._block = self._block, None
            if block in _PROGRESS_BLOCKS and self._iteration is not None and self._loss is not None:
                return FitProgress(_PROGRESS_BLOCKS[block], self._iteration, self._loss, float(m["e"]), float(m["f"]))  # type: ignore[arg-type]
        return None


def parse_progress(text: str) -> list[FitProgress]:
    """Every progress report in a whole log."""
    parser = ProgressParser()
    reports = (parser.feed(line) for line in split_lines(text))
    return [r for r in reports if r is not None]


def split_lines(text: str) -> list[str]:
    """Split on ``\\n``, ``\\r\\n`` and bare ``\\r`` (the pyace backend redraws its ``Eval N`` counter with ``\\r``)."""
    return _LINE_BREAK_RE.split(text)


def split_complete_lines(buffer: str) -> tuple[list[str], str]:
    """Split ``buffer`` into its complete lines and the unfinished rest (for reading a growing file).

    A trailing ``\\r`` is kept in the rest, since it may be the first half of ``\\r\\n``.
    """
    parts = _LINE_BREAK_RE.split(buffer)
    rest = parts.pop()
    if buffer.endswith("\r"):
        # the regex already cut at the bare \r; hold it back until we know what follows
        rest = parts.pop() + "\r" if parts else buffer
    return parts, rest


def parse_final_metrics(log_text: str) -> TrainingMetrics | None:
    """Metrics of the last fit cycle from pacemaker's log (the last ``Cycle last iteration`` blocks).

    With ladder fitting every ladder step ends with such blocks; the last ones describe
    the final potential.  None when the log has no train block (the fit did not finish).
    """
    found: dict[str, dict[str, float]] = {}
    block: str | None = None
    current: dict[str, float] = {}
    for line in split_lines(log_text):
        m = _HEADER_RE.match(line)
        if m:
            title = m["title"].strip()
            block = title if title in _FINAL_BLOCKS else None
            current = {}
            continue
        if block is None:
            continue
        if m := _BLOCK_ITER_RE.match(line):
            current["loss"] = float(m["loss"])
        elif m := _PARAMS_RE.search(line):
            current["nfuncs"] = float(m["nfuncs"])
        elif m := _RMSE_RE.match(line):
            current["rmse_e"], current["rmse_f"] = float(m["e"]), float(m["f"])
            found[_FINAL_BLOCKS[block]] = current
            block = None
    if "train" not in found:
        return None
    train, test = found["train"], found.get("test")
    return TrainingMetrics(
        train_energy_rmse_mev_per_atom=train["rmse_e"],
        train_force_rmse_mev_per_a=train["rmse_f"],
        test_energy_rmse_mev_per_atom=test["rmse_e"] if test else None,
        test_force_rmse_mev_per_a=test["rmse_f"] if test else None,
        train_loss=train.get("loss"),
        test_loss=test.get("loss") if test else None,
        n_functions=int(train["nfuncs"]) if "nfuncs" in train else None,
    )


def parse_metrics_table(text: str) -> dict[str, float] | None:
    """Last row of a pacemaker metrics table (``cycle_metrics.txt`` and friends) as {column: value}.

    None when the table has a header but no row (e.g. ``test_cycle_metrics.txt`` without a test set).
    """
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        return None
    header, row = lines[0], lines[-1]
    if len(row) != len(header):
        raise ValueError(f"metrics table row has {len(row)} values for {len(header)} columns")
    return {name: float(value) for name, value in zip(header, row, strict=True)}


def metrics_from_tables(train_table: str, test_table: str | None = None) -> TrainingMetrics | None:
    """:class:`TrainingMetrics` from ``cycle_metrics.txt`` (and ``test_cycle_metrics.txt``), converted to meV."""
    train = parse_metrics_table(train_table)
    if train is None:
        return None
    test = parse_metrics_table(test_table) if test_table else None
    return TrainingMetrics(
        train_energy_rmse_mev_per_atom=train["rmse_epa"] * 1e3,
        train_force_rmse_mev_per_a=train["rmse_f_comp"] * 1e3,
        test_energy_rmse_mev_per_atom=test["rmse_epa"] * 1e3 if test else None,
        test_force_rmse_mev_per_a=test["rmse_f_comp"] * 1e3 if test else None,
        train_loss=train.get("loss"),
        test_loss=test.get("loss") if test else None,
        n_functions=int(train["nfuncs"]) if "nfuncs" in train and math.isfinite(train["nfuncs"]) else None,
    )


def prediction_errors(predictions: Any) -> tuple[float, float]:
    """(energy RMSE in meV/atom, force RMSE per Cartesian component in meV/Å) of a pacemaker predictions table.

    ``predictions`` is the DataFrame of ``train_pred.pckl.gzip`` / ``test_pred.pckl.gzip``
    (columns energy_corrected, energy_pred, NUMBER_OF_ATOMS, forces, forces_pred); the
    same measures pacemaker prints.  Needed for the test set with the pyace evaluator,
    which predicts the test set at the end but prints no test errors.
    """
    n_atoms = np.asarray(predictions["NUMBER_OF_ATOMS"], dtype=float)
    de = (
        np.asarray(predictions["energy_pred"], dtype=float) - np.asarray(predictions["energy_corrected"], dtype=float)
    ) / n_atoms
    df = np.vstack(list(predictions["forces_pred"])) - np.vstack(list(predictions["forces"]))
    return float(np.sqrt(np.mean(de**2)) * 1e3), float(np.sqrt(np.mean(df**2)) * 1e3)


def parse_error(log_text: str) -> str | None:
    """pacemaker's own error message: the exception line of the last traceback, else the last ERROR log line."""
    lines = split_lines(log_text)
    start = max(
        (i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")), default=None
    )
    if start is not None:
        for line in lines[start + 1 :]:
            if line and not line[0].isspace():
                return line.strip()
    errors = [m["message"] for line in lines if (m := _ERROR_LINE_RE.search(line))]
    return errors[-1].strip() if errors else None


def parse_reference_energy(potential_yaml_text: str) -> dict[str, float] | None:
    """Single-atom reference energies (eV) pacemaker stored in a potential's metadata, or None.

    pacemaker fits ``energy - sum of reference energies (+ shift x atoms)``; a calculator built
    from the potential predicts that corrected energy, so these numbers are needed to
    compare with the reference method's total energies.
    """
    # read only the top-level metadata block: the rest of a large potential is slow to parse and not needed
    lines = potential_yaml_text.splitlines()
    try:
        start = lines.index("metadata:")
    except ValueError:
        return None
    block = ["metadata:"]
    for line in lines[start + 1 :]:
        if line and not line[0].isspace():
            break
        block.append(line)
    data = yaml.safe_load("\n".join(block)) or {}
    raw = (data.get("metadata") or {}).get("reference_energy")
    if raw is None:
        return None
    values = json.loads(raw) if isinstance(raw, str) else raw
    return {str(k): float(v) for k, v in values.items()}


def tail(text: str, n: int = 30) -> str:
    """The last ``n`` lines of ``text``."""
    return "\n".join(split_lines(text.rstrip())[-n:])


__all__ = [
    "FitProgress",
    "ProgressParser",
    "TrainingMetrics",
    "metrics_from_tables",
    "parse_error",
    "parse_final_metrics",
    "parse_metrics_table",
    "parse_progress",
    "parse_reference_energy",
    "prediction_errors",
    "split_complete_lines",
    "split_lines",
    "tail",
]
