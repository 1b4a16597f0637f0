"""DatabaseManager: round trips, statuses, duplicates, queries and the train/validation split."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.constraints import FixAtoms

from mlip_autopipec.database import DatabaseManager, StoredStructure, StructureMetadata
from mlip_autopipec.exceptions import DatabaseError, StructureError

META = StructureMetadata(source="initial_random", generation=0)


@pytest.fixture
def db(tmp_path):
    with DatabaseManager(tmp_path / "m.db") as manager:
        yield manager


def cu(seed: int, rattle: float = 0.05, repeat: int = 1) -> Atoms:
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(repeat)
    atoms.rattle(rattle, seed=seed)
    return atoms


def with_emt(atoms: Atoms) -> Atoms:
    atoms.calc = EMT()
    atoms.get_potential_energy()
    atoms.get_stress()
    return atoms


# ---------------------------------------------------------------- round trip
def test_round_trip_positions_numbers_cell(tmp_path):
    """The spec's test: save a list of Atoms, load them back, equal positions, numbers and cell."""
    structures = [cu(i) for i in range(3)] + [
        bulk("NaCl", "rocksalt", a=5.6),
        Atoms("H2O", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]),
    ]
    with DatabaseManager(tmp_path / "rt.db") as db:
        ids = db.add_structures(structures, META)
    with DatabaseManager(tmp_path / "rt.db") as db:  # a fresh connection reads what was committed
        for sid, original in zip(ids, structures, strict=True):
            back, meta = db.get(sid)
            np.testing.assert_array_equal(back.positions, original.positions)
            np.testing.assert_array_equal(back.numbers, original.numbers)
            np.testing.assert_array_equal(back.cell.array, original.cell.array)
            np.testing.assert_array_equal(back.pbc, original.pbc)
            assert meta.source == "initial_random"


def test_extra_arrays_and_constraints_survive(db):
    a = cu(0)
    a.set_tags([1, 2, 3, 4])
    a.set_initial_magnetic_moments([0.5, 0.5, -0.5, 0.0])
    a.set_constraint(FixAtoms(indices=[0]))
    back, _ = db.get(db.add_structure(a, META))
    np.testing.assert_array_equal(back.get_tags(), [1, 2, 3, 4])
    np.testing.assert_array_equal(back.get_initial_magnetic_moments(), [0.5, 0.5, -0.5, 0.0])
    assert back.constraints[0].todict() == FixAtoms(indices=[0]).todict()


def test_input_atoms_are_not_modified(db):
    a = with_emt(cu(0))
    before = a.positions.copy(), dict(a.info), a.calc
    db.add_structure(a, META)
    np.testing.assert_array_equal(a.positions, before[0])
    assert a.info == before[1] and a.calc is before[2]


def test_provenance_from_atoms_info_and_metadata(db):
    a = cu(0)
    a.info = {"operation": "anisotropic", "strain": np.eye(3) * 0.01, "pool_index": np.int64(3), "ok": np.bool_(True)}
    meta = StructureMetadata(
        source="md_halt",
        generation=2,
        labels=["hard"],
        provenance={"temperature_K": 900.0, "pool_index": 7},
        parent_id=1,
    )
    sid = db.add_structure(a, meta)
    atoms, back = db.get(sid)
    assert back.source == "md_halt" and back.generation == 2 and back.labels == ["hard"] and back.parent_id == 1
    prov = back.provenance
    assert prov["operation"] == "anisotropic" and prov["temperature_K"] == 900.0 and prov["ok"] is True
    assert prov["pool_index"] == 7  # the metadata wins over atoms.info
    np.testing.assert_array_equal(prov["strain"], np.eye(3) * 0.01)
    assert atoms.info["operation"] == "anisotropic"  # the structure comes back with its provenance in info


def test_metadata_as_dict_is_validated(db):
    with pytest.raises(StructureError, match="generation"):
        db.add_structure(cu(0), {"source": "x", "generation": -1})
    with pytest.raises(StructureError, match="Extra inputs"):
        db.add_structure(cu(0), {"source": "x", "colour": "red"})
    with pytest.raises(StructureError, match="both the 'train' and the 'validation'"):
        db.add_structure(cu(0), {"source": "x", "labels": ["train", "validation"]})
    with pytest.raises(StructureError, match="got 2 structures but 1 metadata"):
        db.add_structures([cu(0), cu(1)], [META])
    with pytest.raises(StructureError, match=r"atoms.info\['calc'\]: a value of type EMT"):
        a = cu(0)
        a.info["calc"] = EMT()
        db.add_structure(a, META)
    assert db.count() == 0


def test_per_structure_metadata(db):
    ids = db.add_structures([cu(0), cu(1)], [{"source": "a"}, {"source": "b", "generation": 3}])
    assert [db.get(i)[1].source for i in ids] == ["a", "b"]
    assert db.count(generation=3) == 1


# ---------------------------------------------------------------- status
def test_status_lifecycle(db):
    pending = db.add_structure(cu(0), META)
    arrived_labelled = db.add_structure(with_emt(cu(1)), META)
    assert db.status(pending) == "pending" and db.status(arrived_labelled) == "labelled"
    assert db.count(status="pending") == 1 and db.count(status="labelled") == 1

    reason = "\n".join(f"line {i}: SCF not converged" for i in range(2000))  # long program output
    db.mark_failed(pending, reason)
    rec = db.record(pending)
    assert rec.status == "failed" and rec.failure_reason == reason
    assert [r.id for r in db.select(status="failed")] == [pending]

    assert db.reset_failed() == 1
    assert db.status(pending) == "pending"
    assert db.record(pending).failure_reason == reason  # kept for the record

    db.mark_failed(pending, "again")
    forces = np.arange(12.0).reshape(4, 3)
    db.set_labels(pending, -12.5, forces, stress=np.arange(6.0), info={"wall_time_s": 3.2, "attempts": 2})
    rec = db.record(pending)
    assert rec.status == "labelled" and rec.label_info == {"wall_time_s": 3.2, "attempts": 2}
    assert rec.atoms.get_potential_energy() == -12.5
    np.testing.assert_array_equal(rec.atoms.get_forces(), forces)
    np.testing.assert_array_equal(rec.atoms.get_stress(), np.arange(6.0))
    assert rec.metadata == db.get(pending)[1]  # metadata untouched by labelling

    with pytest.raises(DatabaseError, match=f"structure id {pending} is labelled"):
        db.mark_failed(pending, "late")
    with pytest.raises(DatabaseError, match="non-empty reason"):
        db.mark_failed(arrived_labelled, "  ")

    db.set_labels(pending, -13.0, forces)  # relabel without stress: the old stress is gone
    assert "stress" not in db.record(pending).atoms.calc.results
    assert db.record(pending).label_info is None


def test_labels_survive_reopening(tmp_path):
    path = tmp_path / "r.db"
    with DatabaseManager(path) as db:
        sid = db.add_structure(cu(0), META)
        db.set_labels(sid, 1.5, np.ones((4, 3)))
    with DatabaseManager(path) as db:
        assert db.status(sid) == "labelled"
        assert db.get(sid)[0].get_potential_energy() == 1.5


# ---------------------------------------------------------------- duplicates
def test_same_structure_twice_returns_existing_id(db):
    a = cu(0)
    first = db.add_structure(a, META)
    assert db.add_structure(a.copy(), {"source": "other"}) == first
    nudged = a.copy()
    nudged.positions += 4e-7  # within the 1e-6 Å tolerance
    nudged.cell = nudged.cell.array + 4e-7
    assert db.add_structure(nudged, META) == first
    moved = a.copy()
    moved.positions[3, 2] += 3e-6  # one coordinate beyond the tolerance
    assert db.add_structure(moved, META) != first
    assert db.count() == 2


def test_duplicates_within_one_batch_collapse(db):
    a, b = cu(0), cu(1)
    ids = db.add_structures([a, b, a.copy(), b.copy(), a], META)
    assert ids == [1, 2, 1, 2, 1]
    assert db.count() == 2


def test_rerun_is_idempotent(db):
    pool = [cu(i) for i in range(20)]
    first = db.add_structures(pool, META)
    again = db.add_structures(pool, META)
    assert first == again and db.count() == 20


def test_near_identical_but_different_structures_are_kept(db):
    """Same positions, different species order (an antisite) or periodicity: not duplicates."""
    base = bulk("NaCl", "rocksalt", a=5.6, cubic=True)
    swapped = base.copy()
    swapped.numbers[[0, 1]] = swapped.numbers[[1, 0]]
    slab = base.copy()
    slab.pbc = [True, True, False]
    assert len(set(db.add_structures([base, swapped, slab], META))) == 3


def test_duplicate_bringing_labels_labels_the_stored_structure(db):
    a = cu(0)
    sid = db.add_structure(a, META)
    db.mark_failed(sid, "timeout")
    assert db.add_structure(with_emt(a.copy()), META) == sid
    assert db.status(sid) == "labelled"
    energy = db.get(sid)[0].get_potential_energy()
    b = a.copy()
    b.calc = SinglePointCalculator(b, energy=energy + 1.0, forces=np.zeros((4, 3)))
    assert db.add_structure(b, META) == sid
    assert db.get(sid)[0].get_potential_energy() == energy  # labelled rows are not overwritten by a duplicate


def test_duplicate_tolerance_is_configurable(tmp_path):
    with DatabaseManager(tmp_path / "t.db", duplicate_tolerance=0.01) as db:
        a = cu(0)
        b = a.copy()
        b.positions += 0.005
        assert db.add_structures([a, b], META) == [1, 1]
    with pytest.raises(DatabaseError, match="duplicate_tolerance"):
        DatabaseManager(tmp_path / "u.db", duplicate_tolerance=-1)


# ---------------------------------------------------------------- queries
def test_select_and_count_filters(db):
    db.add_structures(
        [cu(i) for i in range(3)], StructureMetadata(source="initial_random", generation=0, labels=["train"])
    )
    db.add_structures([cu(10 + i) for i in range(2)], StructureMetadata(source="md_halt", generation=1))
    ids = db.add_structures(
        [with_emt(cu(20 + i)) for i in range(2)],
        StructureMetadata(source="md_halt", generation=2, labels=["validation"]),
    )
    assert db.count() == len(db) == 7
    assert db.count(source="md_halt") == 4
    assert db.count(generation=1) == 2
    assert db.count(label="train") == 3
    assert db.count(source="md_halt", status="labelled") == 2
    assert db.count(source="md_halt", generation=2, label="validation", status="labelled") == 2
    assert db.count(ids=[ids[0], 1, 99]) == 2
    assert db.ids(source="md_halt", status="pending") == [4, 5]
    records = list(db.select(source="md_halt", generation=2))
    assert [r.id for r in records] == ids
    assert all(isinstance(r, StoredStructure) for r in records)
    atoms, meta, sid = records[0]  # unpacks as (atoms, metadata, id)
    assert (
        sid == ids[0]
        and meta.labels == ["validation"]
        and atoms.get_potential_energy() == records[0].atoms.get_potential_energy()
    )
    assert list(db.select(label="nosuchlabel")) == []
    assert [r.id for r in db.select(ids=[6, 2])] == [2, 6]


def test_select_reads_in_chunks_across_many_rows(db, monkeypatch):
    import mlip_autopipec.database.storage as storage

    monkeypatch.setattr(storage, "_CHUNK", 7)
    db.add_structures([Atoms("Cu", positions=[[0.01 * i, 0, 0]], cell=[5, 5, 5], pbc=True) for i in range(30)], META)
    db.mark_failed(10, "x")
    got = [r.id for r in db.select(status="pending")]
    assert got == [i for i in range(1, 31) if i != 10]


@pytest.mark.parametrize(
    "filters, words",
    [
        (dict(status="done"), "status must be one of"),
        (dict(generation="1"), "generation must be an integer"),
        (dict(label="train,validation"), "label must be an identifier"),
        (dict(colour="red"), "unknown filter"),
    ],
)
def test_bad_filters(db, filters, words):
    with pytest.raises(DatabaseError, match=words):
        db.count(**filters)


# ---------------------------------------------------------------- split
def _split(db) -> dict[int, str]:
    out = {}
    for label in ("train", "validation"):
        for sid in db.ids(label=label):
            assert sid not in out, f"structure {sid} is in both splits"
            out[sid] = label
    return out


def test_split_is_stable_as_data_grows(tmp_path):
    pool = [Atoms("Cu", positions=[[0.013 * i, 0, 0]], cell=[4, 4, 4], pbc=True) for i in range(400)]
    with DatabaseManager(tmp_path / "s.db") as db:
        db.add_structures(pool[:200], META)
        counts = db.assign_split(0.25, seed=7)
        first = _split(db)
        assert len(first) == 200 and counts.train + counts.validation == 200
        assert 30 <= counts.validation <= 70  # ~50 expected
        db.add_structures(pool[200:300], META)  # labelled on arrival
        assert db.count(label="train") + db.count(label="validation") == 300
        assert db.assign_split(0.25, seed=7).train + db.count(label="validation") == 300  # idempotent
        assert db.split_settings() == (0.25, 7)
    with DatabaseManager(tmp_path / "s.db") as db:  # another session: still applies to new structures
        db.add_structures(pool[300:], META)
        grown = _split(db)
    assert len(grown) == 400
    assert all(grown[i] == first[i] for i in first)  # nobody moved
    # The draw depends on the content, not on ids or order: another database agrees.
    with DatabaseManager(tmp_path / "s2.db") as other:
        other.assign_split(0.25, seed=7)
        other.add_structures(pool[::-1], META)
        mirrored = {400 - i + 1: lab for i, lab in _split(other).items()}
    assert mirrored == grown


def test_a_new_split_draws_the_rows_again_in_place_and_keeps_the_old_one(tmp_path):
    from ase.db import connect

    pool = [Atoms("Cu", positions=[[0.013 * i, 0, 0]], cell=[4, 4, 4], pbc=True) for i in range(200)]
    with DatabaseManager(tmp_path / "s.db") as db:
        db.add_structures(pool[:195], META)
        db.add_structures(pool[195:], StructureMetadata(source="x", labels=["validation"]))  # given by hand
        db.assign_split(0.25, seed=7)
        before = _split(db)
        counts = db.assign_split(0.5, seed=3)
        after = _split(db)
        assert db.split_settings() == (0.5, 3) and set(after) == set(before)  # every row, split once
        assert counts.validation == db.count(label="validation") and 70 <= counts.validation <= 130
        assert sum(after[i] != before[i] for i in before) > 20  # rows moved; no label was touched
        assert db.count(status="pending") == 200
    with DatabaseManager(tmp_path / "fresh.db") as fresh:  # the same draw as a database split so from the start
        fresh.assign_split(0.5, seed=3)
        fresh.add_structures(pool[:195], META)
        assert {i: lab for i, lab in _split(fresh).items()} == {i: after[i] for i in range(1, 196)}
    with DatabaseManager(tmp_path / "old.db") as old:  # the old setting's draw
        old.assign_split(0.25, seed=7)
        old.add_structures(pool, META)
        old_draw = _split(old)
    by_hand = [i for i in range(196, 201) if old_draw[i] == "train"]  # given "validation" against the draw
    assert by_hand and all(after[i] == "validation" for i in by_hand)  # a label given by hand stays
    raw = connect(str(tmp_path / "s.db"))
    history = raw.metadata["mlip_autopipec"]["split_history"]
    assert [(h["validation_fraction"], h["seed"]) for h in history] == [(0.25, 7)] and history[0]["until"]
    row = raw.get(id=1)
    assert row.data["split_history"] == [
        {"label": before[1], "validation_fraction": 0.25, "seed": 7, "until": history[0]["until"]}
    ]


def test_split_respects_given_labels_and_seed_matters(db):
    pool = [Atoms("Cu", positions=[[0.01 * i, 0, 0]], cell=[4, 4, 4], pbc=True) for i in range(100)]
    db.add_structures(pool[:5], StructureMetadata(source="x", labels=["validation"]))
    db.add_structures(pool[5:], META)
    db.assign_split(0.0, seed=1)
    assert db.ids(label="validation") == [1, 2, 3, 4, 5]
    assert db.count(label="train") == 95


def test_split_draw_depends_on_seed(tmp_path):
    pool = [Atoms("Cu", positions=[[0.01 * i, 0, 0]], cell=[4, 4, 4], pbc=True) for i in range(60)]
    splits = []
    for seed in (1, 2):
        with DatabaseManager(tmp_path / f"seed{seed}.db") as db:
            db.add_structures(pool, META)
            db.assign_split(0.5, seed=seed)
            splits.append(_split(db))
    assert splits[0] != splits[1]


@pytest.mark.parametrize("fraction, seed", [(1.5, 1), (-0.1, 1), ("0.1", 1), (0.1, 1.5), (0.1, True)])
def test_split_arguments_checked(db, fraction, seed):
    with pytest.raises(DatabaseError):
        db.assign_split(fraction, seed)


# ---------------------------------------------------------------- lifecycle
def test_path_checks_and_closed_manager(tmp_path):
    with pytest.raises(DatabaseError, match="must end in .db"):
        DatabaseManager(tmp_path / "x.json")
    not_a_db = tmp_path / "junk.db"
    not_a_db.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DatabaseError, match="junk.db"):
        DatabaseManager(not_a_db)
    nested = tmp_path / "a" / "b" / "c.db"
    db = DatabaseManager(nested)
    assert nested.exists()
    db.close()
    db.close()
    with pytest.raises(DatabaseError, match="closed"):
        db.count()
    with pytest.raises(DatabaseError, match="closed"):
        db.add_structure(cu(0), META)


def test_database_is_plain_ase(tmp_path):
    """Other tools (ase db, ase.db.connect) read what the manager wrote."""
    import ase.db

    path = tmp_path / "p.db"
    with DatabaseManager(path) as db:
        db.add_structure(with_emt(cu(0)), META)
    row = ase.db.connect(path).get(id=1)
    assert row.source == "initial_random" and row.status == "labelled" and row.energy is not None
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()


def test_postgresql_url_goes_to_ase(monkeypatch):
    """A PostgreSQL URL is handed to ase.db.connect (no second backend); without ASE's backend package,
    a clear error."""
    import sys

    monkeypatch.setitem(sys.modules, "ase_db_backends", None)  # as if not installed: importing it raises ImportError
    monkeypatch.setitem(sys.modules, "ase_db_backends.postgresql", None)
    with pytest.raises(DatabaseError, match="needs the ase-db-backends package"):
        DatabaseManager("postgresql://user:pw@localhost:5432/mlip")
    with pytest.raises(DatabaseError, match="must be postgresql://"):
        DatabaseManager("mongodb://localhost/mlip")


def test_find_duplicate_looks_without_storing(db):
    a = cu(0)
    assert db.find_duplicate(a) is None
    sid = db.add_structure(a, META)
    b = a.copy()
    b.positions += 5e-7
    assert db.find_duplicate(b) == sid
    b.positions[0, 0] += 1e-3
    assert db.find_duplicate(b) is None
    assert db.count() == 1
    bad = a.copy()
    bad.positions[0, 0] = np.nan
    with pytest.raises(StructureError, match="non-finite positions"):
        db.find_duplicate(bad)
