"""Where a run's database lives: the one rule for telling a server URL from a file path.

``database.path`` in the config is either a URL understood by ASE (anything
with ``://``, e.g. ``postgresql://user:password@host:5432/db``) or a SQLite
file name, relative to the work directory unless absolute.
"""

from __future__ import annotations

import os
from pathlib import Path


def is_url(location: str | os.PathLike) -> bool:
    """True for a database server URL (``scheme://...``), False for a file path."""
    return "://" in os.fspath(location)


def resolve_location(path: str | os.PathLike, workdir: str | os.PathLike) -> str:
    """The database location to open: a URL unchanged, a file path joined to ``workdir`` (an absolute path stays)."""
    text = os.fspath(path)
    if is_url(text):
        return text
    return str(Path(workdir) / text)


def database_file(location: str | os.PathLike) -> Path | None:
    """The SQLite file of ``location``, or ``None`` for a server URL."""
    return None if is_url(location) else Path(location)


__all__ = ["is_url", "resolve_location", "database_file"]
