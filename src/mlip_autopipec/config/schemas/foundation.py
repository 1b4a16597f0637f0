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
    """A foundation model that works before the oracle: explores, labels candidates as a teacher, selects.

    With ``explore: true`` the cold start is guided: candidates are the generator's structures from every seed
    (``generator_candidates`` of them) plus MD frames run with the model from every seed (one trajectory per seed
    variant and condition; the conditions of ``active_learning`` when the config has that section, else NVT and
    NPT at 0 GPa, 300 and 900 K; slabs run NVT and keep their vacuum).  The model labels each candidate (a
    *teacher* label, stored apart from the oracle's and never trained on by the oracle fit), a candidate with
    unphysical teacher forces or distances is dropped, and ``generator.pool_size`` of the rest are chosen for the
    oracle by ``selection``.
    """

    explore: bool = Field(
        False,
        description="A cold start guided by the model: it labels candidates (the generator's structures and MD "
        "frames from every seed) as a teacher, and the oracle computes only those chosen for what they add.",
    )
    generator_candidates: int | None = Field(
        None,
        ge=1,
        description="Structures the generator draws as candidates over all seeds (shared as generator.pool_size "
        "is); null: 3 × generator.pool_size.",
    )
    md_steps: int = Field(
        100,
        ge=0,
        description="MD steps of one candidate trajectory run with the model (the time step of active_learning, "
        "else 2 fs); 0: no MD candidates.",
    )
    md_frames: int = Field(
        4,
        ge=1,
        description="Frames kept as candidates from one trajectory, evenly spaced (every md_steps / md_frames "
        "steps, the last at its end), so they are decorrelated.",
    )
    md_trajectories: int = Field(
        1,
        ge=1,
        description="Trajectories per seed and condition, each from the seed's next variant (alloy occupation, "
        "slab with an adatom, ...) with its own random seed.",
    )
    max_force: float = Field(
        20.0,
        gt=0.0,
        description="Screening: a candidate with a teacher force component above this (eV/Å) is unphysical and "
        "never reaches the oracle.",
    )
    min_distance: float | None = Field(
        None,
        gt=0.0,
        description="Screening: a candidate with two atoms closer than this (Å) never reaches the oracle; null: "
        "min_distance_fraction of its seed's nearest-neighbour distance.",
    )
    min_distance_fraction: float = Field(
        0.75,
        gt=0.0,
        le=1.0,
        description="Screening when min_distance is null: the shortest distance allowed, as a fraction of the "
        "nearest-neighbour distance of the candidate's seed crystal (dimensionless).",
    )
    selection: Literal["pace_select", "fps"] = Field(
        "pace_select",
        description="How the generator.pool_size structures for the oracle are chosen among the screened "
        "candidates (first, per element pair, the candidate with the shortest contact: pacemaker's ZBL core sits below "
        "the data's shortest distance): 'pace_select', D-optimality (MaxVol) of their atoms in the training section's "
        "ACE basis (no fit needed), topped up by farthest points when the active set is held by fewer structures; "
        "or 'fps', farthest points in ACE descriptors (per species, the mean and spread of the atoms' B-basis "
        "projections). Measured on "
        "Cu (benchmarks/bench_guided_selection.py): pace_select 3.4 and 4.3 meV/Å on MD frames at 20 and 40 oracle "
        "calls, fps 3.7 and 4.5, a random draw 4.3-7.8 and 5.2-6.0.",
    )

    explore_with_teacher_ace: bool = Field(
        False,
        description="Generation 0 of the guided cold start, before any oracle call: an ACE is fitted to the teacher "
        "labels that passed the screening (the training section's basis, active_learning.refit_max_epochs "
        "iterations) and explores with MD under the active-learning conditions; the frames its extrapolation grade "
        "γ flags are labelled by the teacher, screened, and join the candidates the oracle's pool is chosen from. "
        "Needs explore: true and an active_learning section.",
        # left out of a dump when false: the section's fingerprint (recorded for every guided database made before
        # this field existed) reads as it did, so such a run is not refused
        exclude_if=lambda on: not on,
    )

    @model_validator(mode="after")
    def _frames_fit_the_steps(self) -> FoundationModelConfig:
        if self.md_steps and self.md_frames > self.md_steps:
            raise ValueError(f"md_frames ({self.md_frames}) cannot exceed md_steps ({self.md_steps})")
        if self.explore_with_teacher_ace and not self.explore:
            raise ValueError(
                "explore_with_teacher_ace needs explore: true (the teacher ACE explores for the guided cold start)"
            )
        return self

    def n_generator_candidates(self, pool_size: int) -> int:
        """How many structures the generator draws as candidates for a pool of ``pool_size``."""
        return self.generator_candidates if self.generator_candidates is not None else 3 * pool_size
