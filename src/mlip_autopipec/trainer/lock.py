"""One fit per folder: an exclusive lock on ``<fit folder>/.fit.lock`` for the fit's whole life.

The lock is ``fcntl.flock`` on a file inside the folder
(:class:`~mlip_autopipec.locking.FileLock`), so the kernel releases it when its
holder ends, however it ends (``kill -9`` included): a lock left by a killed
run never blocks the next one.  The holder's pid, host and start time are
written into the file, for the message that refuses a second fit.  The lock's
file descriptor is also handed to pacemaker, so the folder stays locked for as
long as any process of the fit lives (which is why a release leaves the file as
it is).  On Linux ``flock`` works on local file systems and on NFS (emulated
there with byte-range locks, which NFSv4 and lockd support).
"""

from __future__ import annotations

from pathlib import Path

from mlip_autopipec.exceptions import TrainerError
from mlip_autopipec.locking import FileLock

LOCK_NAME = ".fit.lock"


class FitFolderLock(FileLock):
    """``with FitFolderLock(folder):`` holds the folder's lock or raises :class:`TrainerError` naming its holder."""

    names_command = False
    empty_on_release = False  # pacemaker may still share the descriptor

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        super().__init__(self.folder / LOCK_NAME)

    def acquire(self) -> None:
        """Take the lock at once, or raise :class:`TrainerError` (the folder is in use) without waiting."""
        self.folder.mkdir(parents=True, exist_ok=True)
        super().acquire()

    def _in_use(self, holder: str) -> TrainerError:
        return TrainerError(
            f"fit folder {self.folder} is in use by another fit ({holder}): one folder takes one fit at a time; "
            "wait for it to finish, or stop that process"
        )

    def _cannot_lock(self, err: OSError) -> TrainerError:
        return TrainerError(f"cannot lock the fit folder {self.folder} ({self.path}): {err}")


__all__ = ["LOCK_NAME", "FitFolderLock"]
