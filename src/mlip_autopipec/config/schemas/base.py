"""Common base for every configuration model."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A pydantic model that rejects unknown fields, so a typo in YAML is an error naming the field."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    def resolve_paths(self, base: Path) -> Self:
        """A copy whose relative file paths are taken relative to ``base`` (the config file's folder).

        A section with file paths overrides this; the default has none and returns itself.
        """
        return self


def resolve_path(path: Path | None, base: Path) -> Path | None:
    """``path`` made absolute against ``base`` when it is relative (None stays None)."""
    if path is None or Path(path).is_absolute():
        return path
    return (base / path).resolve()
