"""Teacher rows (a foundation model's labels) in the database: apart from the oracle's in every query, split,
export and duplicate check; counted by ``teacher_calls``.  EMT stands in for the teacher's numbers here; the real
CHGNet is in tests/integration/test_teacher_rows.py."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from mlip_autopipec.database import DatabaseManager, StructureMetadata
from mlip_autopipec.database.teacher import teacher_metadata
from mlip_autopipec.exceptions import DatabaseError, StructureError


def cell(i: int, labelled: bool = True):
    atoms = bulk("Cu", "fcc", a=3.6 + 0.01 * i).repeat((2, 1, 1))
    atoms.rattle(0.02, seed=i)
    if labelled:
        atoms.calc = EMT()
        e, f, s = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
        atoms.calc = SinglePointCalculator(atoms, energy=e - 1.0, forces=f * 1.1, stress=s)
    return atoms


def teacher(db: DatabaseManager, n: int, wall: float = 0.5) -> list[int]:
    metas = [teacher_metadata({"seed": "Cu", "candidate": "generator"}, "chgnet", "0.3.0", "chgnet 0.4.2")] * n
    return db.add_teacher_rows([cell(i) for i in range(n)], metas, [{"teacher_wall_time_s": wall}] * n)


def test_teacher_rows_are_never_oracle_data(tmp_path):
    db = DatabaseManager(tmp_path / "t.db")
    tids = teacher(db, 4)
    oracle = db.add_structures([cell(i) for i in range(10, 16)], StructureMetadata(source="initial_random"))
    assert db.count(status="teacher") == 4 and db.count(status="labelled") == 6 and db.count(status="pending") == 0
    rec = db.record(tids[0])
    assert rec.metadata.source == "teacher" and rec.metadata.labels == ["teacher"] and rec.status == "teacher"
    assert rec.metadata.provenance["teacher_model"] == "chgnet"
    assert rec.metadata.provenance["teacher_model_version"] == "0.3.0"
    assert rec.label_info == {"teacher_wall_time_s": 0.5}
    counts = db.assign_split(0.5, seed=1)
    assert counts.train + counts.validation == 6  # the teacher rows get no split
    assert db.count(label="train", status="teacher") == db.count(label="validation", status="teacher") == 0
    teacher(db, 2)  # arriving after the split: still none
    assert db.count(label="train") + db.count(label="validation") == 6
    # the training export and the export of everything labelled hold the oracle's rows only
    n = db.save_dataset(tmp_path / "train.xyz", label="train") + db.save_dataset(
        tmp_path / "val.xyz", label="validation"
    )
    assert n == 6
    everything = db.load_dataset(tmp_path / "train.xyz") + db.load_dataset(tmp_path / "val.xyz")
    assert sorted(a.info["db_id"] for a in everything) == sorted(oracle)
    with pytest.raises(DatabaseError, match="no labelled structure"):
        db.save_dataset(tmp_path / "t.xyz", label="teacher")
    with pytest.raises(DatabaseError, match="no labelled structure"):
        db.save_dataset(tmp_path / "t.xyz", source="teacher")
    # the teacher's own export, for a fit to the teacher only
    assert db.save_teacher_dataset(tmp_path / "teacher.xyz") == 4
    assert {a.info["source"] for a in db.load_dataset(tmp_path / "teacher.xyz")} == {"teacher"}


def test_a_teacher_row_and_an_oracle_row_of_one_geometry_are_two_rows(tmp_path):
    db = DatabaseManager(tmp_path / "t.db")
    [tid] = teacher(db, 1)
    bare = cell(0, labelled=False)
    assert db.find_duplicate(bare) is None  # never the teacher's labels for an oracle structure
    [oid] = db.add_structures([bare], StructureMetadata(source="fm_selected", parent_id=tid))
    assert oid != tid and db.status(oid) == "pending" and db.status(tid) == "teacher"
    assert db.find_duplicate(bare) == oid
    assert teacher(db, 1) == [tid]  # a teacher row duplicates a teacher row
    db.set_labels(oid, -3.0, np.zeros((2, 3)))
    assert db.status(oid) == "labelled" and db.status(tid) == "teacher"
    with pytest.raises(DatabaseError, match="teacher row"):
        db.set_labels(tid, -3.0, np.zeros((2, 3)))


def test_a_teacher_row_needs_its_labels_and_no_split_label():
    with pytest.raises(ValueError, match="never trained on"):
        StructureMetadata(source="teacher", labels=["teacher", "train"])


def test_a_teacher_row_without_labels_is_refused(tmp_path):
    db = DatabaseManager(tmp_path / "t.db")
    meta = teacher_metadata({}, "chgnet", "0.3.0", "chgnet 0.4.2")
    with pytest.raises(StructureError, match="teacher's labels"):
        db.add_teacher_rows([cell(0, labelled=False)], [meta], [{}])
    with pytest.raises(StructureError, match="lacks the 'teacher' label"):
        db.add_teacher_rows([cell(0)], [StructureMetadata(source="teacher")], [{}])
    assert db.count() == 0


def test_teacher_calls_count_the_labels_and_sum_their_wall_time(tmp_path):
    db = DatabaseManager(tmp_path / "t.db")
    assert db.teacher_calls().calls == 0 and db.teacher_calls().name is None
    teacher(db, 3, wall=0.25)
    db.add_structures([cell(9)], StructureMetadata(source="initial_random"))
    calls = db.teacher_calls()
    assert (calls.calls, calls.name, calls.version) == (3, "chgnet", "0.3.0")
    assert calls.wall_time_s == pytest.approx(0.75)
