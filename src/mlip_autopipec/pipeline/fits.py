"""Fit with pacemaker once per (training config, training set); reuse a finished fit.

Each finished fit records itself in ``fits/<fit>/result.json``
(:class:`~mlip_autopipec.records.fit.FitRecord`, paths relative to the work
directory); ``fits/latest.json`` (:class:`~mlip_autopipec.records.fit.LatestFit`)
names the most recent one.

Where a fit runs is the run's ``compute_for("fit")``: a local compute fits in
the driver's own process (as always); a Dask scheduler or a SLURM/PBS job gets
:meth:`PacemakerRunner.train <mlip_autopipec.trainer.pace.PacemakerRunner.train>`
as one Dask task (for SLURM/PBS on a cluster of one batch job with the fit's
resources, started for this fit and cancelled after it).  The fit folder lies on
the file system the job shares with the driver; the driver only waits, following
pacemaker's log there for its progress bar.  A job that ends under the fit
(cancelled, killed, a node lost, past its walltime) is replaced and the fit runs
again from the start, up to the compute's ``max_resubmits`` times; then the run
stops with a :class:`~mlip_autopipec.exceptions.TrainerError` that says so.
"""

from __future__ import annotations

import codecs
import contextlib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from mlip_autopipec.compute.cluster import dask_client
from mlip_autopipec.compute.models import ComputeConfig, DaskComputeConfig, LocalComputeConfig, is_batch
from mlip_autopipec.compute.tasks import Done, Task, run_tasks
from mlip_autopipec.config.schemas.training import TrainingConfig
from mlip_autopipec.exceptions import TrainerError
from mlip_autopipec.pipeline.context import RunContext
from mlip_autopipec.pipeline.state import INVALIDATING, fingerprint
from mlip_autopipec.records import FitRecord, LatestFit, dump_record, migrate, read_record
from mlip_autopipec.trainer.pace import PacemakerRunner, TrainingResult
from mlip_autopipec.trainer.parsing import ProgressParser, split_complete_lines
from mlip_autopipec.trainer.template import LOG_NAME

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
    training: TrainingConfig,
    train: Path,
    validation: Path | None,
    previous: TrainingResult | None = None,
    workdir: Path | None = None,
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
    record = read_record(fit_dir / RESULT_FILE, FitRecord, workdir, lambda data: migrate.fit_result_v0(data, fit_dir))
    return None if record is None else record.result()


def save_fit(workdir: Path, result: TrainingResult) -> None:
    dump_record(Path(result.output_dir) / RESULT_FILE, FitRecord.of(result), workdir)


def latest_fit(workdir: Path) -> TrainingResult | None:
    """The most recent finished fit of a work directory, if any."""
    workdir = Path(workdir)
    latest = read_record(
        workdir / FITS_DIR / LATEST_FILE, LatestFit, workdir, lambda data: migrate.latest_v0(data, FITS_DIR)
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
    folder: Path | None = None,
) -> TrainingResult:
    """Run pacemaker on ``train``, or reuse the same fit (same settings, data, split and start).

    ``previous``: continue from that fit's potential (active learning's refits).  ``folder``: where the fit's
    folder lies (default ``fits/``; a fit elsewhere is never ``fits/latest.json``).
    Adds pacemaker's time to ``ctx.pacemaker_s``.
    """
    training = training or ctx.config.training
    if previous is not None and training.initial_potential is None:
        training = training.model_copy(update={"initial_potential": previous.potential_yaml})
    folder = folder if folder is not None else ctx.workdir / FITS_DIR
    fit_dir = folder / f"{tag}-{fit_key(training, train, validation, previous, ctx.workdir)}"
    result = load_fit(ctx.workdir, fit_dir)
    if result is not None:
        log.info("fit: reusing the finished fit in %s", fit_dir)
    else:
        # The pipeline validates every fit itself (report.validate.validation_errors); pacemaker sees the split only
        # when its early stopping watches the test loss: evaluating it costs each fit ~25 s (a second TensorFlow graph).
        es = training.early_stopping
        test = validation if es is not None and es.min_relative_test_loss_per_iter is not None else None
        compute = ctx.config.compute_for("fit")
        if isinstance(compute, LocalComputeConfig):
            result = PacemakerRunner(training, show_progress=ctx.progress).train(train, fit_dir, test_dataset_path=test)
        else:
            result = train_on_cluster(
                PacemakerRunner(training, show_progress=False), compute, train, fit_dir, test, ctx.progress
            )
        save_fit(ctx.workdir, result)
        ctx.pacemaker_s += result.wall_time_s
        log.info("fit: %s done in %.0f s", fit_dir.name, result.wall_time_s)
    mark_latest(ctx.workdir, result)
    return result


# --------------------------------------------------------------------------- a fit as a Dask task
def describe_compute(compute: ComputeConfig) -> str:
    """Where a compute config runs, in words (for the log)."""
    if not is_batch(compute):
        return f"the Dask scheduler at {compute.address}" if isinstance(compute, DaskComputeConfig) else "this machine"
    parts = [f"{compute.cores} core{'' if compute.cores == 1 else 's'}", compute.memory]
    if compute.queue:
        parts.insert(0, f"queue {compute.queue}")
    if compute.walltime:
        parts.append(f"walltime {compute.walltime}")
    parts += compute.job_extra_directives
    return f"a {compute.type.upper()} job '{compute.job_name}' ({', '.join(parts)})"


def train_on_cluster(
    runner: PacemakerRunner,
    compute: ComputeConfig,
    train: Path,
    fit_dir: Path,
    validation: Path | None,
    progress: bool = True,
    poll_s: float = 1.0,
) -> TrainingResult:
    """Run ``runner.train`` as one Dask task on ``compute`` (a scheduler, or a one-job SLURM/PBS cluster), wait for it.

    ``fit_dir`` must be on a file system the job shares with this process.  The
    driver follows pacemaker's log there for the progress bar.  A task whose job
    ended is run again by Dask in a replacement job (``max_resubmits`` times);
    after that, or when pacemaker itself fails, :class:`TrainerError`.  On Ctrl-C
    or an error here the fit is cancelled: it does not run on without us.
    """
    fit_dir.mkdir(parents=True, exist_ok=True)
    where = describe_compute(compute)
    log.info("fit: %s on %s", fit_dir.name, where)
    task = Task(f"fit-{fit_dir.name}", runner.train, (train, fit_dir), {"test_dataset_path": validation})
    results: list[TrainingResult] = []

    def on_done(done: Done[TrainingResult]) -> None:
        results.append(_fit_result(done, compute, where, fit_dir))

    with dask_client(compute) as client, _following_fit_log(fit_dir / LOG_NAME, runner, progress, poll_s):
        run_tasks(client, [task], on_done)
    return results[0]


def _fit_result(done: Done[TrainingResult], compute: ComputeConfig, where: str, fit_dir: Path) -> TrainingResult:
    """The remote fit's result, or the :class:`TrainerError` that says why there is none."""
    if done.given_up:  # past the resubmit limit
        tries = compute.max_resubmits if is_batch(compute) else None
        logs = (compute.log_directory if is_batch(compute) else None) or "the jobs' working directory"
        attempts = "" if tries is None else f" after {tries + 1} attempt{'s' if tries else ''} (max_resubmits={tries})"
        raise TrainerError(
            f"the fit {fit_dir.name} on {where} was given up{attempts}: its worker died each time (the batch job "
            f"ended: cancelled, out of walltime or memory, or a node failed); see pacemaker's log "
            f"{fit_dir / LOG_NAME} and the jobs' output in {logs}"
        )
    try:
        return done.result()
    except TrainerError:
        raise
    except Exception as err:  # an error of the worker's environment (an import, a missing program, a file not shared)
        raise TrainerError(f"the fit {fit_dir.name} on {where} failed: {type(err).__name__}: {err}") from err


@contextlib.contextmanager
def _following_fit_log(log_path: Path, runner: PacemakerRunner, progress: bool, poll_s: float) -> Iterator[None]:
    """Show the remote fit's progress from its log (:func:`follow_fit_log`, in a thread) while the block runs."""
    finished = threading.Event()
    args = (finished, log_path, runner.config.max_num_epochs, progress, poll_s)
    thread = threading.Thread(target=follow_fit_log, args=args, name=f"follow {log_path}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        finished.set()
        thread.join()


def follow_fit_log(finished: threading.Event, log_path: Path, epochs: int, progress: bool, poll_s: float = 1.0) -> None:
    """Until ``finished`` is set, show the fit's progress from pacemaker's log ``log_path`` as it grows.

    A log that shrinks was started again (the fit runs again in a new job): it is read from its start.
    """
    from mlip_autopipec.progress import progress_bar

    parser, offset, rest = ProgressParser(), 0, ""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    with progress_bar("pacemaker fit (remote)", total=epochs, enabled=progress) as update:
        while not finished.wait(poll_s):
            try:
                size = log_path.stat().st_size
            except FileNotFoundError:
                continue
            if size < offset:
                log.info("fit: %s was started again (the fit runs again)", log_path)
                parser, offset, rest = ProgressParser(), 0, ""
                decoder.reset()
            if size == offset:
                continue
            with open(log_path, "rb") as f:
                f.seek(offset)
                chunk = f.read(size - offset)
            offset += len(chunk)
            lines, rest = split_complete_lines(rest + decoder.decode(chunk))
            for line in lines:
                report = parser.feed(line)
                if report is not None and report.phase == "train":
                    update(min(report.iteration, epochs), extra=f"loss {report.loss:.3e}")
