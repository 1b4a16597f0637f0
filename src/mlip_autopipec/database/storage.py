"""Where the rows live: opening the database, transactions, the settings store, and all of the SQL.

Two backends behind one interface: :class:`SQLiteStorage` for a ``.db`` file
and :class:`ASEStorage` for a server URL (``postgresql://``), which uses only
ASE's public API.  :func:`open_storage` picks one; nothing outside this module
asks which.

Durability (SQLite).  The storage owns the connection it hands to ASE: every
write runs in one ``BEGIN IMMEDIATE`` transaction committed only when the
block ends, and the commits ASE would make on its own (every 5000 rows inside
``with db:``) are no-ops.  A process killed in the middle of a batch therefore
leaves the database as it was before (SQLite's journal rolls the batch back).
Writers from several processes wait for the lock (``busy_timeout``) instead of
failing.  ASE's lock file is not used: SQLite locks the file itself, and a
lock file left by a killed process would block every later writer.

Why SQL into ASE's private tables (``systems``, ``number_key_values``,
``information``).  This module is the only place that uses them, for four
things ASE's API cannot do: (1) the all-or-nothing transactions above;
(2) the duplicate lookup through a partial index on the ``fingerprint`` key
(ASE indexes key names, not values); (3) reading ids and export columns
straight from ``systems`` (ASE's row objects cost twice the time and look up
external tables row by row); (4) reading the settings fresh from
``information`` (ASE caches its metadata; another process may have changed
it).  An ASE release that changes these tables breaks here and only here;
``tests/unit/test_database_manager.py`` checks that plain ASE reads what we
write.

Errors.  Every sqlite3 error becomes a :class:`DatabaseError` that names the
file and says what to do (:func:`explain`): a damaged file, a read-only file
or folder, a full disk, a writer holding the lock too long.
"""

from __future__ import annotations

import json
import os
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
from ase.db import connect
from ase.db.core import parse_selection
from ase.db.row import AtomsRow

from mlip_autopipec.database import ownership
from mlip_autopipec.database.location import is_url
from mlip_autopipec.database.schema import FINGERPRINT_INDEX, KEY_FINGERPRINT, METADATA_KEY
from mlip_autopipec.exceptions import DatabaseError

_CHUNK = 1000  # rows read per query when iterating: bounded memory, few round trips
_PBC_BITS = np.array([1, 2, 4])

# (numbers, positions, cell, pbc) of a stored structure
Geometry = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
# (id, numbers, positions, cell, pbc, energy, forces, stress, key_value_pairs, data)
RawRow = tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, Any, Any, Any, dict, dict]


def explain(location: str, exc: BaseException, doing: str, busy_timeout: float | None = None) -> DatabaseError:
    """A :class:`DatabaseError` for a sqlite3 error: what happened to which file, and what to do."""
    text = str(exc)
    low = text.lower()
    if "locked" in low or "busy" in low:
        wait = f" for longer than busy_timeout={busy_timeout:g} s" if busy_timeout else ""
        return DatabaseError(
            f"{location}: {doing}: another process held the database's write lock{wait} ({text}); "
            "wait for it to finish (or stop it) and run again"
        )
    if "readonly" in low or "read-only" in low:
        return DatabaseError(
            f"{location}: {doing}: the database is read-only ({text}); make the file and its folder writable "
            "(or copy the file to a writable place and point database.path there), then run again"
        )
    if "malformed" in low or "not a database" in low or "corrupt" in low:
        return DatabaseError(
            f"{location}: {doing}: the database file is damaged or is not a SQLite database ({text}). Restore it from a "
            f"backup, or salvage what is readable with `sqlite3 {location} .recover | sqlite3 recovered.db` and put "
            "recovered.db in its place"
        )
    if "full" in low:
        return DatabaseError(f"{location}: {doing}: the disk is full ({text}); free some space and run again (nothing was half-written)")
    if "unable to open" in low:
        return DatabaseError(
            f"{location}: {doing}: cannot open the database file ({text}); check that its folder exists and is readable "
            "and writable"
        )
    if "disk i/o" in low:
        return DatabaseError(
            f"{location}: {doing}: input/output error ({text}); check the disk or file system, and if it persists "
            f"restore the file from a backup or try `sqlite3 {location} .recover`"
        )
    return DatabaseError(f"{location}: {doing} failed: {type(exc).__name__}: {text}")


class _NoCommitConnection:
    """The connection ASE is given: its own commits become no-ops, so the storage alone decides when to commit."""

    __slots__ = ("_con",)

    def __init__(self, con: sqlite3.Connection):
        self._con = con

    def commit(self) -> None:
        pass

    def rollback(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


class Storage(ABC):
    """What both backends share: ASE's database object ``db``, chunked row reads, the settings store."""

    location: str
    db: Any
    busy_timeout: float

    # ------------------------------------------------------------ given by each backend
    @abstractmethod
    def close(self) -> None:
        """Close the connection (idempotent)."""

    @abstractmethod
    def live(self) -> None:
        """:class:`DatabaseError` when closed."""

    @abstractmethod
    def write_tx(self) -> AbstractContextManager[None]:
        """One write transaction: all of the block is committed when it ends, or nothing is."""

    @contextmanager
    def guard(self, doing: str) -> Iterator[None]:
        """Translate the backend's errors into :class:`DatabaseError` (none to translate here)."""
        yield

    def metadata(self) -> dict[str, Any]:
        return dict(self.db.metadata)

    # ------------------------------------------------------------ shared
    def settings(self) -> dict[str, Any]:
        """The project's settings, read fresh (another process may have changed them)."""
        return ownership.settings_of(self.metadata())

    def store_settings(self, settings: dict[str, Any]) -> None:
        """Replace the project's settings (the rest of ASE's metadata is kept); call inside :meth:`write_tx`."""
        md = self.metadata()
        md[METADATA_KEY] = settings
        self.db.metadata = md

    def ids(self, sel: list[Any]) -> list[int]:
        """Ids of the rows matching an ASE selection, ascending."""
        return sorted(r.id for r in self.db.select(sel, columns=["id"], include_data=False))

    def count(self, sel: list[Any]) -> int:
        return int(self.db.count(sel))

    def row(self, sid: int) -> AtomsRow | None:
        """The row with id ``sid``, or ``None``."""
        try:
            return self.db.get(id=sid)
        except KeyError:
            return None

    def rows(self, ids: list[int], sel: list[Any], include_data: bool = True) -> Iterator[AtomsRow]:
        """The rows of ``ids`` (ascending), read ``_CHUNK`` at a time by id range."""
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            wanted = set(chunk)
            rng = [("id", ">=", chunk[0]), ("id", "<=", chunk[-1])]
            found = [r for r in self.db.select(sel + rng, include_data=include_data) if r.id in wanted]
            found.sort(key=lambda r: r.id)
            yield from found

    def raw_rows(self, ids: list[int], sel: list[Any]) -> Iterator[RawRow]:
        """The columns an export needs, of ``ids`` (ascending)."""
        for row in self.rows(ids, sel):
            yield (row.id, row.numbers, row.positions, row.cell, row.pbc, row.get("energy"),
                   row.get("forces"), row.get("stress"), row.key_value_pairs, dict(row.data))  # fmt: skip

    def duplicate_candidates(self, lo: float, hi: float) -> Iterator[tuple[int, Geometry]]:
        """``(id, geometry)`` of the rows whose fingerprint lies in ``[lo, hi]``, by id."""
        sel = [(KEY_FINGERPRINT, ">=", lo), (KEY_FINGERPRINT, "<=", hi)]
        for row in self.db.select(sel, columns=["id", "numbers", "positions", "cell", "pbc"], include_data=False, sort="id"):
            yield int(row.id), (row.numbers, row.positions, row.cell, row.pbc)

    def _claim(self, facts_now: Callable[[], ownership.Facts]) -> None:
        """Look at the database, then initialise it, add the mark, or refuse (see :mod:`.ownership`).

        A database we own is only read; anything else is written once, under the write lock.
        """
        facts = facts_now()
        if ownership.decide(facts) is ownership.Verdict.OWNED and facts.complete:
            return
        with self.write_tx():
            verdict = ownership.decide(facts_now())  # again under the write lock: another process may have been first
            self._prepare_tables()
            if verdict is not ownership.Verdict.OWNED:
                self.store_settings(ownership.marked(self.settings()))

    def _prepare_tables(self) -> None:
        """Create what a project database needs beyond ASE's tables (inside :meth:`write_tx`)."""


class ASEStorage(Storage):
    """A database server through ASE's public API only (PostgreSQL: ``postgresql://``); ASE makes the transactions."""

    def __init__(self, url: str, busy_timeout: float):
        self.location = url
        self.busy_timeout = busy_timeout
        self._in_tx = False
        try:
            self.db = connect(url, serial=True)
        except ImportError as exc:
            raise DatabaseError(f"{url}: ASE's PostgreSQL backend needs the ase-db-backends package: {exc}") from exc
        self._claim(self._facts)

    def _facts(self) -> ownership.Facts:
        rows = int(self.db.count())
        return ownership.Facts(self.location, True, (), rows, self.metadata(), False, complete=True)

    def close(self) -> None:
        pass

    def live(self) -> None:
        pass

    @contextmanager
    def write_tx(self) -> Iterator[None]:
        if self._in_tx:
            yield
            return
        with self.db:
            self._in_tx = True
            try:
                yield
            finally:
                self._in_tx = False


class SQLiteStorage(Storage):
    """A SQLite file, with this module's own connection, transactions and SQL (see the module's note)."""

    def __init__(self, path: Path, busy_timeout: float, read_only: bool = False):
        self.location = str(path)
        self.busy_timeout = busy_timeout
        self.read_only = read_only
        self._in_tx = False
        self._doing = "writing"  # what the caller is doing, for the messages (set by guard)
        self.con: sqlite3.Connection | None = None
        self.db = connect(str(path), type="db", use_lock_file=False, serial=True)
        if read_only and not path.is_file():
            raise DatabaseError(f"{path}: no such database file to read")
        try:
            if read_only:
                self.con = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=busy_timeout, isolation_level=None)
            else:
                self.con = sqlite3.connect(str(path), timeout=busy_timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise explain(self.location, exc, "opening the database", busy_timeout) from exc
        self.db.connection = _NoCommitConnection(self.con)
        self.db.change_count = 0
        try:
            with self.guard("opening the database"):
                if read_only:
                    facts = self._facts()
                    if ownership.decide(facts) is ownership.Verdict.INITIALISE:
                        raise DatabaseError(f"{path}: the database is empty; nothing to read")
                else:
                    self._claim(self._facts)
                self.db._initialize(self.db.connection)  # ASE reads its format version (no write on a made database)
        except BaseException:
            self.close()
            raise

    def _facts(self) -> ownership.Facts:
        con = self.con
        names = {name: kind for name, kind in con.execute("SELECT name, type FROM sqlite_master")}
        tables = tuple(sorted(n for n, k in names.items() if k == "table"))
        if "systems" not in names:
            return ownership.Facts(self.location, False, tables, 0, {}, False, complete=False)
        metadata = self.metadata()
        # the row count only matters (and costs a scan) for a database without the mark
        rows = 0 if ownership.MARK_KEY in ownership.settings_of(metadata) else con.execute("SELECT COUNT(*) FROM systems").fetchone()[0]
        has_index = FINGERPRINT_INDEX in names
        return ownership.Facts(self.location, True, tables, int(rows), metadata, has_index, complete=has_index)

    def _prepare_tables(self) -> None:
        self.db._initialize(self.db.connection)  # ASE's tables, when missing
        self.con.execute(
            f"CREATE INDEX IF NOT EXISTS {FINGERPRINT_INDEX} ON number_key_values(value) WHERE key='{KEY_FINGERPRINT}'"
        )

    # ------------------------------------------------------------ lifecycle
    def close(self) -> None:
        if self.con is not None:
            self.db.connection = None
            self.con.close()
            self.con = None

    def live(self) -> None:
        if self.con is None:
            raise DatabaseError(f"{self.location}: the database manager is closed")

    @contextmanager
    def guard(self, doing: str) -> Iterator[None]:
        outer, self._doing = self._doing, doing
        try:
            yield
        except sqlite3.Error as exc:
            raise explain(self.location, exc, doing, self.busy_timeout) from exc
        finally:
            self._doing = outer

    @contextmanager
    def write_tx(self) -> Iterator[None]:
        """One write transaction: all of the block is committed when it ends, or nothing is."""
        self.live()
        if self._in_tx:
            yield
            return
        if self.read_only:
            raise DatabaseError(f"{self.location}: the database was opened read-only; open it without read_only to change it")
        con = self.con
        try:
            con.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise explain(self.location, exc, f"{self._doing} (taking the write lock)", self.busy_timeout) from exc
        self._in_tx = True
        try:
            yield
            con.execute("COMMIT")
        except BaseException as exc:
            if con.in_transaction:
                try:
                    con.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # the journal rolls it back on the next open
            if isinstance(exc, sqlite3.Error):
                raise explain(self.location, exc, f"{self._doing} (rolled back: nothing of it was stored)", self.busy_timeout) from exc
            raise
        finally:
            self._in_tx = False

    # ------------------------------------------------------------ reads straight from ASE's tables
    def metadata(self) -> dict[str, Any]:
        try:
            row = self.con.execute("SELECT value FROM information WHERE name='metadata'").fetchone()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return {}
            raise
        value = json.loads(row[0]) if row else {}
        return value if isinstance(value, dict) else {}

    def ids(self, sel: list[Any]) -> list[int]:
        keys, cmps = parse_selection(sel)
        sql, args = self.db.create_select_statement(keys, cmps, what="systems.id")
        return [r[0] for r in self.con.execute(sql + " ORDER BY systems.id", args)]

    def raw_rows(self, ids: list[int], sel: list[Any]) -> Iterator[RawRow]:
        db = self.db
        deblob, decode = db.deblob, db.decode
        query = (
            "SELECT id, numbers, positions, cell, pbc, energy, forces, stress, key_value_pairs, data "
            "FROM systems WHERE id BETWEEN ? AND ? ORDER BY id"
        )
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            wanted = set(chunk)
            for sid, z, pos, cell, pbc, energy, forces, stress, kvp, data in self.con.execute(query, (chunk[0], chunk[-1])).fetchall():
                if sid not in wanted:
                    continue
                yield (
                    sid,
                    deblob(z, np.int32),
                    deblob(pos, shape=(-1, 3)),
                    deblob(cell, shape=(3, 3)),
                    (pbc & _PBC_BITS).astype(bool),
                    energy,
                    deblob(forces, shape=(-1, 3)),
                    deblob(stress),
                    json.loads(kvp),
                    {} if data is None or data == "null" else decode(data),
                )

    def duplicate_candidates(self, lo: float, hi: float) -> Iterator[tuple[int, Geometry]]:
        db, con = self.db, self.con
        found = con.execute(
            f"SELECT id FROM number_key_values INDEXED BY {FINGERPRINT_INDEX} "
            f"WHERE key='{KEY_FINGERPRINT}' AND value BETWEEN ? AND ? ORDER BY id",
            (lo, hi),
        ).fetchall()
        for (cid,) in found:
            z, pos, cell, pbc = con.execute("SELECT numbers, positions, cell, pbc FROM systems WHERE id=?", (cid,)).fetchone()
            yield int(cid), (db.deblob(z, np.int32), db.deblob(pos, shape=(-1, 3)), db.deblob(cell, shape=(3, 3)), (pbc & _PBC_BITS).astype(bool))


def open_storage(location: str | os.PathLike, busy_timeout: float, read_only: bool = False) -> Storage:
    """The storage of a ``.db`` file (created with its folder when missing) or a server URL."""
    text = os.fspath(location)
    if is_url(text):
        if not text.startswith(("postgresql://", "postgres://")):
            raise DatabaseError(f"{text}: a database URL must be postgresql://user:password@host:port/name (or give a .db file)")
        return ASEStorage(text, busy_timeout)
    path = Path(text).expanduser().resolve()
    if path.suffix != ".db":
        raise DatabaseError(f"{path}: the database file must end in .db (SQLite), or give a postgresql:// URL")
    if not read_only:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseError(f"{path}: cannot create the database's folder {path.parent}: {exc.strerror or exc}") from exc
    return SQLiteStorage(path, busy_timeout, read_only)


__all__ = ["open_storage", "explain", "Storage", "SQLiteStorage", "ASEStorage", "Geometry", "RawRow"]
