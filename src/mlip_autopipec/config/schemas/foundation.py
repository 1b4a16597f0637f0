"""Settings of the optional ``foundation_model:`` section: a universal potential that works before the oracle.

With the section, a foundation model shipped inside its Python wheel (CHGNet, SevenNet) can explore, label
candidates as a *teacher* and choose what the oracle computes.  Without it, a run behaves as before.  Only
weights inside the installed package are used: a version the package would download is refused at validation,
in one sentence, before any work.  The same model can also be the oracle itself (``oracle: {type:
foundation_model}``, :class:`~mlip_autopipec.config.schemas.oracle.FoundationModelOracleConfig`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from mlip_autopipec.config.schemas.base import StrictModel
from mlip_autopipec.config.schemas.foundation_weights import DEFAULT_VERSIONS, shipped_weights


class FoundationModelFields(StrictModel):
    """Which shipped foundation model, at which version, on how many threads (shared with the oracle kind)."""

    name: Literal["chgnet", "sevenn"] = Field(
        description="Which model: 'chgnet' (CHGNet, package chgnet) or 'sevenn' (SevenNet, package sevenn)."
    )
    model_version: str = Field(
        "",
        description="The model version as its package names it; empty: the one it ships and loads by default, "
        "'0.3.0' for chgnet, '7net-0' (SevenNet-0) for sevenn. A version the package would download is refused.",
    )
    threads: int = Field(
        1,
        ge=1,
        le=256,
        description="torch threads of each worker process (torch.set_num_threads); keep workers × threads within "
        "the cores of a node.",
    )
    @model_validator(mode="before")
    @classmethod
    def _default_version(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("model_version") and data.get("name") in DEFAULT_VERSIONS:
            return {**data, "model_version": DEFAULT_VERSIONS[data["name"]]}
        return data

    @model_validator(mode="after")
    def _check_shipped(self) -> FoundationModelFields:
        shipped_weights(self.name, self.model_version)  # ValueError in one sentence naming the model and version
        return self


class FoundationModelConfig(FoundationModelFields):
    """A foundation model that works before the oracle: explores, labels candidates as a teacher, selects."""

    explore: bool = Field(
        False,
        description="A cold start guided by the model: it labels candidates (the generator's structures and MD "
        "frames from every seed) as a teacher, and the oracle computes only those chosen for what they add.",
    )
