"""The work directory's lock, OS errors in words, failure groups and the failure history (issue 11)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

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
        f"RunLock({str(tmp_path / LOCK_NAME)!r}, 'x').acquire()\nprint(os.getpid(), flush=True)\nos.kill(os.getpid(), 9)\n"
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
