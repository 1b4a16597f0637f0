"""Compute: where the Dask workers come from and how work is run on them.

* :mod:`~mlip_autopipec.compute.models`: the compute models (``local``, ``dask``,
  ``slurm``, ``pbs``), re-exported by :mod:`mlip_autopipec.config`;
* :mod:`~mlip_autopipec.compute.cluster`: the cluster factory, :func:`dask_client`;
* :mod:`~mlip_autopipec.compute.clients`: the per-step clients, :class:`StepClients`;
* :mod:`~mlip_autopipec.compute.tasks`: :func:`run_tasks`, the one Dask task loop.

This package sits below ``config`` (the pipeline's config holds compute models).
"""

from mlip_autopipec.compute.clients import LazyClient, StepClients
from mlip_autopipec.compute.cluster import dask_client, default_n_workers, require_compute
from mlip_autopipec.compute.models import (
    ComputeConfig,
    DaskComputeConfig,
    LocalComputeConfig,
    PBSComputeConfig,
    SlurmComputeConfig,
    is_batch,
    step_compute_config,
)
from mlip_autopipec.compute.tasks import Done, Task, run_tasks

__all__ = [
    "ComputeConfig",
    "DaskComputeConfig",
    "Done",
    "LazyClient",
    "LocalComputeConfig",
    "PBSComputeConfig",
    "SlurmComputeConfig",
    "StepClients",
    "Task",
    "dask_client",
    "default_n_workers",
    "is_batch",
    "require_compute",
    "run_tasks",
    "step_compute_config",
]
