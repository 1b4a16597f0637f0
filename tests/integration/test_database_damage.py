"""A damaged or read-only database file: every operation ends in a DatabaseError naming the file and what to do.

The damaged file is real (8 KiB of random bytes written into the middle of a
database), and so is the read-only one: a read-only bind mount in a private
mount namespace (``unshare``), because as root ``chmod`` does not stop writes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from mlip_autopipec.database import DatabaseManager
from mlip_autopipec.exceptions import DatabaseError


def structures(n: int) -> list[Atoms]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        atoms = Atoms("Cu4", positions=rng.uniform(0, 4, (4, 3)), cell=[4, 4, 4], pbc=True)
        atoms.calc = SinglePointCalculator(atoms, energy=float(rng.normal()), forces=rng.normal(size=(4, 3)))
        out.append(atoms)
    return out


@pytest.fixture
def damaged(tmp_path):
    path = tmp_path / "structures.db"
    with DatabaseManager(path) as db:
        db.add_structures(structures(300), {"source": "x"})
    size = path.stat().st_size
    assert size > 200_000
    with open(path, "r+b") as fh:
        fh.seek(size // 2)
        fh.write(np.random.default_rng(1).bytes(8192))
    return path


OPERATIONS = {
    "ids": lambda db: db.ids(),
    "count": lambda db: db.count(status="labelled"),
    "select": lambda db: list(db.select()),
    "save_dataset": lambda db, out=None: db.save_dataset(out),
    "assign_split": lambda db: db.assign_split(0.1, 0),
}


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_damaged_file_gives_a_sentence_not_a_traceback(damaged, tmp_path, operation):
    with DatabaseManager(damaged) as db:
        with pytest.raises(DatabaseError) as err:
            if operation == "save_dataset":
                db.save_dataset(tmp_path / "out.xyz")
            else:
                OPERATIONS[operation](db)
    text = str(err.value)
    assert str(damaged) in text and "damaged" in text and "backup" in text and ".recover" in text
    assert isinstance(err.value.__cause__, Exception) and "malformed" in str(err.value.__cause__)
    assert not (tmp_path / "out.xyz").exists()


def test_a_file_that_is_not_a_database(tmp_path):
    path = tmp_path / "structures.db"
    path.write_bytes(os.urandom(64 * 1024))
    before = path.read_bytes()
    with pytest.raises(DatabaseError, match=r"damaged or is not a SQLite database.*\.recover"):
        DatabaseManager(path)
    assert path.read_bytes() == before


def test_read_only_manager_reads_and_refuses_writes(tmp_path):
    path = tmp_path / "structures.db"
    with DatabaseManager(path) as db:
        sid = db.add_structures(structures(3), {"source": "x"})[0]
    before = path.read_bytes()
    with DatabaseManager(path, read_only=True) as db:
        assert db.count() == 3 and db.status(sid) == "labelled"
        with pytest.raises(DatabaseError, match="opened read-only"):
            db.mark_failed(sid, "x")
    assert path.read_bytes() == before
    with pytest.raises(DatabaseError, match="no such database file"):
        DatabaseManager(tmp_path / "missing.db", read_only=True)
    assert not (tmp_path / "missing.db").exists()


CHILD = textwrap.dedent(
    """
    import json, sys
    from ase import Atoms
    from mlip_autopipec.database import DatabaseManager
    from mlip_autopipec.exceptions import DatabaseError

    out = {}
    db = DatabaseManager(sys.argv[1])
    out["count"] = db.count()
    for name, call in [
        ("add", lambda: db.add_structure(Atoms("Cu", cell=[3, 3, 3], pbc=True), {"source": "y"})),
        ("label", lambda: db.set_labels(db.ids()[0], -1.0, [[0.0, 0.0, 0.0]] * 4)),
        ("split", lambda: db.assign_split(0.1, 0)),
    ]:
        try:
            call()
            out[name] = "no error"
        except DatabaseError as exc:
            out[name] = str(exc)
    try:
        DatabaseManager(sys.argv[2])
        out["new"] = "no error"
    except DatabaseError as exc:
        out["new"] = str(exc)
    print(json.dumps(out))
    """
)


def test_database_on_a_read_only_file_system(tmp_path):
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-rm", "true"], capture_output=True).returncode != 0:
        pytest.skip("needs `unshare -rm` (unprivileged user and mount namespaces) for a read-only bind mount")
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "structures.db"
    with DatabaseManager(path) as db:
        db.add_structures(structures(3), {"source": "x"})
    before = path.read_bytes()
    (tmp_path / "child.py").write_text(CHILD)
    script = (
        f'mount --bind "{folder}" "{folder}" && mount -o remount,bind,ro "{folder}" && '
        f'exec "{sys.executable}" "{tmp_path / "child.py"}" "{path}" "{folder / "new.db"}"'
    )
    proc = subprocess.run([unshare, "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["count"] == 3  # reading works
    for name in ("add", "label", "split"):
        assert str(path) in out[name] and "read-only" in out[name] and "writable" in out[name], out[name]
    assert str(folder / "new.db") in out["new"] and "writable" in out["new"], out["new"]
    assert path.read_bytes() == before
    with DatabaseManager(path) as db:
        assert db.count() == 3


def test_a_writer_holding_the_lock_too_long_is_not_called_damage(tmp_path):
    import sqlite3

    path = tmp_path / "structures.db"
    with DatabaseManager(path) as db:
        db.add_structures(structures(2), {"source": "x"})
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process's long write
    try:
        with DatabaseManager(path, busy_timeout=0.2) as db:
            assert db.count() == 2  # readers are not blocked
            with pytest.raises(DatabaseError) as err:
                db.add_structures(structures(3)[2:], {"source": "y"})
    finally:
        other.execute("ROLLBACK")
        other.close()
    text = str(err.value)
    assert str(path) in text and "adding structures" in text and "write lock for longer than busy_timeout=0.2 s" in text
    assert "recover" not in text
