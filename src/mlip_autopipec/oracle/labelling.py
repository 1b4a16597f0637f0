"""``label_pending``: label every pending structure of the database on Dask.

Workers compute, the driver writes
    One Dask task per pending structure runs :func:`label_one` on a worker:
    ``oracle.label(atoms, directory)``, with every failure caught there and
    sent back as data.  Results are gathered as they complete
    (:func:`~mlip_autopipec.compute.tasks.run_tasks`) and only this process writes them to the
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

One call is a :class:`LabellingSession`: its tasks, each outcome written and
tallied once (also one salvaged after Ctrl-C), and the failure budget.

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

import logging
import math
import os
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ase import Atoms

from mlip_autopipec.compute.cluster import dask_client, require_compute
from mlip_autopipec.compute.models import ComputeConfig, LocalComputeConfig
from mlip_autopipec.compute.tasks import Done, Task, run_tasks
from mlip_autopipec.config.schemas.oracle import OracleConfig
from mlip_autopipec.exceptions import DatabaseError, OracleError, StorageError, StructureError
from mlip_autopipec.oracle.base import AttemptRecord, LabelFailed, LabelResult, Oracle
from mlip_autopipec.oracle.factory import make_oracle
from mlip_autopipec.progress import format_duration, progress_bar, time_left_s

if TYPE_CHECKING:
    from distributed import Client

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
            db.set_labels(
                outcome.structure_id,
                res.energy,
                res.forces,
                stress=res.stress,
                info=info,
                magmoms=res.magmoms,
                magmom=res.magmom,
            )
            return outcome
        except StorageError:
            raise  # a full disk, a read-only database, a lost server: not the structure's fault; it stays pending
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


def call_time_s(outcome: LabelOutcome) -> float | None:
    """The wall time (s) ``outcome``'s call took: its result's, else the sum of its attempts' (None: unknown, e.g.
    a task Dask gave up)."""
    if outcome.result is not None:
        return outcome.result.wall_time_s
    return sum(a.wall_time_s for a in outcome.attempts) if outcome.attempts else None


class WorkerSlots:
    """How many calls run at once: the threads of the client's Dask workers, asked at most every ``every_s``
    seconds (a batch-job cluster grows and shrinks while it labels)."""

    def __init__(self, client: Client, every_s: float = 10.0) -> None:
        self.client, self.every_s = client, every_s
        self.value, self.asked = 1, -math.inf

    def __call__(self) -> int:
        now = time.monotonic()
        if now - self.asked >= self.every_s:
            self.asked = now
            try:
                self.value = max(1, sum(self.client.nthreads().values()))
            except Exception as err:  # best effort: the estimate keeps the last count
                _log.debug("labelling: the workers could not be counted: %s", err)
        return self.value


def _one_slot() -> int:
    return 1


@dataclass
class LabellingSession:
    """The bookkeeping of one :func:`label_pending` call: its tasks, each outcome written and tallied once,
    and the failure budget (``allowed_failures``: more failures than this stop the run)."""

    db: DatabaseManager
    oracle: Oracle
    root: Path
    pending: list[tuple[int, Atoms]]
    allowed_failures: int
    update: Callable[..., None]  # the progress bar's update(done, extra=...)
    callback: Callable[[LabelOutcome], None] | None = None
    slots: Callable[[], int] = _one_slot  # calls running at once (worker threads), for the time-left estimate
    summary: LabellingSummary = field(init=False)
    call_times_s: list[float] = field(init=False, default_factory=list)
    n_salvaged: int = field(init=False, default=0)
    _recorded: set[int] = field(init=False, default_factory=set)

    def __post_init__(self) -> None:
        self.summary = LabellingSummary(n_pending=len(self.pending))

    def tasks(self) -> list[Task[LabelOutcome]]:
        """One :func:`label_one` task per pending structure, in its own folder ``root/structure_<id>``."""
        return [
            Task(f"label-{sid}", label_one, (self.oracle, atoms, str(self.root / f"structure_{sid}"), sid))
            for sid, atoms in self.pending
        ]

    @property
    def over_budget(self) -> bool:
        """True once the failures pass the budget: the failed share will pass the limit whatever the rest does."""
        return len(self.summary.failed) > self.allowed_failures

    def record(self, done: Done[LabelOutcome]) -> LabelOutcome | None:
        """Write ``done``'s outcome to the database and tally it, once per structure; None when there is nothing
        to record (already recorded, or the task was cancelled from outside: the structure stays pending)."""
        sid = self.pending[done.index][0]
        if sid in self._recorded or done.cancelled:
            return None
        if done.error is not None:  # the task itself failed: e.g. its workers kept dying (KilledWorker)
            outcome = LabelOutcome(sid, reason=f"Dask task failed: {type(done.error).__name__}: {done.error}")
        else:
            outcome = done.result()
        outcome = _write(self.db, outcome, self.oracle)
        self._recorded.add(sid)
        if outcome.ok:
            self.summary.labelled.append(sid)
        else:
            self.summary.failed[sid] = outcome.reason or "unknown failure"
        seconds = call_time_s(outcome)
        if seconds is not None:
            self.call_times_s.append(seconds)
        self.update(self.summary.n_done, extra=self.progress_text())
        return outcome

    def progress_text(self) -> str:
        """The progress line's tail: failed, remaining and the time left (from the calls finished so far,
        :func:`~mlip_autopipec.progress.time_left_s`)."""
        remaining = self.summary.n_remaining
        text = f"failed {len(self.summary.failed)}, remaining {remaining}"
        left = time_left_s(remaining, self.call_times_s, self.slots()) if remaining else None
        return text if left is None else f"{text}, about {format_duration(left)} left"

    def on_done(self, done: Done[LabelOutcome]) -> bool:
        """:func:`~mlip_autopipec.compute.tasks.run_tasks`' ``on_done``: record, tell the caller, and stop once
        the failures pass the budget (what already finished is salvaged; the rest stays pending)."""
        outcome = self.record(done)
        if outcome is not None and self.callback is not None:
            self.callback(outcome)
        return self.over_budget

    def salvage(self, done: Done[LabelOutcome]) -> None:
        """``run_tasks``' ``salvage``: store a result that finished while the run stopped (a DFT result costs hours)."""
        if self.record(done) is not None:
            self.n_salvaged += 1

    def budget_error(self, fraction: float) -> OracleError:
        """The error of a run that stopped for too many failures, with examples and what to do."""
        failed = self.summary.failed
        examples = "; ".join(f"structure {sid}: {reason.splitlines()[0]}" for sid, reason in list(failed.items())[:3])
        return OracleError(
            f"{len(failed)} of {len(self.pending)} structures failed, more than max_failure_fraction={fraction:g} "
            f"allows ({self.allowed_failures}); stopped with {self.summary.n_remaining} still pending. Failures are "
            f"recorded in the database; examples: {examples}. `mlip-autopipec status` groups them by reason; once the "
            "cause is fixed, `mlip-autopipec run CONFIG --retry-failed` labels them again"
        )


def label_pending(
    db: DatabaseManager,
    oracle: Oracle | OracleConfig | None = None,
    compute: ComputeConfig | Client | None = None,
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
        Show a progress bar (done, failed, remaining, and the time left: remaining × the median wall time of the
        calls finished so far / the Dask worker threads, at most the remaining calls).
    callback:
        Called in the driver with each :class:`LabelOutcome` after it is written
        (not for the results salvaged while the run stops).
    max_in_flight:
        At most this many tasks are submitted at once (bounds the driver's memory).

    Returns a :class:`LabellingSummary`.  On Ctrl-C, SIGTERM (or any error) the
    tasks not started are cancelled, those running on a worker get a few seconds
    (:data:`~mlip_autopipec.compute.tasks.STOP_GRACE_S`) to finish, the results
    that finished by then are written, a client and cluster started here are
    closed, and every result written stays.
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
    if not pending:
        return LabellingSummary()
    root.mkdir(parents=True, exist_ok=True)
    allowed_failures = math.floor(fraction * len(pending) + 1e-9)
    with (
        progress_bar(f"labelling ({oracle.kind})", total=len(pending), enabled=progress) as update,
        dask_client(compute) as client,
    ):
        session = LabellingSession(db, oracle, root, pending, allowed_failures, update, callback, WorkerSlots(client))
        update(0, extra=f"failed 0, remaining {len(pending)}")
        try:
            run_tasks(client, session.tasks(), session.on_done, max_in_flight=max_in_flight, salvage=session.salvage)
        except BaseException:
            _log.info(
                "labelling stopped: %d result(s) stored in all, %d of them finished while the run stopped",
                session.summary.n_done,
                session.n_salvaged,
            )
            raise
    session.summary.wall_time_s = time.perf_counter() - start
    if session.over_budget:
        raise session.budget_error(fraction)
    return session.summary
