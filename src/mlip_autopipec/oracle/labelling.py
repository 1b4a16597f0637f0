"""``label_pending``: label every pending structure of the database on Dask.

Workers compute, the driver writes
    One Dask task per pending structure runs :func:`label_one` on a worker:
    ``oracle.label(atoms, directory)``, with every failure caught there and
    sent back as data.  Results are gathered as they complete
    (``distributed.as_completed``) and only this process writes them to the
    database, one committed write per structure, so SQLite stays safe however
    many workers there are, and an interruption loses nothing that finished.

Restart-safe
    Only ``pending`` structures are submitted.  After Ctrl-C, a kill or an error,
    the next call labels exactly what is still pending: nothing twice.

Worker deaths
    A worker process that dies mid-calculation takes its task with it; the Dask
    scheduler reschedules the task on another worker (up to
    ``distributed.scheduler.allowed-failures`` deaths per task, default 3; past
    that the structure is recorded as failed with the reason).

Failures
    A structure whose calculation fails (no SCF convergence after the healing
    ladder, a crash, implausible values) is marked ``failed`` with the reason and
    the program's last output lines; the run goes on.  Once the failures exceed
    ``max_failure_fraction`` of the structures given to this run, the remaining
    work is cancelled (it stays pending) and :class:`OracleError` is raised
    naming the count and examples.

Dask starts worker processes with ``spawn``, which re-imports the calling
script's ``__main__`` module in every worker.  A script that calls
``label_pending`` with a local cluster must therefore guard its top level::

    from mlip_autopipec.config import EMTOracleConfig, LocalComputeConfig
    from mlip_autopipec.database import DatabaseManager
    from mlip_autopipec.oracle import label_pending

    if __name__ == "__main__":
        db = DatabaseManager("structures.db")
        label_pending(db, EMTOracleConfig(), LocalComputeConfig(n_workers=4))

The ``mlip-autopipec`` command line needs no guard (its ``__main__`` is the
package's entry point).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ase import Atoms

from mlip_autopipec.config.schemas.oracle import ComputeConfig, LocalComputeConfig, OracleConfig
from mlip_autopipec.exceptions import DatabaseError, OracleError, StructureError
from mlip_autopipec.oracle.base import AttemptRecord, LabelFailed, LabelResult, Oracle
from mlip_autopipec.oracle.compute import dask_client, require_compute
from mlip_autopipec.oracle.factory import make_oracle

if TYPE_CHECKING:
    from mlip_autopipec.database import DatabaseManager

_log = logging.getLogger("mlip_autopipec")

#: lines of the program's output kept with a failure
TAIL_LINES = 20


@dataclass(frozen=True)
class LabelOutcome:
    """What a worker sends back for one structure: a result, or the reason it failed."""

    structure_id: int
    result: LabelResult | None = None
    reason: str | None = None
    output_tail: str = ""
    attempts: list[AttemptRecord] = field(default_factory=list)
    worker: str = ""
    job: str = ""  # the batch job the worker ran in ("slurm:<id>", "pbs:<id>"), empty outside one

    @property
    def ok(self) -> bool:
        return self.result is not None


@dataclass
class LabellingSummary:
    """What one ``label_pending`` call did."""

    n_pending: int = 0
    labelled: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    wall_time_s: float = 0.0

    @property
    def n_done(self) -> int:
        return len(self.labelled) + len(self.failed)

    @property
    def n_remaining(self) -> int:
        return self.n_pending - self.n_done


def batch_job() -> str:
    """The batch job this process runs in, as ``slurm:<id>`` or ``pbs:<id>``; empty outside one."""
    if os.environ.get("SLURM_JOB_ID"):
        return f"slurm:{os.environ['SLURM_JOB_ID']}"
    if os.environ.get("PBS_JOBID"):
        return f"pbs:{os.environ['PBS_JOBID']}"
    return ""


def label_one(oracle: Oracle, atoms: Atoms, directory: str | None, structure_id: int) -> LabelOutcome:
    """Run on a worker: label one structure; never raises (a failure comes back as data)."""
    worker = f"{socket.gethostname()}:{os.getpid()}"
    job = batch_job()
    try:
        result = oracle.label(atoms, directory)
    except LabelFailed as err:
        return LabelOutcome(
            structure_id, reason=str(err), output_tail=err.output_tail, attempts=err.attempts, worker=worker, job=job
        )
    except Exception as err:  # any other error of the calculator: recorded with its traceback's last lines
        tb = "".join(traceback.format_exception(type(err), err, err.__traceback__))
        where = f" (in {directory})" if directory else ""
        return LabelOutcome(
            structure_id,
            reason=f"{type(err).__name__}: {err}{where}",
            output_tail="\n".join(tb.splitlines()[-TAIL_LINES:]),
            worker=worker,
            job=job,
        )
    return LabelOutcome(structure_id, result=result, attempts=result.attempts, worker=worker, job=job)


def _pending(db: DatabaseManager) -> list[tuple[int, Atoms]]:
    """(id, atoms) of every pending structure, in id order, all read before the first write."""
    return [(int(rec.id), rec.atoms) for rec in db.select(status="pending")]


def _default_workdir(db: DatabaseManager) -> Path:
    """``oracle/`` beside a SQLite database file; ``./oracle`` for a database server."""
    from mlip_autopipec.database.location import is_url

    location = str(getattr(db, "location", "") or "")
    if location and not is_url(location):
        return Path(location).resolve().parent / "oracle"
    return Path.cwd() / "oracle"


def _failure_text(outcome: LabelOutcome) -> str:
    text = outcome.reason or "unknown failure"
    if outcome.output_tail:
        text += "\n--- last lines of output ---\n" + outcome.output_tail
    return text


def _write(db: DatabaseManager, outcome: LabelOutcome, oracle: Oracle) -> LabelOutcome:
    """Write one outcome to the database (the driver alone does this); a rejected result becomes a failure."""
    if outcome.result is not None:
        res = outcome.result
        info = {"oracle": oracle.kind, **res.info(), "oracle_worker": outcome.worker}
        if outcome.job:
            info["oracle_job"] = outcome.job
        if res.attempts:
            info["oracle_attempt_log"] = [a.as_dict() for a in res.attempts]
        try:
            db.set_labels(outcome.structure_id, res.energy, res.forces, stress=res.stress, info=info)
            return outcome
        except (DatabaseError, StructureError) as err:
            outcome = LabelOutcome(
                outcome.structure_id,
                reason=f"the database rejected the result: {err}",
                attempts=outcome.attempts,
                worker=outcome.worker,
                job=outcome.job,
            )
    db.mark_failed(outcome.structure_id, _failure_text(outcome))
    return outcome


def label_pending(
    db: DatabaseManager,
    oracle: Oracle | OracleConfig | None = None,
    compute: ComputeConfig | Any = None,
    workdir: str | Path | None = None,
    max_failure_fraction: float | None = None,
    progress: bool = True,
    callback: Callable[[LabelOutcome], None] | None = None,
    max_in_flight: int = 1000,
) -> LabellingSummary:
    """Label every pending structure of ``db`` with ``oracle`` on the Dask workers ``compute`` describes.

    Parameters
    ----------
    db:
        A :class:`~mlip_autopipec.database.DatabaseManager`.
    oracle:
        An :class:`Oracle` or an ``OracleConfig`` model (default EMT).
    compute:
        A ``ComputeConfig`` model or an open ``distributed.Client`` to reuse (left
        open).  Default: a local cluster with one worker process per core.
    workdir:
        Each structure's calculation runs in ``workdir/structure_<id>``; default
        ``oracle/`` beside the database file.  Must be reachable from the workers.
    max_failure_fraction:
        Stop with :class:`OracleError` once failures exceed this share of the
        pending structures; default the oracle configuration's.
    progress:
        Show a progress bar (done, failed, remaining, time left).
    callback:
        Called in the driver with each :class:`LabelOutcome` after it is written.
    max_in_flight:
        At most this many tasks are submitted at once (bounds the driver's memory).

    Returns a :class:`LabellingSummary`.  On Ctrl-C (or any error) the tasks not
    yet started are cancelled, a client and cluster started here are closed, and
    every result written so far stays.
    """
    oracle = make_oracle(oracle)
    compute = require_compute(LocalComputeConfig() if compute is None else compute)
    fraction = oracle.config.max_failure_fraction if max_failure_fraction is None else float(max_failure_fraction)
    if not 0.0 <= fraction <= 1.0:
        raise OracleError(f"max_failure_fraction must be between 0 and 1, got {fraction}")
    if max_in_flight < 1:
        raise OracleError(f"max_in_flight must be at least 1, got {max_in_flight}")
    root = Path(workdir) if workdir is not None else _default_workdir(db)

    start = time.perf_counter()
    pending = _pending(db)
    summary = LabellingSummary(n_pending=len(pending))
    if not pending:
        return summary
    root.mkdir(parents=True, exist_ok=True)
    allowed_failures = math.floor(fraction * len(pending) + 1e-9)

    from distributed import as_completed

    from mlip_autopipec.progress import progress_bar

    with (
        progress_bar(f"labelling ({oracle.kind})", total=len(pending), enabled=progress) as update,
        dask_client(compute) as client,
    ):
        todo = iter(pending)
        in_flight: dict[str, tuple[Any, int]] = {}  # Dask key -> (future, structure id)
        stream = as_completed(
            loop=client.loop
        )  # not the default client's loop: another client may exist in this process

        def submit_next() -> None:
            item = next(todo, None)
            if item is not None:
                sid, atoms = item
                key = f"label-{sid}-{os.urandom(4).hex()}"
                fut = client.submit(label_one, oracle, atoms, str(root / f"structure_{sid}"), sid, key=key, pure=False)
                in_flight[key] = (fut, sid)
                stream.add(fut)

        from distributed import Client

        own_cluster = not isinstance(compute, Client)
        stopping = False

        def stopping_now() -> bool:
            return stopping

        try:
            for _ in range(min(max_in_flight, len(pending))):
                submit_next()
            update(0, extra=f"failed 0, remaining {len(pending)}")
            for fut in stream:
                _, sid = in_flight[fut.key]  # left in in_flight until written: an interruption meanwhile writes it then
                if fut.cancelled():  # cancelled after too many failures: stays pending
                    in_flight.pop(fut.key)
                    continue
                try:
                    # Waits if the result was lost with a dying worker before it reached us: Dask computes it again.
                    outcome = fut.result()
                except Exception as err:  # the task itself failed: e.g. its workers kept dying (KilledWorker)
                    if fut.cancelled():
                        in_flight.pop(fut.key)
                        continue
                    outcome = LabelOutcome(sid, reason=f"Dask task failed: {type(err).__name__}: {err}")
                outcome = _write(db, outcome, oracle)
                in_flight.pop(fut.key)
                fut.release()
                if outcome.ok:
                    summary.labelled.append(outcome.structure_id)
                else:
                    summary.failed[outcome.structure_id] = outcome.reason or "unknown failure"
                update(summary.n_done, extra=f"failed {len(summary.failed)}, remaining {summary.n_remaining}")
                if callback is not None:
                    callback(outcome)
                if stopping:
                    continue
                if len(summary.failed) > allowed_failures:
                    # The failed share will pass the limit whatever the rest does: stop now, keep what already finished.
                    stopping = True
                    for other, _ in in_flight.values():
                        if not other.done():
                            other.cancel()
                    continue
                submit_next()
        except BaseException:
            # Ctrl-C or an error: first store what already finished on the workers (a DFT result costs hours),
            # then let the rest go (a calculation still running is stopped with the cluster, or cancelled below).
            if not own_cluster:  # a caller's cluster: its queued tasks must not start meanwhile
                with contextlib.suppress(Exception):
                    client.cancel([f for f, _ in in_flight.values() if f.status != "finished"])
            kept = 0
            for fut, _sid in list(in_flight.values()):
                if fut.status != "finished":
                    continue
                try:
                    outcome = _write(db, fut.result(timeout=10), oracle)
                except Exception as err:  # noqa: BLE001 - best effort: the original error matters more
                    _log.debug("stopping: the finished result of %s could not be stored: %s", fut.key, err)
                    continue
                in_flight.pop(fut.key, None)
                kept += 1
                if outcome.ok:
                    summary.labelled.append(outcome.structure_id)
                else:
                    summary.failed[outcome.structure_id] = outcome.reason or "unknown failure"
            _log.info(
                "labelling stopped: %d result(s) stored in all, %d finished just before the stop", summary.n_done, kept
            )
            raise
        finally:
            # Ctrl-C, an error, or the stop: queued tasks must not run on a caller's cluster after we return
            # (a cluster started here is closed on the way out, which stops its workers anyway; cancelling their
            # running tasks first would only make the workers log warnings).
            if in_flight and (own_cluster is False or stopping_now()):
                with contextlib.suppress(Exception):  # best effort: a lost connection must not hide the original error
                    client.cancel([f for f, _ in in_flight.values()])

    summary.wall_time_s = time.perf_counter() - start
    if len(summary.failed) > allowed_failures:
        examples = "; ".join(
            f"structure {sid}: {reason.splitlines()[0]}" for sid, reason in list(summary.failed.items())[:3]
        )
        raise OracleError(
            f"{len(summary.failed)} of {len(pending)} structures failed, more than max_failure_fraction={fraction:g} allows "
            f"({allowed_failures}); stopped with {summary.n_remaining} still pending. Failures are recorded in the database; "
            f"examples: {examples}. `mlip-autopipec status` groups them by reason; once the cause is fixed, "
            "`mlip-autopipec run CONFIG --retry-failed` labels them again"
        )
    return summary
