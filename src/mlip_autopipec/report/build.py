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

from pydantic import BaseModel, ConfigDict, Field

from mlip_autopipec.config.schemas.pipeline import PipelineConfig, ReportConfig
from mlip_autopipec.database import STATUSES, DatabaseManager
from mlip_autopipec.report.models import FormationFigures, PropertiesFigures
from mlip_autopipec.report.seeds import (
    bulk_seeds,
    formation_energies,
    labelled_for_formation,
    seed_eos_structures,
    seed_lattice,
    seed_properties,
)
from mlip_autopipec.report.validate import compare_eos, energy_shift, validation_errors
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
    by_seed: dict[str, dict[str, int]] = Field(
        default_factory=dict,
        description="Structures per seed, then per 'source (generation g)' (property structures under their seed too).",
    )


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
    eos: EOSFigures | None = Field(None, description="Equation of state of the first bulk seed (null: report.eos off).")
    eos_by_seed: dict[str, EOSFigures] = Field(default_factory=dict, description="Equation of state of each bulk seed.")
    properties: PropertiesFigures | None = Field(
        None,
        description="Properties of the first bulk seed, oracle against potential (null: none switched on, or no bulk seed).",
    )
    properties_by_seed: dict[str, PropertiesFigures] = Field(
        default_factory=dict, description="Properties of each bulk seed."
    )
    formation: FormationFigures | None = Field(
        None, description="Formation energies per composition (binary systems only)."
    )
    quality_bar: QualityBar = Field(description="The config's targets, met or not.")
    report_seconds: dict[str, float] = Field(default_factory=dict, description="Wall time of the report's parts (s).")


def database_counts(db: DatabaseManager) -> DatabaseCounts:
    """Structures by status, by source (and generation), and labelled ones by split."""
    by_source: Counter = Counter()
    by_seed: dict[str, Counter] = {}
    for rec in db.select():
        key = f"{rec.metadata.source} (generation {rec.metadata.generation})"
        by_source[key] += 1
        by_seed.setdefault(str(rec.metadata.provenance.get("seed") or "(no seed)"), Counter())[key] += 1
    by_status = {s: db.count(status=s) for s in STATUSES}
    return DatabaseCounts(
        total=db.count(),
        by_status={s: n for s, n in by_status.items() if n},
        by_source=dict(by_source),
        labelled_by_split={s: db.count(label=s, status="labelled") for s in ("train", "validation")},
        by_seed={seed: dict(c) for seed, c in sorted(by_seed.items())},
    )


def build_figures(
    cfg: PipelineConfig, db: DatabaseManager, fit: TrainingResult, out: Path, workdir: Path | None = None
) -> ReportFigures:
    """Compute the figures of ``fit`` and draw the plots under ``out``: parity (by seed), EOS and properties of each
    bulk seed, formation energies.  ``workdir``: where the oracle's property calculations run (default: ``out``'s parent)."""
    import time

    from mlip_autopipec.report import plots  # matplotlib: imported when drawing
    from mlip_autopipec.trainer.pyace_import import import_pyace_calculator

    out.mkdir(parents=True, exist_ok=True)
    workdir = workdir or out.parent
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    validated = validation_errors(db, fit.potential_yace, fit.reference_energy)
    if validated is not None:
        validation = ValidationFigures(**validated.metrics.as_dict())
        plots.parity_plots(validated.predictions, validated.metrics, out, validated.groups)
    else:
        validation = ValidationFigures(
            n_structures=0, note="no labelled validation structures (validation_fraction 0?)"
        )
    seconds["validation"] = time.perf_counter() - t0

    calc = import_pyace_calculator()(str(fit.potential_yace))
    seeds = bulk_seeds(cfg)
    eos, eos_by_seed = None, {}
    t0 = time.perf_counter()
    if cfg.report.eos:
        for i, seed in enumerate(seeds):
            try:
                _atoms, v_seed, a_seed = seed_lattice(seed)
                comparison = compare_eos(seed_eos_structures(cfg, seed, db, workdir), calc, v_seed, a_seed)
                figures = EOSFigures.model_validate(comparison.as_dict())
                if i == 0:
                    plots.eos_plot(comparison, out, title=str(seed.name) if len(seeds) > 1 else "")
                else:
                    plots.eos_plot(comparison, out, f"eos_{seed.name}.png", title=str(seed.name))
            except Exception as err:  # the report goes on without an EOS (too few points, a failed fit)
                log.warning("report: no equation of state of seed %s: %s", seed.name, err)
                figures = EOSFigures(note=f"not computed: {err}")
            eos_by_seed[str(seed.name)] = figures
        eos = next(iter(eos_by_seed.values()), EOSFigures(note="no bulk seed"))
    seconds["eos"] = time.perf_counter() - t0

    properties_by_seed: dict[str, PropertiesFigures] = {}
    if cfg.report.properties.any:
        for seed in seeds:
            t0 = time.perf_counter()
            try:
                properties_by_seed[str(seed.name)] = seed_properties(
                    cfg, seed, db, fit.potential_yace, fit.potential_yaml, workdir, out
                )
            except Exception as err:  # one seed's failure leaves the rest of the report
                log.warning("report: no properties of seed %s: %s", seed.name, err)
                properties_by_seed[str(seed.name)] = PropertiesFigures(seed=str(seed.name), failures={"all": str(err)})
            seconds[f"properties {seed.name}"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    formation = formation_energies(labelled_for_formation(db), calc, energy_shift(fit.reference_energy))
    if formation is not None:
        plots.formation_plot(formation, out)
    seconds["formation"] = time.perf_counter() - t0
    return ReportFigures(
        counts=database_counts(db),
        validation=validation,
        eos=eos,
        eos_by_seed=eos_by_seed,
        properties=next(iter(properties_by_seed.values()), None),
        properties_by_seed=properties_by_seed,
        formation=formation,
        quality_bar=quality_bar(validation, eos, cfg.report),
        report_seconds=seconds,
    )


def quality_bar(validation: ValidationFigures, eos: EOSFigures | None, targets: ReportConfig) -> QualityBar:
    """Each target with the measured figure and whether it is met."""
    checks: list[QualityCheck] = []

    def check(name: str, value: float | None, limit: float | None, unit: str) -> None:
        if limit is None:
            return
        ok = value is not None and math.isfinite(value) and abs(value) <= limit
        checks.append(QualityCheck(figure=name, value=value, target=limit, unit=unit, passed=bool(ok)))

    check(
        "validation force RMSE",
        validation.force_rmse_mev_per_angstrom,
        targets.target_force_rmse_mev_per_angstrom,
        "meV/Å",
    )
    check(
        "validation energy RMSE",
        validation.energy_rmse_mev_per_atom,
        targets.target_energy_rmse_mev_per_atom,
        "meV/atom",
    )
    if targets.eos:
        eos = eos or EOSFigures()
        check(
            "lattice constant error",
            eos.lattice_constant_error_percent,
            targets.target_lattice_constant_error_percent,
            "%",
        )
        check("bulk modulus error", eos.bulk_modulus_error_percent, targets.target_bulk_modulus_error_percent, "%")
    return QualityBar(passed=all(c.passed for c in checks), checks=checks)
