"""The report's database side: property rows are never split nor trained on, the oracle's property
results are reused from the database (0 oracle calls on a rerun), formation energies."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from mlip_autopipec.config import EMTOracleConfig
from mlip_autopipec.config.schemas.report_properties import ReportPropertiesConfig
from mlip_autopipec.database import DatabaseManager, StructureMetadata
from mlip_autopipec.database.metadata import PROPERTY
from mlip_autopipec.oracle.factory import make_oracle
from mlip_autopipec.report.properties import CachedCalculator, OracleCalculator, compute_properties
from mlip_autopipec.report.properties.store import DatabaseStore, property_source
from mlip_autopipec.report.seeds import formation_energies


def labelled(atoms):
    atoms = atoms.copy()
    probe = atoms.copy()
    probe.calc = EMT()
    atoms.calc = SinglePointCalculator(
        atoms, energy=probe.get_potential_energy(), forces=probe.get_forces(), stress=probe.get_stress()
    )
    return atoms


def cells(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        a = bulk("Cu", "fcc", a=3.61, cubic=True)
        a.rattle(0.05, seed=int(rng.integers(1 << 30)))
        out.append(labelled(a))
    return out


def test_property_rows_never_get_a_split_and_are_never_exported(tmp_path):
    db = DatabaseManager(tmp_path / "s.db")
    db.add_structures(cells(6, 0), StructureMetadata(source="initial_random"))
    db.add_structures(cells(4, 1), StructureMetadata(source=property_source("elastic"), labels=[PROPERTY]))
    counts = db.assign_split(0.5, 0)
    assert counts.train + counts.validation == 6  # the four property rows got none
    # arriving after the split is set: still none
    db.add_structures(cells(3, 2), StructureMetadata(source=property_source("phonons"), labels=[PROPERTY]))
    db.add_structures(cells(2, 3), StructureMetadata(source="md_halt"))
    db.assign_split(0.5, 0)
    for rec in db.select(label=PROPERTY):
        assert "train" not in rec.metadata.labels and "validation" not in rec.metadata.labels
    assert db.count(label=PROPERTY) == 7
    assert db.count(label="train") + db.count(label="validation") == 8
    n = db.save_dataset(tmp_path / "train.xyz", label="train") + db.save_dataset(
        tmp_path / "val.xyz", label="validation"
    )
    assert n == 8
    with pytest.raises(ValueError, match="never trained on"):
        StructureMetadata(source="x", labels=[PROPERTY, "train"])


def test_oracle_property_results_are_kept_in_the_database_and_reused(tmp_path):
    cfg = ReportPropertiesConfig(vacancy=False, surfaces=["111"], phonons=False, md_stability=None)
    seed = bulk("Cu", "fcc", a=3.6, cubic=True)
    db = DatabaseManager(tmp_path / "s.db")

    def run():
        store = DatabaseStore(db, "Cu_fcc")
        calc = CachedCalculator(OracleCalculator(make_oracle(EMTOracleConfig())), store)
        res = compute_properties(seed, calc, cfg, stage=store.stage)
        store.flush()
        return res, calc

    first, calc1 = run()
    assert calc1.n_computed > 5
    assert db.count(label=PROPERTY) == calc1.n_computed
    sources = {rec.metadata.source for rec in db.select(label=PROPERTY)}
    assert {"property_relax", "property_elastic", "property_surface_111"} <= sources
    assert all(rec.metadata.provenance["seed"] == "Cu_fcc" for rec in db.select(label=PROPERTY))
    second, calc2 = run()  # a rerun: a new process would see the same database
    assert calc2.n_computed == 0 and calc2.n_cached > 0
    assert second.elastic.c11 == pytest.approx(first.elastic.c11, rel=1e-10)
    assert second.surfaces["111"].energy_j_per_m2 == pytest.approx(first.surfaces["111"].energy_j_per_m2, rel=1e-10)


def test_a_structure_already_labelled_for_training_is_not_recomputed(tmp_path):
    db = DatabaseManager(tmp_path / "s.db")
    atoms = labelled(bulk("Cu", "fcc", a=3.6, cubic=True))
    db.add_structure(atoms, StructureMetadata(source="initial_random"))
    calc = CachedCalculator(OracleCalculator(make_oracle(EMTOracleConfig())), DatabaseStore(db, "Cu"))
    probe = bulk("Cu", "fcc", a=3.6, cubic=True)
    probe.calc = calc
    assert probe.get_potential_energy() == pytest.approx(atoms.get_potential_energy())
    assert calc.n_computed == 0 and calc.n_cached == 1


def test_formation_energies_of_a_binary_against_the_pure_elements(tmp_path):
    db = DatabaseManager(tmp_path / "s.db")
    structures = []
    for sym, seed in (("Cu", "Cu_fcc"), ("Au", "Au_fcc")):
        a = bulk(sym, "fcc", a=3.61 if sym == "Cu" else 4.08, cubic=True)
        structures.append((labelled(a), seed))
    rng = np.random.default_rng(3)
    for x in (0.25, 0.5, 0.75):
        a = bulk("Cu", "fcc", a=3.61 + x * 0.47, cubic=True).repeat(2)
        a.symbols[rng.permutation(len(a))[: int(round(x * len(a)))]] = "Au"
        structures.append((labelled(a), "CuAu_random"))
    for atoms, seed in structures:
        db.add_structure(atoms, StructureMetadata(source="initial_random", provenance={"seed": seed}))
    records = list(db.select(status="labelled"))
    same = formation_energies(records, EMT())  # the oracle itself as the potential: no error
    assert same.elements == ["Au", "Cu"] and same.n_structures == 5
    assert same.rmse_mev_per_atom < 1e-6
    pure = [p for p in same.points if p.composition in (0.0, 1.0)]
    assert all(abs(p.oracle_ev_per_atom) < 1e-12 for p in pure)
    mixed = [p for p in same.points if 0 < p.composition < 1]
    assert {p.group for p in mixed} == {"CuAu_random"} and len(mixed) == 3
    # a unary system has no formation energies
    assert formation_energies([r for r in records if set(r.atoms.get_chemical_symbols()) == {"Cu"}], EMT()) is None
