"""Provenance of a stored structure: where it came from, which generation, which split.

:class:`StructureMetadata` is the typed record the database keeps next to every
structure.  ``provenance`` holds the generator's ``atoms.info`` (strain, rattle
width, defect indices, ...), normalised by :func:`normalize_provenance` to what
ASE's database stores faithfully: ``str``, ``int``, ``float``, ``bool``,
``None``, lists, dicts with string keys and numeric NumPy arrays.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from pydantic import Field, field_validator, model_validator

from mlip_autopipec.config.schemas.base import StrictModel
from mlip_autopipec.exceptions import StructureError

TRAIN = "train"
VALIDATION = "validation"
SPLIT_LABELS = (TRAIN, VALIDATION)
#: Structures computed for the report's property comparison: never given a train/validation split, never trained on.
PROPERTY = "property"
#: Structures labelled by a foundation model as a teacher (status ``teacher``): never split, never exported as oracle
#: data, never the duplicate of an oracle row (see :mod:`mlip_autopipec.database.teacher`).
TEACHER = "teacher"

_LABEL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


def _looks_like_number_or_bool(text: str) -> bool:
    """ASE's database refuses text values that read as a number or a bool (it would store them as such)."""
    if text in ("True", "False"):
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


def normalize_provenance(value: Any, where: str = "provenance") -> Any:
    """Return ``value`` made storable: NumPy scalars become Python numbers, tuples become lists.

    Raises :class:`StructureError` naming the offending key path for anything
    else (objects, non-string dict keys, object or complex arrays).
    """
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, np.generic):
        if isinstance(value, np.bool_):
            return bool(value)
        if isinstance(value, np.integer):
            return int(value)
        if isinstance(value, np.floating):
            return float(value)
        if isinstance(value, np.str_):
            return str(value)
    elif isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise StructureError(f"{where}: key {key!r} is not a string; provenance keys must be strings")
            out[key] = normalize_provenance(item, f"{where}[{key!r}]")
        return out
    elif isinstance(value, (list, tuple)):
        return [normalize_provenance(item, f"{where}[{i}]") for i, item in enumerate(value)]
    elif isinstance(value, np.ndarray):
        if value.dtype.kind in "biuf":
            return value.copy()
        if value.dtype.kind in "US":
            return [str(x) for x in value.ravel()]
    kind = (
        f"an array of dtype {value.dtype}"
        if isinstance(value, np.ndarray)
        else f"a value of type {type(value).__name__}"
    )
    raise StructureError(
        f"{where}: {kind} cannot be stored; "
        "provenance holds str, int, float, bool, None, lists, dicts and numeric arrays"
    )


class StructureMetadata(StrictModel):
    """Where a structure came from and which labels it carries.

    ``labels`` are short identifiers (letters, digits, underscores), e.g.
    ``train`` or ``validation``; a structure is never in both splits.
    """

    source: str = Field(
        ...,
        min_length=1,
        max_length=200,
        description="What produced the structure, e.g. 'initial_random', 'md_halt', 'active_learning_iter_3'.",
    )
    generation: int = Field(
        0, ge=0, description="Active-learning generation that produced the structure (0 for the initial pool)."
    )
    labels: list[str] = Field(
        default_factory=list,
        description="Tags used for selection, e.g. 'train' or 'validation' "
        "(identifiers: a letter, then letters, digits, underscores).",
    )
    provenance: dict[str, Any] = Field(
        default_factory=dict,
        description="Free-form record of how the structure was made (the generator's atoms.info): "
        "strings, numbers, booleans, None, lists, dicts and numeric arrays.",
    )
    parent_id: int | None = Field(
        None, ge=1, description="Database id of the structure this one was derived from, if any."
    )

    @field_validator("source")
    @classmethod
    def _check_source(cls, v: str) -> str:
        if v != v.strip() or _looks_like_number_or_bool(v):
            raise ValueError(
                f"source {v!r} must be text without surrounding spaces that does not read as a number or a bool"
            )
        return v

    @field_validator("labels")
    @classmethod
    def _check_labels(cls, v: list[str]) -> list[str]:
        out: list[str] = []
        for label in v:
            if not _LABEL_RE.match(label):
                raise ValueError(
                    f"label {label!r} is not an identifier (a letter, then up to 63 letters, digits or underscores)"
                )
            if label not in out:
                out.append(label)
        return out

    @field_validator("provenance", mode="before")
    @classmethod
    def _check_provenance(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            raise ValueError(f"provenance must be a dict, got {type(v).__name__}")
        try:
            return normalize_provenance(v)
        except StructureError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _one_split(self) -> StructureMetadata:
        if TRAIN in self.labels and VALIDATION in self.labels:
            raise ValueError("a structure cannot carry both the 'train' and the 'validation' label")
        for role in (PROPERTY, TEACHER):
            if role in self.labels and (TRAIN in self.labels or VALIDATION in self.labels):
                raise ValueError(
                    f"a {role!r} structure is never trained on: it cannot carry the 'train' or 'validation' label"
                )
        if PROPERTY in self.labels and TEACHER in self.labels:
            raise ValueError("a structure is a 'property' or a 'teacher' structure, not both")
        return self
