"""Compute models: where the Dask workers of a step come from (``local``, ``dask``, ``slurm``, ``pbs``).

``ComputeConfig`` is a plain alias of ``Annotated[Union[...], Discriminator]`` on
``type``; a mapping without ``type`` is a local cluster.  Use it as a field type, or
validate a mapping at the door with
``mlip_autopipec.config.validate_config(ComputeConfig, data)`` (errors are
:class:`~mlip_autopipec.exceptions.ConfigurationError`).  The models are
re-exported by :mod:`mlip_autopipec.config`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeGuard

from pydantic import Discriminator, Field, Tag, model_validator

from mlip_autopipec.strict import StrictModel


class LocalComputeConfig(StrictModel):
    """A Dask LocalCluster of worker processes on this machine."""

    type: Literal["local"] = Field("local", description="Compute kind: worker processes on this machine.")
    n_workers: int | None = Field(
        None, ge=1, description="Number of worker processes; default the number of CPU cores."
    )
    threads_per_worker: int = Field(
        1,
        ge=1,
        description="Threads per worker process (one calculation runs per thread; keep 1 for pw.x or MPI jobs).",
    )
    memory_limit: str | float | None = Field(
        "auto", description="Memory limit per worker ('auto' = system memory / workers, e.g. '4GiB', or None for none)."
    )
    dashboard: bool = Field(False, description="Serve the Dask dashboard (on port 8787 or the next free one).")


class DaskComputeConfig(StrictModel):
    """An already running Dask scheduler, by address."""

    type: Literal["dask"] = Field("dask", description="Compute kind: connect to a running Dask scheduler.")
    address: str = Field(min_length=1, description="Scheduler address, e.g. 'tcp://host:8786'.")
    timeout_s: float = Field(30.0, gt=0, description="How long to wait for the scheduler to answer (s).")


class _JobqueueBase(StrictModel):
    """Settings shared by dask-jobqueue clusters; the names are dask-jobqueue's own."""

    jobs: int = Field(1, ge=1, description="Number of batch jobs to submit, each running 'processes' Dask workers.")
    cores: int = Field(
        ge=1, description="Cores per batch job that Dask uses: cores / processes calculations run at once in each job."
    )
    memory: str = Field(min_length=1, description="Memory per batch job, e.g. '16GiB'.")
    processes: int | None = Field(
        None, ge=1, description="Dask worker processes per job; default dask-jobqueue's (about √cores)."
    )
    queue: str | None = Field(None, description="Destination queue / partition.")
    account: str | None = Field(None, description="Account (project) to charge.")
    walltime: str | None = Field(
        None,
        description="Wall-time limit per job: 'HH:MM:SS' (e.g. '01:00:00'), 'D-HH:MM:SS', or a bare number "
        "(minutes for SLURM, seconds for PBS).",
    )
    job_script_prologue: list[str] = Field(
        default_factory=list,
        description="Shell lines run before the worker starts (module loads, activating the environment).",
    )
    job_extra_directives: list[str] = Field(
        default_factory=list, description="Extra scheduler directives, e.g. ['--exclusive']."
    )
    local_directory: str | None = Field(None, description="Worker scratch folder on the compute nodes.")
    log_directory: str | None = Field(
        None,
        description="Folder of the batch jobs' output files (<job_name>-<job id>.out/.err), made if missing; "
        "a relative path is taken from the directory the run starts in. Default: the scheduler's (the submission "
        "directory for SLURM).",
    )
    job_name: str | None = Field(
        None,
        min_length=1,
        description="Name of the batch jobs (sbatch -J / qsub -N); default dask-jobqueue's 'dask-worker'.",
    )
    interface: str | None = Field(None, description="Network interface the workers and scheduler use, e.g. 'ib0'.")
    python: str | None = Field(None, description="Python interpreter on the compute nodes; default this one.")
    worker_extra_args: list[str] = Field(
        default_factory=list,
        description="Extra arguments of the 'dask worker' command in each job, e.g. ['--resources', 'GPU=1'].",
    )
    start_timeout_s: float | None = Field(
        None,
        gt=0,
        description="Stop with an error when no worker has connected this long (s) after the jobs were submitted, "
        "e.g. because the jobs cannot start (wrong python, a missing module); the error names the jobs' log folder. "
        "Default: wait, as jobs may queue for long.",
    )
    max_resubmits: int = Field(
        3,
        ge=0,
        description="A task whose batch job ended under it (cancelled, killed, out of walltime or memory, a node "
        "failure) runs again in a replacement job up to this many times; past that the step gives up on it with an "
        "error naming it (labelling: the structure is marked failed; a fit or a trajectory: the run stops with a "
        "sentence). Dask's allowed-failures.",
    )
    lifetime_margin_s: float | None = Field(
        None,
        ge=0,
        description="With a walltime: the workers of a job stop taking tasks and leave this many seconds before it "
        "ends (dask worker --lifetime), their running calculations go back to the queue, and a fresh job replaces "
        "the old one, instead of the scheduler killing it. Default 10 % of the walltime, at least 10 s and at most "
        "300 s; 0 lets jobs run into their walltime.",
    )

    #: what a walltime given as a bare number counts (s): SLURM minutes, PBS seconds
    _bare_walltime_s: ClassVar[float] = 60.0

    @model_validator(mode="after")
    def _check_walltime(self) -> _JobqueueBase:
        if self.walltime is None:
            return self
        wall = walltime_seconds(self.walltime, self._bare_walltime_s)
        if self.lifetime_margin_s is not None and self.lifetime_margin_s >= wall:
            raise ValueError(
                f"lifetime_margin_s={self.lifetime_margin_s:g} leaves no time in a walltime of {self.walltime}"
            )
        return self

    def worker_lifetime_s(self) -> float | None:
        """How long (s) a worker serves before it leaves (dask worker ``--lifetime``).

        ``None`` without a walltime or with margin 0.
        """
        if self.walltime is None or self.lifetime_margin_s == 0:
            return None
        wall = walltime_seconds(self.walltime, self._bare_walltime_s)
        margin = min(300.0, max(10.0, 0.1 * wall)) if self.lifetime_margin_s is None else self.lifetime_margin_s
        return max(wall - margin, 0.5 * wall)

    def cluster_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the dask-jobqueue cluster class (unset options left to its defaults)."""
        kwargs = self.model_dump(
            exclude={"type", "jobs", "lifetime_margin_s", "start_timeout_s", "worker_extra_args", "max_resubmits"},
            exclude_none=True,
        )
        if self.log_directory is not None:
            kwargs["log_directory"] = str(Path(self.log_directory).expanduser().resolve())
        extra = list(self.worker_extra_args)
        lifetime = self.worker_lifetime_s()
        if lifetime is not None and not any(a == "--lifetime" or a.startswith("--lifetime=") for a in extra):
            extra += ["--lifetime", f"{int(lifetime)}s"]
        if extra:
            kwargs["worker_extra_args"] = extra
        return kwargs


_WALLTIME = re.compile(r"^(?:(?P<d>\d+)-)?(?P<a>\d+)(?::(?P<b>\d+))?(?::(?P<c>\d+))?$")


def walltime_seconds(text: str, bare_number: float = 60.0) -> float:
    """Seconds in a batch walltime: 'MM:SS', 'HH:MM:SS', 'D-HH', 'D-HH:MM', 'D-HH:MM:SS', or a bare number of
    ``bare_number`` seconds each (SLURM: minutes, the default; PBS: seconds, pass 1)."""
    m = _WALLTIME.match(text.strip())
    if m is None:
        raise ValueError(f"{text!r} is not a walltime like '01:30:00', '90' (minutes) or '2-00:00:00'")
    days, first, *rest = m.group("d", "a", "b", "c")
    parts = [int(first), *(int(x) for x in rest if x is not None)]  # HH[:MM[:SS]] after D-, else [[HH:]MM:]SS or N
    if days is not None:  # D-HH[:MM[:SS]]
        total = int(days) * 86400.0 + sum(p * s for p, s in zip(parts, (3600, 60, 1), strict=False))
    elif len(parts) > 1:  # MM:SS or HH:MM:SS
        total = float(sum(p * 60**k for k, p in enumerate(reversed(parts))))
    else:  # a bare number: minutes for SLURM, seconds for PBS
        total = parts[0] * bare_number
    if total <= 0:
        raise ValueError(f"walltime {text!r} is not positive")
    return float(total)


class SlurmComputeConfig(_JobqueueBase):
    """Dask workers in SLURM batch jobs (dask-jobqueue's SLURMCluster)."""

    type: Literal["slurm"] = Field("slurm", description="Compute kind: SLURM batch jobs.")
    job_cpu: int | None = Field(
        None,
        ge=1,
        description="CPUs to request per job (--cpus-per-task) when it differs from 'cores': e.g. cores=1, "
        "processes=1, job_cpu=16 runs one "
        "calculation at a time per job with command 'mpirun -np 16 pw.x'.",
    )

    def cluster_kwargs(self) -> dict[str, Any]:
        """dask-jobqueue's SLURMCluster keywords.

        The jobs' logs open in append mode (``--open-mode=append``, unless a directive sets it), so a job that
        SLURM launches again (a requeue, a retried launch) keeps the log of its first run.
        """
        kwargs = super().cluster_kwargs()
        if not any(d.lstrip("-").startswith("open-mode") for d in self.job_extra_directives):
            kwargs["job_extra_directives"] = [*self.job_extra_directives, "--open-mode=append"]
        return kwargs


class PBSComputeConfig(_JobqueueBase):
    """Dask workers in PBS batch jobs (dask-jobqueue's PBSCluster)."""

    type: Literal["pbs"] = Field("pbs", description="Compute kind: PBS batch jobs.")
    _bare_walltime_s: ClassVar[float] = 1.0
    resource_spec: str | None = Field(None, description="PBS resource request, e.g. 'select=1:ncpus=24:mem=100GB'.")


def _compute_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("type", "local")
    return getattr(value, "type", None)


ComputeConfig = Annotated[
    Annotated[LocalComputeConfig, Tag("local")]
    | Annotated[DaskComputeConfig, Tag("dask")]
    | Annotated[SlurmComputeConfig, Tag("slurm")]
    | Annotated[PBSComputeConfig, Tag("pbs")],
    Discriminator(
        _compute_tag,
        custom_error_type="compute_type",
        custom_error_message="unknown compute type; the type must be one of local, dask, slurm, pbs",
    ),
]
"""Where the oracle runs: a discriminated union on ``type``; a mapping without ``type`` is a local cluster."""

#: The heavy steps of a run, each of which may have its own compute (``compute_<step>`` in the pipeline config).
COMPUTE_STEPS = ("label", "fit", "explore")


def is_batch(compute: object) -> TypeGuard[SlurmComputeConfig | PBSComputeConfig]:
    """True for a compute config whose workers run in batch jobs (SLURM, PBS)."""
    return isinstance(compute, _JobqueueBase)


def step_compute_config(compute: ComputeConfig, step: str) -> ComputeConfig:
    """``compute`` as ``step`` (one of :data:`COMPUTE_STEPS`) uses it.

    Batch jobs are named ``mlip-<step>`` unless ``job_name`` is set, so the scheduler's records tell the
    steps apart.  A fit is one task: its cluster is one job with one worker process (that owns all the job's
    cores, for pacemaker's threads), and it runs into its walltime rather than leaving before it (a fit
    cut short and started again in a new job would never finish): a job killed at its walltime counts
    against ``max_resubmits``.
    """
    if step not in COMPUTE_STEPS:
        raise ValueError(f"unknown step {step!r}; one of {COMPUTE_STEPS}")
    if not is_batch(compute):
        return compute
    update: dict[str, Any] = {} if compute.job_name is not None else {"job_name": f"mlip-{step}"}
    if step == "fit":
        update.update(jobs=1, processes=1, lifetime_margin_s=0.0)
    return compute.model_copy(update=update) if update else compute
