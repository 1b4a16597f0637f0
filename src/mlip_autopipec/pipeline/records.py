"""What a run records in its work directory, as typed models: the run state, the active-learning generations, the
trajectories of each generation, the fits and the summary.

Every path a record holds is a :data:`WorkPath`: absolute in memory, written
relative to the work directory and resolved against it when read, so a work
directory can be moved or copied.  Reading and writing go through
:func:`dump_record` / :func:`load_record` (the work directory travels as pydantic's
validation/serialisation context).  Each file carries ``schema_version``; the
layout written before versions existed (version 0) is migrated when read
(:mod:`mlip_autopipec.pipeline.migrate`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, SerializationInfo, ValidationInfo, WrapValidator

from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.fileio import atomic_path
from mlip_autopipec.report.build import ReportFigures
from mlip_autopipec.trainer.pace import TrainingResult
from mlip_autopipec.trainer.parsing import TrainingMetrics

SCHEMA_VERSION = 1
STEPS = ("active_set", "explored", "selected", "labelled", "fitted")
Step = Literal["active_set", "explored", "selected", "labelled", "fitted"]


# --------------------------------------------------------------------------- paths relative to the work directory
def _workdir(info: ValidationInfo | SerializationInfo) -> Path | None:
    context = info.context or {}
    workdir = context.get("workdir") if isinstance(context, dict) else None
    return None if workdir is None else Path(workdir)


def _resolve(value: Any, handler, info: ValidationInfo) -> Path:
    path = Path(handler(value))
    workdir = _workdir(info)
    return path if workdir is None or path.is_absolute() else workdir / path


def _relative(path: Path, info: SerializationInfo) -> str:
    workdir = _workdir(info)
    if workdir is not None:
        try:
            return Path(path).relative_to(workdir).as_posix() or "."
        except ValueError:
            pass
    return str(path)


#: A path inside the work directory: absolute in memory, relative to the work directory on disk.
WorkPath = Annotated[Path, WrapValidator(_resolve), PlainSerializer(_relative, return_type=str)]


class Record(BaseModel):
    """Base of every record: unknown fields are refused, assignments validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    schema_version: int = Field(
        SCHEMA_VERSION, description="Layout version of this record (0: written before versions existed)."
    )


R = TypeVar("R", bound=BaseModel)


def dump_record(path: Path, record: BaseModel, workdir: Path) -> None:
    """Write ``record`` as JSON to ``path`` (atomically), its paths relative to ``workdir``."""
    with atomic_path(path) as tmp:
        tmp.write_text(record.model_dump_json(indent=2, context={"workdir": Path(workdir)}))


def load_record(model: type[R], data: Any, workdir: Path) -> R:
    """Validate ``data`` (JSON text or a mapping) as ``model``, resolving its paths against ``workdir``."""
    context = {"workdir": Path(workdir)}
    if isinstance(data, (str, bytes)):
        return model.model_validate_json(data, context=context)
    return model.model_validate(data, context=context)


# --------------------------------------------------------------------------- fits
class FitRecord(Record):
    """``fits/<fit>/result.json``: what a finished pacemaker fit produced (see ``TrainingResult``), paths relative."""

    potential_yace: WorkPath = Field(description="The potential for PyACECalculator / LAMMPS pair_style pace (.yace).")
    potential_yaml: WorkPath = Field(description="The potential in pacemaker's B-basis format (.yaml).")
    metrics: TrainingMetrics = Field(description="Train (and test) RMSE pacemaker reported at the end of the fit.")
    log_path: WorkPath = Field(description="pacemaker's whole output (stdout and stderr).")
    input_yaml: WorkPath = Field(description="The input.yaml pacemaker ran with.")
    output_dir: WorkPath = Field(description="The fit's directory.")
    evaluator: Literal["tensorpot", "pyace"] = Field(description="The pacemaker backend used.")
    reference_energy: dict[str, float] | None = Field(
        None, description="Per-element reference energies (eV) pacemaker subtracted; null: none."
    )
    wall_time_s: float = Field(description="Wall-clock time of the fit (s).")

    @classmethod
    def of(cls, result: TrainingResult) -> FitRecord:
        return cls(**result.model_dump())

    def result(self) -> TrainingResult:
        return TrainingResult(**self.model_dump(exclude={"schema_version"}))


class LatestFit(Record):
    """``fits/latest.json``: which fit is the work directory's most recent one."""

    fit_dir: WorkPath = Field(description="The latest finished fit's directory.")


# --------------------------------------------------------------------------- active learning
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

    def add_seconds(self, field: str):
        """A callback adding elapsed seconds to the timing ``field`` (for :func:`~mlip_autopipec.pipeline.context.timed`)."""

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
        if row is None:
            row = GenerationRecord(generation=g, training=training)
            self.generations = sorted([*self.generations, row], key=lambda r: r.generation)
            row = self.generation(g)
        return row


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


# --------------------------------------------------------------------------- run state
class RunState(Record):
    """``state.json``: what the work directory was made with, and active learning's progress."""

    fingerprints: dict[str, str] = Field(
        description="SHA-256 per config section whose change invalidates finished work."
    )
    config: PipelineConfig = Field(description="The config of the latest run (workdir recorded as '.').")
    updated: str = Field(description="When the state was last written (local time, ISO 8601).")
    active_learning: ActiveLearningRecord | None = Field(None, description="Active learning's progress; null: not run.")


# --------------------------------------------------------------------------- summary
class PotentialFiles(BaseModel):
    model_config = ConfigDict(extra="forbid")

    yace: WorkPath = Field(description="The final potential (.yace).")
    yaml: WorkPath = Field(description="The final potential in B-basis format (.yaml).")


class Timings(BaseModel):
    """Where the run's wall time went (s)."""

    model_config = ConfigDict(extra="forbid")

    steps_s: dict[str, float] = Field(description="Wall time of each pipeline step (s).")
    total_s: float = Field(description="Wall time before the report (s).")
    oracle_s: float = Field(description="The labelling step (s).")
    pacemaker_s: float = Field(description="pacemaker runs of this run (s; 0 when every fit was reused).")
    other_s: float = Field(description="Everything else (s).")


class RunSummary(Record, ReportFigures):
    """``report/summary.json``: the run's figures, its final potential and, with active learning, its record."""

    workdir: WorkPath = Field(description="The work directory.")
    potential: PotentialFiles = Field(description="The final potential's files.")
    fit: TrainingMetrics = Field(description="pacemaker's own figures of the final fit.")
    timings: Timings = Field(description="Where the time went.")
    active_learning: ActiveLearningRecord | None = Field(None, description="Active learning's record; null: not run.")
