"""An exclusive ``flock`` on a file that names its holder: the one implementation behind one run per work
directory (:class:`~mlip_autopipec.pipeline.lock.RunLock`) and one fit per folder
(:class:`~mlip_autopipec.trainer.lock.FitFolderLock`).

The kernel releases an ``flock`` when its holder ends, however it ends
(``kill -9`` included): a lock left by a killed process never blocks the next
one.  The holder writes one line (pid, host, start time, and optionally its
command) into the file, for the message that refuses a second holder.  The
descriptor is opened with ``O_CLOEXEC`` (Python's default): it is not
inherited by child processes unless passed on purpose.

A subclass says what the lock guards, through the exceptions it raises
(:meth:`FileLock._in_use`, :meth:`FileLock._cannot_lock`,
:meth:`FileLock._file_error`).
"""

from __future__ import annotations

import datetime
import fcntl
import os
import socket
import sys
from pathlib import Path
from typing import Self


def holder_line(command: bool = True) -> str:
    """What a lock file says about this process: pid, host, start time (UTC) and (with ``command``) its command."""
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    line = f"pid {os.getpid()} on {socket.gethostname()} since {started}"
    if not command:
        return line
    cmd = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else "python"
    return f"{line} ({cmd})"


def read_line(fd: int) -> str:
    """The holder line in the lock file behind ``fd`` (``""`` when empty or unreadable)."""
    try:
        return os.pread(fd, 1024, 0).decode(errors="replace").strip()
    except OSError:
        return ""


class FileLock:
    """``with lock:`` holds an exclusive ``flock`` on ``path`` (taken at once, never waited for), or raises.

    After :meth:`acquire`, ``taken_over`` is the line left by a holder that
    ended without releasing the lock (killed), or ``None``.
    """

    names_command = True  # the holder line carries the command
    empty_on_release = True  # a clean release empties the file (a line left behind then means a killed holder)

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.fd: int | None = None
        self.taken_over: str | None = None

    # ------------------------------------------------------------ what a subclass says
    def _in_use(self, holder: str) -> BaseException:
        """The error when another process holds the lock (``holder``: its line, or "holder unknown")."""
        raise NotImplementedError

    def _cannot_lock(self, err: OSError) -> BaseException:
        """The error when ``flock`` itself fails (a file system without it)."""
        raise NotImplementedError

    def _file_error(self, err: OSError, doing: str) -> BaseException:
        """The error when the lock file cannot be created or written (``doing``: "create" or "write");
        ``err`` itself by default."""
        return err

    # ------------------------------------------------------------ the lock
    def _raise_file_error(self, err: OSError, doing: str) -> None:
        exc = self._file_error(err, doing)
        if exc is err:
            raise err
        raise exc from err

    def acquire(self) -> None:
        """Take the lock at once, or raise without waiting."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)  # O_CLOEXEC by default: not inherited
        except OSError as err:
            self._raise_file_error(err, "create")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = read_line(fd) or "holder unknown"
            os.close(fd)
            raise self._in_use(holder) from None
        except OSError as err:
            os.close(fd)
            raise self._cannot_lock(err) from err
        self.taken_over = read_line(fd) or None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (holder_line(self.names_command) + "\n").encode(), 0)
        except OSError as err:
            os.close(fd)
            self._raise_file_error(err, "write")
        self.fd = fd

    def release(self) -> None:
        """Release the lock (emptying the file first when ``empty_on_release``)."""
        if self.fd is not None:
            if self.empty_on_release:
                try:
                    os.ftruncate(self.fd, 0)
                except OSError:
                    pass  # the lock is released all the same; the next holder will only say it took it over
            os.close(self.fd)  # closing the descriptor releases the flock (once no other process shares it)
            self.fd = None

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


__all__ = ["FileLock", "holder_line", "read_line"]
