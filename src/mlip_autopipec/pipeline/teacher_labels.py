"""The teacher's labels on the Dask workers: foundation-model jobs run, each label screened and stored as a
*teacher* row (:mod:`mlip_autopipec.database.teacher`).  Shared by the guided cold start's steps
(:mod:`.guided_start`: the candidates; :mod:`.teacher_ace`: the frames the teacher ACE flags).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mlip_autopipec.config.schemas.foundation import FoundationModelConfig
from mlip_autopipec.config.schemas.foundation_weights import package_version
from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.database import DatabaseManager
from mlip_autopipec.database.teacher import KEY_WALL_TIME, teacher_metadata
from mlip_autopipec.exceptions import OracleError
from mlip_autopipec.explore.screening import KEPT, distance_floor, screen, shortest_distance
from mlip_autopipec.explore.teacher import TeacherJob, TeacherLabel
from mlip_autopipec.pipeline.context import RunContext

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger("mlip_autopipec")

#: the source of the structures the guided cold start sends to the oracle
GUIDED_SOURCE = "fm_selected"
#: the work directory's folder of the selection's files (the basis, pace_select's log)
GUIDED_DIR = "guided"
#: the provenance ``candidate`` of the frames the teacher ACE flagged (:mod:`.teacher_ace`)
CANDIDATE = "teacher_ace"


def foundation_of(config: PipelineConfig) -> FoundationModelConfig:
    """The config's foundation_model section (an :class:`OracleError` without one)."""
    fm = config.foundation_model
    if fm is None:
        raise OracleError("the guided cold start needs a foundation_model section")
    return fm


def own_frame(provenance: dict[str, object]) -> bool:
    """Whether a teacher row is a frame the teacher ACE flagged (not one of the candidates it was fitted to)."""
    return provenance.get("candidate") == CANDIDATE


def teacher_ace_frames(db: DatabaseManager) -> int:
    """Teacher rows of frames the teacher ACE flagged (0 without its exploration)."""
    return sum(own_frame(rec.metadata.provenance) for rec in db.select(status="teacher"))


def seed_floors(config: PipelineConfig) -> dict[str, float]:
    """The shortest distance (Å) each seed's candidates may have (:func:`~.screening.distance_floor`)."""
    from mlip_autopipec.generator.seed import build_seed

    fm = foundation_of(config)
    floors = {}
    for seed in config.seeds:
        crystal = build_seed(seed.model_copy(update={"repeat": (1, 1, 1)}))
        floors[str(seed.name)] = distance_floor(fm, shortest_distance(crystal))
    return floors


def store_teacher_labels(
    db: DatabaseManager, labels: Sequence[TeacherLabel], fm: FoundationModelConfig, floors: dict[str, float]
) -> int:
    """Store one job's labels as teacher rows (one transaction), each screened; return how many passed."""
    package = f"{fm.name} {package_version(fm.name)}"
    metas, infos, kept = [], [], 0
    floor_default = min(floors.values())
    for label in labels:
        floor = floors.get(str(label.provenance.get("seed")), floor_default)
        verdict = screen(label.atoms, label.atoms.get_forces(), fm.max_force, floor)
        kept += verdict == KEPT
        metas.append(
            teacher_metadata({**label.provenance, "teacher_screen": verdict}, fm.name, fm.model_version, package)
        )
        infos.append({KEY_WALL_TIME: round(label.wall_time_s, 4)})
    if labels:
        db.add_teacher_rows([label.atoms for label in labels], metas, infos)
    return kept


def done_tasks(db: DatabaseManager) -> set[str]:
    """The keys of the teacher jobs whose labels the database holds."""
    return {str(rec.metadata.provenance.get("teacher_task")) for rec in db.select(status="teacher")}


@dataclass
class TeacherTally:
    """What a batch of teacher jobs gave: jobs done, labels stored, labels that passed the screening, failures."""

    jobs: int = 0
    labels: int = 0
    kept: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # job key: why it failed


def label_teacher_jobs(
    ctx: RunContext,
    client: Client,
    jobs: Sequence[TeacherJob],
    title: str,
    adjust: Callable[[TeacherLabel], TeacherLabel] | None = None,
) -> TeacherTally:
    """Run ``jobs`` with the model on the Dask ``client`` and store each job's labels as teacher rows as it ends
    (``adjust``: applied to each label first, e.g. its provenance).  A job that fails leaves its candidates out
    (a rerun tries again); every job failing raises :class:`OracleError`."""
    from mlip_autopipec.compute.tasks import Done, Task, run_tasks
    from mlip_autopipec.explore.teacher import exploration_settings, run_job, teacher_model
    from mlip_autopipec.progress import progress_bar

    fm = foundation_of(ctx.config)
    floors, model, settings = seed_floors(ctx.config), teacher_model(fm), exploration_settings(ctx.config)
    tasks = [Task(f"teacher-{job.key}", run_job, (job, model, settings, fm.md_frames)) for job in jobs]
    tally = TeacherTally()
    with progress_bar(title, total=len(tasks), enabled=ctx.progress) as update:

        def on_done(finished: Done[list[TeacherLabel]]) -> None:
            key = jobs[finished.index].key
            try:
                labels = finished.result()
            except Exception as err:  # a job the model cannot run: its candidates are left out (a rerun tries again)
                tally.failed[key] = f"{type(err).__name__}: {err}"
                log.warning("foundation model: job %s failed: %s", key, tally.failed[key])
                labels = []
            if adjust is not None:
                labels = [adjust(label) for label in labels]
            tally.kept += store_teacher_labels(ctx.db, labels, fm, floors)
            tally.jobs += 1
            tally.labels += len(labels)
            update(tally.jobs, extra=f"labels {tally.labels}, screened out {tally.labels - tally.kept}")

        run_tasks(client, tasks, on_done)
    if jobs and len(tally.failed) == len(jobs):
        key, reason = next(iter(tally.failed.items()))
        raise OracleError(
            f"foundation model {fm.name} {fm.model_version}: every one of {len(jobs)} teacher jobs "
            f"failed; the first ({key}): {reason}"
        )
    return tally


__all__ = [
    "CANDIDATE",
    "GUIDED_DIR",
    "GUIDED_SOURCE",
    "TeacherTally",
    "done_tasks",
    "foundation_of",
    "label_teacher_jobs",
    "own_frame",
    "seed_floors",
    "store_teacher_labels",
    "teacher_ace_frames",
]
