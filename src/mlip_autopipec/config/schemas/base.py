"""Common base for every configuration model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A pydantic model that rejects unknown fields, so a typo in YAML is an error naming the field."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)
