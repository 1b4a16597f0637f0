"""``run``: seed → pool → database → labels → split → export → fit → (active learning) → validate → report.

Every step asks the database or the work directory what is already done and
skips it, so a run killed anywhere continues where it stopped when started
again.  Layout of a work directory (every path recorded in it is relative to it,
so it can be moved or copied)::

    state.json              config fingerprints (refuses an incompatible config), active learning's progress
    structures.db           the ASE database: structures, labels, provenance
    oracle/structure_<id>/  one directory per reference calculation
    data/                   train.pckl.gzip and validation.pckl.gzip exported for pacemaker
    fits/<tag>-<hash>/      one pacemaker run per (training config, training set); result.json; fits/latest.json
    al/gen_<g>/             active learning: candidates.xyz, trajectories.json, the selection's files
    report/                 summary.json, summary.md, parity, EOS and active-learning plots
    logs/run-<time>.log     one log per run
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
from pathlib import Path

from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.database.location import database_file
from mlip_autopipec.exceptions import MlipAutopipecError
from mlip_autopipec.pipeline import state as run_state
from mlip_autopipec.pipeline.context import RunContext, database_location, open_database
from mlip_autopipec.pipeline.records import RunSummary
from mlip_autopipec.pipeline.steps import step_export, step_fit, step_generate, step_label, step_report, step_split

log = logging.getLogger("mlip_autopipec")

__all__ = ["RunContext", "attach_log_file", "database_location", "open_database", "run_pipeline"]


def attach_log_file(workdir: Path) -> logging.Handler:
    """One log file per run under ``workdir/logs``."""
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(logs / f"run-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.setLevel(logging.DEBUG)
    logger = logging.getLogger("mlip_autopipec")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    return handler


def run_pipeline(config: PipelineConfig, workdir: Path | None = None, force: bool = False, progress: bool = True) -> RunSummary:
    """Run (or continue) the whole pipeline; returns the report's summary (also in ``workdir/report/summary.json``)."""
    workdir = Path(workdir or config.workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    handler = attach_log_file(workdir)
    t_start = time.perf_counter()
    try:
        location = database_location(config, workdir)
        db_file = database_file(location)
        changed = run_state.check_or_accept_changes(workdir, config, db_file, force)
        if changed:
            log.warning("continuing with changed section(s) %s (--force)", ", ".join(changed))
        run_state.write_state(workdir, config)
        log.info("run: work directory %s", workdir)
        ctx = RunContext(config, workdir, open_database(config, workdir), progress)
        with ctx.step("generate"):
            step_generate(ctx)
        with ctx.step("label"):
            step_label(ctx)
        with ctx.step("split"):
            step_split(ctx)
        with ctx.step("export"):
            train, validation = step_export(ctx)
        fit = None
        if config.active_learning is not None:
            from mlip_autopipec.pipeline.active_learning import resumed_initial_fit, run_active_learning

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
    except (MlipAutopipecError, KeyboardInterrupt) as err:
        log.error("run stopped: %s", err or type(err).__name__)
        log.debug("traceback", exc_info=True)
        raise
    finally:
        logging.getLogger("mlip_autopipec").removeHandler(handler)
        handler.close()
