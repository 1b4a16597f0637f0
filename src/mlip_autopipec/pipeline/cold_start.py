"""The cold start's steps: draw the pool, label it, split it, export it, fit, report.

Each asks the database or the work directory what is already done and skips
it.  Active learning's steps (:mod:`mlip_autopipec.pipeline.active_learning.steps`)
reuse :func:`step_label`, :func:`step_split` and :func:`step_export`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from mlip_autopipec.database import StructureMetadata
from mlip_autopipec.pipeline.context import RunContext
from mlip_autopipec.records import RunSummary
from mlip_autopipec.trainer.pace import TrainingResult

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger("mlip_autopipec")

INITIAL_SOURCE = "initial_random"


def step_generate(ctx: RunContext) -> None:
    """Draw the starting pool over every seed (:func:`~mlip_autopipec.generator.build_pool`) and store it,
    each structure with its seed's name as provenance ``seed`` (skipped when the database already holds it)."""
    from mlip_autopipec.generator import build_pool
    from mlip_autopipec.progress import progress_bar

    gen = ctx.config.generator
    have = ctx.db.count(source=INITIAL_SOURCE)
    if have >= gen.pool_size:
        log.info("generate: the database already holds the pool (%d structures), skipped", have)
        return
    with progress_bar("generating", total=gen.pool_size, enabled=ctx.progress) as update:
        pool = build_pool(ctx.config, gen.pool_size, progress=update)
    for atoms in pool:
        if atoms.pbc.any() and not atoms.pbc.all():
            atoms.pbc = True  # a slab keeps its vacuum gap in a fully periodic cell: pyace takes no mixed periodicity
    ids = ctx.db.add_structures(pool, StructureMetadata(source=INITIAL_SOURCE, generation=0))
    per_seed: dict[str, int] = {}
    for atoms in pool:
        per_seed[atoms.info["seed"]] = per_seed.get(atoms.info["seed"], 0) + 1
    log.info(
        "generate: %d structures in the database (%d new); per seed: %s",
        len(set(ids)),
        len(set(ids)) - have,
        ", ".join(f"{k} {v}" for k, v in per_seed.items()),
    )


def step_label(ctx: RunContext, client: Callable[[], Client] | None = None) -> None:
    """Label every pending structure; failures are recorded, not fatal.

    ``client``: gives the open Dask client to run on (active learning's, started
    only when something is pending); default: a cluster from the run's compute for labelling.
    """
    from mlip_autopipec.oracle import label_pending

    if ctx.db.count(status="pending") == 0:
        log.info("label: nothing pending, skipped")
        return
    label_pending(
        ctx.db,
        ctx.config.oracle,
        client() if client is not None else ctx.config.compute_for("label"),
        workdir=ctx.workdir / "oracle",
        progress=ctx.progress,
    )


def step_split(ctx: RunContext) -> None:
    """Give every labelled structure without a split its train/validation label."""
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


def step_fit(ctx: RunContext, train: Path, validation: Path | None) -> TrainingResult:
    """Fit with pacemaker, unless a finished fit of the same config on the same data exists."""
    from mlip_autopipec.pipeline.fits import fit_or_reuse

    return fit_or_reuse(ctx, train, validation)


def step_report(ctx: RunContext, fit: TrainingResult) -> RunSummary:
    """Validate ``fit``, draw the plots, write ``report/summary.json`` and ``summary.md``."""
    from mlip_autopipec.pipeline.summary import build_report

    return build_report(ctx, fit)
