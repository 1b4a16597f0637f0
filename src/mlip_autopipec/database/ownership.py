"""Which databases are the project's: the ownership mark, and what opening any other database does.

The mark.  ASE's metadata of a project database holds
``{"mlip_autopipec": {"schema_version": 1, ...}}`` (the same dict keeps the
project's other settings, e.g. ``split``).  A database without the mark is not
ours: opening it is refused with a sentence, and nothing is written to it, so
another program's rows never get a ``status`` or a ``label_train``.

What made it.  The same dict keeps the database's :class:`Origin` under
``made_with``: the fingerprints of the config sections that shaped its rows
(the caller's, e.g. seeds, generator, oracle) and the work directory it
belongs to, so a config or a work directory it was not made for can be
refused (the policy is the caller's: this layer only keeps the record).

Two cases are taken over (the mark added):

* an empty database (a new or 0-byte file, or an ASE database with no rows
  and no metadata): there is nothing of anyone's to spoil;
* a database made by an earlier mlip-autopipec, before the mark existed: it is
  recognised by the SQLite index ``mlip_autopipec_fingerprint`` that every
  earlier version created on open, or by the project's settings key in the
  metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from mlip_autopipec.database.schema import METADATA_KEY
from mlip_autopipec.exceptions import DatabaseError

SCHEMA_VERSION = 1
MARK_KEY = "schema_version"
ORIGIN_KEY = "made_with"


class Verdict(Enum):
    """What opening a database does."""

    OWNED = "owned"  # marked by us: open as it is
    INITIALISE = "initialise"  # empty: create the tables and the mark
    ADOPT = "adopt"  # an earlier version's database: add the mark


@dataclass(frozen=True)
class Facts:
    """What a look at a database (read only) found."""

    location: str
    is_ase: bool  # has ASE's tables (or is a server database ASE opened)
    tables: tuple[str, ...]  # the SQLite tables, for the message about a foreign file
    rows: int
    metadata: dict[str, Any]  # ASE's metadata (all of it)
    earlier_version_sign: bool  # the fingerprint index of an earlier mlip-autopipec
    complete: bool = True  # has every table and index a project database needs (else: create them)


@dataclass(frozen=True)
class Origin:
    """What made a database: the fingerprints of the config sections that shaped its rows, and (for a file)
    the work directory it belongs to (absolute)."""

    fingerprints: dict[str, str]
    workdir: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"fingerprints": dict(self.fingerprints), "workdir": self.workdir}


def origin_of(settings: dict[str, Any]) -> Origin | None:
    """The :class:`Origin` recorded in the project's settings (None: none recorded, e.g. an earlier version's)."""
    value = settings.get(ORIGIN_KEY)
    if not isinstance(value, dict) or not isinstance(value.get("fingerprints"), dict):
        return None
    fingerprints = {str(k): str(v) for k, v in value["fingerprints"].items()}
    workdir = value.get("workdir")
    return Origin(fingerprints, None if workdir is None else str(workdir))


def with_origin(settings: dict[str, Any], origin: Origin) -> dict[str, Any]:
    """``settings`` recording ``origin``."""
    return {**settings, ORIGIN_KEY: origin.as_dict()}


def settings_of(metadata: dict[str, Any]) -> dict[str, Any]:
    """The project's settings inside ASE's metadata (empty when none)."""
    value = metadata.get(METADATA_KEY)
    return dict(value) if isinstance(value, dict) else {}


def marked(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` with the ownership mark of this version."""
    return {**settings, MARK_KEY: SCHEMA_VERSION}


def decide(facts: Facts) -> Verdict:
    """Owned, to initialise, to adopt; :class:`DatabaseError` (with what to do) for a database that is not ours."""
    where = facts.location
    if not facts.is_ase:
        if not facts.tables:
            return Verdict.INITIALISE
        if "://" in where:  # a campaign's PostgreSQL schema that holds another program's tables
            raise DatabaseError(
                f"{where}: this schema holds another program's tables ({', '.join(facts.tables)}), "
                "not an mlip-autopipec campaign; it was left untouched. "
                "Choose another campaign name (database.campaign)."
            )
        raise DatabaseError(
            f"{where}: this is a SQLite database of another program (tables {', '.join(facts.tables)}), not an "
            "mlip-autopipec structure database; it was left untouched. Move it away or set database.path to a new file."
        )
    settings = settings_of(facts.metadata)
    version = settings.get(MARK_KEY)
    if version is not None:
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise DatabaseError(
                f"{where}: the mlip-autopipec mark is damaged ({METADATA_KEY}.{MARK_KEY}={version!r}); "
                "restore the database from a backup"
            )
        if version > SCHEMA_VERSION:
            raise DatabaseError(
                f"{where}: written by a newer mlip-autopipec (database schema {version}, this version reads up to "
                f"{SCHEMA_VERSION}); update mlip-autopipec to use it. It was left untouched."
            )
        return Verdict.OWNED
    if facts.earlier_version_sign or METADATA_KEY in facts.metadata:
        return Verdict.ADOPT
    if facts.rows == 0 and not facts.metadata:
        return Verdict.INITIALISE
    raise DatabaseError(
        f"{where}: this ASE database ({facts.rows} row(s)) was not made by mlip-autopipec "
        f"(no '{METADATA_KEY}' mark in its metadata); it was left untouched. "
        "Point database.path to a new file (or an empty database), or move this one away. "
        "To use its structures, "
        "read them with ase.db and add them to a new database (DatabaseManager.add_structures)."
    )


__all__ = [
    "SCHEMA_VERSION",
    "MARK_KEY",
    "ORIGIN_KEY",
    "Verdict",
    "Facts",
    "Origin",
    "origin_of",
    "with_origin",
    "settings_of",
    "marked",
    "decide",
]
