"""``run``: seed → pool → database → labels → split → export → fit → validate → report.

Every step asks the database or the work directory what is already done and
skips it, so a run killed anywhere continues where it stopped when started
again.  Layout of a work directory::

    state.json              config fingerprints (refuses an incompatible config)
    structures.db           the ASE database: structures, labels, provenance
    oracle/structure_<id>/  one directory per reference calculation
    data/                   train.pckl.gzip and validation.pckl.gzip exported for pacemaker
    fits/fit-<hash>/        one pacemaker run per (training config, training set)
    report/                 summary.json, summary.md, parity and EOS plots
    logs/run-<time>.log     one log per run
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.database import DatabaseManager, StructureMetadata
from mlip_autopipec.database.location import campaign_of, database_file, resolve_location
from mlip_autopipec.exceptions import MlipAutopipecError
from mlip_autopipec.pipeline import state as run_state

log = logging.getLogger("mlip_autopipec")

INITIAL_SOURCE = "initial_random"


@dataclass
class RunContext:
    """The run's typed inputs and what the steps measured."""

    config: PipelineConfig
    workdir: Path
    db: DatabaseManager
    progress: bool = True
    timings: dict[str, float] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)

    @contextmanager
    def step(self, name: str):
        log.info("step %s: start", name)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            dt = time.perf_counter() - t0
            self.timings[name] = self.timings.get(name, 0.0) + dt
            log.info("step %s: %.1f s", name, dt)


def database_location(cfg: PipelineConfig, workdir: Path) -> str:
    """The database's file path (relative to the work directory) or URL."""
    return resolve_location(cfg.database.path, workdir)


def open_database(cfg: PipelineConfig, workdir: Path) -> DatabaseManager:
    # the campaign matters only on a database server: the configured one, else the work directory's name
    db = DatabaseManager(database_location(cfg, workdir), campaign=campaign_of(cfg.database.campaign, workdir))
    if cfg.database.campaign is None:
        try:
            db.bind_to_workdir(workdir)  # another folder of the same name is refused
        except BaseException:
            db.close()
            raise
    return db


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


# --------------------------------------------------------------------------- steps
def step_generate(ctx: RunContext) -> None:
    """Draw the starting pool and store it (skipped when the database already holds it)."""
    from mlip_autopipec.generator import InitialExplorer, build_seed
    from mlip_autopipec.progress import progress_bar

    gen = ctx.config.generator
    have = ctx.db.count(source=INITIAL_SOURCE)
    if have >= gen.pool_size:
        log.info("generate: the database already holds the pool (%d structures), skipped", have)
        return
    seed = build_seed(ctx.config.structure)
    with progress_bar("generating", total=gen.pool_size, enabled=ctx.progress) as update:
        pool = InitialExplorer(gen).generate(seed, gen.pool_size, progress=update)
    ids = ctx.db.add_structures(pool, StructureMetadata(source=INITIAL_SOURCE, generation=0))
    log.info("generate: %d structures in the database (%d new)", len(set(ids)), len(set(ids)) - have)


def step_label(ctx: RunContext) -> None:
    """Label every pending structure on the compute backend; failures are recorded, not fatal."""
    from mlip_autopipec.oracle import label_pending

    pending = ctx.db.count(status="pending")
    if pending == 0:
        log.info("label: nothing pending, skipped")
        return
    summary = label_pending(
        ctx.db, ctx.config.oracle, ctx.config.compute, workdir=ctx.workdir / "oracle", progress=ctx.progress
    )
    ctx.notes["labelling"] = {"labelled": len(summary.labelled), "failed": len(summary.failed)}


def step_split(ctx: RunContext) -> None:
    ctx.db.assign_split(ctx.config.database.validation_fraction, ctx.config.database.split_seed)


def step_export(ctx: RunContext) -> tuple[Path, Path | None]:
    """Write the labelled train (and validation) sets in pacemaker's format."""
    data = ctx.workdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    train = data / "train.pckl.gzip"
    n_train = ctx.db.save_dataset(train, label="train")
    validation = None
    if ctx.db.count(label="validation", status="labelled") > 0:
        validation = data / "validation.pckl.gzip"
        ctx.db.save_dataset(validation, label="validation")
    log.info("export: %d training structures to %s", n_train, train)
    return train, validation


def step_fit(ctx: RunContext, train: Path, validation: Path | None):
    """Fit with pacemaker, unless a finished fit of the same config on the same data exists."""
    from mlip_autopipec.pipeline.fits import fit_or_reuse

    return fit_or_reuse(ctx, train, validation)


def step_report(ctx: RunContext, fit) -> dict:
    from mlip_autopipec.report.build import build_report

    return build_report(ctx, fit)


# --------------------------------------------------------------------------- the run
def run_pipeline(
    config: PipelineConfig, workdir: Path | None = None, force: bool = False, progress: bool = True
) -> dict:
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
            from mlip_autopipec.explore.loop import resumed_initial_fit, run_active_learning

            # resumed: the first fit is the recorded one, not a refit on the data active learning added since
            fit = resumed_initial_fit(ctx)
        if fit is None:
            with ctx.step("fit"):
                fit = step_fit(ctx, train, validation)
        if config.active_learning is not None:
            with ctx.step("active_learning"):
                fit = run_active_learning(ctx, fit)
        ctx.timings["total_before_report"] = time.perf_counter() - t_start
        with ctx.step("report"):
            summary = step_report(ctx, fit)
        return summary
    except (MlipAutopipecError, KeyboardInterrupt) as err:
        log.error("run stopped: %s", err or type(err).__name__)
        log.debug("traceback", exc_info=True)
        raise
    finally:
        logging.getLogger("mlip_autopipec").removeHandler(handler)
        handler.close()
