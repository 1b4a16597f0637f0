"""The run's locks (by work directory, by database file under any name), OS and storage errors in words, failure
groups and history (issue 11), what made the database and `--force`'s fresh start (issue 22)."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ase.build import bulk

from mlip_autopipec.database import DatabaseManager, StructureMetadata
from mlip_autopipec.exceptions import WorkdirError
from mlip_autopipec.fileio import os_error_sentence
from mlip_autopipec.pipeline.lock import LOCK_NAME, RunLock, make_folder, read_holder
from mlip_autopipec.pipeline.run import stop_reason
from mlip_autopipec.pipeline.status import failure_groups


def test_second_lock_is_refused_naming_the_holder(tmp_path):
    with RunLock(tmp_path / LOCK_NAME, f"work directory {tmp_path}"):
        with pytest.raises(WorkdirError) as err:
            RunLock(tmp_path / LOCK_NAME, f"work directory {tmp_path}").acquire()  # another open file: flock refuses
        text = str(err.value)
        assert f"work directory {tmp_path}" in text and f"pid {os.getpid()}" in text and "since" in text
        line, alive = read_holder(tmp_path)
        assert line.startswith(f"pid {os.getpid()} on ") and alive is True
    assert (tmp_path / LOCK_NAME).read_text() == "" and read_holder(tmp_path) is None  # a clean end empties it


def test_lock_of_a_killed_holder_is_taken_over(tmp_path):
    code = (
        "import sys, os\nfrom mlip_autopipec.pipeline.lock import RunLock\n"
        f"RunLock({str(tmp_path / LOCK_NAME)!r}, 'x').acquire()\n"
        "print(os.getpid(), flush=True)\nos.kill(os.getpid(), 9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    pid = int(proc.stdout.strip())
    assert proc.returncode == -9
    line, alive = read_holder(tmp_path)
    assert line.startswith(f"pid {pid} ") and alive is False
    lock = RunLock(tmp_path / LOCK_NAME, "x")
    lock.acquire()  # not refused: the kernel released the dead process's flock
    assert lock.taken_over.startswith(f"pid {pid} ")
    lock.release()


def test_lock_file_that_cannot_be_created(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(WorkdirError, match="a file where a folder must be"):
        RunLock(tmp_path / "file" / LOCK_NAME, "work directory").acquire()


@pytest.mark.parametrize(
    "code, words",
    [
        (errno.EACCES, "not writable"),
        (errno.EROFS, "read-only file system"),
        (errno.ENOSPC, "disk (or your quota) is full"),
        (errno.ENOTDIR, "a file where a folder must be"),
        (errno.EEXIST, "already exists"),
    ],
)
def test_os_errors_in_words(code, words):
    err = OSError(code, os.strerror(code), "/some/where")
    text = os_error_sentence(err, "writing the export")
    assert text.startswith("writing the export: /some/where: ") and words in text


def test_make_folder_refuses_a_file(tmp_path):
    (tmp_path / "w").write_text("x")
    with pytest.raises(WorkdirError, match="is a file, not a folder"):
        make_folder(tmp_path / "w", "work directory")
    assert make_folder(tmp_path / "new" / "w").is_dir()


def test_stop_reason_is_never_empty():
    assert stop_reason(KeyboardInterrupt()) == "interrupted (Ctrl-C / SIGINT)"
    assert stop_reason(RuntimeError()) == "RuntimeError"
    assert stop_reason(ValueError("bad")) == "bad"


def test_failures_grouped_by_cause():
    failures = [
        (1, "Cu4", "RuntimeError: licence server down (in /w/oracle/structure_1)\nlast lines"),
        (2, "Cu4", "RuntimeError: licence server down (in /w/oracle/structure_2)"),
        (3, "Cu4", "pw.x did not converge in structure_3"),
        (4, "Cu4", ""),
    ]
    groups = failure_groups(failures)
    assert groups[0] == ("RuntimeError: licence server down", [1, 2])
    assert ("pw.x did not converge in structure_<id>", [3]) in groups and ("(no reason recorded)", [4]) in groups


def test_reset_failed_keeps_the_failure_history(tmp_path):
    from ase.db import connect

    path = tmp_path / "structures.db"
    with DatabaseManager(path) as db:
        ids = db.add_structures([bulk("Cu", cubic=True), bulk("Cu", cubic=True, a=3.7)], StructureMetadata(source="x"))
        db.mark_failed(ids[0], "first reason")
        assert db.reset_failed() == 1
        db.mark_failed(ids[0], "second reason")
        db.mark_failed(ids[1], "other")
        assert db.reset_failed(ids=[ids[0]]) == 1 and db.status(ids[1]) == "failed"
        assert db.status(ids[0]) == "pending"
        db.check_writable()
    history = connect(str(path)).get(id=ids[0]).data["failure_history"]
    assert [h["reason"] for h in history] == ["first reason", "second reason"] and all(h["reset"] for h in history)


# ---------------------------------------------------------------- issue 22: storage errors, origins, --force, locks
def test_a_full_or_read_only_database_is_a_storage_error(tmp_path):
    """Real sqlite3 errors (a page limit reached, a read-only connection) become StorageError, not the row's fault."""
    import sqlite3

    from mlip_autopipec.database.storage import explain
    from mlip_autopipec.exceptions import DatabaseError, StorageError

    path = tmp_path / "x.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (b BLOB)")
    con.execute("PRAGMA max_page_count = 4")
    with pytest.raises(sqlite3.OperationalError) as full:
        for _ in range(100):
            con.execute("INSERT INTO t VALUES (?)", (b"x" * 4096,))
    con.close()
    ro = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    with pytest.raises(sqlite3.OperationalError) as read_only:
        ro.execute("INSERT INTO t VALUES (1)")
    ro.close()
    for err, words in ((full.value, "disk is full"), (read_only.value, "read-only")):
        made = explain(str(path), err, "storing labels")
        assert isinstance(made, StorageError) and words in str(made) and str(path) in str(made)
    damaged = explain(str(path), sqlite3.DatabaseError("file is not a database"), "opening")
    assert isinstance(damaged, DatabaseError) and not isinstance(damaged, StorageError)


def _cfg(workdir, **over):
    from mlip_autopipec.config.schemas.pipeline import PipelineConfig

    base = {"workdir": str(workdir), "structure": {"element": "Cu", "lattice": "fcc", "a": 3.61, "cubic": True}}
    return PipelineConfig.model_validate({**base, **over})


def test_the_split_is_no_invalidating_change_and_force_moves_the_records_aside(tmp_path):
    from mlip_autopipec.pipeline.state import changed_sections, check_or_accept_changes, write_state

    write_state(tmp_path, _cfg(tmp_path))
    resplit = _cfg(tmp_path, database={"validation_fraction": 0.4, "split_seed": 9})
    assert changed_sections(tmp_path, resplit) == []
    other = _cfg(tmp_path, generator={"seed": 9})
    assert changed_sections(tmp_path, other) == ["generator"]
    for name in ("al/gen_1", "report", "oracle/structure_1", "fits/fit-abc"):
        (tmp_path / name).mkdir(parents=True)
    (tmp_path / "fits" / "latest.json").write_text("{}")
    (tmp_path / "structures.db").write_text("old")
    with pytest.raises(Exception, match="--force"):
        check_or_accept_changes(tmp_path, other, tmp_path / "structures.db", force=False)
    assert check_or_accept_changes(tmp_path, other, tmp_path / "structures.db", force=True) == ["generator"]
    moved = sorted(p.name for p in tmp_path.glob("*.replaced-*")) + [
        p.name for p in (tmp_path / "fits").glob("*.replaced-*")
    ]
    stamps = {name.split(".replaced-")[1] for name in moved}
    assert [name.split(".replaced-")[0] for name in moved] == [
        "al",
        "oracle",
        "report",
        "state.json",
        "structures.db",
        "latest.json",
    ]
    assert len(stamps) == 1  # one time for all
    assert (tmp_path / "fits" / "fit-abc").is_dir()  # a fit is named by its data: it stays
    assert not (tmp_path / "state.json").exists() and not (tmp_path / "structures.db").exists()


def test_what_made_the_database_against_this_run():
    from mlip_autopipec.database.ownership import Origin
    from mlip_autopipec.pipeline.origin import compare, origin_refusal

    here = Origin({"seeds": "s", "generator": "g", "oracle": "o"}, "/runs/au")
    assert compare(None, here, None).agrees  # nothing recorded: new, or an earlier version's
    cu = Origin({"seeds": "cu", "generator": "g", "oracle": "o"}, "/runs/cu")
    verdict = compare(cu, here, "/runs/cu")
    assert verdict.changed == ("seeds",) and verdict.owner == "/runs/cu"
    err = str(origin_refusal(verdict, "/runs/cu/structures.db", Path("/runs/au"), force=False))
    for words in ("/runs/cu/structures.db", "/runs/cu", "/runs/au", "seeds", "--force"):
        assert words in err
    assert origin_refusal(verdict, "/runs/cu/structures.db", Path("/runs/au"), force=True) is None
    twin = compare(Origin(here.fingerprints, "/runs/cu"), here, "/runs/cu")
    err = str(origin_refusal(twin, "/runs/cu/structures.db", Path("/runs/au"), force=False))
    assert "belongs to the work directory /runs/cu, not to /runs/au" in err and "PostgreSQL campaign" in err
    url = "postgresql://me@db:5432/lab"  # a campaign cannot be moved aside: refused even with --force
    err = str(origin_refusal(compare(cu, here, None), url, Path("/runs/au"), force=True))
    assert url in err and "database.campaign" in err


def test_a_database_file_is_locked_by_the_file_under_any_name(tmp_path):
    from mlip_autopipec.pipeline.lock import DatabaseFileLock

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = tmp_path / "a" / "structures.db", tmp_path / "b" / "structures.db"
    first.write_bytes(b"")
    os.link(first, second)
    code = (
        "import sys\nfrom pathlib import Path\nfrom mlip_autopipec.pipeline.lock import DatabaseFileLock\n"
        "DatabaseFileLock(Path(sys.argv[1])).acquire()\n"
    )
    with DatabaseFileLock(first) as lock:
        proc = subprocess.run([sys.executable, "-c", code, str(second)], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1 and "WorkdirError" in proc.stderr
        assert f"pid {os.getpid()}" in proc.stderr and "another name" in proc.stderr
        first.rename(tmp_path / "a" / "aside.db")  # moved aside, then made anew: the new file is held
        first.write_bytes(b"")
        lock.hold_file()
        assert lock.key == (os.stat(first).st_dev, os.stat(first).st_ino)
        proc = subprocess.run([sys.executable, "-c", code, str(second)], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr  # the other name is the old file now: free
    proc = subprocess.run([sys.executable, "-c", code, str(first)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr  # released


def test_a_moved_or_copied_work_directory_keeps_its_database_a_second_one_on_the_same_file_does_not(tmp_path):
    from ase.build import bulk

    from mlip_autopipec.pipeline.context import open_database
    from mlip_autopipec.pipeline.origin import check_origin, origin_here
    from mlip_autopipec.pipeline.state import write_state

    def make(workdir, **database):
        cfg = _cfg(workdir, database=database)
        workdir.mkdir(parents=True, exist_ok=True)
        write_state(workdir, cfg)
        with open_database(cfg, workdir) as db:
            db.add_structure(bulk("Cu", cubic=True), {"source": "x"})
            db.record_origin(origin_here(cfg, workdir))
        return cfg

    make(tmp_path / "a")
    (tmp_path / "a").rename(tmp_path / "b")  # moved with its database
    assert check_origin(_cfg(tmp_path / "b"), tmp_path / "b").agrees
    shared = tmp_path / "shared" / "structures.db"
    cfg = make(tmp_path / "c", path=str(shared))  # a database outside the work directory
    shutil.copytree(tmp_path / "c", tmp_path / "d")  # a copy that names the same file
    verdict = check_origin(_cfg(tmp_path / "d", database={"path": str(shared)}), tmp_path / "d")
    assert verdict.owner == str(tmp_path / "c") and not verdict.changed
    assert check_origin(cfg, tmp_path / "c").agrees
    other = _cfg(tmp_path / "c", database={"path": str(shared)}, generator={"seed": 9})
    assert check_origin(other, tmp_path / "c").changed == ("generator",)
