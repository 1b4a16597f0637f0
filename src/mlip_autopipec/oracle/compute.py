"""Dask clusters from a :data:`~mlip_autopipec.config.schemas.oracle.ComputeConfig`.

* ``local``: a ``distributed.LocalCluster`` of worker *processes* on this
  machine (one thread each by default, as a DFT code wants one core per rank);
* ``dask``: a running scheduler, by address;
* ``slurm`` / ``pbs``: a dask-jobqueue cluster whose workers run in batch
  jobs, scaled to ``jobs`` jobs.

:func:`dask_client` is a context manager: the client and any cluster it started
are closed on the way out, also on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from mlip_autopipec.config.loader import require_config
from mlip_autopipec.config.schemas.oracle import (
    ComputeConfig,
    DaskComputeConfig,
    LocalComputeConfig,
    PBSComputeConfig,
    SlurmComputeConfig,
)
from mlip_autopipec.exceptions import OracleError


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


def make_cluster(config: LocalComputeConfig | SlurmComputeConfig | PBSComputeConfig) -> Any:
    """Start the Dask cluster ``config`` describes (jobqueue clusters are not scaled here: see :func:`dask_client`)."""
    import dask
    import distributed  # noqa: F401  (load its configuration defaults first: leaving the set() below restores what was there)

    with dask.config.set(SCHEDULER_CONFIG):
        return _make_cluster(config)


def _make_cluster(config: LocalComputeConfig | SlurmComputeConfig | PBSComputeConfig) -> Any:
    if isinstance(config, LocalComputeConfig):
        from distributed import LocalCluster

        return LocalCluster(
            n_workers=config.n_workers or default_n_workers(),
            threads_per_worker=config.threads_per_worker,
            processes=True,
            memory_limit=config.memory_limit,
            dashboard_address=":8787" if config.dashboard else None,
        )
    if isinstance(config, (SlurmComputeConfig, PBSComputeConfig)):
        try:
            if isinstance(config, SlurmComputeConfig):
                from dask_jobqueue import SLURMCluster as Cluster
            else:
                from dask_jobqueue import PBSCluster as Cluster
        except ImportError as err:
            raise OracleError(f"compute type {config.type!r} needs dask-jobqueue: pip install dask-jobqueue ({err})") from None
        return Cluster(**config.cluster_kwargs())
    raise OracleError(f"compute type {getattr(config, 'type', config)!r} does not start a cluster")


def require_compute(compute: Any) -> Any:
    """``compute`` itself when it is a ComputeConfig model or a ``distributed.Client``; else a ConfigurationError."""
    from distributed import Client

    return compute if isinstance(compute, Client) else require_config(compute, ComputeConfig, "compute")


@contextlib.contextmanager
def dask_client(compute: Any) -> Iterator[Any]:
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
            cluster = make_cluster(config)
            stack.callback(cluster.close)
            client = Client(cluster)
            stack.callback(client.close)
            if isinstance(config, (SlurmComputeConfig, PBSComputeConfig)):
                cluster.scale(jobs=config.jobs)
        yield client
