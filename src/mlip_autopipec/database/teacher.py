"""Teacher rows: a foundation model's labels of the guided cold start's candidates, kept apart from the oracle's.

A teacher row carries the label ``teacher`` and the status ``teacher`` (never
``labelled``): every query of oracle data (``status='labelled'``: the split, the
training export, the ``export`` command, the report, active learning's start
structures) passes it by.  It never gets a train/validation split, never counts
as an oracle call, and never duplicates an oracle row: the oracle computes a
selected candidate as a row of its own (:func:`~.insert.find_duplicate`).
Its provenance names the model (``teacher_model``, ``teacher_model_version``,
``teacher_package``); its ``label_info`` holds the wall time of the model's call
(``teacher_wall_time_s``, seconds; for an MD frame, its share of the trajectory's
wall time, so the sum over the rows is the model's whole time).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ase import Atoms

from mlip_autopipec.database import export, formats, insert, queries
from mlip_autopipec.database.metadata import TEACHER, StructureMetadata, normalize_provenance
from mlip_autopipec.database.schema import TEACHER as TEACHER_STATUS
from mlip_autopipec.database.storage import Storage
from mlip_autopipec.exceptions import DatabaseError, StructureError

#: the source of every teacher row
TEACHER_SOURCE = "teacher"
#: keys of a teacher row's provenance and label_info
KEY_MODEL, KEY_VERSION, KEY_PACKAGE = "teacher_model", "teacher_model_version", "teacher_package"
KEY_WALL_TIME = "teacher_wall_time_s"


@dataclass(frozen=True)
class TeacherCalls:
    """The teacher's work stored in a database: how many labels, their wall time (s), which model."""

    calls: int = 0
    wall_time_s: float = 0.0
    name: str | None = None  # the model (chgnet, sevenn); the most frequent one if several taught
    version: str | None = None  # its version, e.g. '0.3.0'


def teacher_metadata(provenance: dict[str, Any], model: str, version: str, package: str) -> StructureMetadata:
    """The metadata of one teacher row: source and label ``teacher``, generation 0, the model in the provenance."""
    return StructureMetadata(
        source=TEACHER_SOURCE,
        generation=0,
        labels=[TEACHER],
        provenance={**provenance, KEY_MODEL: model, KEY_VERSION: version, KEY_PACKAGE: package},
    )


def add_teacher_rows(
    store: Storage,
    atoms_list: Sequence[Atoms],
    metadata: Sequence[StructureMetadata],
    label_info: Sequence[dict[str, Any]],
    tolerance: float,
) -> list[int]:
    """Store labelled structures as teacher rows in one transaction; return their ids (a duplicate of a teacher row:
    its id).  Each structure carries its teacher's results (a calculator); ``label_info`` is kept with them."""
    if not len(atoms_list) == len(metadata) == len(label_info):
        raise StructureError(
            f"got {len(atoms_list)} structures, {len(metadata)} metadata records, {len(label_info)} label infos"
        )
    prepared = []
    for i, (atoms, meta, info) in enumerate(zip(atoms_list, metadata, label_info, strict=True)):
        if TEACHER not in meta.labels:
            raise StructureError(f"teacher structure {i}: its metadata lacks the 'teacher' label")
        p = insert.prepare(atoms, meta, insert.base_kvp(meta), f"teacher structure {i}", tolerance)
        p.data["label_info"] = normalize_provenance(dict(info), f"teacher structure {i}: label_info")
        prepared.append(p)
    with store.write_tx():
        return [insert.insert(store, p, None, tolerance) for p in prepared]


def teacher_calls(store: Storage) -> TeacherCalls:
    """How many teacher labels the database holds, their summed wall time (s) and the model that made them."""
    ids = queries.ids(store, status=TEACHER_STATUS)
    if not ids:
        return TeacherCalls()
    wall = 0.0
    models: Counter[tuple[str, str]] = Counter()
    for row in store.rows(ids, queries.selection(status=TEACHER_STATUS)):
        data = dict(row.data)
        wall += float((data.get("label_info") or {}).get(KEY_WALL_TIME, 0.0))
        prov = data.get("provenance") or {}
        models[(str(prov.get(KEY_MODEL, "")), str(prov.get(KEY_VERSION, "")))] += 1
    (name, version), _n = models.most_common(1)[0]
    return TeacherCalls(calls=len(ids), wall_time_s=wall, name=name or None, version=version or None)


def save_teacher_dataset(
    store: Storage, filepath: str | os.PathLike, refs: dict[str, float], ids: Sequence[int] | None = None
) -> int:
    """Write the teacher rows (or those of ``ids``) with their teacher labels to ``filepath`` (format by suffix): the
    data of a fit *to the teacher*, never of the oracle fit.  Returns how many; none raises :class:`DatabaseError`."""
    sel = queries.selection(status=TEACHER_STATUS)
    chosen = queries.ids(store, status=TEACHER_STATUS, within=ids)
    if not chosen:
        raise DatabaseError(f"{store.location}: no teacher row to write; refusing to write an empty {filepath}")
    records = export.export_records(store, chosen, sel)
    if formats.dataset_format(filepath) == "pacemaker":
        return formats.write_pacemaker(filepath, records, refs)
    return formats.write_extxyz(filepath, records)


__all__ = [
    "KEY_MODEL",
    "KEY_PACKAGE",
    "KEY_VERSION",
    "KEY_WALL_TIME",
    "TEACHER_SOURCE",
    "TeacherCalls",
    "add_teacher_rows",
    "save_teacher_dataset",
    "teacher_calls",
    "teacher_metadata",
]
