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

A SQLite database file is locked by the file itself, not by the name it was
given (:class:`DatabaseFileLock`): a lock file beside its name
(``.<name>.run-lock``, naming the holder as above) and an open-file-description
lock (``fcntl`` ``F_OFD_SETLK``) on one byte of the database file, far past the
bytes SQLite locks, which every name of the file shares (a hard link, a second
mount).  Two runs reaching one database file by any names cannot both write it.
A PostgreSQL campaign is held by one driver at a time with a lock on the server
(:class:`~mlip_autopipec.database.campaigns.CampaignDriverLock`).

What it relies on: ``flock(2)``.  It works on local file systems; on NFS Linux
emulates it with byte-range locks (NFSv4, or NFSv3 with lockd), which hold
across client machines; on Lustre the file system must be mounted with
``-o flock`` (``localflock`` only locks within one node); GPFS and BeeGFS
support it.  A file system without it makes ``run`` stop with a sentence.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import socket
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlip_autopipec.database.campaigns import CampaignDriverLock
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


_FILE_LOCK_BYTE = 1 << 40  # one byte far past SQLite's lock bytes (at 1 GiB): the two kinds of lock never meet
HOLDER_XATTR = "user.mlip_autopipec.run"  # the holder's line, on the database file (when the file system keeps it)


def _byte_lock(kind: int) -> bytes:
    return struct.pack("hhqqi", kind, os.SEEK_SET, _FILE_LOCK_BYTE, 1, 0)  # struct flock (native alignment)


class DatabaseFileLock:
    """``with DatabaseFileLock(db_file):`` holds a SQLite database file by its name and by the file itself
    (device and inode), or raises :class:`WorkdirError` naming the holder."""

    def __init__(self, db_file: Path) -> None:
        self.db_file = db_file
        self.by_name = RunLock(database_lock_path(db_file), f"database {db_file}")
        self.fd: int | None = None
        self.key: tuple[int, int] | None = None  # (st_dev, st_ino) of the file held

    def acquire(self) -> None:
        self.by_name.acquire()
        try:
            self.hold_file()
        except BaseException:
            self.by_name.release()
            raise

    def hold_file(self) -> None:
        """Lock the file that now bears the name (again, when it is another file: moved aside, then made anew).

        Nothing to lock while no file bears it; a file this user cannot write is left to the database's own
        sentence; a file system without these locks leaves the lock by name.
        """
        op = getattr(fcntl, "F_OFD_SETLK", None)
        try:
            st = os.stat(self.db_file)
        except FileNotFoundError:
            return
        if op is None or (st.st_dev, st.st_ino) == self.key:
            return
        self._release_file()
        try:
            fd = os.open(self.db_file, os.O_RDWR)
        except OSError:
            return
        try:
            fcntl.fcntl(fd, op, _byte_lock(fcntl.F_WRLCK))
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EAGAIN, errno.EACCES):
                raise self._in_use((st.st_dev, st.st_ino)) from None
            return  # no byte-range locks here (errno ENOLCK, EINVAL, ...): the lock by name stands alone
        self.fd, self.key = fd, (st.st_dev, st.st_ino)
        with contextlib.suppress(OSError):
            os.setxattr(fd, HOLDER_XATTR, holder_line().encode())

    def _in_use(self, key: tuple[int, int]) -> WorkdirError:
        try:
            holder = os.getxattr(self.db_file, HOLDER_XATTR).decode(errors="replace").strip() or "holder unknown"
        except OSError:
            holder = "holder unknown"
        return WorkdirError(
            f"the database {self.db_file} is in use by another run ({holder}) that reached it under another name "
            f"(the same file: device {key[0]}, inode {key[1]}; a hard link?): one database file takes one run at a "
            "time. Wait for that run to finish or stop it"
        )

    def _release_file(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.removexattr(self.fd, HOLDER_XATTR)
            os.close(self.fd)  # releases the byte's lock
            self.fd, self.key = None, None

    def release(self) -> None:
        self._release_file()
        self.by_name.release()

    def __enter__(self) -> DatabaseFileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass
class RunLocks:
    """What a run holds for its whole life: its work directory, and its database file or server campaign."""

    workdir: RunLock
    database: DatabaseFileLock | None = None
    campaign: CampaignDriverLock | None = None

    @property
    def taken_over(self) -> str | None:
        """The line of a run that ended without releasing the work directory (killed), or ``None``."""
        return self.workdir.taken_over


__all__ = [
    "LOCK_NAME",
    "HOLDER_XATTR",
    "DatabaseFileLock",
    "RunLock",
    "RunLocks",
    "database_lock_path",
    "holder_line",
    "make_folder",
    "read_holder",
]
