"""Would the foundation model alone have done?  The report's ``foundation_model`` part (issue 19).

With a ``foundation_model:`` section, the model (CHGNet, SevenNet, from the weights its wheel ships) is
evaluated on the driver on what the oracle computed: the labelled validation structures (energy per atom and
force errors against the oracle), each bulk seed's equation-of-state cells (a0, B) and, when the report's
elastic constants are on, the seed's relaxation and strained cells.  Its results are kept in
``properties/foundation_model/<name>-<version>.json`` (:class:`~.result_file.JsonResultStore`), so a rerun of
the report evaluates it on nothing it has seen, and loads it only when something is missing.  The figures sit
beside the ACE's and the oracle's (:class:`~mlip_autopipec.records.foundation.FoundationModelSummary`), with the
config's quality bar applied to the model alone.

When the oracle itself is the foundation model (``oracle: {type: foundation_model}``, a distillation with no
DFT), it is the reference of every figure: the summary says so and compares nothing.

The teacher's own work in a guided cold start (how many labels, their wall time) is counted in the database
(:mod:`mlip_autopipec.database.teacher`) and handed in as a :class:`TeacherWork`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Protocol

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from mlip_autopipec.config.schemas.foundation import FoundationModelFields
from mlip_autopipec.config.schemas.oracle import FoundationModelOracleConfig
from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.config.schemas.structure import SeedConfig
from mlip_autopipec.database import DatabaseManager
from mlip_autopipec.database.metadata import SPLIT_LABELS
from mlip_autopipec.exceptions import MlipAutopipecError
from mlip_autopipec.records.figures import EOSFigures, ReportFigures, ValidationFigures
from mlip_autopipec.records.foundation import FoundationModelSeed, FoundationModelSummary, OracleCalls, ThreeWay
from mlip_autopipec.report.build import quality_bar
from mlip_autopipec.report.properties.cache import CachedCalculator, OracleCalculator
from mlip_autopipec.report.result_file import JsonResultStore
from mlip_autopipec.report.seeds import bulk_seeds, seed_eos_structures, seed_lattice
from mlip_autopipec.report.validate import Predictions, compare_eos, error_metrics, predict

log = logging.getLogger("mlip_autopipec")

#: where the foundation model's results of the report are kept, under the work directory
CACHE_DIR = Path("properties") / "foundation_model"


class TeacherWork(Protocol):
    """The foundation model's labels as a teacher (guided cold start): how many, and their wall time (s) summed
    over the workers (e.g. :class:`~mlip_autopipec.database.teacher.TeacherCalls`)."""

    @property
    def calls(self) -> int: ...

    @property
    def wall_time_s(self) -> float: ...


def model_config(fields: FoundationModelFields) -> FoundationModelOracleConfig:
    """The foundation model of ``fields`` (a ``foundation_model:`` section or the oracle) as an oracle config."""
    return FoundationModelOracleConfig(name=fields.name, model_version=fields.model_version, threads=fields.threads)


def cache_path(workdir: Path, fields: FoundationModelFields) -> Path:
    """The file of the model's results kept by the report."""
    return Path(workdir) / CACHE_DIR / f"{fields.name}-{fields.model_version}.json"


def _same_model(a: FoundationModelFields, b: FoundationModelFields) -> bool:
    return (a.name, a.model_version) == (b.name, b.model_version)


def foundation_model_summary(
    cfg: PipelineConfig,
    db: DatabaseManager,
    figures: ReportFigures,
    workdir: Path,
    calls: OracleCalls,
    teacher: TeacherWork | None = None,
) -> FoundationModelSummary | None:
    """The run's foundation model and, beside the oracle, how it alone compares (None: the run has none).

    ``figures``: the report's figures of the ACE (its EOS and the oracle's elastic constants are put beside the
    model's); ``calls``: the run's oracle calls; ``teacher``: the model's labels as a teacher (None: none)."""
    fm = cfg.foundation_model
    if isinstance(cfg.oracle, FoundationModelOracleConfig) and (fm is None or _same_model(fm, cfg.oracle)):
        return as_oracle(cfg.oracle, db, calls)
    if fm is None:
        return None
    return as_teacher(cfg, fm, db, figures, workdir, teacher)


def as_oracle(oracle: FoundationModelOracleConfig, db: DatabaseManager, calls: OracleCalls) -> FoundationModelSummary:
    """The summary of a foundation model that is the run's oracle: the reference, nothing to compare."""
    from mlip_autopipec.config.schemas.foundation_weights import package_version

    wall = sum(
        float((rec.label_info or {}).get("oracle_wall_time_s") or 0.0)
        for split in SPLIT_LABELS
        for rec in db.select(label=split, status="labelled")
    )
    return FoundationModelSummary(
        name=oracle.name,
        version=oracle.model_version,
        package=f"{oracle.name} {package_version(oracle.name)}",
        role="oracle",
        calls=calls.training,
        wall_time_s=wall,
        note=f"the foundation model {oracle.name} {oracle.model_version} is the oracle: it is the reference of "
        "every figure of this report (no DFT), and the errors say how well the ACE reproduces it",
    )


def as_teacher(
    cfg: PipelineConfig,
    fm: FoundationModelFields,
    db: DatabaseManager,
    figures: ReportFigures,
    workdir: Path,
    teacher: TeacherWork | None,
) -> FoundationModelSummary:
    """The foundation model beside the oracle: its errors on the validation split, its EOS and elastic constants
    (evaluated on the driver, cached), the quality bar applied to it alone."""
    from mlip_autopipec.config.schemas.foundation_weights import package_version
    from mlip_autopipec.oracle.foundation import FoundationModelOracle

    t0 = time.perf_counter()
    model = model_config(fm)
    store = JsonResultStore(cache_path(workdir, fm), f"{fm.name} {fm.model_version}")
    calc = CachedCalculator(OracleCalculator(FoundationModelOracle(model), None), store)
    try:
        validation, shift = _validation(db, calc)
        seeds = {str(seed.name): seed_figures(cfg, seed, db, workdir, calc, figures) for seed in bulk_seeds(cfg)}
    finally:
        store.flush()
    first = next(iter(seeds.values()), None)
    eos = None
    if first is not None and first.lattice_constant_angstrom is not None and first.bulk_modulus_gpa is not None:
        eos = EOSFigures(
            lattice_constant_error_percent=first.lattice_constant_angstrom.foundation_model_error_percent,
            bulk_modulus_error_percent=first.bulk_modulus_gpa.foundation_model_error_percent,
        )
    return FoundationModelSummary(
        name=fm.name,
        version=fm.model_version,
        package=f"{fm.name} {package_version(fm.name)}",
        role="teacher",
        calls=teacher.calls if teacher is not None else 0,
        wall_time_s=teacher.wall_time_s if teacher is not None else 0.0,
        validation=validation,
        energy_shift_ev_per_atom=shift,
        quality_bar=quality_bar(validation, eos, cfg.report),
        seeds=seeds,
        report_calls=calc.n_computed,
        report_cached=calc.n_cached,
        report_seconds=time.perf_counter() - t0,
        note=f"the foundation model {fm.name} {fm.model_version} alone against the oracle ({cfg.oracle.type}), "
        "on the same structures as the ACE",
    )


def element_shift(predictions: Predictions, symbols: list[list[str]]) -> dict[str, float]:
    """Per-element energies (eV/atom) that, added to the predicted energies, best match the reference energies
    per atom (least squares): a model's zero of energy is not the oracle's (pure numbers)."""
    elements = sorted({s for row in symbols for s in row})
    counts = np.array([[row.count(e) for e in elements] for row in symbols], dtype=float)
    natoms = predictions.natoms.astype(float)
    design = counts / natoms[:, None]
    target = (predictions.energy_ref - predictions.energy_pred) / natoms
    mu, *_ = np.linalg.lstsq(design, target, rcond=None)
    return {e: float(m) for e, m in zip(elements, mu, strict=True)}


def validation_figures(db: DatabaseManager, calc: Calculator) -> tuple[ValidationFigures, dict[str, float]]:
    """The model ``calc`` against the oracle on the labelled validation split, after the per-element energy
    shift of :func:`element_shift`; and that shift."""
    structures = [rec.atoms for rec in db.select(label="validation", status="labelled")]
    if not structures:
        return ValidationFigures(n_structures=0, note="no labelled validation structures"), {}
    raw = predict(structures, calc)
    symbols = [atoms.get_chemical_symbols() for atoms in structures]
    shift = element_shift(raw, symbols)
    added = np.array([sum(shift[s] for s in row) for row in symbols])
    shifted = Predictions(raw.natoms, raw.energy_ref, raw.energy_pred + added, raw.forces_ref, raw.forces_pred)
    return ValidationFigures(**error_metrics(shifted).as_dict()), shift


def _validation(db: DatabaseManager, calc: Calculator) -> tuple[ValidationFigures, dict[str, float]]:
    try:
        return validation_figures(db, calc)
    except MlipAutopipecError as err:  # e.g. an implausible result of the model: the rest of the report goes on
        log.warning("report: the foundation model on the validation structures: %s", err)
        return ValidationFigures(n_structures=0, note=f"not computed: {err}"), {}


def seed_figures(
    cfg: PipelineConfig,
    seed: SeedConfig,
    db: DatabaseManager,
    workdir: Path,
    calc: Calculator,
    figures: ReportFigures,
) -> FoundationModelSeed:
    """A bulk seed's EOS (on the oracle's cells, no new oracle call) and elastic constants with the model, beside
    the oracle's and the ACE's from ``figures``."""
    name = str(seed.name)
    failures: dict[str, str] = {}
    eos: dict[str, ThreeWay] = {}
    elastic: dict[str, ThreeWay] = {}
    if cfg.report.eos:
        try:
            eos = _eos(cfg, seed, db, workdir, calc, figures.eos_by_seed.get(name))
        except Exception as err:  # the model's EOS is one figure of the report: the rest goes on
            log.warning("report: no equation of state of seed %s with the foundation model: %s", name, err)
            failures["eos"] = str(err)
    if cfg.report.properties.elastic:
        try:
            elastic = _elastic(cfg, seed, calc, figures)
        except MlipAutopipecError as err:
            log.warning("report: no elastic constants of seed %s with the foundation model: %s", name, err)
            failures["elastic"] = str(err)
    return FoundationModelSeed(seed=name, failures=failures, **eos, **elastic)


def _eos(
    cfg: PipelineConfig,
    seed: SeedConfig,
    db: DatabaseManager,
    workdir: Path,
    calc: Calculator,
    ace: EOSFigures | None,
) -> dict[str, ThreeWay]:
    _atoms, v_seed, a_seed = seed_lattice(seed)
    comparison = compare_eos(seed_eos_structures(cfg, seed, db, workdir), calc, v_seed, a_seed)
    if comparison.potential is None:
        raise MlipAutopipecError(f"the model's E(V) has no minimum: {comparison.potential_failure}")
    ace_fit = ace.potential if ace is not None else None
    return {
        "lattice_constant_angstrom": ThreeWay.of(
            comparison.oracle.lattice_constant,
            ace_fit.lattice_constant if ace_fit is not None else None,
            comparison.potential.lattice_constant,
        ),
        "bulk_modulus_gpa": ThreeWay.of(
            comparison.oracle.bulk_modulus_gpa,
            ace_fit.bulk_modulus_gpa if ace_fit is not None else None,
            comparison.potential.bulk_modulus_gpa,
        ),
    }


def _elastic(cfg: PipelineConfig, seed: SeedConfig, calc: Calculator, figures: ReportFigures) -> dict[str, ThreeWay]:
    from mlip_autopipec.report.properties import compute_properties

    only_elastic = cfg.report.properties.model_copy(
        update={"vacancy": False, "surfaces": [], "phonons": False, "md_stability": None}
    )
    atoms: Atoms = seed_lattice(seed)[0]
    result = compute_properties(atoms, calc, only_elastic)
    if result.elastic is None:
        raise MlipAutopipecError(result.failures.get("elastic", "not computed"))
    props = figures.properties_by_seed.get(str(seed.name))
    pairs = props.elastic_gpa if props is not None else None
    out = {}
    for key, attr in (("c11_gpa", "C11"), ("c12_gpa", "C12"), ("c44_gpa", "C44")):
        pair = getattr(pairs, attr, None) if pairs is not None else None
        out[key] = ThreeWay.of(
            pair.oracle if pair is not None else None,
            pair.potential if pair is not None else None,
            float(getattr(result.elastic, attr.lower())),
        )
    return out


__all__ = [
    "CACHE_DIR",
    "TeacherWork",
    "as_oracle",
    "as_teacher",
    "cache_path",
    "element_shift",
    "foundation_model_summary",
    "model_config",
    "seed_figures",
    "validation_figures",
]
