"""Computing the report's figures: database counts, validation errors with parity plots, the equations of state,
the properties of each bulk seed, formation energies and the quality bar.

:func:`build_figures` computes them for a fitted potential (as the typed models of
:mod:`mlip_autopipec.records.figures`) and draws the plots under the report folder;
the run's ``summary.json`` (which adds the run's own records) is written by
:mod:`mlip_autopipec.pipeline.summary`.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from pathlib import Path

from mlip_autopipec.config.schemas.pipeline import PipelineConfig, ReportConfig
from mlip_autopipec.config.schemas.structure import SeedConfig
from mlip_autopipec.database import STATUSES, DatabaseManager
from mlip_autopipec.records.cost import label_calls, oracle_costs, run_cores
from mlip_autopipec.records.figures import (
    DatabaseCounts,
    EOSFigures,
    PropertiesFigures,
    QualityBar,
    QualityCheck,
    ReportFigures,
    ValidationFigures,
)
from mlip_autopipec.report.properties.plan import OracleBudget, PlannedPart, plan_lines, property_plan
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
    bulk seed, formation energies.  ``workdir``: where the oracle's property calculations run (default: ``out``'s
    parent)."""
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
                structures = seed_eos_structures(cfg, seed, db, workdir)
                comparison = compare_eos(structures, calc, v_seed, a_seed, energy_shift(fit.reference_energy))
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
        budget = log_property_plan(cfg, db, seeds)
        for seed in seeds:
            t0 = time.perf_counter()
            try:
                properties_by_seed[str(seed.name)] = seed_properties(
                    cfg, seed, db, fit.potential_yace, fit.potential_yaml, workdir, out, budget
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


def log_property_plan(cfg: PipelineConfig, db: DatabaseManager, seeds: list[SeedConfig]) -> OracleBudget:
    """Log the property step's plan (its oracle calls, their cells, a time estimate from the calls measured so
    far) before it spends anything; return the bound on its calls (``report.properties.max_oracle_calls``)."""
    pcfg = cfg.report.properties
    parts: list[PlannedPart] = []
    for seed in seeds:
        try:
            parts += property_plan(str(seed.name), seed_lattice(seed)[0], pcfg)
        except Exception as err:  # a forecast only: the seed's properties are computed (or fail) as before
            log.warning("report: no property plan of seed %s: %s", seed.name, err)
    cost = oracle_costs(label_calls(db.select(status="labelled")), 0, cfg.oracle.type, run_cores(cfg))[0]
    for line in plan_lines(parts, cost, pcfg.max_oracle_calls):
        log.info("%s", line)
    return OracleBudget(pcfg.max_oracle_calls)


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
