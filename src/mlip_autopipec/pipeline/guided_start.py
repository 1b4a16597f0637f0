"""The cold start guided by a foundation model (``foundation_model.explore: true``): the starting pool is chosen
among teacher-labelled candidates instead of drawn at random.

Steps, each safe to rerun and skipped when the database shows it done:

1. :func:`step_teacher`: the candidates (:func:`~mlip_autopipec.explore.teacher.teacher_jobs`: the generator's
   structures over every seed and MD frames run with the model from every seed) are labelled by the model on the
   Dask workers; the driver stores each job's labels as *teacher* rows (:mod:`mlip_autopipec.database.teacher`),
   each with its screening verdict in ``teacher_screen`` (:func:`~mlip_autopipec.explore.screening.screen`).  A
   job whose key (``teacher_task``) is in the database is not run again.
2. :func:`step_select`: ``generator.pool_size`` of the candidates that passed the screening are chosen
   (:func:`~mlip_autopipec.explore.diversity.choose`) and added as pending rows of source ``fm_selected`` (their
   ``parent_id``: the teacher row), for the oracle to label like any starting pool.

Then the cold start goes on as without the model (label, split, export, fit).  Teacher rows are never split,
exported as oracle data or counted as oracle calls.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ase import Atoms

from mlip_autopipec.config.schemas.foundation import FoundationModelConfig
from mlip_autopipec.config.schemas.foundation_weights import package_version
from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.database import DatabaseManager, StructureMetadata
from mlip_autopipec.database.teacher import KEY_WALL_TIME, teacher_metadata
from mlip_autopipec.exceptions import OracleError
from mlip_autopipec.explore.screening import KEPT, distance_floor, screen, shortest_distance
from mlip_autopipec.explore.teacher import TeacherLabel
from mlip_autopipec.pipeline.context import RunContext

log = logging.getLogger("mlip_autopipec")

#: the source of the structures the guided cold start sends to the oracle
GUIDED_SOURCE = "fm_selected"
#: the work directory's folder of the selection's files (the basis, pace_select's log)
GUIDED_DIR = "guided"
#: provenance keys of a teacher row that belong to it only (not copied to the oracle's row)
_TEACHER_ONLY = ("teacher_model", "teacher_model_version", "teacher_package", "teacher_screen")


def guided(config: PipelineConfig) -> bool:
    """True when the config asks for the guided cold start."""
    return config.foundation_model is not None and config.foundation_model.explore


def _fm(config: PipelineConfig) -> FoundationModelConfig:
    fm = config.foundation_model
    if fm is None:
        raise OracleError("the guided cold start needs a foundation_model section")
    return fm


def seed_floors(config: PipelineConfig) -> dict[str, float]:
    """The shortest distance (Å) each seed's candidates may have (:func:`~.screening.distance_floor`)."""
    from mlip_autopipec.generator.seed import build_seed

    fm = _fm(config)
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


def step_teacher(ctx: RunContext) -> None:
    """Label the candidates with the model on the Dask workers and store them as teacher rows (skipped once the
    selection is made; a rerun runs only the jobs with nothing stored)."""
    from mlip_autopipec.compute.cluster import dask_client
    from mlip_autopipec.compute.tasks import Done, Task, run_tasks
    from mlip_autopipec.explore.teacher import exploration_settings, run_job, teacher_jobs, teacher_model
    from mlip_autopipec.progress import progress_bar

    fm = _fm(ctx.config)
    if ctx.db.count(source=GUIDED_SOURCE):
        log.info("foundation model: the selection is made, teacher labels skipped")
        return
    done = done_tasks(ctx.db)
    jobs = [job for job in teacher_jobs(ctx.config) if job.key not in done]
    if not jobs:
        log.info("foundation model: every candidate has its teacher label, skipped")
        return
    floors, model, settings = seed_floors(ctx.config), teacher_model(fm), exploration_settings(ctx.config)
    tasks = [Task(f"teacher-{job.key}", run_job, (job, model, settings, fm.md_frames)) for job in jobs]
    tally = {"jobs": 0, "labels": 0, "kept": 0}
    failed: dict[str, str] = {}
    with (
        progress_bar(f"teacher ({fm.name})", total=len(tasks), enabled=ctx.progress) as update,
        dask_client(ctx.config.compute_for("explore")) as client,
    ):

        def on_done(finished: Done[list[TeacherLabel]]) -> None:
            key = jobs[finished.index].key
            try:
                labels = finished.result()
            except Exception as err:  # a job the model cannot run: its candidates are left out (a rerun tries again)
                failed[key] = f"{type(err).__name__}: {err}"
                log.warning("foundation model: job %s failed: %s", key, failed[key])
                labels = []
            tally["kept"] += store_teacher_labels(ctx.db, labels, fm, floors)
            tally["jobs"] += 1
            tally["labels"] += len(labels)
            update(tally["jobs"], extra=f"labels {tally['labels']}, screened out {tally['labels'] - tally['kept']}")

        run_tasks(client, tasks, on_done)
    if failed and len(failed) == len(jobs):
        key, reason = next(iter(failed.items()))
        raise OracleError(
            f"foundation model {fm.name} {fm.model_version}: every one of {len(jobs)} teacher jobs "
            f"failed; the first ({key}): {reason}"
        )
    log.info(
        "foundation model: %d jobs (%d failed), %d teacher labels, %d passed the screening (%s %s)",
        tally["jobs"],
        len(failed),
        tally["labels"],
        tally["kept"],
        fm.name,
        fm.model_version,
    )


def _oracle_row(rec_atoms: Atoms) -> Atoms:
    return Atoms(rec_atoms.numbers, rec_atoms.positions, cell=rec_atoms.cell, pbc=rec_atoms.pbc)


def step_select(ctx: RunContext) -> None:
    """Choose ``generator.pool_size`` of the screened candidates for the oracle and add them as pending rows of
    source ``fm_selected`` (skipped when the database holds them)."""
    from mlip_autopipec.explore.diversity import choose

    fm = _fm(ctx.config)
    have = ctx.db.count(source=GUIDED_SOURCE)
    if have:
        log.info("selection: the database holds the %d structures chosen for the oracle, skipped", have)
        return
    kept = [rec for rec in ctx.db.select(status="teacher") if rec.metadata.provenance.get("teacher_screen") == KEPT]
    if not kept:
        raise OracleError(
            f"the foundation model's screening dropped every one of {ctx.db.count(status='teacher')} candidates "
            "(`mlip-autopipec status` counts them): raise foundation_model.max_force or lower min_distance_fraction"
        )
    n = min(ctx.config.generator.pool_size, len(kept))
    picked = choose([rec.atoms for rec in kept], n, fm.selection, ctx.config.training, ctx.workdir / GUIDED_DIR)
    metas = []
    for i in picked:
        prov = {k: v for k, v in kept[i].metadata.provenance.items() if k not in _TEACHER_ONLY}
        metas.append(
            StructureMetadata(
                source=GUIDED_SOURCE,
                generation=0,
                provenance={**prov, "selection": fm.selection},
                parent_id=kept[i].id,
            )
        )
    ids = ctx.db.add_structures([_oracle_row(kept[i].atoms) for i in picked], metas)
    log.info(
        "selection (%s): %d of %d screened candidates for the oracle (%d teacher labels in all)",
        fm.selection,
        len(set(ids)),
        len(kept),
        ctx.db.count(status="teacher"),
    )


def step_guided_start(ctx: RunContext) -> None:
    """The guided cold start's own steps: teacher labels, then the selection (then the cold start's labelling)."""
    step_teacher(ctx)
    step_select(ctx)


__all__ = [
    "GUIDED_SOURCE",
    "done_tasks",
    "guided",
    "seed_floors",
    "step_guided_start",
    "step_select",
    "step_teacher",
    "store_teacher_labels",
]
