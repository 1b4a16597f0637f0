"""The report per seed: which seeds are bulk phases, their equations of state, their properties against the oracle,
and formation energies per composition.

A structure's seed is its provenance ``seed`` (set by the campaign's pool); a
structure without one (a pool drawn before seeds were named) belongs to the
campaign's first seed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.config.schemas.report_properties import MDStabilityConfig
from mlip_autopipec.config.schemas.structure import SeedConfig
from mlip_autopipec.database import DatabaseManager, StoredStructure
from mlip_autopipec.database.metadata import PROPERTY
from mlip_autopipec.records.figures import FormationFigures, FormationPoint, PropertiesFigures

if TYPE_CHECKING:
    from mlip_autopipec.report.properties import CachedCalculator, MDStabilityResult
    from mlip_autopipec.report.properties.plan import OracleBudget
    from mlip_autopipec.report.properties.store import DatabaseStore

log = logging.getLogger("mlip_autopipec")


def bulk_seeds(cfg: PipelineConfig) -> list[SeedConfig]:
    """The campaign's bulk phases: seeds that are neither slabs nor random alloys
    (those have no one crystal to relax)."""
    return [s for s in cfg.seeds if s.surface is None and s.alloy is None]


def seed_name(rec: StoredStructure, default: str) -> str:
    """The structure's seed (provenance ``seed``), else ``default``."""
    name = rec.metadata.provenance.get("seed")
    return str(name) if name else default


def group_name(rec: StoredStructure) -> str:
    """Seed, else source: what parity plots colour by."""
    return str(rec.metadata.provenance.get("seed") or rec.metadata.source)


def seed_lattice(seed: SeedConfig) -> tuple[Atoms, float, float]:
    """The seed crystal, its volume per atom (Å³) and lattice constant (Å)."""
    from mlip_autopipec.generator import build_seed

    atoms = build_seed(seed)
    a = seed.a or float(np.linalg.norm(atoms.cell[0]) / seed.repeat[0])
    return atoms, atoms.get_volume() / len(atoms), a


MIN_EOS_POINTS = 5  # a Birch-Murnaghan fit has 4 parameters
EOS_GRID_POINTS = 7  # volumes of the oracle's own equation of state, when the pool has too few clean points


def eos_structures(db: DatabaseManager, seed: SeedConfig, first_seed: str) -> list[Atoms]:
    """The clean, isotropically scaled cells of ``seed`` (provenance operation 'eos'), labelled."""
    return [
        rec.atoms
        for rec in db.select(status="labelled")
        if rec.metadata.provenance.get("operation") == "eos" and seed_name(rec, first_seed) == seed.name
    ]


def _cached_oracle(
    cfg: PipelineConfig, seed: SeedConfig, db: DatabaseManager, folder: Path, budget: OracleBudget | None = None
) -> tuple[CachedCalculator, DatabaseStore]:
    """The oracle as an ASE calculator whose results are kept in (and first looked up in) ``db``, and its store.

    ``folder``: where a file-based oracle runs (EMT writes no files); ``budget``: the bound on its calls (cached
    results are free)."""
    from mlip_autopipec.oracle.factory import make_oracle
    from mlip_autopipec.report.properties import CachedCalculator, OracleCalculator
    from mlip_autopipec.report.properties.plan import BudgetedCalculator
    from mlip_autopipec.report.properties.store import DatabaseStore

    store = DatabaseStore(db, str(seed.name or "seed"))
    run_in = None if cfg.oracle.type == "emt" else folder
    oracle: Calculator = OracleCalculator(make_oracle(cfg.oracle), run_in)
    if budget is not None:
        oracle = BudgetedCalculator(oracle, budget)
    return CachedCalculator(oracle, store), store


def seed_eos_structures(cfg: PipelineConfig, seed: SeedConfig, db: DatabaseManager, workdir: Path) -> list[Atoms]:
    """The cells the equation of state of the bulk ``seed`` is fitted on, labelled by the oracle.

    The pool's clean equation-of-state points when it holds at least
    :data:`MIN_EOS_POINTS` of them (no oracle call); otherwise (a small share of
    the pool, e.g. several seeds with ``eos_fraction`` 0.1) :data:`EOS_GRID_POINTS`
    volumes evenly spaced over the seed's ``volume_range``, labelled by the oracle
    and kept in the database as property rows (source ``property_eos``, never
    trained on), so a rerun calls the oracle for none of them.
    """
    pool = eos_structures(db, seed, str(cfg.seeds[0].name) if cfg.seeds else "")
    if len(pool) >= MIN_EOS_POINTS:
        return pool
    from ase.calculators.singlepoint import SinglePointCalculator

    from mlip_autopipec.generator.campaign import seed_generator_config

    atoms, _v, _a = seed_lattice(seed)
    lo, hi = seed_generator_config(seed, cfg.generator).volume_range
    oracle, store = _cached_oracle(cfg, seed, db, workdir / "properties" / str(seed.name) / "eos")
    store.stage("eos")
    cells = []
    try:
        for ratio in np.linspace(lo, hi, EOS_GRID_POINTS):
            cell = atoms.copy()
            cell.set_cell(atoms.cell * ratio ** (1.0 / 3.0), scale_atoms=True)
            cell.calc = SinglePointCalculator(cell, energy=oracle.get_potential_energy(cell))
            cells.append(cell)
    finally:
        store.flush()
    log.info(
        "report: equation of state of seed %s on %d volumes (%.2f-%.2f of the seed's; the pool has %d clean points)",
        seed.name,
        EOS_GRID_POINTS,
        lo,
        hi,
        len(pool),
    )
    return cells


def seed_properties(
    cfg: PipelineConfig,
    seed: SeedConfig,
    db: DatabaseManager,
    potential_yace: Path,
    potential_yaml: Path,
    workdir: Path,
    out: Path,
    budget: OracleBudget | None = None,
) -> PropertiesFigures:
    """Every switched-on property of the bulk ``seed``: oracle side cached in ``db``, potential side with
    PyACECalculator (the properties the oracle's side skipped past ``budget`` are skipped there too).

    Draws ``phonons_<seed>.png`` under ``out`` when phonons are on.
    """
    from mlip_autopipec.explore.activeset import asi_path_for
    from mlip_autopipec.report.properties import compute_properties, phonon_plot, properties_summary
    from mlip_autopipec.trainer.pyace_import import import_pyace_calculator

    t0 = time.perf_counter()
    pcfg = cfg.report.properties
    atoms, _v, _a = seed_lattice(seed)
    oracle_calc, store = _cached_oracle(cfg, seed, db, workdir / "properties" / str(seed.name), budget)
    try:
        oracle = compute_properties(atoms, oracle_calc, pcfg, stage=store.stage)
    finally:
        store.flush()
    pace = import_pyace_calculator()
    potential = compute_properties(atoms, pace(str(potential_yace)), pcfg, skip=oracle.skipped)
    md = None
    if pcfg.md_stability is not None:
        md = _md_stability(
            cfg, pcfg.md_stability, potential.bulk, potential_yace, potential_yaml, asi_path_for(potential_yaml), pace
        )
    summary = properties_summary(oracle, potential, md)
    if oracle.phonons is not None or potential.phonons is not None:
        phonon_plot(oracle.phonons, potential.phonons, out / f"phonons_{seed.name}.png", title=f"{seed.name}: phonons")
    return PropertiesFigures.of(
        str(seed.name),
        oracle.bulk.get_chemical_formula(),
        summary,
        oracle_calls=oracle_calc.n_computed,
        oracle_cached=oracle_calc.n_cached,
        seconds=time.perf_counter() - t0,
    )


def _md_stability(
    cfg: PipelineConfig, mcfg: MDStabilityConfig, bulk: Atoms, yace: Path, yaml: Path, asi: Path, pace: Any
) -> MDStabilityResult:
    from mlip_autopipec.report.properties import md_stability

    al = cfg.active_learning
    temperatures = list(getattr(al, "temperatures", []) or []) if al is not None else []
    gamma = mcfg.gamma_halt_for(getattr(al, "gamma_halt", None) if al is not None else None)
    if asi.is_file() and gamma is not None:
        calc = pace(str(yaml))
        calc.set_active_set(str(asi))
    else:
        calc, gamma = pace(str(yace)), None
    result = md_stability(
        bulk,
        calc,
        mcfg.temperature_for(temperatures),
        mcfg.time_ps,
        timestep_fs=mcfg.timestep_fs,
        min_atoms=mcfg.min_atoms,
        gamma_halt=gamma,
        min_distance_fraction=mcfg.min_distance_fraction,
        max_energy_rise_ev_per_atom=mcfg.max_energy_rise_ev_per_atom,
        seed=mcfg.seed,
    )
    if gamma is None:  # no active set loaded: PyACECalculator reports γ = 0, which means nothing
        result.max_gamma = None
    return result


# --------------------------------------------------------------------------- formation energies
def formation_energies(
    records: Sequence[StoredStructure], calculator: Calculator, energy_shift: Callable[[Atoms], float] | None = None
) -> FormationFigures | None:
    """Formation energy per atom against the pure elements, oracle and potential, of every labelled structure
    of a binary system (None: not binary, or a pure element missing from the data).

    The references are the lowest per-atom oracle energy among the pure structures of each element; the
    potential's references are its energies of the same structures.
    """
    elements = sorted({s for rec in records for s in rec.atoms.get_chemical_symbols()})
    if len(elements) != 2:
        return None
    a, b = elements
    oracle_list: list[float] = []
    pot_list: list[float] = []
    comp_list: list[float] = []
    groups: list[str] = []
    for rec in records:
        atoms = rec.atoms
        probe = atoms.copy()
        probe.calc = calculator
        n = len(atoms)
        oracle_list.append(atoms.get_potential_energy() / n)
        pot_list.append((probe.get_potential_energy() + (energy_shift(atoms) if energy_shift else 0.0)) / n)
        comp_list.append(atoms.get_chemical_symbols().count(b) / n)
        groups.append(group_name(rec))
    e_oracle, e_pot, comps = np.array(oracle_list), np.array(pot_list), np.array(comp_list)
    refs_o: dict[str, float] = {}
    refs_p: dict[str, float] = {}
    for element, x in ((a, 0.0), (b, 1.0)):
        pure = np.flatnonzero(comps == x)
        if len(pure) == 0:
            return None
        i = pure[np.argmin(e_oracle[pure])]
        refs_o[element], refs_p[element] = float(e_oracle[i]), float(e_pot[i])
    f_o = e_oracle - ((1 - comps) * refs_o[a] + comps * refs_o[b])
    f_p = e_pot - ((1 - comps) * refs_p[a] + comps * refs_p[b])
    points = [
        FormationPoint(composition=float(x), oracle_ev_per_atom=float(o), potential_ev_per_atom=float(p), group=g)
        for x, o, p, g in zip(comps, f_o, f_p, groups, strict=True)
    ]
    return FormationFigures(
        elements=[a, b],
        references=refs_o,
        n_structures=len(points),
        rmse_mev_per_atom=float(1000 * np.sqrt(np.mean((f_p - f_o) ** 2))),
        points=points,
    )


def labelled_for_formation(db: DatabaseManager) -> list[StoredStructure]:
    """The labelled structures of the campaign (property structures left out)."""
    return [rec for rec in db.select(status="labelled") if PROPERTY not in rec.metadata.labels]


__all__ = [
    "bulk_seeds",
    "eos_structures",
    "seed_eos_structures",
    "formation_energies",
    "group_name",
    "labelled_for_formation",
    "seed_lattice",
    "seed_name",
    "seed_properties",
]
