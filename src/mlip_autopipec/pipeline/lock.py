"""One writer per work directory: ``run`` holds an exclusive lock on ``<workdir>/.run.lock`` for its whole life.

The lock is ``fcntl.flock`` on a file inside the work directory (:class:`~mlip_autopipec.locking.FileLock`,
as :class:`~mlip_autopipec.trainer.lock.FitFolderLock`), so the kernel releases it
when its holder ends, however it ends (``kill -9``, out of memory, a node
reboot on a local disk): a lock left by a killed run never blocks the next one,
which takes it over at once.  The holder writes its pid, host, start time and
command into the file (for the message that refuses a second run) and empties
it when it finishes; a file still holding a line when the lock is free is the
trace of a run that was killed, and the new run says it takes its place.

The lock's descriptor is not inherited by the programs a run starts (Dask
workers, pacemaker, pw.x), so it is free as soon as the driver has ended.

A SQLite database file is locked the same way (``.<name>.run-lock`` beside
it), so two work directories pointing at one database file cannot both write
it.  A PostgreSQL URL is not locked (a database server is the way for several
writers).

What it relies on: ``flock(2)``.  It works on local file systems; on NFS Linux
emulates it with byte-range locks (NFSv4, or NFSv3 with lockd), which hold
across client machines; on Lustre the file system must be mounted with
``-o flock`` (``localflock`` only locks within one node); GPFS and BeeGFS
support it.  A file system without it makes ``run`` stop with a sentence.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import tempfile
from pathlib import Path

from mlip_autopipec.exceptions import WorkdirError
from mlip_autopipec.fileio import os_error_sentence
from mlip_autopipec.locking import FileLock, holder_line

log = logging.getLogger("mlip_autopipec")

LOCK_NAME = ".run.lock"


class RunLock(FileLock):
    """``with RunLock(path, what):`` holds the lock file ``path`` or raises :class:`WorkdirError` naming the holder.

    ``what`` names what is locked, for the messages ("work directory /x").
    After :meth:`acquire`, ``taken_over`` is the line of a run that ended
    without releasing the lock (killed), or ``None``.
    """

    def __init__(self, path: str | Path, what: str) -> None:
        super().__init__(path)
        self.what = what

    def _in_use(self, holder: str) -> WorkdirError:
        return WorkdirError(
            f"the {self.what} is in use by another run ({holder}): one work directory (and one database file) "
            "takes one run at a time. Wait for that run to finish or stop it; meanwhile `mlip-autopipec status` "
            "shows its progress"
        )

    def _cannot_lock(self, err: OSError) -> WorkdirError:
        hint = (
            " (the file system does not support flock: on Lustre mount it with -o flock, or put the work "
            "directory on a file system that does)"
            if err.errno in (errno.ENOLCK, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP)
            else ""
        )
        return WorkdirError(f"cannot lock the {self.what} ({self.path}): {err.strerror or err}{hint}")

    def _file_error(self, err: OSError, doing: str) -> WorkdirError:
        return WorkdirError(os_error_sentence(err, f"cannot {doing} the lock file of the {self.what}"))


def read_holder(workdir: str | Path) -> tuple[str, bool | None] | None:
    """The line of the run that holds (or held, if killed) ``workdir``'s lock, and whether it is alive.

    Only reads the file (taking the lock even for a moment could refuse a real
    run).  ``alive`` is ``None`` when the holder ran on another host.  ``None``
    when the last run ended cleanly or none ran.
    """
    try:
        line = (Path(workdir) / LOCK_NAME).read_text(errors="replace").strip()
    except OSError:
        return None
    if not line:
        return None
    parts = line.split()
    alive: bool | None = None
    if len(parts) >= 4 and parts[0] == "pid" and parts[2] == "on" and parts[1].isdigit():
        if parts[3] == socket.gethostname():
            try:
                os.kill(int(parts[1]), 0)
                alive = True
            except ProcessLookupError:
                alive = False
            except OSError:
                alive = True
    return line, alive


def make_folder(path: str | Path, what: str = "folder") -> Path:
    """Create ``path`` (and its parents) and check that files can be written in it.

    Raises :class:`WorkdirError` with one sentence (a file in the way, a
    read-only parent, no permission, a full disk).  The check writes and
    removes a small file, because permissions alone do not say it (root
    ignores them; a read-only mount does not show in them).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise WorkdirError(f"the {what} {path} is a file, not a folder; move the file away or choose another folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        if err.filename is None:
            err.filename = str(path)
        raise WorkdirError(os_error_sentence(err, f"cannot use the {what} {path}")) from err
    return path


def database_lock_path(db_file: Path) -> Path:
    """The lock file of a SQLite database file: ``.<name>.run-lock`` beside it."""
    return db_file.with_name(f".{db_file.name}.run-lock")


__all__ = ["LOCK_NAME", "RunLock", "database_lock_path", "holder_line", "make_folder", "read_holder"]
