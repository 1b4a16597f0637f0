"""The cluster factory: a Dask client and cluster from a :data:`~mlip_autopipec.compute.models.ComputeConfig`.

* ``local``: a ``distributed.LocalCluster`` of worker *processes* on this
  machine (one thread each by default, as a DFT code wants one core per rank);
* ``dask``: a running scheduler, by address;
* ``slurm`` / ``pbs``: a dask-jobqueue cluster whose workers run in batch
  jobs, kept at ``jobs`` jobs: a job that ends (cancelled, killed, out of
  walltime) is replaced by a new one, and the tasks its workers were running go
  back to the queue (Dask's scheduler reschedules them).  With a walltime, the
  workers leave shortly before it (``lifetime_margin_s``), so their jobs are
  replaced before the batch scheduler kills them.  A task whose job ended under
  it runs again in a replacement job up to ``max_resubmits`` times (Dask's
  ``allowed-failures``), then fails with ``KilledWorker``.

:func:`dask_client` is a context manager: the client and any cluster it started
are closed on the way out, also on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from mlip_autopipec.compute.models import (
    ComputeConfig,
    DaskComputeConfig,
    LocalComputeConfig,
    PBSComputeConfig,
    SlurmComputeConfig,
)
from mlip_autopipec.exceptions import ConfigurationError, OracleError
from mlip_autopipec.launch import remember_environment_before_dask

if TYPE_CHECKING:
    from distributed import Client

logger = logging.getLogger(__name__)


def default_n_workers() -> int:
    """The number of CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


#: Scheduler settings for the clusters started here.  A worker holds only the tasks it is running
#: (worker-saturation 1.0, instead of Dask's 1.1): a calculation lasts seconds to hours, so queueing
#: on the worker gains nothing, and a worker that dies then takes no innocent queued task with it
#: (each counts a death against ``allowed-failures``).
SCHEDULER_CONFIG = {"distributed.scheduler.worker-saturation": 1.0}

#: While a batch-job cluster runs: how long after its workers left a job is given up and replaced.  Dask's default
#: (15 s) waits for a worker of the same name to come back, which a worker of an ended batch job never does.
JOBQUEUE_CONFIG = {"distributed.deploy.lost-worker-timeout": "3s"}

#: How often (s) the cluster checks that it still has its jobs.
ADAPT_INTERVAL_S = 1.0


#: Preload module of each local worker process (its one job: see :mod:`mlip_autopipec.compute.worker_preload`).
WORKER_PRELOAD = "mlip_autopipec.compute.worker_preload"

#: After a kill -9 of the driver, multiprocessing's resource tracker (a child process started with this process's
#: warning options) would warn of "leaked semaphore objects" on the terminal; it cleans them up either way.
QUIET_RESOURCE_TRACKER = "ignore:resource_tracker:UserWarning"


def _quiet_resource_tracker() -> None:
    """Pass :data:`QUIET_RESOURCE_TRACKER` to the resource tracker, started with the first local cluster."""
    if QUIET_RESOURCE_TRACKER not in sys.warnoptions:
        sys.warnoptions.append(QUIET_RESOURCE_TRACKER)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT while local workers are started, so they start with it ignored (from the main thread only)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def make_cluster(config: LocalComputeConfig | SlurmComputeConfig | PBSComputeConfig) -> Any:
    """Start the Dask cluster ``config`` describes (jobqueue clusters are not scaled here: see :func:`dask_client`)."""
    import dask
    import distributed  # noqa: F401  (load its configuration defaults first: leaving the set() below restores what was there)

    settings = dict(SCHEDULER_CONFIG)
    if isinstance(config, (SlurmComputeConfig, PBSComputeConfig)):
        settings["distributed.scheduler.allowed-failures"] = config.max_resubmits
    with dask.config.set(settings):
        return _make_cluster(config)


def _make_cluster(config: LocalComputeConfig | SlurmComputeConfig | PBSComputeConfig) -> Any:
    if isinstance(config, LocalComputeConfig):
        import dask
        from distributed import LocalCluster

        # the nanny is about to write its pre-spawn environment into this process's (see launch.py)
        remember_environment_before_dask(
            [*(dask.config.get("distributed.nanny.pre-spawn-environ") or {}), "PYTHONHASHSEED"]
        )
        _quiet_resource_tracker()
        with _sigint_ignored():  # inherited by the worker processes started now
            return LocalCluster(
                n_workers=config.n_workers or default_n_workers(),
                threads_per_worker=config.threads_per_worker,
                processes=True,
                memory_limit=config.memory_limit,
                # ":0": a free port; None would still try 8787 and warn "Port 8787 is already in use" on every run
                dashboard_address=":8787" if config.dashboard else ":0",
                preload=[*(dask.config.get("distributed.worker.preload") or []), WORKER_PRELOAD],
            )
    if isinstance(config, (SlurmComputeConfig, PBSComputeConfig)):
        try:
            import dask_jobqueue
        except ImportError as err:
            raise OracleError(
                f"compute type {config.type!r} needs dask-jobqueue: pip install dask-jobqueue ({err})"
            ) from None
        cluster_class = (
            dask_jobqueue.SLURMCluster if isinstance(config, SlurmComputeConfig) else dask_jobqueue.PBSCluster
        )
        return _replacing(cluster_class)(**config.cluster_kwargs())
    raise OracleError(f"compute type {getattr(config, 'type', config)!r} does not start a cluster")


def _wait_for_a_worker(client: Client, cluster: Any, config: SlurmComputeConfig | PBSComputeConfig) -> None:
    """Wait until a worker of the batch jobs connects; :class:`OracleError` after ``config.start_timeout_s``."""
    try:
        client.wait_for_workers(1, timeout=config.start_timeout_s)
    except TimeoutError:
        jobs = sorted(str(getattr(job, "job_id", "?")) for job in cluster.workers.values())
        logs = config.cluster_kwargs().get("log_directory", "the jobs' working directory")
        raise OracleError(
            f"no Dask worker connected within start_timeout_s={config.start_timeout_s:g} s of submitting "
            f"{config.type} job(s) {', '.join(jobs) or '(none submitted)'}: see the jobs' output in {logs} "
            "(is 'python' right for the compute nodes, is the queue full?)"
        ) from None


class _ReplaceEndedJobs:
    """Mixin for a dask-jobqueue cluster: a batch job whose workers have all left is cancelled and forgotten,
    so that the cluster's Adaptive submits a new job in its place.

    Distributed's own clean-up (``SpecCluster._update_worker_status``) looks a departed worker up by its
    *worker* name among the *job* names, which match only with one worker process per job; with
    ``processes > 1`` (workers ``<job>-0``, ``<job>-1``, ...) an ended job was never replaced, and a run
    whose only job was cancelled waited forever.
    """

    def _job_members(self, job: Any) -> set[str]:
        spec = self.worker_spec.get(job, {})  # type: ignore[attr-defined]
        return {f"{job}{suffix}" for suffix in spec["group"]} if "group" in spec else {str(job)}

    def _job_of_worker(self, worker_name: Any) -> Any:
        for job in self.worker_spec:  # type: ignore[attr-defined]
            if str(worker_name) in self._job_members(job):
                return job
        return None

    def _update_worker_status(self, op: str, msg: Any) -> None:
        if op == "remove":
            info = self.scheduler_info["workers"].get(msg)  # type: ignore[attr-defined]
            job = self._job_of_worker(info.get("name")) if info else None
            if job is not None:
                import dask
                from dask.utils import parse_timedelta

                delay = parse_timedelta(dask.config.get("distributed.deploy.lost-worker-timeout"))
                asyncio.get_running_loop().call_later(delay, self._forget_if_ended, job)
        super()._update_worker_status(op, msg)  # type: ignore[misc]

    def _forget_if_ended(self, job: Any) -> None:
        present = {str(w.get("name")) for w in self.scheduler_info["workers"].values()}  # type: ignore[attr-defined]
        if job not in self.workers or self._job_members(job) & present:  # type: ignore[attr-defined]
            return
        old = self.workers.pop(job)  # type: ignore[attr-defined]
        logger.warning(
            "batch job %s (%s) has lost all its workers: cancelling it; a new job takes its place",
            getattr(old, "job_id", "?"),
            job,
        )
        self._futures.add(asyncio.ensure_future(old.close()))  # type: ignore[attr-defined]


_REPLACING: dict[type, type] = {}


def _replacing(cls: type) -> type:
    """``cls`` (a dask-jobqueue cluster class) with :class:`_ReplaceEndedJobs` mixed in."""
    if cls not in _REPLACING:
        _REPLACING[cls] = type(cls.__name__, (_ReplaceEndedJobs, cls), {"__module__": __name__})
    return _REPLACING[cls]


#: The models a compute may be (the members of :data:`~mlip_autopipec.compute.models.ComputeConfig`).
COMPUTE_MODELS = (LocalComputeConfig, DaskComputeConfig, SlurmComputeConfig, PBSComputeConfig)


def require_compute(compute: ComputeConfig | Client) -> ComputeConfig | Client:
    """``compute`` itself when it is a ComputeConfig model or a ``distributed.Client``; else a ConfigurationError
    (a raw mapping is refused with the sentence that says how to validate it, as ``config.require_config`` does)."""
    from distributed import Client

    if isinstance(compute, (Client, *COMPUTE_MODELS)):
        return compute
    raise ConfigurationError(
        f"compute takes a configuration model ({', '.join(c.__name__ for c in COMPUTE_MODELS)}), "
        f"not a {type(compute).__name__}: validate a mapping first with "
        "mlip_autopipec.config.validate_config(schema, data)"
    )


@contextlib.contextmanager
def dask_client(compute: ComputeConfig | Client) -> Iterator[Client]:
    """Yield a ``distributed.Client`` for ``compute`` and close what was opened here on exit.

    ``compute`` is a ComputeConfig model, or an existing ``distributed.Client``,
    which is yielded as is and left open.
    """
    from distributed import Client

    config = require_compute(compute)
    if isinstance(config, Client):
        yield config
        return
    with contextlib.ExitStack() as stack:
        if isinstance(config, DaskComputeConfig):
            try:
                client = Client(config.address, timeout=f"{config.timeout_s}s")
            except OSError as err:
                raise OracleError(f"cannot reach the Dask scheduler at {config.address}: {err}") from None
            stack.callback(client.close)
        else:
            if isinstance(config, (SlurmComputeConfig, PBSComputeConfig)):
                import dask

                stack.enter_context(dask.config.set(JOBQUEUE_CONFIG))
            cluster = make_cluster(config)
            stack.callback(cluster.close)
            client = Client(cluster)
            stack.callback(client.close)
            if isinstance(config, (SlurmComputeConfig, PBSComputeConfig)):
                # Adaptive between jobs and jobs, not scale(jobs=...): a plain scale submits the jobs once and never
                # replaces one that ends, so a cancelled or timed-out job would leave the run without workers.
                cluster.adapt(minimum_jobs=config.jobs, maximum_jobs=config.jobs, interval=f"{ADAPT_INTERVAL_S}s")
                if config.start_timeout_s is not None:
                    _wait_for_a_worker(client, cluster, config)
        yield client
