"""Reading the database: the filters, ids and counts, and structures as records."""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Iterator
from typing import Any

from ase.db.row import AtomsRow

from mlip_autopipec.database.schema import (
    KEY_GENERATION,
    KEY_SOURCE,
    KEY_STATUS,
    LABEL_PREFIX,
    STATUSES,
    StoredStructure,
    check_id,
    metadata_of,
)
from mlip_autopipec.database.storage import Storage
from mlip_autopipec.exceptions import DatabaseError

FILTERS = ("source", "generation", "label", "status", "ids")


def selection(
    source: str | None = None, generation: int | None = None, label: str | None = None, status: str | None = None
) -> list[Any]:
    """The ASE selection for the given filters (:class:`DatabaseError` for a malformed one)."""
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
    store: Storage, source=None, generation=None, label=None, status=None, within: Iterable[int] | None = None
) -> list[int]:
    """Ids of the structures matching every given filter (and in ``within``, when given), ascending."""
    found = store.ids(selection(source, generation, label, status))
    if within is not None:
        wanted = {check_id(i) for i in within}
        found = [i for i in found if i in wanted]
    return found


def count(store: Storage, filters: dict[str, Any]) -> int:
    """Number of structures matching ``filters`` (names as :data:`FILTERS`)."""
    unknown = set(filters) - set(FILTERS)
    if unknown:
        raise DatabaseError(f"unknown filter(s) {sorted(unknown)}; use {', '.join(FILTERS)}")
    filters = dict(filters)
    within = filters.pop("ids", None)
    if within is not None:
        return len(ids(store, within=within, **filters))
    return store.count(selection(**filters))


def row(store: Storage, structure_id: Any) -> AtomsRow:
    """The row of a structure; :class:`DatabaseError` for an unknown id."""
    sid = check_id(structure_id)
    found = store.row(sid)
    if found is None:
        raise DatabaseError(f"{store.location}: no structure with id {sid}")
    return found


def record(found: AtomsRow) -> StoredStructure:
    """A row as a :class:`StoredStructure`."""
    data = dict(found.data)
    meta = metadata_of(found.key_value_pairs, data)
    atoms = found.toatoms()
    atoms.info = dict(meta.provenance)
    label_info = data.get("label_info")
    return StoredStructure(
        atoms=atoms,
        metadata=meta,
        id=int(found.id),
        status=str(found.get(KEY_STATUS)),
        failure_reason=data.get("failure_reason"),
        label_info=dict(label_info) if label_info is not None else None,
    )


def select(
    store: Storage, source=None, generation=None, label=None, status=None, within: Iterable[int] | None = None
) -> Iterator[StoredStructure]:
    """The matching structures by ascending id, read in chunks."""
    sel = selection(source, generation, label, status)
    for found in store.rows(ids(store, source, generation, label, status, within), sel):
        yield record(found)
