"""The structure database's front door: :class:`DatabaseManager`, a thin facade over the modules that do the work
(the map is in the package's docstring, :mod:`mlip_autopipec.database`).

Every write is one transaction (all or nothing, also when the process is
killed); every sqlite3 or psycopg2 error reaches the caller as a :class:`DatabaseError`
naming the file and what to do.
"""

from __future__ import annotations

import functools
import numbers
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from ase import Atoms

from mlip_autopipec.database import campaigns, export, formats, insert, labels, ownership, queries, teacher
from mlip_autopipec.database.location import database_file
from mlip_autopipec.database.metadata import StructureMetadata
from mlip_autopipec.database.ownership import Origin
from mlip_autopipec.database.schema import (
    FAILED,
    KEY_STATUS,
    LABELLED,
    PENDING,
    STATUSES,
    SplitCounts,
    StoredStructure,
    as_metadata,
)
from mlip_autopipec.database.storage import Storage, open_storage
from mlip_autopipec.database.validation import describe
from mlip_autopipec.exceptions import DatabaseError, StructureError

_F = TypeVar("_F", bound=Callable[..., Any])
_PROBE = StructureMetadata(source="probe")


def _guarded(doing: str) -> Callable[[_F], _F]:
    """Run a method on a live database, with the backend's errors translated into :class:`DatabaseError`."""

    def wrap(method: _F) -> _F:
        @functools.wraps(method)
        def wrapper(self: DatabaseManager, *args: Any, **kwargs: Any) -> Any:
            try:
                self._storage.live()
                with self._storage.guard(doing):
                    return method(self, *args, **kwargs)
            except DatabaseError:
                if not self._storage.lost():
                    raise
            # the server dropped the connection (restart, idle timeout): once more on a new one.  Safe for
            # writes too: each is one transaction (rolled back, or committed before the drop), and every
            # write is idempotent (a duplicate returns the stored id; labels, failures, the split set the same)
            self._storage.live()
            with self._storage.guard(doing):
                return method(self, *args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return wrap


class DatabaseManager:
    """A persistent, validated store of structures, their labels and their provenance.

    ``path_or_url`` is a SQLite file ending in ``.db`` (created with its
    directory when missing) or a ``postgresql://`` URL understood by ASE.
    Only a database made by mlip-autopipec (or a new, empty one) is opened;
    another program's database is refused and left untouched (see
    :mod:`.ownership`).  ``reference_energies`` (eV per atom of each element,
    default 0) are subtracted to make pacemaker's ``energy_corrected``.  Two
    structures whose species agree and whose positions and cell agree within
    ``duplicate_tolerance`` (Å) are the same structure.  A writer waits up to
    ``busy_timeout`` (s) for another process's write to finish.
    ``read_only=True`` opens the database for reading only (nothing is
    written, not even on opening).

    ``campaign`` (PostgreSQL only; default ``public``) names the campaign
    whose structures this manager reads and writes: one PostgreSQL schema per
    campaign, so several campaigns share a database without seeing each
    other's rows, and any number of processes may write to one campaign at
    once (each write waits for the campaign's lock).  A SQLite file is one
    campaign; ``campaign`` is not used for it.  Put no password in the URL
    that a config holds: libpq reads it from ``PGPASSWORD`` or ``~/.pgpass``.
    ``location`` (and every message) shows the URL without its password.

    Use as a context manager, or call :meth:`close`.  A manager (its SQLite
    connection) belongs to the thread that made it; other processes open their
    own manager on the same file.
    """

    _storage: Storage
    location: str
    reference_energies: dict[str, float]
    duplicate_tolerance: float
    busy_timeout: float

    def __init__(
        self,
        path_or_url: str | os.PathLike,
        *,
        reference_energies: dict[str, float] | None = None,
        duplicate_tolerance: float = 1e-6,
        busy_timeout: float = 600.0,
        read_only: bool = False,
        campaign: str | None = None,
    ):
        if not (isinstance(duplicate_tolerance, numbers.Real) and 0.0 <= duplicate_tolerance < 0.1):
            raise DatabaseError(f"duplicate_tolerance must be in [0, 0.1) Å, got {duplicate_tolerance!r}")
        if not (isinstance(busy_timeout, numbers.Real) and busy_timeout > 0):
            raise DatabaseError(f"busy_timeout must be a positive number of seconds, got {busy_timeout!r}")
        self.reference_energies = dict(reference_energies or {})
        formats.reference_table(self.reference_energies)  # validate now, not at export time
        self.duplicate_tolerance = float(duplicate_tolerance)
        self.busy_timeout = float(busy_timeout)
        self._storage = open_storage(path_or_url, self.busy_timeout, read_only, campaign)
        self.location = self._storage.location

    # ----------------------------------------------------------- lifecycle
    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._storage.close()

    def __enter__(self) -> DatabaseManager:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DatabaseManager({self.location!r})"

    def __len__(self) -> int:
        return self.count()

    # ----------------------------------------------------------- settings
    @_guarded("reading the split settings")
    def split_settings(self) -> tuple[float, int] | None:
        """``(validation_fraction, seed)`` given to :meth:`assign_split`, or ``None`` before the first call."""
        return labels.split_settings(self._storage)

    @_guarded("reading what made the database")
    def origin(self) -> Origin | None:
        """What made the database (:meth:`record_origin`), or ``None`` when nothing is recorded."""
        return ownership.origin_of(self._storage.settings())

    @_guarded("recording what made the database")
    def record_origin(self, origin: Origin) -> None:
        """Record what made the database (config fingerprints, work directory), unless it is recorded already."""
        store = self._storage
        with store.write_tx():
            if ownership.origin_of(store.settings()) != origin:
                store.store_settings(ownership.with_origin(store.settings(), origin))

    def bind_to_workdir(self, workdir: str | os.PathLike) -> None:
        """Tie a server campaign named after its work directory to that directory (call when no campaign was
        configured): recorded on first use; another work directory of the same name is refused with a
        :class:`DatabaseError`, so two runs called ``run1`` in different folders never mix their structures.
        Nothing to do for a SQLite file (one per work directory).
        """
        self._storage.live()
        with self._storage.guard("checking the campaign's work directory"):
            campaigns.bind_to_workdir(self._storage, workdir)

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

    @_guarded("adding structures")
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
            metas = [as_metadata(metadata, "metadata")] * len(items)
        elif isinstance(metadata, Sequence) and not isinstance(metadata, (str, bytes)):
            if len(metadata) != len(items):
                raise StructureError(f"got {len(items)} structures but {len(metadata)} metadata records")
            metas = [as_metadata(m, f"metadata of structure {i} of the batch") for i, m in enumerate(metadata)]
        else:
            raise StructureError(
                f"metadata must be a StructureMetadata, a dict or a list of them, got {type(metadata).__name__}"
            )
        base: dict[int, tuple[dict[str, Any], bool]] = {}
        prepared = []
        for i, (atoms, meta) in enumerate(zip(items, metas, strict=True)):
            where = f"structure {i} of the batch" if len(items) > 1 else "structure"
            if isinstance(atoms, Atoms):
                where += f" ({describe(atoms)})"
            if id(meta) not in base:
                base[id(meta)] = insert.base_kvp(meta)
            prepared.append(insert.prepare(atoms, meta, base[id(meta)], where, self.duplicate_tolerance))
        if not prepared:
            return []
        store = self._storage
        with store.write_tx():
            split = store.settings().get("split")
            return [insert.insert(store, p, split, self.duplicate_tolerance) for p in prepared]

    @_guarded("looking for a duplicate")
    def find_duplicate(self, atoms: Atoms) -> int | None:
        """The id of the stored structure that ``atoms`` duplicates (same species and periodicity, positions
        and cell within ``duplicate_tolerance``), or ``None``.  Stores nothing.

        Raises :class:`StructureError` for a structure the database would refuse.
        """
        p = insert.prepare(atoms, _PROBE, insert.base_kvp(_PROBE), "structure", self.duplicate_tolerance)
        return insert.find_duplicate(self._storage, p, self.duplicate_tolerance)

    # ----------------------------------------------------------- labels, failures, split
    @_guarded("storing labels")
    def set_labels(
        self,
        structure_id: int,
        energy: float,
        forces: Any,
        stress: Any = None,
        info: dict[str, Any] | None = None,
        magmoms: Any = None,
        magmom: float | None = None,
    ) -> None:
        """Store the reference energy (eV), forces (eV/Å, shape (natoms, 3)) and optional stress
        (eV/Å^3, 6 Voigt components or 3x3) of a structure; its status becomes ``labelled``.

        ``info`` (e.g. wall time, attempts, code version) is kept with the
        labels; so are the final magnetic moments of a spin-polarised calculation (μB): ``magmoms`` per atom and
        ``magmom`` of the cell, in ASE's columns (``row.toatoms().get_magnetic_moments()``).  A failed structure
        may be labelled (a rerun healed it); a labelled one is relabelled.  Raises :class:`StructureError` for
        invalid labels and :class:`DatabaseError` for an unknown id; nothing is stored then.
        """
        labels.set_labels(self._storage, structure_id, energy, forces, stress, info, magmoms, magmom)

    @_guarded("recording a failure")
    def mark_failed(self, structure_id: int, reason: str) -> None:
        """Record that labelling a structure failed: status ``failed``, with ``reason`` (any length of text).

        Raises :class:`DatabaseError` for an unknown id or a labelled structure.
        """
        labels.mark_failed(self._storage, structure_id, reason)

    @_guarded("resetting failed structures")
    def reset_failed(self, ids: Iterable[int] | None = None) -> int:
        """Make every failed structure (or those of ``ids``) pending again; return how many.

        Each one's failure reason is appended to ``failure_history`` in its data
        (with the time of the reset): the provenance keeps every earlier failure.
        """
        return len(labels.reset_failed(self._storage, ids))

    @_guarded("checking that the database can be written")
    def check_writable(self) -> None:
        """Raise :class:`DatabaseError` (read-only file or folder, full disk) before any work is spent."""
        labels.check_writable(self._storage)

    @_guarded("assigning the train/validation split")
    def assign_split(self, validation_fraction: float, seed: int) -> SplitCounts:
        """Give every structure without a split label ``validation`` with probability
        ``validation_fraction``, else ``train``; return the totals.

        The draw hashes ``seed`` with the structure's content, so it does not
        depend on ids or on the order of insertion.  The setting is stored in
        the database and structures added later get theirs on arrival.  Calling
        again with the same arguments only labels structures that have none.
        Other arguments split the rows anew, in place (no label is touched): every
        row whose label was the old setting's draw is drawn again, and keeps its
        previous label in ``split_history`` in its data; the old setting is
        appended to ``split_history`` in the database's settings.
        """
        return labels.assign_split(self._storage, validation_fraction, seed)

    # ----------------------------------------------------------- queries
    @_guarded("listing structures")
    def ids(
        self,
        source: str | None = None,
        generation: int | None = None,
        label: str | None = None,
        status: str | None = None,
        ids: Iterable[int] | None = None,
    ) -> list[int]:
        """Ids of the structures matching every given filter, ascending."""
        return queries.ids(self._storage, source, generation, label, status, ids)

    @_guarded("counting structures")
    def count(self, **filters: Any) -> int:
        """Number of structures matching the filters (``source``, ``generation``, ``label``, ``status``, ``ids``)."""
        return queries.count(self._storage, filters)

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
        self._storage.live()
        with self._storage.guard("reading structures"):
            yield from queries.select(self._storage, source, generation, label, status, ids)

    @_guarded("reading a structure")
    def get(self, structure_id: int) -> tuple[Atoms, StructureMetadata]:
        """The structure and its metadata; :class:`DatabaseError` for an unknown id."""
        rec = queries.record(queries.row(self._storage, structure_id))
        return rec.atoms, rec.metadata

    @_guarded("reading a structure")
    def record(self, structure_id: int) -> StoredStructure:
        """Everything stored about one structure (status, failure reason, label info)."""
        return queries.record(queries.row(self._storage, structure_id))

    @_guarded("reading a structure's status")
    def status(self, structure_id: int) -> str:
        """``pending``, ``labelled`` or ``failed``."""
        return str(queries.row(self._storage, structure_id).get(KEY_STATUS))

    # ----------------------------------------------------------- datasets
    @_guarded("exporting a dataset")
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
        refs = self.reference_energies if reference_energies is None else dict(reference_energies)
        return export.save_dataset(self._storage, filepath, refs, source, generation, label, ids)

    # ----------------------------------------------------------- teacher rows (a foundation model's labels)
    @_guarded("adding teacher rows")
    def add_teacher_rows(
        self,
        atoms_list: Sequence[Atoms],
        metadata: Sequence[StructureMetadata],
        label_info: Sequence[dict[str, Any]],
    ) -> list[int]:
        """Store structures labelled by a foundation model as *teacher* rows (status and label ``teacher``, see
        :mod:`.teacher`), in one transaction; ``metadata`` from :func:`.teacher.teacher_metadata`; ``label_info`` per
        structure (``teacher_wall_time_s``).  Teacher rows are never split, exported as oracle data or oracle calls."""
        return teacher.add_teacher_rows(self._storage, atoms_list, metadata, label_info, self.duplicate_tolerance)

    @_guarded("counting the teacher's calls")
    def teacher_calls(self) -> teacher.TeacherCalls:
        """The teacher labels stored (``calls``), their summed wall time (``wall_time_s``, s) and the model
        (``name``, ``version``) that made them; zero calls when there is no teacher row."""
        return teacher.teacher_calls(self._storage)

    @_guarded("exporting the teacher rows")
    def save_teacher_dataset(self, filepath: str | os.PathLike, ids: Sequence[int] | None = None) -> int:
        """Write the teacher rows (or those of ``ids``) with the teacher's labels to ``filepath`` (format by suffix),
        for a fit to the teacher only; return how many."""
        return teacher.save_teacher_dataset(self._storage, filepath, self.reference_energies, ids)

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


def read_origin(path_or_url: str | os.PathLike, campaign: str | None = None) -> Origin | None:
    """What made the database at ``path_or_url`` (a ``campaign`` on a server), read without writing anything.

    ``None`` when there is no database there yet, or it records nothing (made
    by an earlier version).  Another program's database, or a damaged one,
    raises :class:`DatabaseError`, as opening it would.
    """
    file = database_file(path_or_url)
    if file is not None and (not file.is_file() or file.stat().st_size == 0):
        return None
    store = open_storage(path_or_url, 600.0, read_only=True, campaign=campaign, empty_ok=True)
    try:
        with store.guard("reading what made the database"):
            return None if store.empty else ownership.origin_of(store.settings())
    finally:
        store.close()


__all__ = [
    "DatabaseManager",
    "read_origin",
    "StoredStructure",
    "SplitCounts",
    "STATUSES",
    "PENDING",
    "LABELLED",
    "FAILED",
]
