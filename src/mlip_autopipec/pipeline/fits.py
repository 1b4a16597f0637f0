"""Fit with pacemaker once per (training config, training set); reuse a finished fit."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from mlip_autopipec.fileio import atomic_path
from mlip_autopipec.pipeline.state import INVALIDATING, fingerprint
from mlip_autopipec.trainer.pace import PacemakerRunner, TrainingResult

log = logging.getLogger("mlip_autopipec")

RESULT_FILE = "result.json"
LATEST_FILE = "latest.json"


def dataset_fingerprint(path: Path) -> str:
    """Identity of a pacemaker dataset by its content (names, energies, forces), not its bytes."""
    df = pd.read_pickle(path, compression="gzip")
    cols = [c for c in ("name", "energy", "energy_corrected") if c in df.columns]
    digest = pd.util.hash_pandas_object(df[cols], index=False).values.tobytes()
    forces = b"".join(f.tobytes() for f in df["forces"]) if "forces" in df.columns else b""
    return fingerprint([digest.hex(), fingerprint(forces.hex())])


def fit_key(training, train: Path, validation: Path | None, previous: TrainingResult | None = None) -> str:
    settings = {k: v for k, v in training.model_dump(mode="json").items() if k not in INVALIDATING["training"]}
    parts = [settings, dataset_fingerprint(train), dataset_fingerprint(validation) if validation else None]
    if previous is not None:
        parts.append(str(previous.potential_yaml))
    return fingerprint(parts)[:12]


def load_fit(fit_dir: str | Path | None) -> TrainingResult | None:
    """The finished fit recorded in ``fit_dir`` (None: no directory, or no result there)."""
    if not fit_dir:
        return None
    result = Path(fit_dir) / RESULT_FILE
    return TrainingResult.model_validate_json(result.read_text()) if result.is_file() else None


def latest_fit(workdir: Path) -> TrainingResult | None:
    """The most recent finished fit of a work directory, if any."""
    latest = workdir / "fits" / LATEST_FILE
    if not latest.is_file():
        return None
    return load_fit(workdir / "fits" / json.loads(latest.read_text())["fit"])


def mark_latest(workdir: Path, fit: TrainingResult) -> None:
    """Point ``fits/latest.json`` at ``fit`` (a fit outside ``workdir/fits`` is not pointed at)."""
    fits = workdir / "fits"
    if fit.output_dir.parent != fits:
        return
    with atomic_path(fits / LATEST_FILE) as tmp:
        tmp.write_text(json.dumps({"fit": fit.output_dir.name}))


def fit_or_reuse(ctx, train: Path, validation: Path | None, training=None, previous: TrainingResult | None = None, tag: str = "fit") -> TrainingResult:
    """Run pacemaker on ``train`` (reporting its test errors on ``validation``), or reuse the same fit.

    ``previous``: continue from that fit's potential (active learning's refits).
    """
    training = training or ctx.config.training
    if previous is not None and training.initial_potential is None:
        training = training.model_copy(update={"initial_potential": previous.potential_yaml})
    fits = ctx.workdir / "fits"
    fit_dir = fits / f"{tag}-{fit_key(training, train, validation, previous)}"
    result_file = fit_dir / RESULT_FILE
    if result_file.is_file():
        result = TrainingResult.model_validate_json(result_file.read_text())
        log.info("fit: reusing the finished fit in %s", fit_dir)
        ctx.notes.setdefault("pacemaker_s", 0.0)
    else:
        runner = PacemakerRunner(training, show_progress=ctx.progress)
        result = runner.train(train, fit_dir, test_dataset_path=validation)
        with atomic_path(result_file) as tmp:
            tmp.write_text(result.model_dump_json(indent=2))
        ctx.notes["pacemaker_s"] = ctx.notes.get("pacemaker_s", 0.0) + result.wall_time_s
        log.info("fit: %s done in %.0f s", fit_dir.name, result.wall_time_s)
    mark_latest(ctx.workdir, result)
    return result
