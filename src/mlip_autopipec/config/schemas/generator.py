"""Settings of the initial structure generator (the "Explorer")."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, field_validator, model_validator

from mlip_autopipec.config.schemas.base import StrictModel

DefectKind = Literal["vacancy", "interstitial", "antisite"]


class GeneratorConfig(StrictModel):
    """How the starting pool is drawn from a seed structure.

    The pool is a mix of clean equation-of-state points (isotropic volume
    changes, no rattle), rattled isotropic volume changes, rattled anisotropic
    strains and, optionally, rattled point defects in a supercell.
    """

    pool_size: int = Field(
        100,
        ge=1,
        description="How many structures the pipeline (and `mlip-autopipec generate`) draws from the seed structure.",
    )
    seed: int = Field(
        42, description="Seed of the random number generator; the same seed and input give the same pool, bit for bit."
    )
    rattle_stdev: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="Standard deviation (Å) of the Gaussian displacement added to every Cartesian component of every "
        "atom.",
    )
    volume_range: tuple[float, float] = Field(
        (0.90, 1.10),
        description="Smallest and largest cell volume, as a ratio to the input cell's volume (e.g. [0.90, 1.10]). For "
        "a slab or a wire only the periodic directions are strained, and the ratio is that of the periodic area or "
        "length.",
    )
    max_anisotropic_strain: float = Field(
        0.05,
        ge=0.0,
        lt=0.5,
        description="Largest magnitude of any component of the deviatoric (volume-preserving) part of the strain "
        "tensor (dimensionless).",
    )
    eos_fraction: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description="Share of the pool made of clean equation-of-state points: evenly spaced volumes across "
        "volume_range, no rattle.",
    )
    anisotropic_fraction: float = Field(
        0.4,
        ge=0.0,
        le=1.0,
        description="Share of the pool with a random anisotropic strain (then rattled); the rest of the non-defect "
        "pool is isotropic volume changes plus rattle.",
    )
    min_distance_fraction: float = Field(
        0.5,
        ge=0.0,
        lt=2.0,
        description="A structure with two atoms closer than this fraction of the sum of their covalent radii is drawn "
        "again.",
    )
    max_draws_per_structure: int = Field(
        50,
        ge=1,
        description="How many times one structure may be drawn again for the distance guard before the generator gives "
        "up with an error.",
    )
    n_defect_structures: int = Field(
        0, ge=0, description="How many point-defect structures (in a supercell, then rattled) to add to the pool."
    )
    defect_kinds: list[DefectKind] = Field(
        default_factory=lambda: list[DefectKind](["vacancy"]),
        min_length=1,
        description="Which defects to make, taken in turn: vacancy, interstitial, antisite (antisite needs two or more "
        "species).",
    )
    interstitial_element: str | None = Field(
        None, description="Chemical symbol of the interstitial atom; default: the first species of the seed structure."
    )
    max_atoms: int = Field(
        2000,
        ge=1,
        # A guard, not part of the recipe: left out of dumps, so fingerprints and records do not change with it.
        exclude=True,
        description="Largest structure (atoms) the generator draws: a seed, an alloy or slab variant or a defect "
        "supercell above it is refused (by `validate` too) with an estimate of the pool's memory. Every structure "
        "also costs an oracle call and its share of the fit; raise it deliberately for big cells.",
    )
    defect_supercell_min_width: float = Field(
        8.0,
        gt=0.0,
        description="Smallest perpendicular width (Å) of the supercell that holds a defect, so it does not see its "
        "periodic images.",
    )

    @field_validator("volume_range")
    @classmethod
    def _check_volume_range(cls, v: tuple[float, float]) -> tuple[float, float]:
        lo, hi = v
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo <= 0.0 or hi <= 0.0:
            raise ValueError(f"volume ratios must be positive and finite, got [{lo}, {hi}]")
        if lo > hi:
            raise ValueError(f"volume_range is inverted: the lower bound {lo} is above the upper bound {hi}")
        return (float(lo), float(hi))

    @model_validator(mode="after")
    def _check_fractions(self) -> GeneratorConfig:
        if self.eos_fraction + self.anisotropic_fraction > 1.0 + 1e-12:
            raise ValueError(
                f"eos_fraction ({self.eos_fraction}) + anisotropic_fraction ({self.anisotropic_fraction}) must not "
                "exceed 1"
            )
        return self
