"""Generation 0 of the guided cold start (``foundation_model.explore_with_teacher_ace``): an ACE fitted to the
teacher's labels explores before any oracle call, and what it finds joins the candidates of the selection.

Between the teacher labels (:func:`~.guided_start.step_teacher`) and the selection (:func:`~.guided_start.step_select`),
in ``guided/teacher_ace/``:

1. **fit**: the teacher rows that passed the screening, with their teacher labels, are exported to
   ``teacher.pckl.gzip`` (a dataset of the teacher for this fit only: the oracle's exports never hold a teacher row)
   and fitted with the training section's basis and cutoff, ``active_learning.refit_max_epochs`` minimiser
   iterations (:func:`fit_epochs`), in ``teacher-ace-<key>/``; then its active set (``pace_activeset``).
2. **explore**: active learning's MD with γ (:func:`~.active_learning.md_runs.run_md`, generation 0: from every
   seed, under the active-learning conditions, with its γ observers); the frames γ flags (samples, halts and
   their rattled copies, paths into blow-ups) are saved to ``candidates.xyz``.
3. **label**: the model labels those frames as teacher rows on the Dask workers
   (:func:`~.guided_start.label_teacher_jobs`), screened like every candidate; their provenance says
   ``candidate: teacher_ace``.  The selection then chooses ``generator.pool_size`` among the generator's
   structures, the model's MD frames and these.

What each part did and took is recorded in ``exploration.json``
(:class:`~mlip_autopipec.records.teacher_ace.TeacherAceRecord`): a rerun skips a finished part (a fit whose files
are gone is made again).  The fit, active set and MD time is the teacher's cost: each frame's teacher row carries
its share of it in ``teacher_wall_time_s`` beside the model's own time, so ``status`` and the report count it with
the teacher, apart from the oracle's calls.  Nothing here calls the oracle.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from ase import Atoms

from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.explore.screening import KEPT
from mlip_autopipec.explore.teacher import CHUNK, TeacherJob, TeacherLabel
from mlip_autopipec.pipeline.context import RunContext, timed
from mlip_autopipec.pipeline.teacher_labels import (
    CANDIDATE,
    GUIDED_DIR,
    GUIDED_SOURCE,
    done_tasks,
    label_teacher_jobs,
    own_frame,
    teacher_ace_frames,
)
from mlip_autopipec.records import dump_record, read_record
from mlip_autopipec.records.teacher_ace import TeacherAceRecord
from mlip_autopipec.trainer.pace import TrainingResult

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger("mlip_autopipec")

#: the folder of the teacher ACE under ``guided/``, and its files
TEACHER_ACE_DIR = "teacher_ace"
RECORD_FILE = "exploration.json"
DATASET_FILE = "teacher.pckl.gzip"
CANDIDATES_FILE = "candidates.xyz"
#: the teacher ACE's fit folder prefix
TAG = "teacher-ace"


# --------------------------------------------------------------------------- pure decisions
def wanted(config: PipelineConfig) -> bool:
    """True when the guided cold start explores with the teacher ACE first."""
    fm = config.foundation_model
    return fm is not None and fm.explore and fm.explore_with_teacher_ace and config.active_learning is not None


def fit_epochs(config: PipelineConfig) -> int:
    """Minimiser iterations of the teacher ACE: active learning's ``refit_max_epochs``, else the training's."""
    al = config.active_learning
    return (al.refit_max_epochs if al is not None else None) or config.training.max_num_epochs


def frame_jobs(frames: list[Atoms]) -> list[TeacherJob]:
    """The teacher jobs labelling ``frames``: chunks of :data:`~mlip_autopipec.explore.teacher.CHUNK`, keys
    ``teacher_ace:<first index>`` (a rerun skips the keys stored)."""
    return [
        TeacherJob(f"{CANDIDATE}:{i}", "single_points", structures=frames[i : i + CHUNK])
        for i in range(0, len(frames), CHUNK)
    ]


def frame_label(label: TeacherLabel, share_s: float, fit_name: str) -> TeacherLabel:
    """A flagged frame's teacher label as stored: ``candidate: teacher_ace``, the fit that flagged it, its MD
    ``source`` kept as ``md_source``; its wall time plus ``share_s``, its share of the teacher ACE's fit and MD (s)."""
    prov = {k: v for k, v in label.provenance.items() if k != "source"}
    if "source" in label.provenance:
        prov["md_source"] = label.provenance["source"]
    prov.update(candidate=CANDIDATE, teacher_ace_fit=fit_name)
    return dataclasses.replace(label, provenance=prov, wall_time_s=label.wall_time_s + share_s)


# --------------------------------------------------------------------------- the parts
def ace_dir(workdir: Path) -> Path:
    """``workdir/guided/teacher_ace``: the teacher ACE's dataset, fit, candidates and record."""
    return Path(workdir) / GUIDED_DIR / TEACHER_ACE_DIR


def _fit(ctx: RunContext, record: TeacherAceRecord) -> TrainingResult | None:
    """The teacher ACE: the recorded fit, else a fit on the screened teacher rows (None: there is none to fit)."""
    from mlip_autopipec.pipeline.active_learning.policy import training_with
    from mlip_autopipec.pipeline.fits import fit_or_reuse, load_fit

    if record.done("fitted"):
        fit = load_fit(ctx.workdir, record.fit_dir)
        if fit is not None:
            return fit
        log.warning("teacher ACE: its fit %s is gone: fitting again", record.fit_dir)
    ids = [
        rec.id
        for rec in ctx.db.select(status="teacher")
        if rec.metadata.provenance.get("teacher_screen") == KEPT and not own_frame(rec.metadata.provenance)
    ]
    if not ids:
        return None
    folder = ace_dir(ctx.workdir)
    folder.mkdir(parents=True, exist_ok=True)
    epochs, seconds = fit_epochs(ctx.config), list[float]()
    with timed("teacher ACE: fit", seconds.append):
        ctx.db.save_teacher_dataset(folder / DATASET_FILE, ids)
        training = training_with(ctx.config.training, epochs)
        fit = fit_or_reuse(ctx, folder / DATASET_FILE, None, training=training, tag=TAG, folder=folder)
    record.step, record.fit_dir, record.n_teacher_rows = "fitted", fit.output_dir, len(ids)
    record.max_epochs, record.fit_s = epochs, seconds[0]
    return fit


def _active_set(ctx: RunContext, record: TeacherAceRecord, fit: TrainingResult) -> Path:
    from mlip_autopipec.explore.activeset import asi_path_for, build_active_set

    asi = asi_path_for(Path(fit.potential_yaml))
    if record.done("active_set") and asi.is_file():
        return asi
    seconds = list[float]()
    with timed("teacher ACE: active set", seconds.append):
        asi = build_active_set(fit.potential_yaml, ace_dir(ctx.workdir) / DATASET_FILE)
    record.step, record.active_set_s = "active_set", seconds[0]
    return asi


def _explore(ctx: RunContext, client: Client, record: TeacherAceRecord, fit: TrainingResult, asi: Path) -> list[Atoms]:
    """The frames γ flagged in the teacher ACE's MD (read back from ``candidates.xyz`` once explored)."""
    from mlip_autopipec.pipeline.active_learning.md_runs import read_candidates, run_md, write_candidates

    path = ace_dir(ctx.workdir) / CANDIDATES_FILE
    if record.done("explored") and path.is_file():
        return read_candidates(path)
    seconds = list[float]()
    with timed("teacher ACE: explore", seconds.append):
        frames, trajectories = run_md(ctx, client, fit, asi, 0)
    write_candidates(path, frames)
    record.step, record.md_s, record.trajectories, record.candidates = "explored", seconds[0], trajectories, len(frames)
    stops = [t.stop for t in trajectories]
    log.info(
        "teacher ACE: %d trajectories, %d halted by γ, %d blew up, %d frames flagged, largest γ %.3g",
        len(trajectories),
        stops.count("gamma"),
        stops.count("blowup"),
        len(frames),
        max((t.max_gamma or 0.0 for t in trajectories), default=0.0),
    )
    return read_candidates(path)  # as a rerun reads them: the same frames either way


def _label(ctx: RunContext, client: Client, record: TeacherAceRecord, frames: list[Atoms]) -> None:
    """The model's labels of the flagged frames, as screened teacher rows (jobs already stored are skipped)."""
    done = done_tasks(ctx.db)
    jobs = [job for job in frame_jobs(frames) if job.key not in done]
    if jobs:
        share = record.wall_time_s / max(len(frames), 1)
        fit_name = Path(record.fit_dir).name if record.fit_dir is not None else ""
        label_teacher_jobs(
            ctx, client, jobs, "teacher labels (teacher ACE)", lambda label: frame_label(label, share, fit_name)
        )
    rows = [rec for rec in ctx.db.select(status="teacher") if own_frame(rec.metadata.provenance)]
    record.teacher_labels = len(rows)
    record.kept = sum(rec.metadata.provenance.get("teacher_screen") == KEPT for rec in rows)
    record.step = "labelled"


def _unlabelled(ctx: RunContext, candidates: Path) -> bool:
    """Whether some job of the saved frames has no teacher row (failed before: a rerun tries it again)."""
    from mlip_autopipec.pipeline.active_learning.md_runs import read_candidates

    if not candidates.is_file():
        return True
    done = done_tasks(ctx.db)
    return any(job.key not in done for job in frame_jobs(read_candidates(candidates)))


def step_teacher_ace(ctx: RunContext) -> None:
    """Generation 0: fit the teacher ACE, explore with it, label what γ flags with the model (see the module's
    note).  Skipped without ``explore_with_teacher_ace``, once the selection is made, and part by part when done."""
    from mlip_autopipec.compute.cluster import dask_client

    if not wanted(ctx.config):
        return
    if ctx.db.count(source=GUIDED_SOURCE):
        log.info("teacher ACE: the selection is made, skipped")
        return
    folder = ace_dir(ctx.workdir)
    record = read_record(folder / RECORD_FILE, TeacherAceRecord, ctx.workdir) or TeacherAceRecord()
    if record.done("labelled") and not _unlabelled(ctx, folder / CANDIDATES_FILE):
        log.info("teacher ACE: explored, and its %d frames labelled by the teacher: skipped", record.candidates)
        return
    fit = _fit(ctx, record)
    if fit is None:
        log.warning("teacher ACE: no teacher label passed the screening, nothing to fit: skipped")
        return
    dump_record(folder / RECORD_FILE, record, ctx.workdir)
    asi = _active_set(ctx, record, fit)
    dump_record(folder / RECORD_FILE, record, ctx.workdir)
    with dask_client(ctx.config.compute_for("explore")) as client:
        frames = _explore(ctx, client, record, fit, asi)
        dump_record(folder / RECORD_FILE, record, ctx.workdir)
        _label(ctx, client, record, frames)
    dump_record(folder / RECORD_FILE, record, ctx.workdir)
    log.info(
        "teacher ACE: fit %.0f s (%d teacher labels, %d iterations), MD %.0f s: %d frames flagged, %d teacher labels "
        "added, %d passed the screening",
        record.fit_s,
        record.n_teacher_rows,
        record.max_epochs,
        record.md_s,
        record.candidates,
        record.teacher_labels,
        record.kept,
    )


__all__ = [
    "CANDIDATE",
    "TEACHER_ACE_DIR",
    "ace_dir",
    "fit_epochs",
    "frame_jobs",
    "frame_label",
    "own_frame",
    "step_teacher_ace",
    "teacher_ace_frames",
    "wanted",
]
