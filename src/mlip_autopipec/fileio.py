"""Files appear under their final name only when complete."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path, make_parents: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success flush it to disk and rename it to ``path``.

    The rename is atomic on POSIX, and the fsync before it means a crash right
    after cannot leave an empty file under the final name.  On an exception the
    temporary file is removed and ``path`` is left as it was.  The temporary
    name keeps the final suffixes, so format detection by suffix (ASE, pandas)
    works on it.  The file gets the permissions a plain ``open(path, "w")``
    would give it (0666 less the user's umask), not ``mkstemp``'s private 0600:
    a group's project folder can read what a run writes.
    """
    path = Path(path)
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _new_file_beside(path)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _new_file_beside(path: Path) -> Path:
    """Create an empty, hidden file of a new name beside ``path`` (mode 0666, less the umask, as open() does)."""
    suffix = "".join(path.suffixes)
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}{suffix}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp


def os_error_sentence(err: OSError, doing: str = "") -> str:
    """One sentence for an operating-system error: which file, what happened, what to do.

    ``doing`` says what the program was doing ("writing the export"); the file
    comes from the error itself (``err.filename``).
    """
    import errno

    where = err.filename if err.filename is not None else "?"
    if err.filename2 is not None:
        where = f"{where} -> {err.filename2}"
    prefix = f"{doing}: " if doing else ""
    what = err.strerror or str(err)
    code = err.errno
    if code in (errno.EACCES, errno.EPERM):
        advice = "it is not writable (or readable) by this user; fix its permissions or choose another place"
    elif code == errno.EROFS:
        advice = "it is on a read-only file system; choose a writable place (or remount it read-write)"
    elif code in (errno.ENOSPC, errno.EDQUOT):
        advice = (
            "the disk (or your quota) is full; free some space and run the same command again (finished work is kept)"
        )
    elif code == errno.ENOTDIR:
        advice = "a part of this path is a file where a folder must be; move that file away or choose another path"
    elif code == errno.EEXIST:
        advice = (
            "something of that name already exists (a file where a folder must be?); "
            "move it away or choose another path"
        )
    elif code == errno.EISDIR:
        advice = "it is a folder where a file must be; give a file name"
    elif code == errno.ENOENT:
        advice = "it does not exist; check the path"
    elif code == errno.EIO:
        advice = "input/output error: check the disk or file system"
    else:
        advice = "check the path and the file system"
    return f"{prefix}{where}: {what}: {advice}"
