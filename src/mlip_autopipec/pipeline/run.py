"""``run``: seed → pool → database → labels → split → export → fit → (active learning) → validate → report.

Every step asks the database or the work directory what is already done and
skips it, so a run killed anywhere continues where it stopped when started
again.  Layout of a work directory (every path recorded in it is relative to it,
so it can be moved or copied)::

    .run.lock               the lock of the run that works here (pid, host, start time): one run at a time
    state.json              config fingerprints (refuses an incompatible config), active learning's progress
    <name>.replaced-<time>  what `run --force` moved aside to start the data afresh (database and records)
    structures.db           the ASE database: structures, labels, provenance
    oracle/structure_<id>/  one directory per reference calculation
    data/                   train.pckl.gzip and validation.pckl.gzip exported for pacemaker
    fits/<tag>-<hash>/      one pacemaker run per (training config, training set); result.json; fits/latest.json
    al/gen_<g>/             active learning: candidates.xyz, trajectories.json, the selection's files
    report/                 summary.json, summary.md, parity, EOS and active-learning plots
    logs/run-<time>.log     one log per run
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.database.campaigns import CampaignDriverLock
from mlip_autopipec.database.location import campaign_of, database_file
from mlip_autopipec.exceptions import OracleError, WorkdirError
from mlip_autopipec.fileio import os_error_sentence
from mlip_autopipec.pipeline import state as run_state
from mlip_autopipec.pipeline.checks import preflight
from mlip_autopipec.pipeline.cold_start import step_export, step_fit, step_generate, step_label, step_report, step_split
from mlip_autopipec.pipeline.context import RunContext, database_location, open_database
from mlip_autopipec.pipeline.guided_start import guided, step_guided_start
from mlip_autopipec.pipeline.lock import LOCK_NAME, DatabaseFileLock, RunLock, RunLocks, make_folder
from mlip_autopipec.pipeline.origin import check_origin, origin_here, origin_refusal
from mlip_autopipec.records import RunSummary

log = logging.getLogger("mlip_autopipec")

__all__ = [
    "RunContext",
    "attach_log_file",
    "database_location",
    "open_database",
    "run_pipeline",
    "stop_reason",
    "workdir_lock",
]


def attach_log_file(workdir: Path) -> logging.Handler:
    """One log file per run under ``workdir/logs`` (the full detail: DEBUG lines and tracebacks)."""
    logs = make_folder(workdir / "logs", "log folder")
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    try:
        handler = logging.FileHandler(logs / f"run-{stamp}.log")
    except OSError as err:
        raise WorkdirError(os_error_sentence(err, "cannot write the run's log file")) from err
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.setLevel(logging.DEBUG)
    # a full disk: no "Logging error" tracebacks
    handler.handleError = lambda record: None  # type: ignore[method-assign]
    logger = logging.getLogger("mlip_autopipec")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    return handler


def log_file_of(handler: logging.Handler | None) -> Path | None:
    return Path(handler.baseFilename) if isinstance(handler, logging.FileHandler) else None


#: set on a log record that belongs in the log file only (the command line prints its own one sentence)
FILE_ONLY = {"file_only": True}


def stop_reason(err: BaseException) -> str:
    """What stopped a run, in words (never empty)."""
    if isinstance(err, KeyboardInterrupt) and not str(err):
        return "interrupted (Ctrl-C / SIGINT)"
    return str(err) or type(err).__name__


@contextmanager
def workdir_lock(config: PipelineConfig, workdir: Path) -> Iterator[RunLocks]:
    """Create the work directory (checked writable) and hold its lock, and the database file's (or the server
    campaign's), for the block.

    Raises :class:`WorkdirError` (:class:`DatabaseError` for a campaign) naming the holder when another run holds one.
    """
    make_folder(workdir, "work directory")
    with contextlib.ExitStack() as stack:
        locks = RunLocks(stack.enter_context(RunLock(workdir / LOCK_NAME, f"work directory {workdir}")))
        location = database_location(config, workdir)
        db_file = database_file(location)
        if db_file is not None:
            db_file = db_file.resolve()
            make_folder(db_file.parent, "database folder")
            locks.database = stack.enter_context(DatabaseFileLock(db_file))
        else:
            campaign = campaign_of(config.database.campaign, workdir)
            locks.campaign = stack.enter_context(CampaignDriverLock(location, campaign))
        yield locks


def run_pipeline(
    config: PipelineConfig,
    workdir: Path | None = None,
    force: bool = False,
    progress: bool = True,
    retry_failed: bool = False,
) -> RunSummary:
    """Run (or continue) the whole pipeline; returns the report's summary (also in ``workdir/report/summary.json``).

    Holds the work directory's lock for its whole life (a second run on it is
    refused with :class:`WorkdirError`), checks the config, the database's
    origin and that the database can be written (:func:`admit`) before
    anything is generated or labelled.  ``retry_failed``: put the structures
    whose labelling failed back to pending first (their reasons stay in
    ``failure_history``).
    """
    workdir = Path(workdir or config.workdir).absolute()
    with workdir_lock(config, workdir) as locks:
        handler = attach_log_file(workdir)
        try:
            return _run(config, workdir, force, progress, retry_failed, locks)
        except BaseException as err:
            log.error("run stopped: %s", stop_reason(err), exc_info=True, extra=FILE_ONLY)
            with contextlib.suppress(Exception):
                err.log_file = log_file_of(handler)  # type: ignore[attr-defined]  # for the command line's message
            raise
        finally:
            logging.getLogger("mlip_autopipec").removeHandler(handler)
            with contextlib.suppress(OSError):  # a full disk: the log's last lines are lost, the error stays the run's
                handler.close()


def admit(config: PipelineConfig, workdir: Path, force: bool, progress: bool, locks: RunLocks) -> RunContext:
    """Every check first, with nothing written (a refused run leaves the work directory as it found it): the
    config against the work directory's, the database's origin against both, the config itself (:func:`preflight`).
    Then ``--force``'s fresh start when the data changed, the database opened and checked writable, and this
    run's origin and state recorded.
    """
    location = database_location(config, workdir)
    changed = run_state.changed_sections(workdir, config)
    if changed and not force:
        raise run_state.refusal(workdir, changed)
    verdict = check_origin(config, workdir)
    refused = origin_refusal(verdict, location, workdir, force)
    if refused is not None:
        raise refused
    for note in preflight(config):
        log.debug("preflight: %s", note)
    if verdict.changed or any(s in run_state.DATA_SECTIONS for s in changed):
        moved = run_state.start_afresh(workdir, database_file(location))
        log.warning(
            "--force: the data starts afresh (section(s) %s changed); moved aside: %s",
            ", ".join(dict.fromkeys([*changed, *verdict.changed])),
            ", ".join(str(p) for p in moved) or "nothing",
        )
    elif changed:
        log.warning("continuing with changed section(s) %s (--force)", ", ".join(changed))
    if verdict.owner and not verdict.changed:
        log.warning("--force: the database %s is taken over from the work directory %s", location, verdict.owner)
    db = open_database(config, workdir)
    try:
        if locks.database is not None:
            locks.database.hold_file()  # the file made anew (or moved aside) since the lock was taken
        db.check_writable()
        db.record_origin(origin_here(config, workdir))
    except BaseException:
        db.close()
        raise
    run_state.write_state(workdir, config)
    return RunContext(config, workdir, db, progress)


def _split(ctx: RunContext) -> None:
    """The train/validation split; a changed split splits the labelled rows anew in place (no oracle call)."""
    before = ctx.db.split_settings()
    wanted = (ctx.config.database.validation_fraction, ctx.config.database.split_seed)
    if before is not None and before != wanted:
        log.warning(
            "split: validation_fraction %g, split_seed %d (was %g, %d): the rows are split anew in place, each keeping "
            "its previous split in split_history; the fit follows the new split",
            *wanted,
            *before,
        )
    step_split(ctx)


def _run(
    config: PipelineConfig, workdir: Path, force: bool, progress: bool, retry_failed: bool, locks: RunLocks
) -> RunSummary:
    t_start = time.perf_counter()
    log.info("run: work directory %s", workdir)
    if locks.taken_over:
        log.warning(
            "run: a run that ended without finishing (killed?) held this work directory: %s; continuing its work",
            locks.taken_over,
        )
    ctx = admit(config, workdir, force, progress, locks)
    if retry_failed:
        n = ctx.db.reset_failed()
        log.info("retry: %d failed structure(s) put back to pending (earlier reasons kept in their failure_history)", n)
    elif ctx.db.count(status="failed"):
        log.info(
            "%d structure(s) failed earlier and are left out; "
            "`mlip-autopipec run CONFIG --retry-failed` labels them again",
            ctx.db.count(status="failed"),
        )
    if guided(config):
        with ctx.step("foundation_model"):
            step_guided_start(ctx)
    else:
        with ctx.step("generate"):
            step_generate(ctx)
    with ctx.step("label"):
        step_label(ctx)
    if ctx.db.count(status="labelled") == 0:
        n_failed = ctx.db.count(status="failed")
        raise OracleError(
            f"no structure could be labelled ({n_failed} failed): `mlip-autopipec status {workdir}` groups the "
            "failures by reason; fix the cause, then `mlip-autopipec run CONFIG --retry-failed`"
        )
    with ctx.step("split"):
        _split(ctx)
    with ctx.step("export"):
        train, validation = step_export(ctx)
    fit = None
    if config.active_learning is not None:
        from mlip_autopipec.pipeline.active_learning.loop import resumed_initial_fit, run_active_learning

        # resumed: the first fit is the recorded one, not a refit on the data active learning added since
        fit = resumed_initial_fit(ctx)
    if fit is None:
        with ctx.step("fit"):
            fit = step_fit(ctx, train, validation)
    if config.active_learning is not None:
        with ctx.step("active_learning"):
            fit = run_active_learning(ctx, fit)
    ctx.total_before_report_s = time.perf_counter() - t_start
    with ctx.step("report"):
        return step_report(ctx, fit)
