"""Settings of the Oracle (the reference calculator) and of the compute it runs on.

``OracleConfig`` is a discriminated union on ``type`` (``emt``, ``espresso``,
``gpaw``, ``ase``); a mapping without ``type`` is the embedded default, EMT.
``ComputeConfig`` is a discriminated union on ``type`` (``local``, ``dask``,
``slurm``, ``pbs``): where the Dask workers that run the oracle come from.

Both are plain aliases of ``Annotated[Union[...], Discriminator]``: use them as
field types, or validate a mapping at the door with
``mlip_autopipec.config.validate_config(OracleConfig, data)`` (errors are
:class:`ConfigurationError`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from mlip_autopipec.config.schemas.base import StrictModel, resolve_path

DEFAULT_PSEUDO_DIR = Path("/usr/share/espresso/pseudo")

Scalar = Union[bool, int, float, str]

# ---------------------------------------------------------------------------
# Oracles
# ---------------------------------------------------------------------------


class _OracleBase(StrictModel):
    """Checks shared by every oracle: what counts as an implausible result, and when a run gives up."""

    max_force: float = Field(
        100.0,
        gt=0,
        description="A result with any force component magnitude above this (eV/Å) is implausible: the structure is marked failed.",
    )
    max_abs_energy_per_atom: float = Field(
        1.0e5,
        gt=0,
        description="A result whose |energy| per atom exceeds this (eV/atom) is implausible: the structure is marked failed.",
    )
    max_failure_fraction: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="Labelling stops with an error once the failed structures of a run exceed this share of the structures it was given "
        "(finished results are written first; the rest stay pending).",
    )


class EMTOracleConfig(_OracleBase):
    """ASE's effective-medium theory: instant, for Al, Cu, Ag, Au, Ni, Pd, Pt (and H, C, N, O); the embedded default."""

    type: Literal["emt"] = Field("emt", description="Oracle kind: ASE's EMT calculator.")


_QE_NAMELISTS = ("control", "system", "electrons", "ions", "cell")
# Parameters the espresso oracle sets itself; an override in input_data would break it.
_QE_RESERVED = {"calculation", "tprnfor", "tstress", "pseudo_dir", "outdir", "prefix", "ntyp", "nat", "ibrav"}


class EspressoOracleConfig(_OracleBase):
    """Quantum ESPRESSO ``pw.x`` through ASE's Espresso calculator: one SCF per structure, forces and stress always on."""

    type: Literal["espresso"] = Field("espresso", description="Oracle kind: Quantum ESPRESSO pw.x.")
    command: str = Field(
        "pw.x",
        min_length=1,
        description="How to start pw.x, split like a shell would (no shell is used): e.g. 'pw.x' or 'mpirun -np 4 pw.x'.",
    )
    pseudopotentials: dict[str, str] = Field(
        min_length=1,
        description="Pseudopotential file name per element, e.g. {'Si': 'Si.pbe-rrkj.UPF'}; looked up in pseudo_dir.",
    )
    pseudo_dir: Path | None = Field(
        None,
        description=f"Folder of the pseudopotential files; default {DEFAULT_PSEUDO_DIR} where it exists (Debian's quantum-espresso-data).",
    )
    ecutwfc: float = Field(30.0, gt=0, description="Plane-wave cutoff of the wavefunctions (Ry, pw.x's unit).")
    ecutrho: float | None = Field(
        None, gt=0, description="Cutoff of the charge density (Ry); default pw.x's, 4 × ecutwfc."
    )
    kspacing: float = Field(
        0.3,
        gt=0,
        description="Largest k-point spacing (Å⁻¹) with VASP's convention: n_i = max(1, ceil(2π·|b_i| / kspacing)), b_i the reciprocal "
        "vectors without 2π; 1 along non-periodic axes. ASE's own kspacing omits the 2π.",
    )
    occupations: Literal["smearing", "fixed"] = Field(
        "smearing", description="pw.x occupations: 'smearing' (metals, safe default) or 'fixed' (gapped systems)."
    )
    smearing: Literal["mv", "gaussian", "mp", "fd"] = Field(
        "mv",
        description="Smearing function with occupations='smearing': Marzari-Vanderbilt, Gaussian, Methfessel-Paxton or Fermi-Dirac.",
    )
    degauss: float = Field(
        0.01, gt=0, description="Smearing width (Ry); the healing ladder widens it on late attempts."
    )
    conv_thr: float = Field(1.0e-8, gt=0, description="SCF convergence threshold on the estimated energy error (Ry).")
    mixing_beta: float = Field(
        0.7, gt=0, le=1.0, description="Charge-density mixing factor of the first attempt (dimensionless)."
    )
    mixing_mode: Literal["plain", "TF", "local-TF"] = Field(
        "plain", description="Charge-density mixing mode of the first attempt."
    )
    electron_maxstep: int = Field(100, ge=1, description="Largest number of SCF iterations of the first attempt.")
    diagonalization: Literal["david", "cg", "ppcg", "paro"] = Field(
        "david", description="Diagonalisation algorithm of the first attempt."
    )
    input_data: dict[str, dict[str, Scalar]] = Field(
        default_factory=dict,
        description="Further pw.x parameters by namelist, e.g. {'system': {'nspin': 2}}; applied over the fields above, under the healing "
        "ladder's settings. calculation, tprnfor, tstress, pseudo_dir, outdir and prefix are set by the oracle and cannot be given.",
    )
    max_attempts: int = Field(
        4,
        ge=1,
        le=10,
        description="SCF attempts per structure: a non-converged SCF is retried with the next, safer rung of the healing ladder.",
    )
    env: dict[str, str] = Field(
        default_factory=lambda: {"OMP_NUM_THREADS": "1"},
        description="Environment variables set for pw.x on top of the worker's environment (default OMP_NUM_THREADS=1: one core per MPI rank).",
    )
    timeout_s: float | None = Field(
        None, gt=0, description="Wall-time limit of one pw.x run (s); a run past it is killed and the structure fails."
    )
    keep_scratch: bool = Field(
        False,
        description="Keep pw.x's scratch folder (wavefunctions, charge density) after a run; by default only the input and output text stay.",
    )

    @field_validator("pseudopotentials")
    @classmethod
    def _check_pseudos(cls, v: dict[str, str]) -> dict[str, str]:
        from ase.data import atomic_numbers

        bad = [el for el in v if el not in atomic_numbers]
        if bad:
            raise ValueError(f"not chemical symbols: {bad}")
        return v

    @field_validator("command")
    @classmethod
    def _check_command(cls, v: str) -> str:
        import shlex

        try:
            parts = shlex.split(v)
        except ValueError as err:
            raise ValueError(f"cannot split the command {v!r}: {err}") from None
        if not parts:
            raise ValueError("the command is empty")
        return v

    @field_validator("input_data")
    @classmethod
    def _check_input_data(cls, v: dict[str, dict[str, Scalar]]) -> dict[str, dict[str, Scalar]]:
        out: dict[str, dict[str, Scalar]] = {}
        for section, params in v.items():
            key = section.lower()
            if key not in _QE_NAMELISTS:
                raise ValueError(f"unknown pw.x namelist {section!r}; use one of {list(_QE_NAMELISTS)}")
            reserved = sorted(p for p in params if p.lower() in _QE_RESERVED)
            if reserved:
                raise ValueError(f"{section}: {reserved} are set by the oracle and cannot be overridden")
            out[key] = {p.lower(): val for p, val in params.items()}
        return out

    def resolve_paths(self, base: Path) -> EspressoOracleConfig:
        """A copy whose relative ``pseudo_dir`` is taken relative to ``base`` (the config file's folder)."""
        return self.model_copy(update={"pseudo_dir": resolve_path(self.pseudo_dir, base)})

    def resolved_pseudo_dir(self) -> Path | None:
        """The pseudopotential folder: the configured one, else the Debian default where it exists, else None."""
        if self.pseudo_dir is not None:
            return self.pseudo_dir
        return DEFAULT_PSEUDO_DIR if DEFAULT_PSEUDO_DIR.is_dir() else None


class GPAWOracleConfig(_OracleBase):
    """Plane-wave GPAW (an optional extra: ``pip install mlip-autopipec[gpaw]``) with the same k-point density convention."""

    type: Literal["gpaw"] = Field("gpaw", description="Oracle kind: GPAW in plane-wave mode.")
    ecut: float = Field(400.0, gt=0, description="Plane-wave cutoff (eV).")
    xc: str = Field(
        "PBE", min_length=1, description="Exchange-correlation functional, as GPAW names it (e.g. 'PBE', 'LDA')."
    )
    kspacing: float = Field(
        0.3,
        gt=0,
        description="Largest k-point spacing (Å⁻¹), VASP's convention n_i = max(1, ceil(2π·|b_i| / kspacing)); 1 along non-periodic axes.",
    )
    smearing: Literal["fermi-dirac", "marzari-vanderbilt", "methfessel-paxton"] = Field(
        "fermi-dirac", description="Occupation smearing function."
    )
    smearing_width: float = Field(0.1, ge=0, description="Smearing width (eV).")
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="Further GPAW keyword arguments (e.g. {'spinpol': True}), applied over the settings above.",
    )


_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*([.:][A-Za-z_]\w*)$")


class ASEOracleConfig(_OracleBase):
    """Any ASE calculator, by import path and keyword arguments (how VASP, CP2K or a Lennard-Jones toy plug in)."""

    type: Literal["ase"] = Field("ase", description="Oracle kind: an ASE calculator class given by import path.")
    calculator: str = Field(
        description="Import path of the calculator class (or factory), 'package.module.Class' or 'package.module:Class', "
        "e.g. 'ase.calculators.lj.LennardJones'."
    )
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments for the calculator class.")
    set_directory: bool = Field(
        True,
        description="Point the calculator's 'directory' at the structure's own run folder (for file-based calculators).",
    )
    stress: bool = Field(
        True,
        description="Ask for the stress of fully periodic cells (set False for calculators that do not provide it).",
    )

    @field_validator("calculator")
    @classmethod
    def _check_path(cls, v: str) -> str:
        if not _IMPORT_PATH.match(v) or ("." not in v and ":" not in v):
            raise ValueError(f"{v!r} is not an import path like 'package.module.Class'")
        return v


def _oracle_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("type", "emt")
    return getattr(value, "type", None)


OracleConfig = Annotated[
    Annotated[EMTOracleConfig, Tag("emt")]
    | Annotated[EspressoOracleConfig, Tag("espresso")]
    | Annotated[GPAWOracleConfig, Tag("gpaw")]
    | Annotated[ASEOracleConfig, Tag("ase")],
    Discriminator(
        _oracle_tag,
        custom_error_type="oracle_type",
        custom_error_message="unknown oracle type; the type must be one of emt, espresso, gpaw, ase",
    ),
]
"""An oracle's settings: a discriminated union on ``type``; a mapping without ``type`` is EMT."""

# ---------------------------------------------------------------------------
# Compute
# ---------------------------------------------------------------------------


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
        description="Wall-time limit per job: 'HH:MM:SS' (e.g. '01:00:00'), 'D-HH:MM:SS', or a bare number (minutes for SLURM, seconds for PBS).",
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
        description="Folder of the batch jobs' output files (<job_name>-<job id>.out/.err), made if missing; a relative path is taken "
        "from the directory the run starts in. Default: the scheduler's (the submission directory for SLURM).",
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
        description="Stop with an error when no worker has connected this long (s) after the jobs were submitted, e.g. because the jobs "
        "cannot start (wrong python, a missing module); the error names the jobs' log folder. Default: wait, as jobs may queue for long.",
    )
    max_resubmits: int = Field(
        3,
        ge=0,
        description="A task whose batch job ended under it (cancelled, killed, out of walltime or memory, a node failure) runs again in "
        "a replacement job up to this many times; past that the step gives up on it with an error naming it (labelling: the structure "
        "is marked failed; a fit or a trajectory: the run stops with a sentence). Dask's allowed-failures.",
    )
    lifetime_margin_s: float | None = Field(
        None,
        ge=0,
        description="With a walltime: the workers of a job stop taking tasks and leave this many seconds before it ends (dask worker "
        "--lifetime), their running calculations go back to the queue, and a fresh job replaces the old one, instead of the scheduler "
        "killing it. Default 10 % of the walltime, at least 10 s and at most 300 s; 0 lets jobs run into their walltime.",
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
        """How long (s) a worker serves before it leaves (dask worker ``--lifetime``); ``None`` without a walltime or with margin 0."""
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
    d, a, b, c = (int(x) if x is not None else None for x in m.group("d", "a", "b", "c"))
    if d is not None:  # D-HH[:MM[:SS]]
        total = d * 86400 + a * 3600 + (b or 0) * 60 + (c or 0)
    elif c is not None:  # HH:MM:SS
        total = a * 3600 + b * 60 + c
    elif b is not None:  # MM:SS
        total = a * 60 + b
    else:  # a bare number: minutes for SLURM, seconds for PBS
        total = a * bare_number
    if total <= 0:
        raise ValueError(f"walltime {text!r} is not positive")
    return float(total)


class SlurmComputeConfig(_JobqueueBase):
    """Dask workers in SLURM batch jobs (dask-jobqueue's SLURMCluster)."""

    type: Literal["slurm"] = Field("slurm", description="Compute kind: SLURM batch jobs.")
    job_cpu: int | None = Field(
        None,
        ge=1,
        description="CPUs to request per job (--cpus-per-task) when it differs from 'cores': e.g. cores=1, processes=1, job_cpu=16 runs one "
        "calculation at a time per job with command 'mpirun -np 16 pw.x'.",
    )

    def cluster_kwargs(self) -> dict[str, Any]:
        """dask-jobqueue's SLURMCluster keywords; the jobs' logs open in append mode (``--open-mode=append``, unless a directive
        sets it), so a job that SLURM launches again (a requeue, a retried launch) keeps the log of its first run."""
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


def is_batch(compute: Any) -> bool:
    """True for a compute config whose workers run in batch jobs (SLURM, PBS)."""
    return isinstance(compute, _JobqueueBase)


def step_compute_config(
    compute: LocalComputeConfig | DaskComputeConfig | SlurmComputeConfig | PBSComputeConfig, step: str
) -> LocalComputeConfig | DaskComputeConfig | SlurmComputeConfig | PBSComputeConfig:
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
    update: dict[str, Any] = {}
    if compute.job_name is None:
        update["job_name"] = f"mlip-{step}"
    if step == "fit":
        update.update(jobs=1, processes=1, lifetime_margin_s=0.0)
    return compute.model_copy(update=update) if update else compute
