"""The report's figures: database counts, validation errors with parity plots, the equation of state, the quality bar.

:func:`build_figures` computes them for a fitted potential and draws the plots
under the report folder; the run's ``summary.json`` (which adds the run's own
records) is written by :mod:`mlip_autopipec.pipeline.summary`.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mlip_autopipec.config.schemas.pipeline import PipelineConfig, ReportConfig
from mlip_autopipec.database import STATUSES, DatabaseManager
from mlip_autopipec.generator import build_seed
from mlip_autopipec.report.validate import compare_eos, validation_errors
from mlip_autopipec.trainer.pace import TrainingResult

log = logging.getLogger("mlip_autopipec")


class _Figures(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatabaseCounts(_Figures):
    """Structures by status, by source (and generation), and labelled ones by split."""

    total: int = Field(description="Structures in the database.")
    by_status: dict[str, int] = Field(description="Structures per status (statuses with none left out).")
    by_source: dict[str, int] = Field(description="Structures per 'source (generation g)'.")
    labelled_by_split: dict[str, int] = Field(description="Labelled structures in the train and validation splits.")


class ValidationFigures(_Figures):
    """Errors of the potential on the labelled validation split (energy per atom, force components)."""

    n_structures: int = Field(description="Validation structures evaluated (0: none).")
    energy_rmse_mev_per_atom: float | None = Field(None, description="Energy RMSE (meV/atom).")
    energy_mae_mev_per_atom: float | None = Field(None, description="Energy MAE (meV/atom).")
    force_rmse_mev_per_angstrom: float | None = Field(None, description="Force RMSE (meV/Å).")
    force_mae_mev_per_angstrom: float | None = Field(None, description="Force MAE (meV/Å).")
    note: str | None = Field(None, description="Why there are no figures.")


class EOSFit(_Figures):
    """A Birch–Murnaghan fit of E(V)."""

    volume_per_atom: float = Field(description="Equilibrium volume (Å³/atom).")
    energy_per_atom: float = Field(description="Equilibrium energy (eV/atom).")
    bulk_modulus_gpa: float = Field(description="Bulk modulus (GPa).")
    lattice_constant: float = Field(description="Lattice constant at the equilibrium volume (Å).")


class EOSFigures(_Figures):
    """The oracle's and the potential's equations of state on the same cells."""

    n_points: int | None = Field(None, description="Volumes compared.")
    oracle: EOSFit | None = Field(None, description="The oracle's fit.")
    potential: EOSFit | None = Field(None, description="The potential's fit (null: no minimum in range).")
    lattice_constant_error_percent: float | None = Field(None, description="Potential vs oracle (%).")
    bulk_modulus_error_percent: float | None = Field(None, description="Potential vs oracle (%).")
    potential_failure: str | None = Field(None, description="Why the potential's fit failed.")
    note: str | None = Field(None, description="Why there is no comparison.")


class QualityCheck(_Figures):
    figure: str = Field(description="What is checked.")
    value: float | None = Field(description="The measured figure (null: not measured).")
    target: float = Field(description="The largest acceptable |value|.")
    unit: str = Field(description="Unit of value and target.")
    passed: bool = Field(description="|value| <= target.")


class QualityBar(_Figures):
    passed: bool = Field(description="Every check passed.")
    checks: list[QualityCheck] = Field(description="One entry per target set in the config's report section.")


class ReportFigures(_Figures):
    """What the report measures of a fitted potential."""

    counts: DatabaseCounts = Field(description="The database's structures.")
    validation: ValidationFigures = Field(description="Errors on the validation split.")
    eos: EOSFigures | None = Field(None, description="Equation of state (null: report.eos off).")
    quality_bar: QualityBar = Field(description="The config's targets, met or not.")


def database_counts(db: DatabaseManager) -> DatabaseCounts:
    """Structures by status, by source (and generation), and labelled ones by split."""
    by_source: Counter = Counter()
    for rec in db.select():
        by_source[f"{rec.metadata.source} (generation {rec.metadata.generation})"] += 1
    by_status = {s: db.count(status=s) for s in STATUSES}
    return DatabaseCounts(
        total=db.count(),
        by_status={s: n for s, n in by_status.items() if n},
        by_source=dict(by_source),
        labelled_by_split={s: db.count(label=s, status="labelled") for s in ("train", "validation")},
    )


def seed_lattice(cfg: PipelineConfig) -> tuple[float, float]:
    """Volume per atom (Å³) and lattice constant (Å) of the seed crystal."""
    seed = build_seed(cfg.structure)
    a = cfg.structure.a or float(np.linalg.norm(seed.cell[0]) / cfg.structure.repeat[0])
    return seed.get_volume() / len(seed), a


def build_figures(cfg: PipelineConfig, db: DatabaseManager, fit: TrainingResult, out: Path) -> ReportFigures:
    """Compute the figures of ``fit`` and draw the parity and EOS plots under ``out``."""
    from mlip_autopipec.report import plots  # matplotlib: imported when drawing

    out.mkdir(parents=True, exist_ok=True)
    validated = validation_errors(db, fit.potential_yace, fit.reference_energy)
    if validated is not None:
        validation = ValidationFigures(**validated.metrics.as_dict())
        plots.parity_plots(validated.predictions, validated.metrics, out)
    else:
        validation = ValidationFigures(n_structures=0, note="no labelled validation structures (validation_fraction 0?)")

    eos = None
    if cfg.report.eos:
        from mlip_autopipec.trainer.pyace_import import import_pyace_calculator

        eos_structures = [rec.atoms for rec in db.select(status="labelled") if rec.metadata.provenance.get("operation") == "eos"]
        try:
            v_seed, a_seed = seed_lattice(cfg)
            comparison = compare_eos(eos_structures, import_pyace_calculator()(str(fit.potential_yace)), v_seed, a_seed)
            eos = EOSFigures.model_validate(comparison.as_dict())
            plots.eos_plot(comparison, out)
        except Exception as err:  # the report goes on without an EOS (too few points, a failed fit)
            log.warning("report: no equation of state: %s", err)
            eos = EOSFigures(note=f"not computed: {err}")
    return ReportFigures(counts=database_counts(db), validation=validation, eos=eos, quality_bar=quality_bar(validation, eos, cfg.report))


def quality_bar(validation: ValidationFigures, eos: EOSFigures | None, targets: ReportConfig) -> QualityBar:
    """Each target with the measured figure and whether it is met."""
    checks: list[QualityCheck] = []

    def check(name: str, value: float | None, limit: float | None, unit: str) -> None:
        if limit is None:
            return
        ok = value is not None and math.isfinite(value) and abs(value) <= limit
        checks.append(QualityCheck(figure=name, value=value, target=limit, unit=unit, passed=bool(ok)))

    check("validation force RMSE", validation.force_rmse_mev_per_angstrom, targets.target_force_rmse_mev_per_angstrom, "meV/Å")
    check("validation energy RMSE", validation.energy_rmse_mev_per_atom, targets.target_energy_rmse_mev_per_atom, "meV/atom")
    if targets.eos:
        eos = eos or EOSFigures()
        check("lattice constant error", eos.lattice_constant_error_percent, targets.target_lattice_constant_error_percent, "%")
        check("bulk modulus error", eos.bulk_modulus_error_percent, targets.target_bulk_modulus_error_percent, "%")
    return QualityBar(passed=all(c.passed for c in checks), checks=checks)
