"""report.properties with a real tiny ACE potential (PyACECalculator) on the potential side and EMT as the oracle."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from mlip_autopipec.config.schemas.report_properties import ReportPropertiesConfig
from mlip_autopipec.report.properties import (
    CachedCalculator,
    compute_properties,
    md_stability,
    phonon_plot,
    properties_summary,
    property_table,
)
from mlip_autopipec.trainer.pyace_import import import_pyace_calculator

pytestmark = pytest.mark.slow

CONFIG = ReportPropertiesConfig(surfaces=["111"], md_stability=None)


@pytest.fixture
def potential(cu_fit, cu_active_set):
    """(.yace, .yaml, .asi) of the session's tiny real fit to 20 strained, rattled 32-atom EMT copper cells
    (tests/conftest.py::cu_fit)."""
    return cu_fit.result.potential_yace, cu_fit.result.potential_yaml, cu_active_set


def test_potential_side_properties_and_their_errors(potential, tmp_path):
    yace, _yaml, _asi = potential
    pace = import_pyace_calculator()(str(yace))
    oracle = compute_properties(bulk("Cu", "fcc", a=3.6), CachedCalculator(EMT()), CONFIG)
    pot = compute_properties(bulk("Cu", "fcc", a=3.6), pace, CONFIG)
    assert not pot.failures, pot.failures
    summary = properties_summary(oracle, pot)
    for name in ("C11", "C12", "C44"):
        pair = summary["elastic_gpa"][name]
        assert math.isfinite(pair["potential"]) and pair["error"] == pytest.approx(pair["potential"] - pair["oracle"])
    # a tiny fit to strained, rattled bulk cells: its lattice constant near EMT's, a stable (positive) stiffness
    assert abs(pot.bulk.cell.lengths()[0] / oracle.bulk.cell.lengths()[0] - 1) < 0.02
    assert summary["elastic_gpa"]["bulk_modulus_voigt"]["potential"] > 0
    assert math.isfinite(summary["vacancy_formation_ev"]["potential"])
    assert math.isfinite(summary["surface_energy_j_per_m2"]["111"]["potential"])
    assert 0 <= summary["phonons"]["frequency_rmse_thz"] < 2.0
    print("\n" + "\n".join(f"{k}: {v}" for k, v in property_table(summary).items()))
    assert phonon_plot(oracle.phonons, pot.phonons, tmp_path / "phonons.png").stat().st_size > 10_000


def test_md_stability_with_the_active_set(potential):
    _yace, yaml, asi = potential
    calc = import_pyace_calculator()(str(yaml))
    calc.set_active_set(str(asi))
    start = bulk("Cu", "fcc", a=3.59, cubic=True)
    calm = md_stability(start, calc, temperature_k=300, time_ps=0.1, min_atoms=32, gamma_halt=50.0)
    assert calm.completed and calm.max_gamma is not None and calm.max_gamma < 50.0
    # far hotter than the data (rattle 0.05 Å): the atoms leave the trained region and γ climbs past a low halt
    hot = md_stability(
        start, calc, temperature_k=3000, time_ps=1.0, min_atoms=32, gamma_halt=1.5, max_temperature_ratio=10
    )
    assert not hot.completed and hot.stop in ("gamma", "blowup"), hot
    assert hot.stop == "gamma" and hot.max_gamma >= 1.5 and 0 < hot.steps < hot.n_steps, hot
    print(f"\ncalm: {calm.reason}, max γ {calm.max_gamma:.2f}; hot: {hot.reason}")


def test_report_per_seed_eos_properties_and_counts(potential, tmp_path):
    """Two bulk phases and a slab seed: an EOS and properties for each bulk phase (none for the slab),
    parity by seed."""
    from types import SimpleNamespace

    from mlip_autopipec.config.schemas.pipeline import PipelineConfig
    from mlip_autopipec.database import DatabaseManager, StructureMetadata
    from mlip_autopipec.report.build import build_figures

    yace, yaml, _asi = potential
    cfg = PipelineConfig.model_validate(
        {
            "seeds": [
                {"name": "Cu_fcc", "element": "Cu", "lattice": "fcc", "a": 3.6, "cubic": True},
                {"name": "Cu_bcc", "element": "Cu", "lattice": "bcc", "a": 2.87, "cubic": True},
                {
                    "name": "Cu_111",
                    "element": "Cu",
                    "lattice": "fcc",
                    "a": 3.6,
                    "surface": {"miller": [1, 1, 1], "layers": 3},
                },
            ],
            "report": {"properties": {"vacancy": False, "surfaces": [], "phonons": False, "md_stability": None}},
        }
    )
    db = DatabaseManager(tmp_path / "s.db")
    # the fcc seed has 6 clean equation-of-state points in its pool; the bcc seed 3, too few for a fit
    for name, lattice, a, n_eos in (("Cu_fcc", "fcc", 3.6, 6), ("Cu_bcc", "bcc", 2.87, 3)):
        for i, s in enumerate(np.linspace(0.96, 1.04, n_eos)):
            atoms = bulk("Cu", lattice, a=a * s, cubic=True)
            atoms.calc = EMT()
            atoms.get_potential_energy()
            db.add_structure(
                atoms, StructureMetadata(source="initial_random", provenance={"seed": name, "operation": "eos"})
            )
            rattled = bulk("Cu", lattice, a=a * s, cubic=True).repeat(2)
            rattled.rattle(0.05, seed=i)
            rattled.calc = EMT()
            rattled.get_potential_energy()
            db.add_structure(rattled, StructureMetadata(source="initial_random", provenance={"seed": name}))
    db.assign_split(0.4, 0)
    fit = SimpleNamespace(potential_yace=yace, potential_yaml=yaml, reference_energy=None)
    out = tmp_path / "report"
    figures = build_figures(cfg, db, fit, out, tmp_path)
    assert set(figures.eos_by_seed) == {"Cu_fcc", "Cu_bcc"}  # the slab has no equation of state
    assert figures.eos_by_seed["Cu_fcc"].oracle.lattice_constant == pytest.approx(3.59, abs=0.02)
    # the bcc seed's equation of state comes from 7 oracle points on its volume range, kept as property rows
    bcc = figures.eos_by_seed["Cu_bcc"]
    assert bcc.oracle is not None and bcc.potential is not None, bcc
    assert bcc.oracle.lattice_constant == pytest.approx(2.87, rel=0.05)
    eos_rows = [r for r in db.select(label="property") if r.metadata.source == "property_eos"]
    # 7 volumes; the middle one is the seed's own cell, which the pool already holds labelled: reused, not recomputed
    assert sorted({r.metadata.provenance["seed"] for r in eos_rows}) == ["Cu_bcc"] and len(eos_rows) == 6
    lo, hi = cfg.generator.volume_range
    volumes = sorted(r.atoms.get_volume() / 2 for r in eos_rows)  # 2 atoms in the cubic bcc cell
    assert volumes[0] == pytest.approx(lo * 2.87**3 / 2) and volumes[-1] == pytest.approx(hi * 2.87**3 / 2)
    assert figures.eos == figures.eos_by_seed["Cu_fcc"]
    assert (out / "eos.png").is_file() and (out / "eos_Cu_bcc.png").is_file()
    assert set(figures.properties_by_seed) == {"Cu_fcc", "Cu_bcc"}
    for props in figures.properties_by_seed.values():
        assert props.elastic_gpa.C11.oracle > 0 and props.elastic_gpa.C11.potential is not None
        assert props.oracle_calls > 0
    assert figures.properties == figures.properties_by_seed["Cu_fcc"]
    assert set(figures.counts.by_seed) == {"Cu_fcc", "Cu_bcc"}
    assert figures.formation is None  # one element
    assert (out / "parity_energy.png").stat().st_size > 0
    # a second report finds every oracle result in the database: no new rows
    n_rows = len(db)
    again = build_figures(cfg, db, fit, tmp_path / "report2", tmp_path)
    assert again.eos_by_seed["Cu_bcc"] == bcc
    assert len(db) == n_rows
