"""Fit with pacemaker once per (training config, training set); reuse a finished fit.

Each finished fit records itself in ``fits/<fit>/result.json``
(:class:`~mlip_autopipec.pipeline.records.FitRecord`, paths relative to the work
directory); ``fits/latest.json`` (:class:`~mlip_autopipec.pipeline.records.LatestFit`)
names the most recent one.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from mlip_autopipec.config.schemas.training import TrainingConfig
from mlip_autopipec.pipeline import migrate
from mlip_autopipec.pipeline.context import RunContext
from mlip_autopipec.pipeline.migrate import read_record
from mlip_autopipec.pipeline.records import FitRecord, LatestFit, dump_record
from mlip_autopipec.pipeline.state import INVALIDATING, fingerprint
from mlip_autopipec.trainer.pace import PacemakerRunner, TrainingResult

log = logging.getLogger("mlip_autopipec")

RESULT_FILE = "result.json"
LATEST_FILE = "latest.json"
FITS_DIR = "fits"


def dataset_fingerprint(path: Path) -> str:
    """Identity of a pacemaker dataset by its content (names, energies, forces), not its bytes."""
    df = pd.read_pickle(path, compression="gzip")
    cols = [c for c in ("name", "energy", "energy_corrected") if c in df.columns]
    digest = pd.util.hash_pandas_object(df[cols], index=False).values.tobytes()
    forces = b"".join(f.tobytes() for f in df["forces"]) if "forces" in df.columns else b""
    return fingerprint([digest.hex(), fingerprint(forces.hex())])


def fit_key(
    training: TrainingConfig, train: Path, validation: Path | None, previous: TrainingResult | None = None, workdir: Path | None = None
) -> str:
    """The identity of a fit: its settings, its data and, for a continued fit, the potential it starts from.

    The potential continued from is named relative to ``workdir``, so the key
    does not change when the work directory moves.
    """
    continued = previous is not None and training.initial_potential == previous.potential_yaml
    ignored = INVALIDATING["training"] | ({"initial_potential"} if continued else set())
    settings = {k: v for k, v in training.model_dump(mode="json").items() if k not in ignored}
    parts = [settings, dataset_fingerprint(train), dataset_fingerprint(validation) if validation else None]
    if previous is not None:
        start = Path(previous.potential_yaml)
        if workdir is not None and start.is_relative_to(workdir):
            start = start.relative_to(workdir)
        parts.append(start.as_posix())
    return fingerprint(parts)[:12]


def load_fit(workdir: Path, fit_dir: Path | None) -> TrainingResult | None:
    """The finished fit recorded in ``fit_dir`` (None: no directory, or no result there)."""
    if fit_dir is None:
        return None
    fit_dir = Path(workdir) / fit_dir
    record = read_record(
        fit_dir / RESULT_FILE, FitRecord, workdir, lambda data: migrate.fit_result_v0(data, fit_dir, workdir)
    )
    return None if record is None else record.result()


def save_fit(workdir: Path, result: TrainingResult) -> None:
    dump_record(Path(result.output_dir) / RESULT_FILE, FitRecord.of(result), workdir)


def latest_fit(workdir: Path) -> TrainingResult | None:
    """The most recent finished fit of a work directory, if any."""
    workdir = Path(workdir)
    latest = read_record(
        workdir / FITS_DIR / LATEST_FILE, LatestFit, workdir, lambda data: {"fit_dir": f"{FITS_DIR}/{data['fit']}"}
    )
    return None if latest is None else load_fit(workdir, latest.fit_dir)


def mark_latest(workdir: Path, fit: TrainingResult) -> None:
    """Point ``fits/latest.json`` at ``fit`` (a fit outside ``workdir/fits`` is not pointed at)."""
    fits = Path(workdir) / FITS_DIR
    if Path(fit.output_dir).parent != fits:
        return
    dump_record(fits / LATEST_FILE, LatestFit(fit_dir=fit.output_dir), workdir)


def fit_or_reuse(
    ctx: RunContext,
    train: Path,
    validation: Path | None,
    training: TrainingConfig | None = None,
    previous: TrainingResult | None = None,
    tag: str = "fit",
) -> TrainingResult:
    """Run pacemaker on ``train`` (reporting its test errors on ``validation``), or reuse the same fit.

    ``previous``: continue from that fit's potential (active learning's refits).
    Adds pacemaker's time to ``ctx.pacemaker_s``.
    """
    training = training or ctx.config.training
    if previous is not None and training.initial_potential is None:
        training = training.model_copy(update={"initial_potential": previous.potential_yaml})
    fit_dir = ctx.workdir / FITS_DIR / f"{tag}-{fit_key(training, train, validation, previous, ctx.workdir)}"
    result = load_fit(ctx.workdir, fit_dir)
    if result is not None:
        log.info("fit: reusing the finished fit in %s", fit_dir)
    else:
        runner = PacemakerRunner(training, show_progress=ctx.progress)
        result = runner.train(train, fit_dir, test_dataset_path=validation)
        save_fit(ctx.workdir, result)
        ctx.pacemaker_s += result.wall_time_s
        log.info("fit: %s done in %.0f s", fit_dir.name, result.wall_time_s)
    mark_latest(ctx.workdir, result)
    return result
