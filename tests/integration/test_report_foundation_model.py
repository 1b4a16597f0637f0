"""Would the foundation model alone have done? (issue 19, item 5) The real CHGNet 0.3.0 against an EMT oracle on
a tiny Cu database: its validation errors, equation of state and elastic constants, evaluated once and cached."""

from __future__ import annotations

import math

import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.database import DatabaseManager, StructureMetadata
from mlip_autopipec.records import DatabaseCounts, EOSFigures, EOSFit, QualityBar, ReportFigures, ValidationFigures
from mlip_autopipec.report.calls import oracle_calls
from mlip_autopipec.report.foundation import cache_path, foundation_model_summary

pytestmark = pytest.mark.slow

ELASTIC_ONLY = {"elastic": True, "vacancy": False, "surfaces": [], "phonons": False, "md_stability": None}


def _labelled_pool(db: DatabaseManager) -> None:
    """6 rattled cells (the split) and 5 clean equation-of-state cells, labelled with EMT."""
    cells = []
    for i in range(6):
        atoms = bulk("Cu", "fcc", a=3.61 * (0.98 + 0.008 * i), cubic=True)
        atoms.rattle(0.04, seed=i)
        cells.append((atoms, {}))
    for ratio in (0.94, 0.97, 1.0, 1.03, 1.06):  # volume ratios of the seed's clean cell
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
        atoms.set_cell(atoms.cell * ratio ** (1 / 3), scale_atoms=True)
        cells.append((atoms, {"operation": "eos", "seed": "Cu_fcc"}))
    ids = [
        db.add_structures([atoms], StructureMetadata(source="initial_random", provenance=prov))[0]
        for atoms, prov in cells
    ]
    db.assign_split(0.5, seed=3)
    for sid in ids:
        atoms = db.record(sid).atoms
        atoms.calc = EMT()
        db.set_labels(sid, atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress())


def test_chgnet_alone_against_emt_beside_the_ace_evaluated_once(tmp_path):
    cfg = PipelineConfig.model_validate(
        {
            "workdir": str(tmp_path),
            "structure": {"element": "Cu", "lattice": "fcc", "a": 3.61, "cubic": True},
            "foundation_model": {"name": "chgnet"},
            "report": {"properties": ELASTIC_ONLY},
        }
    )
    db = DatabaseManager(tmp_path / "structures.db")
    _labelled_pool(db)
    ace_eos = EOSFigures(
        oracle=EOSFit(volume_per_atom=11.6, energy_per_atom=0.0, bulk_modulus_gpa=134.0, lattice_constant=3.59),
        potential=EOSFit(volume_per_atom=11.7, energy_per_atom=0.0, bulk_modulus_gpa=140.0, lattice_constant=3.60),
    )
    figures = ReportFigures(
        counts=DatabaseCounts(total=0, by_status={}, by_source={}, labelled_by_split={}),
        validation=ValidationFigures(n_structures=0),
        eos_by_seed={"Cu_fcc": ace_eos},
        quality_bar=QualityBar(passed=True, checks=[]),
    )
    calls = oracle_calls(db)
    fm = foundation_model_summary(cfg, db, figures, tmp_path, calls)
    assert fm is not None and fm.role == "teacher" and fm.package.startswith("chgnet ")
    val = fm.validation
    assert val is not None and val.n_structures == db.count(label="validation") > 0
    assert val.energy_rmse_mev_per_atom is not None and val.force_rmse_mev_per_angstrom is not None
    assert 0 < val.force_rmse_mev_per_angstrom < 500 and math.isfinite(val.energy_rmse_mev_per_atom)
    assert fm.energy_shift_ev_per_atom["Cu"] == pytest.approx(4.07, abs=0.1)  # CHGNet's Cu: ~4.07 eV/atom below EMT's
    seed = fm.seeds["Cu_fcc"]
    assert seed.failures == {}
    a0 = seed.lattice_constant_angstrom
    assert a0 is not None and a0.ace == 3.60 and a0.oracle == pytest.approx(3.59, abs=0.01)  # EMT's copper
    assert a0.foundation_model == pytest.approx(3.62, abs=0.015)  # CHGNet's copper
    c44 = seed.c44_gpa
    assert c44 is not None and c44.oracle is None and 30 < (c44.foundation_model or 0) < 80  # no oracle side given
    assert fm.quality_bar is not None and [c.figure for c in fm.quality_bar.checks][0] == "validation force RMSE"
    assert fm.report_calls > 10 and cache_path(tmp_path, cfg.foundation_model).is_file()  # type: ignore[arg-type]
    assert oracle_calls(db) == calls  # the model's results never become database rows

    again = foundation_model_summary(cfg, db, figures, tmp_path, calls)
    assert again is not None and again.report_calls == 0 and again.report_cached >= fm.report_calls
    assert again.validation == fm.validation and again.seeds == fm.seeds
