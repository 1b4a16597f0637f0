"""save_dataset / load_dataset: pacemaker's .pckl.gzip and extended XYZ, with labels and metadata."""

from __future__ import annotations

import gzip
import pickle

import numpy as np
import pandas as pd
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from mlip_autopipec.database import DatabaseManager, StructureMetadata, formats
from mlip_autopipec.exceptions import DatabaseError


def cu(seed: int) -> bulk:
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.rattle(0.05, seed=seed)
    atoms.info = {"operation": "rattle", "strain": np.eye(3) * 0.001 * seed, "pool_index": seed}
    return atoms


def labelled(atoms, stress=True):
    atoms.calc = EMT()
    atoms.get_potential_energy()
    if stress:
        atoms.get_stress()
    return atoms


@pytest.fixture
def db(tmp_path):
    with DatabaseManager(tmp_path / "f.db", reference_energies={"Cu": -0.25}) as manager:
        manager.add_structures(
            [labelled(cu(i)) for i in range(4)], StructureMetadata(source="initial_random", labels=["train"])
        )
        manager.add_structures(
            [labelled(cu(10), stress=False)], StructureMetadata(source="md_halt", generation=1, parent_id=2)
        )
        manager.add_structures([cu(20), cu(21)], StructureMetadata(source="md_halt", generation=1))  # pending
        manager.mark_failed(7, "scf")
        yield manager


def expected(db):
    return {rec.id: rec for rec in db.select(status="labelled")}


@pytest.mark.parametrize("name", ["data.pckl.gzip", "data.xyz", "data.extxyz"])
def test_export_import_round_trip_with_labels_and_metadata(db, tmp_path, name):
    path = tmp_path / name
    assert db.save_dataset(path) == 5  # only the labelled structures
    loaded = db.load_dataset(path)  # on an instance ...
    assert len(DatabaseManager.load_dataset(path)) == 5  # ... and on the class
    want = expected(db)
    assert [a.info["db_id"] for a in loaded] == sorted(want)
    for atoms in loaded:
        rec = want[atoms.info["db_id"]]
        ref = rec.atoms
        np.testing.assert_allclose(atoms.positions, ref.positions, atol=1e-8)
        np.testing.assert_array_equal(atoms.numbers, ref.numbers)
        np.testing.assert_allclose(atoms.cell.array, ref.cell.array, atol=1e-8)
        assert atoms.get_potential_energy() == pytest.approx(ref.get_potential_energy(), abs=1e-8)
        np.testing.assert_allclose(atoms.get_forces(), ref.get_forces(), atol=1e-8)
        if "stress" in ref.calc.results:
            np.testing.assert_allclose(atoms.get_stress(), ref.get_stress(), atol=1e-8)
        else:
            assert "stress" not in atoms.calc.results
        assert atoms.info["source"] == rec.metadata.source
        assert atoms.info["generation"] == rec.metadata.generation
        assert atoms.info["labels"] == rec.metadata.labels
        assert atoms.info.get("parent_id") == rec.metadata.parent_id
        prov = atoms.info["provenance"]
        assert prov["operation"] == "rattle" and prov["pool_index"] == rec.metadata.provenance["pool_index"]
        np.testing.assert_allclose(prov["strain"], rec.metadata.provenance["strain"])


def test_pacemaker_dataframe_layout_and_energy_corrected(db, tmp_path):
    path = tmp_path / "train.pckl.gzip"
    db.save_dataset(path, label="train")
    df = pd.read_pickle(path, compression="gzip")  # exactly how pacemaker reads it
    assert list(df.columns) == ["name", "energy", "energy_corrected", "forces", "ase_atoms", "stress"]
    assert len(df) == 4
    for _, row in df.iterrows():
        n = len(row.ase_atoms)
        assert row.energy_corrected == pytest.approx(row.energy - n * (-0.25))
        assert row.forces.shape == (n, 3)
        assert row.ase_atoms.calc is None  # labels live in the columns, stored once
    assert df.name.iloc[0] == "initial_random/1"
    # Override per export; elements without a reference count zero.
    db.save_dataset(path, label="train", reference_energies={"Ni": 5.0})
    df = pd.read_pickle(path, compression="gzip")
    np.testing.assert_allclose(df.energy_corrected, df.energy)
    with pytest.raises(DatabaseError, match="'Xx' is not a chemical element"):
        db.save_dataset(path, reference_energies={"Xx": 1.0})


def test_filters_and_empty_selection(db, tmp_path):
    assert db.save_dataset(tmp_path / "g1.xyz", generation=1) == 1
    assert db.save_dataset(tmp_path / "some.xyz", ids=[2, 3, 6]) == 2  # 6 is pending: never exported
    with pytest.raises(DatabaseError, match="no labelled structure matches {'source': 'nowhere'}"):
        db.save_dataset(tmp_path / "empty.pckl.gzip", source="nowhere")
    with pytest.raises(DatabaseError, match="no labelled structure"):
        db.save_dataset(tmp_path / "empty.xyz", label="validation")
    assert not (tmp_path / "empty.pckl.gzip").exists() and not (tmp_path / "empty.xyz").exists()


def test_unknown_suffix(db, tmp_path):
    with pytest.raises(DatabaseError, match=r"unknown dataset format; use a name ending in \.pckl\.gzip"):
        db.save_dataset(tmp_path / "data.csv")
    with pytest.raises(DatabaseError, match="unknown dataset format"):
        DatabaseManager.load_dataset(tmp_path / "data.pkl")


def test_file_appears_only_when_complete(db, tmp_path, monkeypatch):
    """A writer that dies half way leaves neither the target nor a temporary file behind."""
    path = tmp_path / "out.pckl.gzip"
    path.write_bytes(b"previous version")

    class FullDisk:
        """A gzip stream whose disk fills up after 1 kB."""

        def __init__(self, name, mode, compresslevel):
            self.fh = open(name, mode)
            self.written = 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, chunk):
            if self.written + len(chunk) > 1000:
                self.fh.write(chunk[: 1000 - self.written])
                raise OSError(28, "No space left on device")
            self.written += len(chunk)
            return self.fh.write(chunk)

    monkeypatch.setattr(gzip, "open", FullDisk)
    with pytest.raises(OSError, match="No space left on device"):
        db.save_dataset(path)
    assert path.read_bytes() == b"previous version"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.db", "out.pckl.gzip"]


def test_extxyz_interrupted_mid_stream_leaves_no_file(db, tmp_path, monkeypatch):
    import mlip_autopipec.database.export as export

    original = export.export_records

    def failing(store, ids, sel):
        for i, rec in enumerate(original(store, ids, sel)):
            if i == 3:
                raise RuntimeError("interrupted")
            yield rec

    monkeypatch.setattr(export, "export_records", failing)
    with pytest.raises(RuntimeError, match="interrupted"):
        db.save_dataset(tmp_path / "x.extxyz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.db"]


def test_load_errors(tmp_path):
    with pytest.raises(DatabaseError, match="no such dataset file"):
        DatabaseManager.load_dataset(tmp_path / "missing.xyz")
    bad = tmp_path / "bad.pckl.gzip"
    bad.write_bytes(b"not gzip")
    with pytest.raises(DatabaseError, match="not a readable gzipped pandas pickle"):
        DatabaseManager.load_dataset(bad)
    wrong = tmp_path / "wrong.pckl.gzip"
    pd.DataFrame({"x": [1]}).to_pickle(wrong, compression="gzip")
    with pytest.raises(DatabaseError, match=r"missing columns \['ase_atoms', 'energy', 'forces'\]"):
        DatabaseManager.load_dataset(wrong)
    no_energy = tmp_path / "plain.xyz"
    from ase.io import write

    write(no_energy, bulk("Cu"), format="extxyz")
    with pytest.raises(DatabaseError, match="frame 0 has no energy"):
        DatabaseManager.load_dataset(no_energy)


def test_reads_a_foreign_pacemaker_file(tmp_path):
    """A pace_collect-style file (no stress column, bare Atoms) loads with its energies and forces."""
    atoms = bulk("Cu", cubic=True)
    path = tmp_path / "collected.pckl.gzip"
    df = pd.DataFrame(
        {"energy": [-14.0], "forces": [np.ones((4, 3))], "ase_atoms": [atoms], "energy_corrected": [-1.0]}
    )
    with gzip.open(path, "wb") as fh:
        pickle.dump(df, fh)
    (back,) = DatabaseManager.load_dataset(path)
    assert back.get_potential_energy() == -14.0 and back.info["labels"] == []
    np.testing.assert_array_equal(back.get_forces(), np.ones((4, 3)))


def test_dataset_format_names():
    assert formats.dataset_format("a/b/train.pckl.gzip") == "pacemaker"
    assert formats.dataset_format("x.XYZ") == "extxyz"
    assert formats.dataset_format("x.extxyz") == "extxyz"
