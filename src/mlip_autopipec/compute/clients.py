"""Per-step Dask clients: :class:`LazyClient` (started on first use) and :class:`StepClients` (one per step)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from mlip_autopipec.compute.cluster import dask_client
from mlip_autopipec.compute.models import ComputeConfig, is_batch

if TYPE_CHECKING:
    from distributed import Client


class LazyClient:
    """A Dask client for a compute config, started on first call and closed by :meth:`close`."""

    def __init__(self, compute: ComputeConfig):
        self.compute = compute
        self._stack = contextlib.ExitStack()
        self._client: Client | None = None

    def __call__(self) -> Client:
        if self._client is None:
            self._client = self._stack.enter_context(dask_client(self.compute))
        return self._client

    def close(self) -> None:
        self._stack.close()
        self._client = None


class StepClients:
    """The Dask clients of a run's steps, each on the step's compute, ``compute_for(step)``
    (e.g. ``StepClients(config.compute_for)`` with a :class:`~mlip_autopipec.config.PipelineConfig`).

    ``with clients.step("explore") as client:`` gives a :class:`LazyClient` (started on first call).
    Batch jobs (SLURM, PBS) are held only for their step: the step's cluster is closed when the
    step ends, so no idle job keeps cores (or a GPU) while another step or a fit runs.  A local
    cluster or a scheduler connection is kept to the end and shared by the steps that use the same one.
    """

    def __init__(self, compute_for: Callable[[str], ComputeConfig]):
        self.compute_for = compute_for
        self._kept: dict[str, LazyClient] = {}

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[LazyClient]:
        compute = self.compute_for(name)
        if is_batch(compute):
            client = LazyClient(compute)
            try:
                yield client
            finally:
                client.close()
            return
        yield self._kept.setdefault(compute.model_dump_json(), LazyClient(compute))

    def close(self) -> None:
        for client in self._kept.values():
            client.close()
        self._kept.clear()
