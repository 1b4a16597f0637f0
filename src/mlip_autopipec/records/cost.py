"""The oracle's cost: calls, failures, wall time and core-hours of the labels done (``oracle_cost`` of
``summary.json``, the cost lines of ``status`` and the report).

Each label records its oracle's kind (``oracle``) and wall time (``oracle_wall_time_s``) in the row's
``label_info`` (:meth:`~mlip_autopipec.oracle.base.LabelResult.info`); :func:`label_calls` reads them from
database rows and :func:`oracle_costs` adds them up per oracle, both pure.  The cores one call holds come from
the oracle's settings (:func:`cores_per_call`): pw.x's MPI ranks times its OpenMP threads, a foundation
model's torch threads, one for the rest.  A failed structure records no oracle and no time: it counts as a
failure of the run's oracle, with no wall time (its attempts' time is in its folder's output, not here).
Property rows (the report's oracle calls, cached in the database) carry no ``label_info``: they are counted by
the report's property figures (``oracle_calls``), not here.
"""

from __future__ import annotations

import os
import shlex
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from mlip_autopipec.config.schemas.oracle import EspressoOracleConfig, FoundationModelOracleConfig, OracleConfig
from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.database import StoredStructure

#: MPI launchers whose rank count :func:`mpi_ranks` reads, and the options that give it
_LAUNCHERS = {"mpirun", "mpiexec", "mpiexec.hydra", "orterun", "srun", "aprun"}
_RANK_OPTIONS = {"-np", "-n", "--np", "--n", "--ntasks"}


class OracleCost(BaseModel):
    """One oracle's labels done: how many, how many failed, their wall time and core-hours."""

    model_config = ConfigDict(extra="forbid")

    oracle: str = Field(description="The oracle's kind (emt, espresso, gpaw, ase, foundation_model).")
    calls: int = Field(description="Labels this oracle gave (structures labelled, each one call with its retries).")
    failed: int = Field(description="Structures that failed (counted for the run's oracle: a failure names none).")
    median_s: float | None = Field(description="Median wall time of one call (s); null: no call recorded.")
    median_s_per_atom: float | None = Field(
        description="Median wall time of one call per atom of its cell (s/atom); null: no call recorded."
    )
    total_s: float = Field(description="Wall time of all calls (s), summed over the workers.")
    cores_per_call: int = Field(description="Cores one call holds (MPI ranks × threads), from the oracle's settings.")
    core_hours: float = Field(description="total_s × cores_per_call / 3600 (core-hours).")


@dataclass(frozen=True)
class LabelCall:
    """One oracle call behind a label: the oracle's kind, its wall time (s) and the cell's atoms."""

    oracle: str
    wall_time_s: float
    n_atoms: int


def label_call(rec: StoredStructure) -> LabelCall | None:
    """The call behind ``rec``'s label (None: not labelled, or no oracle recorded, e.g. a property row)."""
    info = rec.label_info or {}
    if rec.status != "labelled" or "oracle" not in info:
        return None
    return LabelCall(str(info["oracle"]), float(info.get("oracle_wall_time_s") or 0.0), len(rec.atoms))


def label_calls(records: Iterable[StoredStructure]) -> list[LabelCall]:
    """The calls behind the labels of ``records``."""
    return [call for call in map(label_call, records) if call is not None]


def mpi_ranks(command: str) -> int:
    """The MPI ranks a command starts: ``mpirun -np 4 pw.x`` → 4, ``srun --ntasks=8 pw.x`` and ``srun -n8 pw.x`` → 8,
    ``pw.x`` → 1."""
    parts = shlex.split(command)
    if not parts or os.path.basename(parts[0]) not in _LAUNCHERS:
        return 1
    for i, part in enumerate(parts[1:], start=1):
        option, _, value = part.partition("=")
        if option.startswith("-n") and option[2:].isdigit():  # a short option with its value attached: srun -n8
            option, value = "-n", option[2:]
        if option in _RANK_OPTIONS:
            value = value or (parts[i + 1] if i + 1 < len(parts) else "")
            if value.isdigit() and int(value) > 0:
                return int(value)
    return 1


def cores_per_call(oracle: OracleConfig) -> int:
    """Cores one call of ``oracle`` holds: pw.x's MPI ranks × ``OMP_NUM_THREADS`` of its ``env`` (1 when unset),
    a foundation model's torch ``threads``, and 1 for EMT, GPAW and an ASE calculator (run in the worker)."""
    if isinstance(oracle, EspressoOracleConfig):
        threads = oracle.env.get("OMP_NUM_THREADS", "1")
        return mpi_ranks(oracle.command) * (int(threads) if threads.isdigit() and int(threads) > 0 else 1)
    if isinstance(oracle, FoundationModelOracleConfig):
        return oracle.threads
    return 1


def run_cores(cfg: PipelineConfig) -> dict[str, int]:
    """Cores per call of each oracle kind a run labels with: its oracle's, and its foundation model's threads."""
    cores: dict[str, int] = {cfg.oracle.type: cores_per_call(cfg.oracle)}
    if cfg.foundation_model is not None:
        cores.setdefault("foundation_model", cfg.foundation_model.threads)
    return cores


def _median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def oracle_costs(calls: Iterable[LabelCall], failed: int, oracle: str, cores: Mapping[str, int]) -> list[OracleCost]:
    """One :class:`OracleCost` per oracle kind among ``calls``, the run's ``oracle`` first (always there, with
    the ``failed`` structures); ``cores``: cores per call by kind (1 for a kind not given)."""
    by_kind: dict[str, list[LabelCall]] = {oracle: []}
    for call in calls:
        by_kind.setdefault(call.oracle, []).append(call)
    out = []
    for kind, mine in by_kind.items():
        total = float(sum(c.wall_time_s for c in mine))
        n_cores = int(cores.get(kind, 1))
        out.append(
            OracleCost(
                oracle=kind,
                calls=len(mine),
                failed=failed if kind == oracle else 0,
                median_s=_median([c.wall_time_s for c in mine]),
                median_s_per_atom=_median([c.wall_time_s / max(c.n_atoms, 1) for c in mine]),
                total_s=total,
                cores_per_call=n_cores,
                core_hours=total * n_cores / 3600.0,
            )
        )
    return out


def run_oracle_costs(cfg: PipelineConfig, records: Iterable[StoredStructure]) -> list[OracleCost]:
    """:func:`oracle_costs` of a run's database rows (``records``: all of them, failed ones included)."""
    rows = list(records)
    failed = sum(1 for rec in rows if rec.status == "failed")
    return oracle_costs(label_calls(rows), failed, cfg.oracle.type, run_cores(cfg))


__all__ = [
    "LabelCall",
    "OracleCost",
    "cores_per_call",
    "label_call",
    "label_calls",
    "mpi_ranks",
    "oracle_costs",
    "run_cores",
    "run_oracle_costs",
]
