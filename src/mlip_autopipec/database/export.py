"""Writing datasets: the labelled rows as export records, handed to a writer of :mod:`.formats`."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
from ase import Atoms

from mlip_autopipec.database import formats, queries
from mlip_autopipec.database.schema import KEY_GENERATION, KEY_PARENT, KEY_SOURCE, LABELLED, labels_of
from mlip_autopipec.database.storage import Storage
from mlip_autopipec.exceptions import DatabaseError


def export_records(store: Storage, ids: list[int], sel: list[Any]) -> Iterator[formats.ExportRecord]:
    """The rows of ``ids`` as :class:`formats.ExportRecord` (structure, labels, metadata in ``info``)."""
    for sid, z, pos, cell, pbc, energy, forces, stress, magmoms, kvp, data in store.raw_rows(ids, sel):
        source = kvp.get(KEY_SOURCE, "unknown")
        info: dict[str, Any] = {
            "db_id": int(sid),
            "source": source,
            "generation": int(kvp.get(KEY_GENERATION, 0)),
            "labels": labels_of(kvp),
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
            magmoms=None if magmoms is None else np.array(magmoms, dtype=float),
        )


def save_dataset(
    store: Storage,
    filepath: str | os.PathLike,
    refs: dict[str, float],
    source: str | None,
    generation: int | None,
    label: str | None,
    within: Iterable[int] | None,
) -> int:
    """Write the labelled structures matching the filters to ``filepath`` (format by suffix); return how many."""
    kind = formats.dataset_format(filepath)
    sel = queries.selection(source, generation, label, LABELLED)
    chosen = queries.ids(store, source, generation, label, LABELLED, within)
    if not chosen:
        filters = {k: v for k, v in dict(source=source, generation=generation, label=label).items() if v is not None}
        raise DatabaseError(
            f"{store.location}: no labelled structure matches {filters or 'the selection'}; "
            f"refusing to write an empty {filepath}"
        )
    records = export_records(store, chosen, sel)
    if kind == "pacemaker":
        return formats.write_pacemaker(filepath, records, refs)
    return formats.write_extxyz(filepath, records)
