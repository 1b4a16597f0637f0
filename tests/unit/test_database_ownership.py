"""Databases it owns: the mark, refusing (and never touching) another program's database, taking over an earlier one."""

from __future__ import annotations

import json
import os
import sqlite3

import ase.db
import pytest
from ase import Atoms
from ase.build import bulk

from mlip_autopipec.database import DatabaseManager
from mlip_autopipec.database.ownership import SCHEMA_VERSION
from mlip_autopipec.exceptions import DatabaseError


def cu(seed: int) -> Atoms:
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.rattle(0.05, seed=seed)
    return atoms


def ase_metadata(path) -> dict:
    con = sqlite3.connect(path)
    try:
        row = con.execute("SELECT value FROM information WHERE name='metadata'").fetchone()
        return json.loads(row[0]) if row else {}
    finally:
        con.close()


def set_ase_metadata(path, md: dict) -> None:
    con = sqlite3.connect(path)
    with con:
        con.execute("DELETE FROM information WHERE name='metadata'")
        con.execute("INSERT INTO information VALUES ('metadata', ?)", (json.dumps(md),))
    con.close()


def snapshot(path) -> tuple[bytes, int, list[str]]:
    """Bytes, modification time (ns) and the files beside it (a journal would show a write)."""
    return path.read_bytes(), os.stat(path).st_mtime_ns, sorted(p.name for p in path.parent.iterdir())


def test_a_new_database_carries_the_mark(tmp_path):
    path = tmp_path / "new.db"
    with DatabaseManager(path) as db:
        db.add_structure(cu(0), {"source": "a"})
        db.assign_split(0.5, 3)
    assert ase_metadata(path) == {
        "mlip_autopipec": {"schema_version": SCHEMA_VERSION, "split": {"validation_fraction": 0.5, "seed": 3}}
    }


def test_an_empty_file_is_initialised(tmp_path):
    path = tmp_path / "empty.db"
    path.touch()
    with DatabaseManager(path) as db:
        assert db.count() == 0
        db.add_structure(cu(0), {"source": "a"})
    assert ase_metadata(path)["mlip_autopipec"]["schema_version"] == SCHEMA_VERSION


def test_another_programs_ase_database_is_refused_and_untouched(tmp_path):
    path = tmp_path / "structures.db"
    other = ase.db.connect(path)
    other.write(cu(0), status="labelled", project="someone else's")
    other.write(cu(1))
    other.metadata = {"title": "their data"}
    before = snapshot(path)
    for kwargs in ({}, {"read_only": True}):
        with pytest.raises(DatabaseError) as err:
            DatabaseManager(path, **kwargs)
        text = str(err.value)
        assert str(path) in text and "not made by mlip-autopipec" in text and "2 row(s)" in text
        assert "left untouched" in text and "new file" in text
    assert snapshot(path) == before
    assert ase.db.connect(path).get(id=1).project == "someone else's"


def test_a_sqlite_file_of_another_program_is_refused_and_untouched(tmp_path):
    path = tmp_path / "structures.db"
    con = sqlite3.connect(path)
    with con:
        con.execute("CREATE TABLE invoices (id INTEGER, amount REAL)")
        con.execute("INSERT INTO invoices VALUES (1, 9.5)")
    con.close()
    before = snapshot(path)
    with pytest.raises(DatabaseError, match=r"SQLite database of another program \(tables invoices\)"):
        DatabaseManager(path)
    assert snapshot(path) == before


def test_a_database_of_the_earlier_version_is_taken_over(tmp_path):
    """Made before the mark existed: recognised by its fingerprint index and settings; the mark is added,
    nothing else changes."""
    path = tmp_path / "old.db"
    with DatabaseManager(path) as db:
        ids = db.add_structures([cu(i) for i in range(4)], {"source": "a"})
        db.assign_split(0.25, 7)
    set_ase_metadata(path, {"mlip_autopipec": {"split": {"validation_fraction": 0.25, "seed": 7}}})  # what main wrote
    with DatabaseManager(path) as db:
        assert db.ids() == ids and db.split_settings() == (0.25, 7)
    assert ase_metadata(path)["mlip_autopipec"] == {
        "split": {"validation_fraction": 0.25, "seed": 7},
        "schema_version": SCHEMA_VERSION,
    }


def test_an_earlier_database_without_settings_is_recognised_by_its_index(tmp_path):
    path = tmp_path / "old.db"
    with DatabaseManager(path) as db:
        db.add_structure(cu(0), {"source": "a"})
    set_ase_metadata(path, {})  # main before any split: only the fingerprint index says it is ours
    with DatabaseManager(path) as db:
        assert db.count() == 1
    assert ase_metadata(path) == {"mlip_autopipec": {"schema_version": SCHEMA_VERSION}}


def test_a_database_of_a_newer_version_is_refused(tmp_path):
    path = tmp_path / "new.db"
    with DatabaseManager(path) as db:
        db.add_structure(cu(0), {"source": "a"})
    set_ase_metadata(path, {"mlip_autopipec": {"schema_version": SCHEMA_VERSION + 1}})
    before = snapshot(path)
    with pytest.raises(DatabaseError, match="newer mlip-autopipec"):
        DatabaseManager(path)
    assert snapshot(path) == before


def test_opening_a_database_we_own_writes_nothing(tmp_path):
    path = tmp_path / "ours.db"
    with DatabaseManager(path) as db:
        db.add_structure(cu(0), {"source": "a"})
    before = snapshot(path)
    with DatabaseManager(path) as db:
        assert db.count() == 1
    assert snapshot(path) == before


def test_a_dropped_duplicate_index_is_made_again(tmp_path):
    path = tmp_path / "ours.db"
    with DatabaseManager(path) as db:
        sid = db.add_structure(cu(0), {"source": "a"})
    con = sqlite3.connect(path)
    con.execute("DROP INDEX mlip_autopipec_fingerprint")
    con.close()
    with DatabaseManager(path) as db:
        assert db.find_duplicate(cu(0)) == sid


# ---------------------------------------------------------------- what made it (issue 22)
def test_what_made_a_database_is_recorded_and_read_without_writing(tmp_path):
    from mlip_autopipec.database.manager import read_origin
    from mlip_autopipec.database.ownership import Origin

    path = tmp_path / "structures.db"
    assert read_origin(path) is None and not path.exists()  # no database yet: nothing is created
    path.touch()
    assert read_origin(path) is None and path.stat().st_size == 0  # an empty file stays empty
    made = Origin({"seeds": "a", "generator": "b", "oracle": "c"}, str(tmp_path))
    with DatabaseManager(path) as db:
        db.add_structure(cu(0), {"source": "a"})
        assert db.origin() is None  # made before anything recorded it (an earlier version's)
        db.record_origin(made)
        assert db.origin() == made
    before = snapshot(path)
    with DatabaseManager(path) as db:
        db.record_origin(made)  # the same record: nothing is written
    assert read_origin(path) == made and snapshot(path) == before
    assert ase_metadata(path)["mlip_autopipec"]["made_with"] == {
        "fingerprints": {"seeds": "a", "generator": "b", "oracle": "c"},
        "workdir": str(tmp_path),
    }


def test_reading_what_made_a_foreign_database_refuses_it_untouched(tmp_path):
    from mlip_autopipec.database.manager import read_origin

    path = tmp_path / "structures.db"
    other = ase.db.connect(path)
    other.write(cu(0))
    before = snapshot(path)
    with pytest.raises(DatabaseError, match="not made by mlip-autopipec"):
        read_origin(path)
    assert snapshot(path) == before
