"""The cold start guided by a foundation model (``foundation_model.explore: true``): the starting pool is chosen
among teacher-labelled candidates instead of drawn at random.

Steps, each safe to rerun and skipped when the database shows it done:

1. :func:`step_teacher`: the candidates (:func:`~mlip_autopipec.explore.teacher.teacher_jobs`: the generator's
   structures over every seed and MD frames run with the model from every seed) are labelled by the model on the
   Dask workers; the driver stores each job's labels as *teacher* rows (:mod:`mlip_autopipec.database.teacher`),
   each with its screening verdict in ``teacher_screen`` (:func:`~mlip_autopipec.explore.screening.screen`).  A
   job whose key (``teacher_task``) is in the database is not run again.
   With ``explore_with_teacher_ace``, generation 0 follows (:func:`~.teacher_ace.step_teacher_ace`): an ACE fitted
   to the screened teacher labels explores with MD and γ, and the frames γ flags are labelled by the model the
   same way (:func:`label_teacher_jobs`), joining the candidates; no oracle call before the selection.
2. :func:`step_select`: ``generator.pool_size`` of the candidates that passed the screening are chosen
   (:func:`~mlip_autopipec.explore.diversity.choose`) and added as pending rows of source ``fm_selected`` (their
   ``parent_id``: the teacher row), for the oracle to label like any starting pool.

Then the cold start goes on as without the model (label, split, export, fit).  Teacher rows are never split,
exported as oracle data or counted as oracle calls.
"""

from __future__ import annotations

import logging

from ase import Atoms

from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.database import StructureMetadata
from mlip_autopipec.exceptions import OracleError
from mlip_autopipec.explore.screening import KEPT
from mlip_autopipec.pipeline.context import RunContext
from mlip_autopipec.pipeline.teacher_labels import (
    GUIDED_DIR,
    GUIDED_SOURCE,
    TeacherTally,
    done_tasks,
    foundation_of,
    label_teacher_jobs,
    seed_floors,
    store_teacher_labels,
)

log = logging.getLogger("mlip_autopipec")

#: provenance keys of a teacher row that belong to it only (not copied to the oracle's row)
_TEACHER_ONLY = ("teacher_model", "teacher_model_version", "teacher_package", "teacher_screen")


def guided(config: PipelineConfig) -> bool:
    """True when the config asks for the guided cold start."""
    return config.foundation_model is not None and config.foundation_model.explore


def step_teacher(ctx: RunContext) -> None:
    """Label the candidates with the model on the Dask workers and store them as teacher rows (skipped once the
    selection is made; a rerun runs only the jobs with nothing stored)."""
    from mlip_autopipec.compute.cluster import dask_client
    from mlip_autopipec.explore.teacher import teacher_jobs

    fm = foundation_of(ctx.config)
    if ctx.db.count(source=GUIDED_SOURCE):
        log.info("foundation model: the selection is made, teacher labels skipped")
        return
    done = done_tasks(ctx.db)
    jobs = [job for job in teacher_jobs(ctx.config) if job.key not in done]
    if not jobs:
        log.info("foundation model: every candidate has its teacher label, skipped")
        return
    with dask_client(ctx.config.compute_for("explore")) as client:
        tally = label_teacher_jobs(ctx, client, jobs, f"teacher ({fm.name})")
    log.info(
        "foundation model: %d jobs (%d failed), %d teacher labels, %d passed the screening (%s %s)",
        tally.jobs,
        len(tally.failed),
        tally.labels,
        tally.kept,
        fm.name,
        fm.model_version,
    )


def _oracle_row(rec_atoms: Atoms) -> Atoms:
    return Atoms(rec_atoms.numbers, rec_atoms.positions, cell=rec_atoms.cell, pbc=rec_atoms.pbc)


def step_select(ctx: RunContext) -> None:
    """Choose ``generator.pool_size`` of the screened candidates for the oracle and add them as pending rows of
    source ``fm_selected`` (skipped when the database holds them)."""
    from mlip_autopipec.explore.diversity import choose

    fm = foundation_of(ctx.config)
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
    """The guided cold start's own steps: teacher labels, the teacher ACE's exploration when asked
    (``explore_with_teacher_ace``, :mod:`.teacher_ace`), then the selection (then the cold start's labelling)."""
    from mlip_autopipec.pipeline.teacher_ace import step_teacher_ace

    step_teacher(ctx)
    step_teacher_ace(ctx)
    step_select(ctx)


__all__ = [
    "GUIDED_DIR",
    "GUIDED_SOURCE",
    "TeacherTally",
    "done_tasks",
    "guided",
    "label_teacher_jobs",
    "seed_floors",
    "step_guided_start",
    "step_select",
    "step_teacher",
    "store_teacher_labels",
]
