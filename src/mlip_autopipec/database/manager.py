"""The structure database: the pipeline's single source of truth, on ASE's database.

One row per structure.  Searchable metadata lives in ASE key-value pairs:

* ``source`` (text), ``generation`` (int), ``status`` (``pending`` /
  ``labelled`` / ``failed``), ``parent_id`` (int, when set);
* one boolean key ``label_<name>`` per label (``label_train``,
  ``label_validation``, ...), so selecting a label is an indexed key lookup;
* ``fingerprint`` (float): the duplicate index of :mod:`.fingerprint`.

Row data holds ``provenance`` (the generator's ``atoms.info``), the last
``failure_reason`` and the ``label_info`` given with the labels (wall time,
attempts, ...).  Energy (eV), forces (eV/Å) and stress (eV/Å^3) are ASE's own
columns, so ``ase db`` and ``row.toatoms()`` show them as usual.

Durability.  On SQLite the manager owns the connection it hands to ASE: every
write runs in one ``BEGIN IMMEDIATE`` transaction committed only when the call
returns, and the commits ASE would make on its own inside a long ``with db:``
block (every 5000 rows) are turned into no-ops.  A process killed in the middle
of :meth:`DatabaseManager.add_structures` therefore leaves the database as it
was before the call (SQLite's journal rolls the batch back).  Writers from
several processes wait for the lock (``busy_timeout``) instead of failing.
ASE's own lock file is not used: SQLite locks the file itself, and a lock file
left by a killed process would block every later writer.

Other ASE SQL backends (a ``postgresql://`` URL) go through the same ASE
calls; the SQLite-specific parts (transactions, the fingerprint index) are used
only on SQLite.
"""

from __future__ import annotations

import numbers
import os
import sqlite3
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from ase import Atoms
from ase.db import connect
from ase.db.core import now, parse_selection
from ase.db.row import AtomsRow
from pydantic import ValidationError

from mlip_autopipec.database import formats
from mlip_autopipec.database.fingerprint import content_hash, fingerprint, fingerprint_window, same_structure
from mlip_autopipec.database.metadata import TRAIN, VALIDATION, StructureMetadata, normalize_provenance
from mlip_autopipec.database.validation import attached_results, check_results, check_structure, describe
from mlip_autopipec.exceptions import DatabaseError, StructureError

PENDING, LABELLED, FAILED = "pending", "labelled", "failed"
STATUSES = (PENDING, LABELLED, FAILED)

KEY_SOURCE = "source"
KEY_GENERATION = "generation"
KEY_STATUS = "status"
KEY_PARENT = "parent_id"
KEY_FINGERPRINT = "fingerprint"
LABEL_PREFIX = "label_"
METADATA_KEY = "mlip_autopipec"

_OPTIONAL_ARRAYS = ("initial_magmoms", "initial_charges", "masses", "tags", "momenta")
_CHUNK = 1000  # rows read per query when iterating: bounded memory, few round trips


@dataclass(frozen=True)
class StoredStructure:
    """A structure read back from the database.

    Unpacks as ``atoms, metadata, id``.  ``atoms`` carries a single-point
    calculator with the labels (when labelled) and ``info`` = the provenance.
    ``failure_reason`` is the reason given to the last :meth:`DatabaseManager.mark_failed`
    (kept for the record after a reset or a later success).
    """

    atoms: Atoms
    metadata: StructureMetadata
    id: int
    status: str
    failure_reason: str | None = None
    label_info: dict[str, Any] | None = None

    def __iter__(self) -> Iterator[Any]:
        return iter((self.atoms, self.metadata, self.id))


class SplitCounts(NamedTuple):
    """How many structures carry each split label after :meth:`DatabaseManager.assign_split`."""

    train: int
    validation: int


class _NoCommitConnection:
    """The connection ASE is given: its own commits become no-ops, so the manager alone decides when to commit."""

    __slots__ = ("_con",)

    def __init__(self, con: sqlite3.Connection):
        self._con = con

    def commit(self) -> None:
        pass

    def rollback(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


class _Prepared(NamedTuple):
    """A validated structure ready to insert."""

    row: dict[str, Any]
    kvp: dict[str, Any]
    data: dict[str, Any]
    fp: float
    window: float
    results: tuple[float, np.ndarray, np.ndarray | None] | None
    has_split: bool


_PROBE = StructureMetadata(source="probe")


def _as_metadata(metadata: StructureMetadata | dict, where: str) -> StructureMetadata:
    if isinstance(metadata, StructureMetadata):
        return metadata
    if isinstance(metadata, dict):
        try:
            return StructureMetadata.model_validate(metadata)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(x) for x in e['loc']) or 'metadata'}: {e['msg']}" for e in exc.errors())
            raise StructureError(f"{where}: invalid metadata: {problems}") from None
    raise StructureError(f"{where}: metadata must be a StructureMetadata or a dict, got {type(metadata).__name__}")


def _check_id(structure_id: Any) -> int:
    if isinstance(structure_id, bool) or not isinstance(structure_id, numbers.Integral) or structure_id < 1:
        raise DatabaseError(f"a structure id is a positive integer, got {structure_id!r}")
    return int(structure_id)


class DatabaseManager:
    """A persistent, validated store of structures, their labels and their provenance.

    ``path_or_url`` is a SQLite file ending in ``.db`` (created with its
    directory when missing) or a ``postgresql://`` URL understood by ASE.
    ``reference_energies`` (eV per atom of each element, default 0) are
    subtracted to make pacemaker's ``energy_corrected``.  Two structures whose
    species agree and whose positions and cell agree within
    ``duplicate_tolerance`` (Å) are the same structure.  A writer waits up to
    ``busy_timeout`` (s) for another process's write to finish.

    Use as a context manager, or call :meth:`close`.  A manager (its SQLite
    connection) belongs to the thread that made it; other processes open their
    own manager on the same file.
    """

    def __init__(
        self,
        path_or_url: str | os.PathLike,
        *,
        reference_energies: dict[str, float] | None = None,
        duplicate_tolerance: float = 1e-6,
        busy_timeout: float = 600.0,
    ):
        if not (isinstance(duplicate_tolerance, numbers.Real) and 0.0 <= duplicate_tolerance < 0.1):
            raise DatabaseError(f"duplicate_tolerance must be in [0, 0.1) Å, got {duplicate_tolerance!r}")
        if not (isinstance(busy_timeout, numbers.Real) and busy_timeout > 0):
            raise DatabaseError(f"busy_timeout must be a positive number of seconds, got {busy_timeout!r}")
        self.reference_energies = dict(reference_energies or {})
        formats.reference_table(self.reference_energies)  # validate now, not at export time
        self.duplicate_tolerance = float(duplicate_tolerance)
        self.busy_timeout = float(busy_timeout)
        self._in_tx = False
        self._con: sqlite3.Connection | None = None

        text = os.fspath(path_or_url)
        if text.startswith(("postgresql://", "postgres://")):
            self.location = text
            self._sqlite = False
            try:
                self._db = connect(text, serial=True)
            except ImportError as exc:
                raise DatabaseError(f"{text}: ASE's PostgreSQL backend needs the ase-db-backends package: {exc}") from exc
            return
        path = Path(text).expanduser().resolve()
        if path.suffix != ".db":
            raise DatabaseError(f"{path}: the database file must end in .db (SQLite), or give a postgresql:// URL")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.location = str(path)
        self._sqlite = True
        self._db = connect(str(path), type="db", use_lock_file=False, serial=True)
        try:
            self._con = sqlite3.connect(str(path), timeout=self.busy_timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise DatabaseError(f"{path}: cannot open the database: {exc}") from exc
        self._db.connection = _NoCommitConnection(self._con)
        self._db.change_count = 0
        try:
            with self._write_tx():
                self._db._initialize(self._db.connection)
                self._con.execute(
                    "CREATE INDEX IF NOT EXISTS mlip_autopipec_fingerprint ON number_key_values(value) "
                    f"WHERE key='{KEY_FINGERPRINT}'"
                )
        except (OSError, sqlite3.Error, DatabaseError) as exc:
            self.close()
            if isinstance(exc, DatabaseError):
                raise
            raise DatabaseError(f"{path}: not a usable ASE database: {exc}") from exc

    # ----------------------------------------------------------- lifecycle
    def close(self) -> None:
        """Close the connection (idempotent)."""
        if self._con is not None:
            self._db.connection = None
            self._con.close()
            self._con = None

    def __enter__(self) -> "DatabaseManager":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DatabaseManager({self.location!r})"

    def __len__(self) -> int:
        return self.count()

    def _live(self) -> None:
        if self._sqlite and self._con is None:
            raise DatabaseError(f"{self.location}: the database manager is closed")

    @contextmanager
    def _write_tx(self) -> Iterator[None]:
        """One write transaction: all of the block is committed when it ends, or nothing is."""
        self._live()
        if self._in_tx:
            yield
            return
        if not self._sqlite:
            with self._db:
                self._in_tx = True
                try:
                    yield
                finally:
                    self._in_tx = False
            return
        con = self._con
        try:
            con.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise DatabaseError(
                f"{self.location}: could not take the write lock within {self.busy_timeout:g} s (another process is writing?): {exc}"
            ) from exc
        self._in_tx = True
        try:
            yield
            con.execute("COMMIT")
        except BaseException as exc:
            if con.in_transaction:
                con.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise DatabaseError(f"{self.location}: write failed and was rolled back: {exc}") from exc
            raise
        finally:
            self._in_tx = False

    # ----------------------------------------------------------- settings kept in the database
    def _stored_settings(self) -> dict[str, Any]:
        """The manager's settings in ASE's metadata, read fresh (another process may have changed them)."""
        if self._sqlite:
            import json

            row = self._con.execute("SELECT value FROM information WHERE name='metadata'").fetchone()
            md = json.loads(row[0]) if row else {}
        else:
            md = self._db.metadata
        return dict(md.get(METADATA_KEY, {}))

    def _store_settings(self, settings: dict[str, Any]) -> None:
        if self._sqlite:
            import json

            row = self._con.execute("SELECT value FROM information WHERE name='metadata'").fetchone()
            md = json.loads(row[0]) if row else {}
        else:
            md = self._db.metadata
        md[METADATA_KEY] = settings
        self._db.metadata = md

    def split_settings(self) -> tuple[float, int] | None:
        """``(validation_fraction, seed)`` given to :meth:`assign_split`, or ``None`` before the first call."""
        self._live()
        split = self._stored_settings().get("split")
        return None if split is None else (float(split["validation_fraction"]), int(split["seed"]))

    # ----------------------------------------------------------- adding structures
    def add_structure(self, atoms: Atoms, metadata: StructureMetadata | dict) -> int:
        """Store one structure and return its id (the existing id when the same structure is already stored).

        A structure carrying results (a calculator with energy and forces, and
        optionally stress, computed for these positions) is stored ``labelled``,
        otherwise ``pending``.  ``atoms.info`` is merged into the provenance
        (``metadata.provenance`` wins on a shared key).  When a split is set
        (:meth:`assign_split`), the structure gets its ``train`` or
        ``validation`` label on arrival.  Raises :class:`StructureError` for an
        invalid structure; nothing is stored then.
        """
        return self.add_structures([atoms], metadata)[0]

    def add_structures(
        self, atoms_list: Iterable[Atoms], metadata: StructureMetadata | dict | Sequence[StructureMetadata | dict]
    ) -> list[int]:
        """Store many structures in one transaction (all or nothing); return their ids in order.

        ``metadata`` is one record for all structures or a sequence with one per
        structure.  Every structure is validated before anything is written; a
        duplicate (of a stored structure or of an earlier one in the batch)
        returns the existing id.  When a duplicate brings labels and the stored
        structure has none, the labels are stored.
        """
        items = list(atoms_list)
        if isinstance(metadata, (StructureMetadata, dict)):
            metas = [_as_metadata(metadata, "metadata")] * len(items)
        elif isinstance(metadata, Sequence) and not isinstance(metadata, (str, bytes)):
            if len(metadata) != len(items):
                raise StructureError(f"got {len(items)} structures but {len(metadata)} metadata records")
            metas = [_as_metadata(m, f"metadata of structure {i} of the batch") for i, m in enumerate(metadata)]
        else:
            raise StructureError(f"metadata must be a StructureMetadata, a dict or a list of them, got {type(metadata).__name__}")
        base: dict[int, tuple[dict[str, Any], bool]] = {}
        prepared = []
        for i, (atoms, meta) in enumerate(zip(items, metas)):
            where = f"structure {i} of the batch" if len(items) > 1 else "structure"
            if isinstance(atoms, Atoms):
                where += f" ({describe(atoms)})"
            if id(meta) not in base:
                base[id(meta)] = self._base_kvp(meta)
            prepared.append(self._prepare(atoms, meta, base[id(meta)], where))
        if not prepared:
            return []
        with self._write_tx():
            split = self._stored_settings().get("split")
            return [self._insert(p, split) for p in prepared]

    @staticmethod
    def _base_kvp(meta: StructureMetadata) -> tuple[dict[str, Any], bool]:
        kvp: dict[str, Any] = {KEY_SOURCE: meta.source, KEY_GENERATION: meta.generation}
        if meta.parent_id is not None:
            kvp[KEY_PARENT] = meta.parent_id
        for label in meta.labels:
            kvp[LABEL_PREFIX + label] = True
        return kvp, (TRAIN in meta.labels or VALIDATION in meta.labels)

    def _prepare(self, atoms: Any, meta: StructureMetadata, base: tuple[dict[str, Any], bool], where: str) -> _Prepared:
        check_structure(atoms, where)
        results = attached_results(atoms, where)
        if atoms.info:
            provenance = normalize_provenance(dict(atoms.info), f"{where}: atoms.info")
            provenance.update(meta.provenance)
        else:
            provenance = meta.provenance
        numbers_, positions = atoms.numbers, atoms.positions
        cell = atoms.cell.array
        row: dict[str, Any] = {
            "numbers": numbers_,
            "positions": positions,
            "unique_id": uuid.uuid4().hex,
            "ctime": now(),
            "user": os.getenv("USER"),
            "pbc": atoms.pbc,
            "cell": cell,
        }
        for name in _OPTIONAL_ARRAYS:
            if name in atoms.arrays:
                row[name] = atoms.arrays[name]
        if atoms.constraints:
            row["constraints"] = [c.todict() for c in atoms.constraints]
        if results is not None:
            row["energy"], row["forces"] = results[0], results[1]
            if results[2] is not None:
                row["stress"] = results[2]
        kvp = dict(base[0])
        kvp[KEY_STATUS] = LABELLED if results is not None else PENDING
        fp = fingerprint(numbers_, positions, cell)
        kvp[KEY_FINGERPRINT] = fp
        data = {"provenance": provenance} if provenance else {}
        return _Prepared(row, kvp, data, fp, fingerprint_window(len(numbers_), fp, self.duplicate_tolerance), results, base[1])

    def _insert(self, p: _Prepared, split: dict[str, Any] | None) -> int:
        existing = self._find_duplicate(p)
        if existing is not None:
            if p.results is not None:
                row = self._db.get(id=existing)
                if row.get(KEY_STATUS) != LABELLED:
                    self._write_labels(row, *p.results, info=None)
            return existing
        kvp = p.kvp
        if split is not None and not p.has_split:
            kvp = dict(kvp)
            r = p.row
            u = content_hash(r["numbers"], r["positions"], r["cell"], r["pbc"], split["seed"])
            kvp[LABEL_PREFIX + (VALIDATION if u < split["validation_fraction"] else TRAIN)] = True
        return int(self._db.write(AtomsRow(p.row), key_value_pairs=kvp, data=p.data))

    def find_duplicate(self, atoms: Atoms) -> int | None:
        """The id of the stored structure that ``atoms`` duplicates (same species and periodicity, positions
        and cell within ``duplicate_tolerance``), or ``None``.  Stores nothing.

        Raises :class:`StructureError` for a structure the database would refuse.
        """
        self._live()
        p = self._prepare(atoms, _PROBE, self._base_kvp(_PROBE), "structure")
        return self._find_duplicate(p)

    def _find_duplicate(self, p: _Prepared) -> int | None:
        lo, hi = p.fp - p.window, p.fp + p.window
        r = p.row
        if self._sqlite:
            db = self._db
            candidates = self._con.execute(
                f"SELECT id FROM number_key_values INDEXED BY mlip_autopipec_fingerprint "
                f"WHERE key='{KEY_FINGERPRINT}' AND value BETWEEN ? AND ? ORDER BY id",
                (lo, hi),
            ).fetchall()
            for (cid,) in candidates:
                numbers_, positions, cell, pbc = self._con.execute(
                    "SELECT numbers, positions, cell, pbc FROM systems WHERE id=?", (cid,)
                ).fetchone()
                if same_structure(
                    r["numbers"], r["positions"], r["cell"], r["pbc"],
                    db.deblob(numbers_, np.int32), db.deblob(positions, shape=(-1, 3)), db.deblob(cell, shape=(3, 3)),
                    (pbc & np.array([1, 2, 4])).astype(bool),
                    self.duplicate_tolerance,
                ):  # fmt: skip
                    return int(cid)
            return None
        sel = [(KEY_FINGERPRINT, ">=", lo), (KEY_FINGERPRINT, "<=", hi)]
        for row in self._db.select(sel, columns=["id", "numbers", "positions", "cell", "pbc"], include_data=False, sort="id"):
            if same_structure(r["numbers"], r["positions"], r["cell"], r["pbc"], row.numbers, row.positions, row.cell, row.pbc, self.duplicate_tolerance):
                return int(row.id)
        return None

    # ----------------------------------------------------------- labels and failures
    def _row(self, structure_id: Any) -> AtomsRow:
        sid = _check_id(structure_id)
        try:
            return self._db.get(id=sid)
        except KeyError:
            raise DatabaseError(f"{self.location}: no structure with id {sid}") from None

    def set_labels(
        self,
        structure_id: int,
        energy: float,
        forces: Any,
        stress: Any = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        """Store the reference energy (eV), forces (eV/Å, shape (natoms, 3)) and optional stress
        (eV/Å^3, 6 Voigt components or 3x3) of a structure; its status becomes ``labelled``.

        ``info`` (e.g. wall time, attempts, code version) is kept with the
        labels.  A failed structure may be labelled (a rerun healed it); a
        labelled one is relabelled.  Raises :class:`StructureError` for invalid
        labels and :class:`DatabaseError` for an unknown id; nothing is stored then.
        """
        sid = _check_id(structure_id)
        label_info = normalize_provenance(dict(info), f"structure id {sid}: info") if info else None
        with self._write_tx():
            row = self._row(sid)
            e, f, s = check_results(energy, forces, stress, row.natoms, f"structure id {sid}")
            self._write_labels(row, e, f, s, label_info)

    def _write_labels(self, row: AtomsRow, energy: float, forces: np.ndarray, stress: np.ndarray | None, info: dict | None) -> None:
        row.energy = energy
        row.forces = forces
        if stress is not None:
            row.stress = stress
        elif "stress" in row:
            del row.stress
        row._constrained_forces = None
        kvp = row.key_value_pairs
        kvp[KEY_STATUS] = LABELLED
        data = dict(row.data)
        if info:
            data["label_info"] = info
        else:
            data.pop("label_info", None)
        self._db.write(row, key_value_pairs=kvp, data=data, id=row.id)

    def mark_failed(self, structure_id: int, reason: str) -> None:
        """Record that labelling a structure failed: status ``failed``, with ``reason`` (any length of text).

        Raises :class:`DatabaseError` for an unknown id or a labelled structure.
        """
        sid = _check_id(structure_id)
        if not isinstance(reason, str) or not reason.strip():
            raise DatabaseError(f"structure id {sid}: a failure needs a non-empty reason (text), got {reason!r}")
        with self._write_tx():
            row = self._row(sid)
            if row.get(KEY_STATUS) == LABELLED:
                raise DatabaseError(f"{self.location}: structure id {sid} is labelled; a labelled structure cannot be marked failed")
            self._db.update(sid, data={"failure_reason": reason}, **{KEY_STATUS: FAILED})

    def reset_failed(self) -> int:
        """Make every failed structure pending again (their last reasons are kept); return how many."""
        with self._write_tx():
            ids = self.ids(status=FAILED)
            for sid in ids:
                self._db.update(sid, **{KEY_STATUS: PENDING})
        return len(ids)

    # ----------------------------------------------------------- split
    def assign_split(self, validation_fraction: float, seed: int) -> SplitCounts:
        """Give every structure without a split label ``validation`` with probability
        ``validation_fraction``, else ``train``; return the totals.

        The draw hashes ``seed`` with the structure's content, so it does not
        depend on ids or on the order of insertion.  A structure's split never
        changes once given; the setting is stored in the database and structures
        added later get theirs on arrival.  Calling again with the same
        arguments only labels structures that have none; other arguments raise
        :class:`DatabaseError` (the split of a database is fixed).
        """
        if isinstance(validation_fraction, bool) or not isinstance(validation_fraction, numbers.Real) or not (
            0.0 <= validation_fraction <= 1.0
        ):
            raise DatabaseError(f"validation_fraction must be a number in [0, 1], got {validation_fraction!r}")
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise DatabaseError(f"seed must be an integer, got {seed!r}")
        wanted = {"validation_fraction": float(validation_fraction), "seed": int(seed)}
        with self._write_tx():
            settings = self._stored_settings()
            current = settings.get("split")
            if current is not None and current != wanted:
                raise DatabaseError(
                    f"{self.location}: the split is already set (validation_fraction={current['validation_fraction']}, "
                    f"seed={current['seed']}); it cannot change to validation_fraction={wanted['validation_fraction']}, "
                    f"seed={wanted['seed']} without reshuffling existing structures"
                )
            if current is None:
                settings["split"] = wanted
                self._store_settings(settings)
            todo = [
                (row.id, content_hash(row.numbers, row.positions, row.cell, row.pbc, wanted["seed"]))
                for row in self._db.select(
                    f"-{LABEL_PREFIX}{TRAIN},-{LABEL_PREFIX}{VALIDATION}",
                    columns=["id", "numbers", "positions", "cell", "pbc"],
                    include_data=False,
                )
            ]
            for sid, u in todo:
                label = VALIDATION if u < wanted["validation_fraction"] else TRAIN
                self._db.update(sid, **{LABEL_PREFIX + label: True})
            return SplitCounts(self.count(label=TRAIN), self.count(label=VALIDATION))

    # ----------------------------------------------------------- queries
    def _selection(
        self,
        source: str | None = None,
        generation: int | None = None,
        label: str | None = None,
        status: str | None = None,
    ) -> list[Any]:
        sel: list[Any] = []
        if source is not None:
            if not isinstance(source, str):
                raise DatabaseError(f"source must be text, got {source!r}")
            sel.append((KEY_SOURCE, "=", source))
        if generation is not None:
            if isinstance(generation, bool) or not isinstance(generation, numbers.Integral):
                raise DatabaseError(f"generation must be an integer, got {generation!r}")
            sel.append((KEY_GENERATION, "=", int(generation)))
        if label is not None:
            if not isinstance(label, str) or not label.isidentifier():
                raise DatabaseError(f"label must be an identifier such as 'train', got {label!r}")
            sel.append(LABEL_PREFIX + label)
        if status is not None:
            if status not in STATUSES:
                raise DatabaseError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
            sel.append((KEY_STATUS, "=", status))
        return sel

    def ids(
        self,
        source: str | None = None,
        generation: int | None = None,
        label: str | None = None,
        status: str | None = None,
        ids: Iterable[int] | None = None,
    ) -> list[int]:
        """Ids of the structures matching every given filter, ascending."""
        self._live()
        sel = self._selection(source, generation, label, status)
        if self._sqlite:
            keys, cmps = parse_selection(sel)
            sql, args = self._db.create_select_statement(keys, cmps, what="systems.id")
            found = [r[0] for r in self._con.execute(sql + " ORDER BY systems.id", args)]
        else:
            found = sorted(r.id for r in self._db.select(sel, columns=["id"], include_data=False))
        if ids is not None:
            wanted = {_check_id(i) for i in ids}
            found = [i for i in found if i in wanted]
        return found

    def count(self, **filters: Any) -> int:
        """Number of structures matching the filters (``source``, ``generation``, ``label``, ``status``, ``ids``)."""
        self._live()
        unknown = set(filters) - {"source", "generation", "label", "status", "ids"}
        if unknown:
            raise DatabaseError(f"unknown filter(s) {sorted(unknown)}; use source, generation, label, status, ids")
        if filters.get("ids") is not None:
            return len(self.ids(**filters))
        filters.pop("ids", None)
        return int(self._db.count(self._selection(**filters)))

    def _rows(self, ids: list[int], sel: list[Any], include_data: bool = True) -> Iterator[AtomsRow]:
        """The rows of ``ids`` (ascending), read ``_CHUNK`` at a time by id range."""
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            wanted = set(chunk)
            rng = [("id", ">=", chunk[0]), ("id", "<=", chunk[-1])]
            rows = [r for r in self._db.select(sel + rng, include_data=include_data) if r.id in wanted]
            rows.sort(key=lambda r: r.id)
            yield from rows

    def select(
        self,
        source: str | None = None,
        generation: int | None = None,
        label: str | None = None,
        status: str | None = None,
        ids: Iterable[int] | None = None,
    ) -> Iterator[StoredStructure]:
        """Yield the matching structures as :class:`StoredStructure` (``atoms, metadata, id``), by ascending id.

        Rows are read in chunks, so iterating a large database holds little memory.
        """
        sel = self._selection(source, generation, label, status)
        for row in self._rows(self.ids(source, generation, label, status, ids), sel):
            yield self._record(row)

    def get(self, structure_id: int) -> tuple[Atoms, StructureMetadata]:
        """The structure and its metadata; :class:`DatabaseError` for an unknown id."""
        self._live()
        rec = self._record(self._row(structure_id))
        return rec.atoms, rec.metadata

    def record(self, structure_id: int) -> StoredStructure:
        """Everything stored about one structure (status, failure reason, label info)."""
        self._live()
        return self._record(self._row(structure_id))

    def status(self, structure_id: int) -> str:
        """``pending``, ``labelled`` or ``failed``."""
        self._live()
        return str(self._row(structure_id).get(KEY_STATUS))

    @staticmethod
    def _metadata_of(kvp: dict[str, Any], data: dict[str, Any]) -> StructureMetadata:
        labels = sorted(k[len(LABEL_PREFIX) :] for k, v in kvp.items() if k.startswith(LABEL_PREFIX) and v)
        parent = kvp.get(KEY_PARENT)
        # Trusted: these values were validated on the way in.
        return StructureMetadata.model_construct(
            source=kvp.get(KEY_SOURCE, "unknown"),
            generation=int(kvp.get(KEY_GENERATION, 0)),
            labels=labels,
            provenance=dict(data.get("provenance", {})),
            parent_id=None if parent is None else int(parent),
        )

    def _record(self, row: AtomsRow) -> StoredStructure:
        data = dict(row.data)
        meta = self._metadata_of(row.key_value_pairs, data)
        atoms = row.toatoms()
        atoms.info = dict(meta.provenance)
        label_info = data.get("label_info")
        return StoredStructure(
            atoms=atoms,
            metadata=meta,
            id=int(row.id),
            status=str(row.get(KEY_STATUS)),
            failure_reason=data.get("failure_reason"),
            label_info=dict(label_info) if label_info is not None else None,
        )

    # ----------------------------------------------------------- datasets
    def _raw_rows(self, ids: list[int], sel: list[Any]) -> Iterator[tuple]:
        """``(id, numbers, positions, cell, pbc, energy, forces, stress, key_value_pairs, data)`` of ``ids``.

        On SQLite the columns are read straight from ASE's ``systems`` table
        (ASE's row objects cost twice the time and look up external tables per
        row); elsewhere through ASE's rows.
        """
        if not self._sqlite:
            for row in self._rows(ids, sel):
                yield (row.id, row.numbers, row.positions, row.cell, row.pbc, row.get("energy"),
                       row.get("forces"), row.get("stress"), row.key_value_pairs, dict(row.data))  # fmt: skip
            return
        import json

        db = self._db
        deblob, decode = db.deblob, db.decode
        bits = np.array([1, 2, 4])
        query = (
            "SELECT id, numbers, positions, cell, pbc, energy, forces, stress, key_value_pairs, data "
            "FROM systems WHERE id BETWEEN ? AND ? ORDER BY id"
        )
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            wanted = set(chunk)
            for sid, z, pos, cell, pbc, energy, forces, stress, kvp, data in self._con.execute(query, (chunk[0], chunk[-1])).fetchall():
                if sid not in wanted:
                    continue
                yield (
                    sid,
                    deblob(z, np.int32),
                    deblob(pos, shape=(-1, 3)),
                    deblob(cell, shape=(3, 3)),
                    (pbc & bits).astype(bool),
                    energy,
                    deblob(forces, shape=(-1, 3)),
                    deblob(stress),
                    json.loads(kvp),
                    {} if data is None or data == "null" else decode(data),
                )

    def _export_records(self, ids: list[int], sel: list[Any]) -> Iterator[formats.ExportRecord]:
        for sid, z, pos, cell, pbc, energy, forces, stress, kvp, data in self._raw_rows(ids, sel):
            source = kvp.get(KEY_SOURCE, "unknown")
            info: dict[str, Any] = {
                "db_id": int(sid),
                "source": source,
                "generation": int(kvp.get(KEY_GENERATION, 0)),
                "labels": sorted(k[len(LABEL_PREFIX) :] for k, v in kvp.items() if k.startswith(LABEL_PREFIX) and v),
                "provenance": data.get("provenance", {}),
            }
            if kvp.get(KEY_PARENT) is not None:
                info["parent_id"] = int(kvp[KEY_PARENT])
            yield formats.ExportRecord(
                atoms=Atoms(numbers=z, positions=pos, cell=cell, pbc=pbc),
                energy=float(energy),
                forces=np.array(forces, dtype=float),
                stress=None if stress is None else np.array(stress, dtype=float),
                name=f"{source}/{sid}",
                info=info,
            )

    def save_dataset(
        self,
        filepath: str | os.PathLike,
        *,
        source: str | None = None,
        generation: int | None = None,
        label: str | None = None,
        ids: Iterable[int] | None = None,
        reference_energies: dict[str, float] | None = None,
    ) -> int:
        """Write the labelled structures matching the filters to ``filepath``; return how many.

        By suffix: ``.pckl.gzip`` writes pacemaker's DataFrame (``name``,
        ``energy``, ``energy_corrected`` = energy minus the per-atom reference
        energies, ``forces``, ``ase_atoms``, and ``stress`` when known);
        ``.xyz``/``.extxyz`` writes extended XYZ with energy, forces, stress and
        the metadata.  ``reference_energies`` (eV per atom) overrides the
        manager's.  Only labelled structures are written; an empty selection
        raises :class:`DatabaseError`.  The file appears under its name only
        once complete.
        """
        kind = formats.dataset_format(filepath)
        refs = self.reference_energies if reference_energies is None else dict(reference_energies)
        sel = self._selection(source, generation, label, LABELLED)
        chosen = self.ids(source, generation, label, LABELLED, ids)
        if not chosen:
            filters = {k: v for k, v in dict(source=source, generation=generation, label=label).items() if v is not None}
            raise DatabaseError(
                f"{self.location}: no labelled structure matches {filters or 'the selection'}; refusing to write an empty {filepath}"
            )
        records = self._export_records(chosen, sel)
        if kind == "pacemaker":
            return formats.write_pacemaker(filepath, records, refs)
        return formats.write_extxyz(filepath, records)

    @staticmethod
    def load_dataset(filepath: str | os.PathLike) -> list[Atoms]:
        """Read a dataset written by :meth:`save_dataset` (or any pacemaker ``.pckl.gzip`` / extended XYZ).

        Each structure has a single-point calculator with energy, forces and
        stress (when known) and its metadata in ``info``.  Callable on the class
        or on an instance.

        Warning: a ``.pckl.gzip`` file is a Python pickle, and loading a pickle
        runs code chosen by whoever wrote the file.  Load only files you trust.
        """
        return formats.read_dataset(filepath)


__all__ = ["DatabaseManager", "StoredStructure", "SplitCounts", "STATUSES", "PENDING", "LABELLED", "FAILED"]
