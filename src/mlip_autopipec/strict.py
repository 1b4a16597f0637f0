"""``StrictModel``: the pydantic base of every configuration and record model (unknown fields are errors)."""

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
