"""Settings of active learning: explore with the fitted potential, catch extrapolation with γ, label what is new.

The extrapolation grade γ of an atom is the largest absolute coefficient of its
B-basis projection expressed in the active set (D-optimality, MaxVol): γ ≤ 1
means the atom's environment is inside the span of the training data, γ > 1 is
extrapolation.  γ is dimensionless.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, field_validator, model_validator

from mlip_autopipec.config.schemas.base import StrictModel

Ensemble = Literal["nvt", "npt"]


def _both_ensembles() -> list[Ensemble]:
    return ["nvt", "npt"]


class ActiveLearningConfig(StrictModel):
    """One generation: active set → MD exploration with γ → D-optimal selection → labelling → refit.

    Selected structures enter the database with generation g: halting frames and
    their rattled copies with source "md_halt", frames sampled below gamma_halt
    with source "active_learning_iter_<g>".

    NVT runs ASE's Langevin thermostat; NPT runs ASE's LangevinBAOAB (Langevin
    thermostat on the atoms, Langevin-Hoover barostat on the cell), which
    accepts any periodic cell (ase.md.npt.NPT needs an upper-triangular cell).
    """

    # --- thresholds of the extrapolation grade
    gamma_select: float = Field(
        2.0,
        ge=1.0,
        description="Frames whose largest per-atom extrapolation grade γ (dimensionless) is at least this and below "
        "gamma_halt become candidates for labelling. γ ≤ 1 is interpolation; pacemaker calls 1-2 safe extrapolation.",
    )
    gamma_halt: float = Field(
        5.0,
        gt=1.0,
        description="A trajectory halts when the largest per-atom γ (dimensionless) reaches this; the halting "
        "structure and n_rattled_copies rattled copies of it become candidates (source 'md_halt').",
    )

    # --- molecular dynamics
    temperatures: list[float] = Field(
        default_factory=lambda: [300.0, 900.0, 1300.0],
        min_length=1,
        description="Target temperatures (K) of the exploration trajectories; every ensemble runs at every "
        "temperature.",
    )
    pressures: list[float] = Field(
        default_factory=lambda: [0.0],
        min_length=1,
        description="Target hydrostatic pressures (GPa) of the NPT trajectories (negative: tension); NVT ignores them.",
    )
    ensembles: list[Ensemble] = Field(
        default_factory=_both_ensembles,
        min_length=1,
        description="Which ensembles to explore: 'nvt' (Langevin, fixed cell) and/or 'npt' (LangevinBAOAB, variable "
        "cell). NPT needs a cell periodic in all three directions; other structures run NVT instead.",
    )
    timestep: float = Field(2.0, gt=0.0, le=10.0, description="MD time step (fs).")
    n_steps: int = Field(2000, ge=1, description="MD steps of one trajectory (its length is n_steps × timestep fs).")
    trajectories_per_condition: int = Field(
        2,
        ge=1,
        description="Independent trajectories (different seeds or start structures) per (ensemble, temperature, "
        "pressure).",
    )
    sample_interval: int = Field(
        10,
        ge=1,
        description="Every this many MD steps a frame with gamma_select ≤ γ < gamma_halt is kept as a candidate "
        "(γ ≥ gamma_halt and blow-ups are checked at every step).",
    )
    thermostat_time: float = Field(
        100.0,
        gt=0.0,
        description="Thermostat time constant (fs): the Langevin friction is its inverse; LangevinBAOAB's T_tau.",
    )
    barostat_time: float = Field(
        1000.0, gt=0.0, description="Barostat time constant (fs) of NPT runs (LangevinBAOAB's P_tau)."
    )
    npt_hydrostatic: bool = Field(
        True,
        description="NPT keeps the cell shape and changes only the volume; false lets all six cell degrees of freedom "
        "move.",
    )
    md_min_atoms: int = Field(
        32,
        ge=1,
        description="A start structure with fewer atoms is repeated along its shortest cell vectors until it has at "
        "least this many.",
    )

    # --- halting structures and blow-ups
    n_rattled_copies: int = Field(
        3, ge=0, description="How many rattled copies of a halting structure join it as candidates (source 'md_halt')."
    )
    rattle_stdev: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="Standard deviation (Å) of the Gaussian displacement of every atom of a rattled copy.",
    )
    min_distance_fraction: float = Field(
        0.5,
        gt=0.0,
        lt=2.0,
        description="A frame with two atoms closer than this fraction of the sum of their covalent radii is a blow-up: "
        "the trajectory stops and the frame is not a candidate; rattled copies that close are drawn again.",
    )
    max_temperature_ratio: float = Field(
        5.0,
        gt=1.0,
        description="A frame hotter than this multiple of the target temperature is a blow-up (dimensionless).",
    )
    blowup_candidates: int = Field(
        3,
        ge=0,
        description="How many of the last sane frames sampled (every sample_interval steps) before a blow-up become "
        "candidates (source 'md_blowup'), so the loop learns the path into it; 0: blow-ups teach nothing.",
    )

    # --- convergence: an adequate fit AND a quiet exploration
    target_force_rmse_mev_per_angstrom: float | None = Field(
        25.0,
        gt=0.0,
        description="Convergence needs the fit's training and validation force RMSE (meV/Å, per Cartesian component) "
        "at or below this; null: not checked.",
    )
    target_energy_rmse_mev_per_atom: float | None = Field(
        5.0,
        gt=0.0,
        description="Convergence needs the fit's training and validation energy RMSE (meV/atom) at or below this; "
        "null: not checked.",
    )
    quiet_generations: int = Field(
        2,
        ge=1,
        description="Convergence needs this many consecutive generations whose trajectories all ran their full length "
        "without a γ halt or a blow-up (a quiet generation still labels its sampled candidates, if any).",
    )

    # --- selection and budget
    max_new_per_generation: int = Field(
        20, ge=1, description="Most structures selected (D-optimality) for labelling in one generation."
    )
    selection_memory_limit: float | None = Field(
        None,
        gt=0.0,
        description="Memory (MB) the D-optimal selection may use for B-basis projections; larger candidate sets are "
        "processed in batches. Default: 80 % of the memory available.",
    )
    max_generations: int = Field(5, ge=1, description="Most active-learning generations.")
    max_oracle_calls: int | None = Field(
        None,
        ge=1,
        description="Labelling budget of active learning: most oracle calls (structures it adds for labelling, failed "
        "ones included) over all generations, the starting pool not counted; default: no limit.",
    )
    continue_from_previous: bool = Field(
        True,
        description="Refit each generation starting from the previous generation's potential instead of from scratch.",
    )
    refit_max_epochs: int | None = Field(
        None,
        ge=1,
        description="Minimiser iterations of a refit made while exploring goes on; null: training.max_num_epochs. A "
        "refit continues from the previous potential, so a short one is enough to steer the next generation. Needs "
        "continue_from_previous.",
    )
    final_max_epochs: int | None = Field(
        None,
        ge=1,
        description="Minimiser iterations of the potential active learning hands on; null: training.max_num_epochs. A "
        "refit known to be the last (max_generations or max_oracle_calls reached) runs them; a run that stops after a "
        "refit with fewer ends with one more fit, continued from it on the same data (fits/final-*).",
    )
    seed: int = Field(
        42,
        description="Base seed of initial velocities, thermostat noise and rattled copies; the same seed gives the "
        "same run.",
    )

    @field_validator("temperatures")
    @classmethod
    def _positive_temperatures(cls, v: list[float]) -> list[float]:
        for t in v:
            if not math.isfinite(t) or t <= 0.0:
                raise ValueError(f"temperatures must be positive and finite (K), got {t}")
        return [float(t) for t in v]

    @field_validator("pressures")
    @classmethod
    def _finite_pressures(cls, v: list[float]) -> list[float]:
        for p in v:
            if not math.isfinite(p):
                raise ValueError(f"pressures must be finite (GPa), got {p}")
        return [float(p) for p in v]

    @field_validator("ensembles")
    @classmethod
    def _unique_ensembles(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"ensembles must not repeat, got {v}")
        return v

    @model_validator(mode="after")
    def _check_thresholds(self) -> ActiveLearningConfig:
        if self.gamma_halt <= self.gamma_select:
            raise ValueError(f"gamma_halt ({self.gamma_halt}) must be above gamma_select ({self.gamma_select})")
        if self.refit_max_epochs is not None and not self.continue_from_previous:
            raise ValueError(
                "refit_max_epochs needs continue_from_previous: true (a short fit from scratch is a poor potential)"
            )
        return self
