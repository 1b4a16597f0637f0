"""How the project's rows look in ASE's database: key names, statuses, and the records read back.

One row per structure.  Searchable metadata lives in ASE key-value pairs:

* ``source`` (text), ``generation`` (int), ``status`` (``pending`` /
  ``labelled`` / ``failed``, or ``teacher`` for a foundation model's label,
  see :mod:`.teacher`), ``parent_id`` (int, when set);
* one boolean key ``label_<name>`` per label (``label_train``,
  ``label_validation``, ...), so selecting a label is an indexed key lookup;
* ``fingerprint`` (float): the duplicate index of :mod:`.fingerprint`.

Row data holds ``provenance`` (the generator's ``atoms.info``), the last
``failure_reason`` and the ``label_info`` given with the labels (wall time,
attempts, ...).  Energy (eV), forces (eV/Å) and stress (eV/Å^3) are ASE's own
columns, so ``ase db`` and ``row.toatoms()`` show them as usual.  The
project's settings (ownership mark, split) sit in ASE's metadata under
``mlip_autopipec`` (see :mod:`.ownership`).
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from ase import Atoms
from pydantic import ValidationError

from mlip_autopipec.database.metadata import StructureMetadata
from mlip_autopipec.exceptions import DatabaseError, StructureError

PENDING, LABELLED, FAILED = "pending", "labelled", "failed"
#: a row labelled by a foundation model as a teacher (label ``teacher``): never the oracle's, never split or exported
TEACHER = "teacher"
STATUSES = (PENDING, LABELLED, FAILED, TEACHER)

KEY_SOURCE = "source"
KEY_GENERATION = "generation"
KEY_STATUS = "status"
KEY_PARENT = "parent_id"
KEY_FINGERPRINT = "fingerprint"
LABEL_PREFIX = "label_"
METADATA_KEY = "mlip_autopipec"  # the project's settings inside ASE's metadata
FINGERPRINT_INDEX = "mlip_autopipec_fingerprint"  # SQLite index name (every version since the first made it)


@dataclass(frozen=True)
class StoredStructure:
    """A structure read back from the database.

    Unpacks as ``atoms, metadata, id``.  ``atoms`` carries a single-point
    calculator with the labels (when labelled) and ``info`` = the provenance.
    ``failure_reason`` is the reason given to the last ``mark_failed``
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
    """How many structures carry each split label after ``assign_split``."""

    train: int
    validation: int


def check_id(structure_id: Any) -> int:
    """A structure id as int; :class:`DatabaseError` unless a positive integer."""
    if isinstance(structure_id, bool) or not isinstance(structure_id, numbers.Integral) or structure_id < 1:
        raise DatabaseError(f"a structure id is a positive integer, got {structure_id!r}")
    return int(structure_id)


def as_metadata(metadata: StructureMetadata | dict, where: str) -> StructureMetadata:
    """Validate a metadata record given as a model or a dict (:class:`StructureError` naming ``where``)."""
    if isinstance(metadata, StructureMetadata):
        return metadata
    if isinstance(metadata, dict):
        try:
            return StructureMetadata.model_validate(metadata)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(x) for x in e['loc']) or 'metadata'}: {e['msg']}" for e in exc.errors()
            )
            raise StructureError(f"{where}: invalid metadata: {problems}") from None
    raise StructureError(f"{where}: metadata must be a StructureMetadata or a dict, got {type(metadata).__name__}")


def labels_of(kvp: dict[str, Any]) -> list[str]:
    """The labels set on a row (sorted), from its ``label_<name>`` keys."""
    return sorted(k[len(LABEL_PREFIX) :] for k, v in kvp.items() if k.startswith(LABEL_PREFIX) and v)


def metadata_of(kvp: dict[str, Any], data: dict[str, Any]) -> StructureMetadata:
    """The metadata of a stored row (trusted: its values were validated on the way in)."""
    parent = kvp.get(KEY_PARENT)
    return StructureMetadata.model_construct(
        source=kvp.get(KEY_SOURCE, "unknown"),
        generation=int(kvp.get(KEY_GENERATION, 0)),
        labels=labels_of(kvp),
        provenance=dict(data.get("provenance", {})),
        parent_id=None if parent is None else int(parent),
    )
