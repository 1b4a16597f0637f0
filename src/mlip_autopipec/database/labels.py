"""Changing stored structures: labels (energy, forces, stress), failures, and the train/validation split."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from ase.db.row import AtomsRow

from mlip_autopipec.database import queries
from mlip_autopipec.database.fingerprint import content_hash
from mlip_autopipec.database.metadata import PROPERTY, TEACHER, TRAIN, VALIDATION, normalize_provenance
from mlip_autopipec.database.schema import FAILED, KEY_STATUS, LABEL_PREFIX, LABELLED, PENDING, SplitCounts, check_id
from mlip_autopipec.database.storage import Storage
from mlip_autopipec.database.validation import MagneticMoments, check_magnetic_moments, check_results
from mlip_autopipec.exceptions import DatabaseError


def write_labels(
    store: Storage,
    row: AtomsRow,
    energy: float,
    forces: np.ndarray,
    stress: np.ndarray | None,
    info: dict | None,
    moments: MagneticMoments | None = None,
) -> None:
    """Store checked labels on ``row``; its status becomes ``labelled`` (inside a write transaction).

    ``moments`` (μB) go to ASE's ``magmoms`` / ``magmom`` columns (``row.toatoms()`` gives them back);
    labels without moments clear earlier ones."""
    columns = vars(row)  # ASE keeps a row's columns as plain attributes
    columns.update(energy=energy, forces=forces, _constrained_forces=None)
    if stress is not None:
        columns["stress"] = stress
    else:
        columns.pop("stress", None)
    for name in ("magmoms", "magmom"):
        value = getattr(moments, name) if moments is not None else None
        if value is None:
            columns.pop(name, None)
        else:
            columns[name] = value
    kvp = row.key_value_pairs
    kvp[KEY_STATUS] = LABELLED
    data = dict(row.data)
    if info:
        data["label_info"] = info
    else:
        data.pop("label_info", None)
    store.db.write(row, key_value_pairs=kvp, data=data, id=row.id)


def set_labels(
    store: Storage,
    structure_id: Any,
    energy: float,
    forces: Any,
    stress: Any,
    info: dict[str, Any] | None,
    magmoms: Any = None,
    magmom: Any = None,
) -> None:
    sid = check_id(structure_id)
    label_info = normalize_provenance(dict(info), f"structure id {sid}: info") if info else None
    with store.write_tx():
        row = queries.row(store, sid)
        if row.get(LABEL_PREFIX + TEACHER):
            raise DatabaseError(f"{store.location}: structure id {sid} is a teacher row; it keeps its teacher's labels")
        e, f, s = check_results(energy, forces, stress, row.natoms, f"structure id {sid}")
        moments = check_magnetic_moments(magmoms, magmom, row.natoms, f"structure id {sid}")
        write_labels(store, row, e, f, s, label_info, moments)


def mark_failed(store: Storage, structure_id: Any, reason: str) -> None:
    sid = check_id(structure_id)
    if not isinstance(reason, str) or not reason.strip():
        raise DatabaseError(f"structure id {sid}: a failure needs a non-empty reason (text), got {reason!r}")
    with store.write_tx():
        row = queries.row(store, sid)
        if row.get(KEY_STATUS) == LABELLED:
            raise DatabaseError(
                f"{store.location}: structure id {sid} is labelled; a labelled structure cannot be marked failed"
            )
        store.db.update(sid, data={"failure_reason": reason}, **{KEY_STATUS: FAILED})


def reset_failed(store: Storage, ids: Any = None) -> list[int]:
    """Make failed structures (all, or those of ``ids``) pending again; return their ids.

    The reason each failed with is appended to ``failure_history`` in the row's
    data (with the time of the reset), so the provenance keeps every earlier
    failure; ``failure_reason`` keeps the last one until a new failure replaces it.
    """
    import datetime

    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    with store.write_tx():
        found = queries.ids(store, status=FAILED)
        if ids is not None:
            wanted = {check_id(i) for i in ids}
            found = [i for i in found if i in wanted]
        for sid in found:
            row = queries.row(store, sid)
            data = dict(row.data)
            history = list(data.get("failure_history") or [])
            history.append({"reason": data.get("failure_reason") or "", "reset": now})
            data["failure_history"] = history
            store.db.update(sid, data=data, **{KEY_STATUS: PENDING})
    return found


def check_writable(store: Storage) -> None:
    """Write the project's settings back unchanged, in one committed transaction: a
    :class:`DatabaseError` now (read-only file or folder, full disk) rather than at the first result."""
    with store.write_tx():
        store.store_settings(store.settings())


def split_label(u: float, split: dict[str, Any]) -> str:
    """``validation`` when the structure's draw ``u`` in [0, 1) is below the fraction, else ``train``."""
    return VALIDATION if u < split["validation_fraction"] else TRAIN


def split_settings(store: Storage) -> tuple[float, int] | None:
    split = store.settings().get("split")
    return None if split is None else (float(split["validation_fraction"]), int(split["seed"]))


def _checked_split(validation_fraction: Any, seed: Any) -> dict[str, Any]:
    if (
        isinstance(validation_fraction, bool)
        or not isinstance(validation_fraction, numbers.Real)
        or not (0.0 <= float(validation_fraction) <= 1.0)
    ):
        raise DatabaseError(f"validation_fraction must be a number in [0, 1], got {validation_fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise DatabaseError(f"seed must be an integer, got {seed!r}")
    return {"validation_fraction": float(validation_fraction), "seed": int(seed)}


def _resplit(store: Storage, old: dict[str, Any], new: dict[str, Any], when: str) -> None:
    """Draw the split of every row again under ``new`` (inside a write transaction).

    Only rows whose label is ``old``'s draw are drawn again (a label the caller gave by hand stays).  Each row
    drawn again appends its previous label and the settings that drew it to ``split_history`` in its data.
    """
    rows = [
        (label, row)
        for label in (TRAIN, VALIDATION)
        for row in list(store.db.select(f"{LABEL_PREFIX}{label}", include_data=True))
    ]
    for label, row in rows:
        geometry = (row.numbers, row.positions, row.cell, row.pbc)
        if label != split_label(content_hash(*geometry, old["seed"]), old):
            continue  # given by hand, not drawn
        fresh = split_label(content_hash(*geometry, new["seed"]), new)
        history = [*(row.data.get("split_history") or []), {"label": label, **old, "until": when}]
        store.db.update(
            row.id, delete_keys=[LABEL_PREFIX + label], data={"split_history": history}, **{LABEL_PREFIX + fresh: True}
        )


def assign_split(store: Storage, validation_fraction: float, seed: int) -> SplitCounts:
    import datetime

    wanted = _checked_split(validation_fraction, seed)
    with store.write_tx():
        settings = store.settings()
        current = settings.get("split")
        if current != wanted:
            if current is not None:  # a new split: every drawn row is drawn again; the old split stays on record
                when = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
                _resplit(store, current, wanted, when)
                settings["split_history"] = [*(settings.get("split_history") or []), {**current, "until": when}]
            settings["split"] = wanted
            store.store_settings(settings)
        todo = [
            (row.id, content_hash(row.numbers, row.positions, row.cell, row.pbc, wanted["seed"]))
            for row in store.db.select(  # property and teacher rows: never split
                f"-{LABEL_PREFIX}{TRAIN},-{LABEL_PREFIX}{VALIDATION},-{LABEL_PREFIX}{PROPERTY},-{LABEL_PREFIX}{TEACHER}",
                columns=["id", "numbers", "positions", "cell", "pbc"],
                include_data=False,
            )
        ]
        for sid, u in todo:
            store.db.update(sid, **{LABEL_PREFIX + split_label(u, wanted): True})
        return SplitCounts(queries.count(store, {"label": TRAIN}), queries.count(store, {"label": VALIDATION}))
