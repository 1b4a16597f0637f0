"""The records of a run's progress: ``state.json`` (the run state and active learning's generations) and each
generation's ``al/gen_<g>/trajectories.json``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.records.base import Record, WorkPath

STEPS = ("active_set", "explored", "selected", "labelled", "fitted")
Step = Literal["active_set", "explored", "selected", "labelled", "fitted"]


class ValidationErrors(BaseModel):
    """The validation RMSE of a fit on the labelled validation split at the time of the fit (null: no split)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    n_validation: int | None = Field(None, description="Labelled validation structures evaluated.")
    validation_energy_rmse_mev_per_atom: float | None = Field(None, description="Energy RMSE per atom (meV/atom).")
    validation_force_rmse_mev_per_angstrom: float | None = Field(None, description="Force RMSE per component (meV/Å).")


class InitialFit(ValidationErrors):
    """The fit active learning started from (generation 0)."""

    fit_dir: WorkPath = Field(description="The fit's directory.")
    training: str = Field(description="Fingerprint of the training settings it was made with.")
    n_labelled_total: int = Field(description="Labelled structures in the database when active learning started.")


class FinalFit(ValidationErrors):
    """The fit that continues the last refit, shorter than active_learning.final_max_epochs, on the same data."""

    fit_dir: WorkPath = Field(description="The fit's directory (fits/final-*).")
    start_dir: WorkPath = Field(description="The fit it continued from.")
    max_epochs: int = Field(description="Minimiser iterations it ran with.")
    n_labelled_total: int = Field(description="Labelled structures in the database at the fit.")
    fit_s: float = Field(0.0, description="Time exporting and fitting (s).")


class GenerationRecord(ValidationErrors):
    """One generation of active learning: what each finished step found, written as soon as the step is done."""

    generation: int = Field(ge=1, description="Generation number (1, 2, ...).")
    step: Step | None = Field(
        None, description="The last finished step: active_set, explored, selected, labelled, fitted."
    )
    training: str = Field(description="Fingerprint of the training settings of this generation's refit.")
    active_set: WorkPath | None = Field(None, description="The .asi active set exploration and selection used.")
    trajectories: int | None = Field(None, description="Exploration trajectories planned.")
    completed: int | None = Field(None, description="Trajectories that ran all their steps.")
    not_started: int | None = Field(
        None, description="Trajectories whose start structure the potential could not evaluate."
    )
    candidates: int | None = Field(None, description="Candidate structures the trajectories returned.")
    halts: int | None = Field(None, description="Trajectories halted early (γ or blow-up).")
    gamma_halts: int | None = Field(None, description="Trajectories halted by γ ≥ gamma_halt.")
    blowups: int | None = Field(None, description="Trajectories that blew up.")
    max_gamma: float | None = Field(None, description="Largest extrapolation grade γ seen (dimensionless).")
    excluded: int | None = Field(None, description="Candidates skipped because the database already holds them.")
    selected: int | None = Field(None, description="Structures selected and added to the database as pending.")
    selected_md_halt: int | None = Field(None, description="Of those, halting frames and their rattled copies.")
    labelled: int | None = Field(None, description="Structures of this generation labelled.")
    failed: int | None = Field(None, description="Structures of this generation the oracle failed on.")
    oracle_calls_total: int | None = Field(
        None, description="Oracle calls by active learning so far (all generations)."
    )
    fit_dir: WorkPath | None = Field(None, description="The refit's directory.")
    fit_max_epochs: int | None = Field(
        None, description="Minimiser iterations the refit ran with (null: not recorded)."
    )
    n_labelled_total: int | None = Field(None, description="Labelled structures in the database at the refit.")
    active_set_s: float = Field(0.0, description="Time building the active set (s).")
    explore_s: float = Field(0.0, description="Time exploring (s).")
    select_s: float = Field(0.0, description="Time selecting (s).")
    label_s: float = Field(0.0, description="Time labelling (s).")
    fit_s: float = Field(0.0, description="Time exporting and refitting (s).")

    def done(self, step: Step) -> bool:
        """True when ``step`` (or a later one) has finished."""
        return self.step is not None and STEPS.index(self.step) >= STEPS.index(step)

    def add_seconds(self, field: str) -> Callable[[float], None]:
        """A callback adding elapsed seconds to the timing ``field``
        (for :func:`~mlip_autopipec.pipeline.context.timed`)."""

        def add(seconds: float) -> None:
            setattr(self, field, getattr(self, field) + seconds)

        return add


class ActiveLearningRecord(BaseModel):
    """The active-learning part of ``state.json``."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    initial: InitialFit | None = Field(None, description="The fit active learning started from.")
    generations: list[GenerationRecord] = Field(
        default_factory=list, description="One record per generation, in order."
    )
    stop_reason: str | None = Field(None, description="Why active learning stopped; null while it runs.")
    final: FinalFit | None = Field(
        None,
        description="The closing fit made when active learning stopped after a short refit; null: none was needed.",
    )

    def generation(self, g: int) -> GenerationRecord | None:
        return next((row for row in self.generations if row.generation == g), None)

    def start_generation(self, g: int, training: str) -> GenerationRecord:
        """The record of generation ``g``, created when there is none."""
        row = self.generation(g)
        if row is not None:
            return row
        self.generations = sorted([*self.generations, GenerationRecord(generation=g, training=training)], key=_number)
        return next(row for row in self.generations if row.generation == g)  # the list's own (validated) copy


def _number(row: GenerationRecord) -> int:
    return row.generation


class TrajectoryRecord(BaseModel):
    """``al/gen_<g>/trajectories.json``: the outcome of one exploration trajectory."""

    model_config = ConfigDict(extra="forbid")

    condition: str = Field(description="The condition's label, e.g. nvt_300K or npt_900K_-5GPa.")
    start: str = Field(description="Where it started: 'seed' (the seed crystal) or a database id.")
    stop: Literal["completed", "gamma", "blowup", "error"] = Field(
        description="Why it ended; 'error': it could not start."
    )
    reason: str = Field("", description="The stop in words.")
    n_candidates: int = Field(0, description="Candidate structures it returned.")
    ensemble_used: str | None = Field(None, description="The ensemble actually run.")
    seed: int | None = Field(None, description="Its random seed.")
    n_atoms: int | None = Field(None, description="Atoms in the MD cell.")
    n_steps: int | None = Field(None, description="Steps asked for.")
    n_steps_done: int | None = Field(None, description="Steps run.")
    max_gamma: float | None = Field(None, description="Largest γ seen (dimensionless).")
    wall_time_s: float | None = Field(None, description="Wall-clock time (s).")


class TrajectoryRecords(Record):
    """Every trajectory of one generation, in plan order."""

    generation: int = Field(ge=1, description="The generation.")
    trajectories: list[TrajectoryRecord] = Field(description="One record per planned trajectory.")


class RunState(Record):
    """``state.json``: what the work directory was made with, and active learning's progress."""

    fingerprints: dict[str, str] = Field(
        description="SHA-256 per config section whose change invalidates finished work."
    )
    config: PipelineConfig = Field(description="The config of the latest run (workdir recorded as '.').")
    updated: str = Field(description="When the state was last written (local time, ISO 8601).")
    active_learning: ActiveLearningRecord | None = Field(None, description="Active learning's progress; null: not run.")
