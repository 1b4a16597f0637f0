"""Where the rows live: opening the database, transactions, the settings store, and all of the SQL.

Two backends behind one interface: :class:`SQLiteStorage` for a ``.db`` file
and :class:`PostgreSQLStorage` for a campaign in a PostgreSQL database
(``postgresql://``).  :func:`open_storage` picks one; nothing outside this
module asks which.

Durability.  The storage owns the connection it hands to ASE: every write
runs in one transaction committed only when the block ends, and the commits
ASE would make on its own (every 5000 rows inside ``with db:``) are no-ops.  A
process killed in the middle of a batch therefore leaves the database as it
was before (SQLite's journal, or the server, rolls the batch back).  Writers
from several processes wait for the write lock (``busy_timeout``) instead of
failing: SQLite's ``BEGIN IMMEDIATE``, or on PostgreSQL an advisory lock per
campaign taken first in every write transaction (two writers never both find
"no duplicate" and both insert; a new campaign's tables are created under it).
ASE's lock file is not used: a lock file left by a killed process would block
every later writer.

Campaigns (PostgreSQL).  Each campaign is a PostgreSQL schema named after it;
the connection's ``search_path`` is that schema alone, so ASE's tables, the
ids, the settings and every query are the campaign's own (see
:mod:`.location`).  The URL shown in messages and ``repr`` has no password
(:func:`~.location.redact_url`); the real URL is only handed to
``psycopg2.connect``.

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

Errors.  Every sqlite3 (psycopg2) error becomes a :class:`DatabaseError` that
names the file (server and campaign) and says what to do (:func:`explain`,
:func:`explain_pg`): a damaged file, a writer holding the lock too long.  A
failure of the storage itself (a full disk, a read-only file or folder, an
input/output error, a lost server) is a :class:`StorageError`: not the fault
of what was being written, so a caller keeps that work pending.
"""

from __future__ import annotations

import json
import os
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
from ase.db import connect
from ase.db.core import parse_selection
from ase.db.row import AtomsRow

from mlip_autopipec.database import ownership
from mlip_autopipec.database.location import DEFAULT_CAMPAIGN, check_campaign, is_url, redact_url
from mlip_autopipec.database.schema import FINGERPRINT_INDEX, KEY_FINGERPRINT, METADATA_KEY
from mlip_autopipec.exceptions import DatabaseError, StorageError

_CHUNK = 1000  # rows read per query when iterating: bounded memory, few round trips
_PBC_BITS = np.array([1, 2, 4])

# (numbers, positions, cell, pbc) of a stored structure
Geometry = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
# (id, numbers, positions, cell, pbc, energy, forces, stress, magmoms, key_value_pairs, data)
RawRow = tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, Any, Any, Any, Any, dict, dict]


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
        return StorageError(
            f"{location}: {doing}: the database is read-only ({text}); make the file and its folder writable "
            "(or copy the file to a writable place and point database.path there), then run again"
        )
    if "malformed" in low or "not a database" in low or "corrupt" in low:
        return DatabaseError(
            f"{location}: {doing}: the database file is damaged or is not a SQLite database ({text}). "
            f"Restore it from a backup, or salvage what is readable with "
            f"`sqlite3 {location} .recover | sqlite3 recovered.db` and put recovered.db in its place"
        )
    if "full" in low:
        return StorageError(
            f"{location}: {doing}: the disk is full ({text}); free some space and run again (nothing was half-written)"
        )
    if "unable to open" in low:
        return DatabaseError(
            f"{location}: {doing}: cannot open the database file ({text}); "
            "check that its folder exists and is readable and writable"
        )
    if "disk i/o" in low:
        return StorageError(
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


_FINGERPRINT_INDEX_SQL = (
    f"CREATE INDEX IF NOT EXISTS {FINGERPRINT_INDEX} ON number_key_values(value) WHERE key='{KEY_FINGERPRINT}'"
)


def _chunks(ids: list[int]) -> Iterator[tuple[list[int], set[int]]]:
    """``ids`` (ascending) ``_CHUNK`` at a time: each chunk, and the set of its ids (an id range holds others too)."""
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        yield chunk, set(chunk)


def _metadata_of(row: tuple[Any, ...] | None) -> dict[str, Any]:
    """ASE's metadata from the ``information`` row read (``{}`` when none, or not a mapping)."""
    value = json.loads(row[0]) if row else {}
    return value if isinstance(value, dict) else {}


class Storage(ABC):
    """What both backends share: ASE's database object ``db``, the connection's life, the error translation,
    the transaction's shape, chunked row reads, the settings store."""

    location: str
    db: Any
    busy_timeout: float
    raw: Any = None  # the driver's connection (sqlite3 or psycopg2); ASE is given a wrapper that cannot commit
    read_only: bool = False
    empty_ok: bool = False  # read_only: open a database with nothing in it yet (``empty``) instead of refusing
    empty: bool = False  # opened read-only with nothing in it yet: no tables to read (only its settings, {})
    campaign: str | None = None  # the server campaign (schema); None for a SQLite file
    _errors: type[BaseException] | tuple[type[BaseException], ...] = ()  # the driver's errors
    _in_tx = False
    _doing = "writing"  # what the caller is doing, for the messages (set by guard)

    # ------------------------------------------------------------ given by each backend
    @staticmethod
    @abstractmethod
    def _explain(location: str, exc: BaseException, doing: str, busy_timeout: float | None = None) -> DatabaseError:
        """The :class:`DatabaseError` for one of the driver's errors (:func:`explain`, :func:`explain_pg`)."""

    @abstractmethod
    def _facts(self) -> ownership.Facts:
        """What the database holds, for :func:`.ownership.decide`."""

    @abstractmethod
    def _tx_begin(self) -> Any:
        """Begin a write transaction holding the write lock; the handle :meth:`_tx_commit` and :meth:`_tx_rollback` use.

        On failure the driver's error is raised, with nothing left open."""

    @abstractmethod
    def _tx_rollback(self, tx: Any) -> None:
        """Roll back ``tx`` (quietly: a lost connection or a killed process rolls back on its own)."""

    def _tx_end(self, tx: Any) -> None:  # noqa: B027 - a hook: nothing to release by default
        """Release what :meth:`_tx_begin` made, after the commit or rollback."""

    def lost(self) -> bool:
        """True when the connection to a server was dropped (the next :meth:`live` connects again)."""
        return False

    def metadata(self) -> dict[str, Any]:
        return dict(self.db.metadata)

    # ------------------------------------------------------------ shared
    def _open(self, nothing_to_read: str) -> None:
        """Check (read-only) or claim (see :meth:`_claim`) the database just connected; closed again on failure."""
        try:
            with self.guard("opening the database"):
                if self.read_only:
                    if ownership.decide(self._facts()) is ownership.Verdict.INITIALISE:
                        if self.empty_ok:
                            self.empty = True
                            return
                        raise DatabaseError(nothing_to_read)
                else:
                    self._claim(self._facts)
                self.db._initialize(self.db.connection)  # ASE reads its format version (no write on a made database)
        except BaseException:
            self.close()
            raise

    def _no_tables(self, tables: tuple[str, ...]) -> ownership.Facts:
        """The facts of a database without ASE's tables."""
        return ownership.Facts(self.location, False, tables, 0, {}, False, complete=False)

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if self.raw is not None:
            self.db.connection = None
            self.raw.close()
            self.raw = None

    def live(self) -> None:
        """:class:`DatabaseError` when closed."""
        if self.raw is None:
            raise DatabaseError(f"{self.location}: the database manager is closed")

    @contextmanager
    def guard(self, doing: str) -> Iterator[None]:
        """Translate the driver's errors into :class:`DatabaseError` saying ``doing``."""
        outer, self._doing = self._doing, doing
        try:
            yield
        except self._errors as exc:
            raise self._explain(self.location, exc, doing, self.busy_timeout) from exc
        finally:
            self._doing = outer

    @contextmanager
    def write_tx(self) -> Iterator[None]:
        """One write transaction: all of the block is committed when it ends, or nothing is (nested: the outer one)."""
        self.live()
        if self._in_tx:
            yield
            return
        if self.read_only:
            raise DatabaseError(
                f"{self.location}: the database was opened read-only; open it without read_only to change it"
            )
        try:
            tx = self._tx_begin()
        except self._errors as exc:
            raise self._explain(
                self.location, exc, f"{self._doing} (taking the write lock)", self.busy_timeout
            ) from exc
        self._in_tx = True
        try:
            yield
            tx.execute("COMMIT")
        except BaseException as exc:
            self._tx_rollback(tx)
            if isinstance(exc, self._errors):
                raise self._explain(
                    self.location, exc, f"{self._doing} (rolled back: nothing of it was stored)", self.busy_timeout
                ) from exc
            raise
        finally:
            self._in_tx = False
            self._tx_end(tx)

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
        for chunk, wanted in _chunks(ids):
            rng = [("id", ">=", chunk[0]), ("id", "<=", chunk[-1])]
            found = [r for r in self.db.select(sel + rng, include_data=include_data) if r.id in wanted]
            found.sort(key=lambda r: r.id)
            yield from found

    def raw_rows(self, ids: list[int], sel: list[Any]) -> Iterator[RawRow]:
        """The columns an export needs, of ``ids`` (ascending)."""
        for row in self.rows(ids, sel):
            yield (
                row.id,
                row["numbers"],  # set from the stored columns (not an attribute AtomsRow declares)
                row.positions,
                row.cell,
                row.pbc,
                row.get("energy"),
                row.get("forces"),
                row.get("stress"),
                row.get("magmoms"),
                row.key_value_pairs,
                dict(row.data),
            )

    def duplicate_candidates(self, lo: float, hi: float) -> Iterator[tuple[int, Geometry]]:
        """``(id, geometry)`` of the rows whose fingerprint lies in ``[lo, hi]``, by id."""
        sel = [(KEY_FINGERPRINT, ">=", lo), (KEY_FINGERPRINT, "<=", hi)]
        for row in self.db.select(
            sel, columns=["id", "numbers", "positions", "cell", "pbc"], include_data=False, sort="id"
        ):
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

    def _prepare_tables(self) -> None:  # noqa: B027 - a hook: nothing beyond ASE's tables by default
        """Create what a project database needs beyond ASE's tables (inside :meth:`write_tx`)."""


_LOCK_CLASS = 0x6D6C6970  # "mlip": the first key of the advisory lock; the second is the campaign's hash


def explain_pg(location: str, exc: BaseException, doing: str, busy_timeout: float | None = None) -> DatabaseError:
    """A :class:`DatabaseError` for a psycopg2 error: what happened where, and what to do (no password: the
    server's messages never hold it, and ``location`` is the redacted URL)."""
    code = getattr(exc, "pgcode", None) or ""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if code == "55P03":  # lock_not_available
        wait = f" for longer than busy_timeout={busy_timeout:g} s" if busy_timeout else ""
        return DatabaseError(
            f"{location}: {doing}: another process held the campaign's write lock{wait} ({first}); "
            "wait for it to finish (or stop it) and run again"
        )
    if code == "25006":  # read_only_sql_transaction
        return StorageError(
            f"{location}: {doing}: the database is read-only here ({first}); open it without read_only to change it"
        )
    if code == "42501":  # insufficient_privilege
        return DatabaseError(
            f"{location}: {doing}: the database role lacks a privilege ({first}); ask the database's owner to "
            "GRANT CREATE ON DATABASE (a new campaign is a new schema) or the privileges on this campaign's schema"
        )
    if code.startswith("53"):  # insufficient_resources: disk full, out of memory, too many connections
        return StorageError(
            f"{location}: {doing}: the server is out of resources ({first}); nothing of it was stored; "
            "free space or connections and run again"
        )
    if code.startswith("08") or type(exc).__name__ in ("OperationalError", "InterfaceError"):
        return StorageError(
            f"{location}: {doing}: the connection to the database server failed ({first}); nothing of the write was "
            "stored. Check that the server runs and is reachable, then run again"
        )
    return DatabaseError(f"{location}: {doing} failed: {type(exc).__name__}: {first}")


def _postgresql_classes() -> tuple[type, type, Any]:
    """ASE's PostgreSQL backend (ase-db-backends) with the two changes this project needs, and psycopg2.

    Imported when a server database is opened (a SQLite-only install never needs them); not cached, so a
    missing package is reported every time.
    """
    import psycopg2
    from ase_db_backends.postgresql import Connection, PostgreSQLDatabase

    class ProjectPostgreSQLDatabase(PostgreSQLDatabase):
        """ase-db-backends' database with a new row's id read from this session, and no connection of its own.

        ase-db-backends 0.11 reads the id of the row it just inserted with
        ``SELECT last_value FROM systems_id_seq``: the sequence's last value
        over *all* sessions, so with two writers a row's species and keys land
        on the other writer's row (ForeignKeyViolation, or silently wrong
        ids).  ``currval`` is this session's own value.  This belongs upstream
        (ase-db-backends' ``PostgreSQLDatabase.get_last_id``); when it is fixed
        there, this override goes.
        """

        def get_last_id(self, cur: Any) -> int:
            cur.execute("SELECT currval('systems_id_seq')")
            return int(cur.fetchone()[0])

        def _connect(self) -> Any:  # ASE must use the storage's connection (its transactions, its search_path)
            raise DatabaseError(f"{self.filename}: internal error: ASE tried to open a second connection")

    class HeldConnection(Connection):
        """The connection ASE is given: its commits, rollbacks and close are no-ops (the storage decides)."""

        def commit(self) -> None:
            pass

        def rollback(self) -> None:
            pass

        def close(self) -> None:
            pass

    return ProjectPostgreSQLDatabase, HeldConnection, psycopg2


class PostgreSQLStorage(Storage):
    """A campaign in a PostgreSQL database: ASE's tables in the campaign's own schema, one held connection,
    and transactions made here (see the module's note)."""

    _explain = staticmethod(explain_pg)

    def __init__(
        self,
        url: str,
        busy_timeout: float,
        campaign: str | None = None,
        read_only: bool = False,
        empty_ok: bool = False,
    ):
        self.campaign = check_campaign(campaign if campaign is not None else DEFAULT_CAMPAIGN)
        self.empty_ok = empty_ok
        self.location = f"{redact_url(url)} (campaign {self.campaign})"
        self.busy_timeout = busy_timeout
        self.read_only = read_only
        self._url = url  # only ever handed to psycopg2.connect; messages use self.location
        self._ready = False  # the campaign's tables exist (set by _facts and _prepare_tables)
        try:
            backend, self._held, self._pg = _postgresql_classes()
        except ImportError as exc:
            raise DatabaseError(
                f"{self.location}: ASE's PostgreSQL backend needs the ase-db-backends package (and psycopg2): {exc}"
            ) from exc
        self._errors = self._pg.Error
        self.db = backend(redact_url(url), create_indices=True, use_lock_file=False, serial=True)
        self._connect()
        self._open(
            f"{self.location}: the campaign has no structures yet (no schema '{self.campaign}'); nothing to read"
        )

    # ------------------------------------------------------------ lifecycle
    def _connect(self) -> None:
        pg = self._pg
        try:
            raw = pg.connect(self._url, connect_timeout=30)
        except pg.Error as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            if self.raw is not None:  # connected before: the server went away (a storage error, not a wrong URL)
                raise StorageError(
                    f"{self.location}: the connection was lost, and now it cannot connect to the database server "
                    f"({first}); nothing of the interrupted write was stored. Run again once the server is back"
                ) from None
            raise DatabaseError(
                f"{self.location}: cannot connect to the database server ({first}). Check host, port, database name "
                "and user in the URL; the password comes from PGPASSWORD or ~/.pgpass (keep it out of the config)"
            ) from None  # psycopg2's own text is above; its chained traceback adds nothing
        raw.autocommit = True  # reads are statements of their own; write_tx opens the transactions
        try:
            with raw.cursor() as cur:
                cur.execute("SELECT quote_ident(%s)", (self.campaign,))
                if cur.fetchone()[0] != self.campaign:
                    raise DatabaseError(
                        f"{self.location}: '{self.campaign}' is a reserved word in PostgreSQL; "
                        "choose another campaign name"
                    )
                cur.execute(
                    f"SET search_path TO {self.campaign}"
                )  # only the campaign's schema: nothing of another's is visible
                if self.read_only:
                    cur.execute("SET default_transaction_read_only = on")
        except BaseException:
            raw.close()
            raise
        self.raw = raw
        self.db.connection = self._held(raw)
        self.db.change_count = 0

    def live(self) -> None:
        super().live()
        if self.raw.closed and not self._in_tx:  # the server dropped us (restart, idle timeout): connect again
            self._connect()  # replaces self.raw only on success: a server still away is tried again next call

    def lost(self) -> bool:
        return self.raw is not None and bool(self.raw.closed)

    def _tx_begin(self) -> Any:
        """One transaction holding the campaign's write lock.

        The lock (``pg_advisory_xact_lock``, released by the commit or
        rollback) serialises the writers of one campaign, as SQLite's
        ``BEGIN IMMEDIATE`` does: the duplicate check and the insert of one
        writer never interleave with another's.  Other campaigns are not held up.
        """
        cur = self.raw.cursor()
        try:
            cur.execute("BEGIN")
            cur.execute(f"SET LOCAL lock_timeout = '{int(self.busy_timeout * 1000)}ms'")
            cur.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_CLASS, self.campaign))
        except BaseException:
            self._tx_rollback(cur)
            cur.close()
            raise
        return cur

    def _tx_rollback(self, tx: Any) -> None:
        try:
            tx.execute("ROLLBACK")
        except Exception:
            pass  # a lost connection: the server rolls the transaction back itself

    def _tx_end(self, tx: Any) -> None:
        tx.close()

    # ------------------------------------------------------------ the campaign's schema
    def _tables(self) -> list[str]:
        with self.raw.cursor() as cur:
            cur.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY 1", (self.campaign,)
            )
            return [r[0] for r in cur.fetchall()]

    def _facts(self) -> ownership.Facts:
        tables = tuple(self._tables())
        if "systems" not in tables or "information" not in tables:
            return self._no_tables(tables)
        self._ready = True
        metadata = self.metadata()
        with self.raw.cursor() as cur:
            rows = 0
            if ownership.MARK_KEY not in ownership.settings_of(metadata):
                cur.execute("SELECT COUNT(*) FROM systems")
                rows = int(cur.fetchone()[0])
            cur.execute("SELECT to_regclass(%s) IS NOT NULL", (FINGERPRINT_INDEX,))
            has_index = bool(cur.fetchone()[0])
        return ownership.Facts(self.location, True, tables, rows, metadata, False, complete=has_index)

    def _prepare_tables(self) -> None:
        with self.raw.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.campaign,))
            if cur.fetchone() is None:
                cur.execute(f"CREATE SCHEMA {self.campaign}")
            self.db.initialized = False
            self.db._initialize(self.db.connection)  # ASE's tables, when missing (under the write lock)
            cur.execute(_FINGERPRINT_INDEX_SQL)
        self._ready = True

    # ------------------------------------------------------------ reads straight from ASE's tables
    def metadata(self) -> dict[str, Any]:
        if not self._ready:
            return {}
        with self.raw.cursor() as cur:
            cur.execute("SELECT value FROM information WHERE name='metadata'")
            return _metadata_of(cur.fetchone())

    def ids(self, sel: list[Any]) -> list[int]:
        keys, cmps = parse_selection(sel)
        sql, args = self.db.create_select_statement(keys, cmps, what="systems.id")
        cur = self.db.connection.cursor()  # ASE's cursor: its SQL has '?' placeholders
        cur.execute(sql + " ORDER BY systems.id", args)
        return [r[0] for r in cur.fetchall()]

    def raw_rows(self, ids: list[int], sel: list[Any]) -> Iterator[RawRow]:
        decode = self.db.decode
        query = (
            "SELECT id, numbers, positions, cell, pbc, energy, forces, stress, magmoms, key_value_pairs, data "
            "FROM systems WHERE id BETWEEN %s AND %s ORDER BY id"
        )
        for chunk, wanted in _chunks(ids):
            with self.raw.cursor() as cur:
                cur.execute(query, (chunk[0], chunk[-1]))
                found = cur.fetchall()
            for sid, z, pos, cell, pbc, energy, forces, stress, magmoms, kvp, data in found:
                if sid not in wanted:
                    continue
                yield (
                    sid,
                    np.array(z, dtype=np.int32),
                    np.array(pos, dtype=float).reshape(-1, 3),
                    np.array(cell, dtype=float).reshape(3, 3),
                    (pbc & _PBC_BITS).astype(bool),
                    energy,
                    None if forces is None else np.array(forces, dtype=float).reshape(-1, 3),
                    None if stress is None else np.array(stress, dtype=float),
                    None if magmoms is None else np.array(magmoms, dtype=float),
                    kvp if isinstance(kvp, dict) else json.loads(kvp),
                    {} if data is None else decode(data if not isinstance(data, str) else json.loads(data)),
                )

    def duplicate_candidates(self, lo: float, hi: float) -> Iterator[tuple[int, Geometry]]:
        with self.raw.cursor() as cur:
            cur.execute(
                "SELECT s.id, s.numbers, s.positions, s.cell, s.pbc "
                "FROM number_key_values n JOIN systems s ON s.id = n.id "
                f"WHERE n.key = '{KEY_FINGERPRINT}' AND n.value BETWEEN %s AND %s ORDER BY s.id",
                (lo, hi),
            )
            found = cur.fetchall()
        for cid, z, pos, cell, pbc in found:
            yield (
                int(cid),
                (
                    np.array(z, dtype=np.int32),
                    np.array(pos, dtype=float).reshape(-1, 3),
                    np.array(cell, dtype=float).reshape(3, 3),
                    (pbc & _PBC_BITS).astype(bool),
                ),
            )


class SQLiteStorage(Storage):
    """A SQLite file, with this module's own connection, transactions and SQL (see the module's note)."""

    _errors = sqlite3.Error
    _explain = staticmethod(explain)

    def __init__(self, path: Path, busy_timeout: float, read_only: bool = False, empty_ok: bool = False):
        self.location = str(path)
        self.empty_ok = empty_ok
        self.busy_timeout = busy_timeout
        self.read_only = read_only
        self.raw = None  # the sqlite3.Connection, once open
        self.db = connect(str(path), type="db", use_lock_file=False, serial=True)
        if read_only and not path.is_file():
            raise DatabaseError(f"{path}: no such database file to read")
        try:
            if read_only:
                self.raw = sqlite3.connect(
                    f"file:{quote(str(path))}?mode=ro", uri=True, timeout=busy_timeout, isolation_level=None
                )
            else:
                self.raw = sqlite3.connect(str(path), timeout=busy_timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise explain(self.location, exc, "opening the database", busy_timeout) from exc
        self.db.connection = _NoCommitConnection(self.raw)
        self.db.change_count = 0
        self._open(f"{path}: the database is empty; nothing to read")

    def _facts(self) -> ownership.Facts:
        con = self.raw
        names = {name: kind for name, kind in con.execute("SELECT name, type FROM sqlite_master")}
        tables = tuple(sorted(n for n, k in names.items() if k == "table"))
        if "systems" not in names:
            return self._no_tables(tables)
        metadata = self.metadata()
        # the row count only matters (and costs a scan) for a database without the mark
        rows = (
            0
            if ownership.MARK_KEY in ownership.settings_of(metadata)
            else con.execute("SELECT COUNT(*) FROM systems").fetchone()[0]
        )
        has_index = FINGERPRINT_INDEX in names
        return ownership.Facts(self.location, True, tables, int(rows), metadata, has_index, complete=has_index)

    def _prepare_tables(self) -> None:
        self.db._initialize(self.db.connection)  # ASE's tables, when missing
        self.raw.execute(_FINGERPRINT_INDEX_SQL)

    # ------------------------------------------------------------ transactions
    def _tx_begin(self) -> sqlite3.Connection:
        self.raw.execute("BEGIN IMMEDIATE")  # waits up to busy_timeout for the write lock
        return self.raw

    def _tx_rollback(self, tx: sqlite3.Connection) -> None:
        if tx.in_transaction:
            try:
                tx.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # the journal rolls it back on the next open

    # ------------------------------------------------------------ reads straight from ASE's tables
    def metadata(self) -> dict[str, Any]:
        try:
            row = self.raw.execute("SELECT value FROM information WHERE name='metadata'").fetchone()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return {}
            raise
        return _metadata_of(row)

    def ids(self, sel: list[Any]) -> list[int]:
        keys, cmps = parse_selection(sel)
        sql, args = self.db.create_select_statement(keys, cmps, what="systems.id")
        return [r[0] for r in self.raw.execute(sql + " ORDER BY systems.id", args)]

    def raw_rows(self, ids: list[int], sel: list[Any]) -> Iterator[RawRow]:
        db = self.db
        deblob, decode = db.deblob, db.decode
        query = (
            "SELECT id, numbers, positions, cell, pbc, energy, forces, stress, magmoms, key_value_pairs, data "
            "FROM systems WHERE id BETWEEN ? AND ? ORDER BY id"
        )
        for chunk, wanted in _chunks(ids):
            for sid, z, pos, cell, pbc, energy, forces, stress, magmoms, kvp, data in self.raw.execute(
                query, (chunk[0], chunk[-1])
            ).fetchall():
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
                    deblob(magmoms),
                    json.loads(kvp),
                    {} if data is None or data == "null" else decode(data),
                )

    def duplicate_candidates(self, lo: float, hi: float) -> Iterator[tuple[int, Geometry]]:
        db, con = self.db, self.raw
        found = con.execute(
            f"SELECT id FROM number_key_values INDEXED BY {FINGERPRINT_INDEX} "
            f"WHERE key='{KEY_FINGERPRINT}' AND value BETWEEN ? AND ? ORDER BY id",
            (lo, hi),
        ).fetchall()
        for (cid,) in found:
            z, pos, cell, pbc = con.execute(
                "SELECT numbers, positions, cell, pbc FROM systems WHERE id=?", (cid,)
            ).fetchone()
            yield (
                int(cid),
                (
                    db.deblob(z, np.int32),
                    db.deblob(pos, shape=(-1, 3)),
                    db.deblob(cell, shape=(3, 3)),
                    (pbc & _PBC_BITS).astype(bool),
                ),
            )


def open_storage(
    location: str | os.PathLike,
    busy_timeout: float,
    read_only: bool = False,
    campaign: str | None = None,
    empty_ok: bool = False,
) -> Storage:
    """The storage of a ``.db`` file (created with its folder when missing) or of ``campaign`` in a server
    database (default: the ``public`` schema, where plain ASE puts its tables).  A file is one campaign:
    ``campaign`` is not used for it.  ``empty_ok`` (with ``read_only``): a database with nothing in it yet is
    opened ``empty`` instead of refused."""
    text = os.fspath(location)
    if is_url(text):
        if not text.startswith(("postgresql://", "postgres://")):
            raise DatabaseError(
                f"{redact_url(text)}: a database URL must be postgresql://user:password@host:port/name "
                "(or give a .db file)"
            )
        return PostgreSQLStorage(text, busy_timeout, campaign, read_only, empty_ok)
    path = Path(text).expanduser().resolve()
    if path.suffix != ".db":
        raise DatabaseError(f"{path}: the database file must end in .db (SQLite), or give a postgresql:// URL")
    if not read_only:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseError(
                f"{path}: cannot create the database's folder {path.parent}: {exc.strerror or exc}"
            ) from exc
    return SQLiteStorage(path, busy_timeout, read_only, empty_ok)


__all__ = [
    "open_storage",
    "explain",
    "Storage",
    "SQLiteStorage",
    "PostgreSQLStorage",
    "explain_pg",
    "Geometry",
    "RawRow",
]
