"""Adding structures: validate and prepare every row first, then insert them (or find their duplicates)."""

from __future__ import annotations

import os
import uuid
from typing import Any, NamedTuple

import numpy as np
from ase.db.core import now
from ase.db.row import AtomsRow

from mlip_autopipec.database.fingerprint import content_hash, fingerprint, fingerprint_window, same_structure
from mlip_autopipec.database.labels import split_label, write_labels
from mlip_autopipec.database.metadata import (
    PROPERTY,
    TEACHER,
    TRAIN,
    VALIDATION,
    StructureMetadata,
    normalize_provenance,
)
from mlip_autopipec.database.schema import (
    KEY_FINGERPRINT,
    KEY_GENERATION,
    KEY_PARENT,
    KEY_SOURCE,
    KEY_STATUS,
    LABEL_PREFIX,
    LABELLED,
    PENDING,
)
from mlip_autopipec.database.schema import TEACHER as TEACHER_STATUS
from mlip_autopipec.database.storage import Storage
from mlip_autopipec.database.validation import attached_results, check_structure
from mlip_autopipec.exceptions import StructureError

_OPTIONAL_ARRAYS = ("initial_magmoms", "initial_charges", "masses", "tags", "momenta")


class Prepared(NamedTuple):
    """A validated structure ready to insert."""

    row: dict[str, Any]
    kvp: dict[str, Any]
    data: dict[str, Any]
    fp: float
    window: float
    results: tuple[float, np.ndarray, np.ndarray | None] | None
    has_split: bool


def base_kvp(meta: StructureMetadata) -> tuple[dict[str, Any], bool]:
    """The key-value pairs a metadata record gives every row, and whether it sets a split label
    (a 'property' or 'teacher' structure counts as set: it never gets one)."""
    kvp: dict[str, Any] = {KEY_SOURCE: meta.source, KEY_GENERATION: meta.generation}
    if meta.parent_id is not None:
        kvp[KEY_PARENT] = meta.parent_id
    for label in meta.labels:
        kvp[LABEL_PREFIX + label] = True
    return kvp, any(label in meta.labels for label in (TRAIN, VALIDATION, PROPERTY, TEACHER))


def prepare(
    atoms: Any, meta: StructureMetadata, base: tuple[dict[str, Any], bool], where: str, tolerance: float
) -> Prepared:
    """Validate ``atoms`` (:class:`StructureError` naming ``where``) and build its row; writes nothing."""
    check_structure(atoms, where)
    results = attached_results(atoms, where)
    teacher = bool(base[0].get(LABEL_PREFIX + TEACHER))
    if teacher and results is None:
        raise StructureError(f"{where}: a 'teacher' structure is stored with its teacher's labels; it has none")
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
    kvp[KEY_STATUS] = TEACHER_STATUS if teacher else LABELLED if results is not None else PENDING
    fp = fingerprint(numbers_, positions, cell)
    kvp[KEY_FINGERPRINT] = fp
    data = {"provenance": provenance} if provenance else {}
    return Prepared(row, kvp, data, fp, fingerprint_window(len(numbers_), fp, tolerance), results, base[1])


def find_duplicate(store: Storage, p: Prepared, tolerance: float) -> int | None:
    """The id of the stored structure ``p`` duplicates, or ``None``.  A teacher row only duplicates a teacher row
    (the oracle computes the same geometry as a row of its own, and never reuses a teacher's labels)."""
    r = p.row
    teacher = bool(p.kvp.get(LABEL_PREFIX + TEACHER))
    for cid, (z, pos, cell, pbc) in store.duplicate_candidates(p.fp - p.window, p.fp + p.window):
        if same_structure(r["numbers"], r["positions"], r["cell"], r["pbc"], z, pos, cell, pbc, tolerance):
            found = store.row(cid)
            if found is not None and bool(found.get(LABEL_PREFIX + TEACHER)) == teacher:
                return cid
    return None


def insert(store: Storage, p: Prepared, split: dict[str, Any] | None, tolerance: float) -> int:
    """Insert one prepared structure (inside a write transaction); a duplicate returns the stored id,
    and stores the labels it brings when the stored structure has none."""
    existing = find_duplicate(store, p, tolerance)
    if existing is not None:
        if p.results is not None:
            row = store.db.get(id=existing)
            if row.get(KEY_STATUS) not in (LABELLED, TEACHER_STATUS):
                write_labels(store, row, *p.results, info=None)
        return existing
    kvp = p.kvp
    if split is not None and not p.has_split:
        kvp = dict(kvp)
        r = p.row
        u = content_hash(r["numbers"], r["positions"], r["cell"], r["pbc"], split["seed"])
        kvp[LABEL_PREFIX + split_label(u, split)] = True
    return int(store.db.write(AtomsRow(p.row), key_value_pairs=kvp, data=p.data))
