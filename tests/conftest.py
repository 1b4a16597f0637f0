"""Shared fixtures: small seed crystals, temporary work directories, tool availability, one tiny real ACE fit."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import pytest
from ase.build import bulk
from hypothesis import settings

if TYPE_CHECKING:
    from mlip_autopipec.trainer import PacemakerProfile
    from mlip_autopipec.trainer.pace import TrainingResult

# Property tests draw the same examples on every run (set HYPOTHESIS_PROFILE=explore to draw new ones),
# so a CI run can never turn red on a new random draw.
settings.register_profile("repeatable", derandomize=True, deadline=None)
settings.register_profile("explore", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Programs installed beside this interpreter (pacemaker, pace_yaml2yace, ...) are found
# even when the suite runs as `.venv/bin/python -m pytest` without an activated venv.
_BIN = str(Path(sys.executable).parent)
if _BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _BIN + os.pathsep + os.environ.get("PATH", "")


def require_executable(name: str) -> str:
    """Return the path of ``name``; skip the test when absent, but fail under CI=true.

    CI installs every external program the suite needs, so a missing one there is
    a broken set-up, never a reason to skip.
    """
    path = shutil.which(name)
    if path is None:
        if IN_CI:
            pytest.fail(f"{name} is not installed, but CI=true: the CI set-up must install it")
        pytest.skip(f"{name} not found on PATH")
    return path


def _unavailable(what: str, how: str) -> None:
    """Skip the test because ``what`` is missing here; fail it under CI=true, where ``how`` should have provided it."""
    if IN_CI:
        pytest.fail(f"{what}, but CI=true: {how}")
    pytest.skip(what)


def _run_quiet(cmd: list[str], timeout: float = 15.0) -> tuple[int, str]:
    import subprocess

    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as err:
        return 1, str(err)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def require_slurm() -> str:
    """The default partition of a running SLURM cluster; skip when there is none, fail under CI=true.

    "Running" means: sbatch/squeue/scontrol/sinfo are installed, ``scontrol ping``
    reaches slurmctld, and a node of the default partition is up (idle, mixed or
    allocated).  ``scripts/start_local_slurm.sh`` (root) starts such a cluster.
    """
    for name in ("sbatch", "squeue", "scancel", "scontrol", "sinfo"):
        require_executable(name)
    how = "run scripts/start_local_slurm.sh (as root) before the tests"
    rc, out = _run_quiet(["scontrol", "ping"])
    if rc != 0 or "UP" not in out:
        said = [line.strip() for line in out.splitlines() if "slurmctld" in line.lower()] or [
            out.strip() or f"exit status {rc}"
        ]
        _unavailable(f"no SLURM controller answers (scontrol ping: {said[0]})", how)
    rc, out = _run_quiet(["sinfo", "-h", "-N", "-o", "%P %T"])
    usable = [
        line.split()[0].rstrip("*")
        for line in out.splitlines()
        if line.split()[-1].rstrip("~*#") in ("idle", "mixed", "allocated", "completing")
    ]
    if rc != 0 or not usable:
        _unavailable(f"no SLURM node is up (sinfo: {out or rc})", how)
    default = [line.split()[0].rstrip("*") for line in out.splitlines() if line.split()[0].endswith("*")]
    return default[0] if default else usable[0]


#: Where scripts/start_local_postgres.sh writes the test server's URL (root-only file).
PG_URL_FILE = Path(os.environ.get("MLIP_AUTOPIPEC_TEST_PG_URL_FILE", "/var/lib/mlip-autopipec/test_pg_url"))


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages and logs)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def require_postgres() -> str:
    """A ``postgresql://`` URL of a reachable server whose role may create databases; skip when there is
    none, fail under CI=true.

    The URL comes from ``MLIP_AUTOPIPEC_TEST_PG_URL``, else from the file
    ``MLIP_AUTOPIPEC_TEST_PG_URL_FILE`` (default ``/var/lib/mlip-autopipec/test_pg_url``) that
    ``scripts/start_local_postgres.sh`` writes.  It is never printed (messages show it redacted).
    """
    how = "run scripts/start_local_postgres.sh (as root) before the tests, or set MLIP_AUTOPIPEC_TEST_PG_URL"
    url = os.environ.get("MLIP_AUTOPIPEC_TEST_PG_URL", "").strip()
    if not url:
        try:
            url = PG_URL_FILE.read_text().strip()
        except OSError:
            url = ""
    if not url:
        _unavailable(
            f"no PostgreSQL test server: MLIP_AUTOPIPEC_TEST_PG_URL is not set and {PG_URL_FILE} is not readable", how
        )
    try:
        import psycopg2
    except ImportError as err:
        _unavailable(
            f"psycopg2 is not installed ({err})", "install the project with its dependencies (scripts/setup.sh)"
        )
    try:
        psycopg2.connect(url, connect_timeout=5).close()
    except psycopg2.Error as err:
        _unavailable(
            f"cannot connect to the PostgreSQL test server {redact_url(url)}: {str(err).strip().splitlines()[0]}", how
        )
    return url


@pytest.fixture
def pg_url():
    """The URL of a new, empty PostgreSQL database for this test (dropped afterwards)."""
    import uuid
    from urllib.parse import urlsplit, urlunsplit

    base = require_postgres()
    import psycopg2

    name = f"mlip_test_{uuid.uuid4().hex[:12]}"

    def admin(sql: str) -> None:
        con = psycopg2.connect(base, connect_timeout=5)
        con.autocommit = True
        try:
            with con.cursor() as cur:
                cur.execute(sql)
        finally:
            con.close()

    admin(f"CREATE DATABASE {name}")
    try:
        yield urlunsplit(urlsplit(base)._replace(path="/" + name))
    finally:
        admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def cu_fcc():
    return bulk("Cu", "fcc", a=3.61, cubic=True)


@pytest.fixture
def si_diamond():
    return bulk("Si", "diamond", a=5.43)


# ---------------------------------------------------------------- one tiny real ACE potential for the session

#: The shared fit's settings: a few functions and iterations, a fit that clearly learns (~2 meV/atom), ~25 s.
CU_FIT = dict(
    cutoff=5.0,
    number_of_functions_per_element=10,
    nradmax_by_orders=[8, 3, 2],
    lmax_by_orders=[0, 2, 1],
    max_num_epochs=100,
    energy_weight=0.95,
    force_weight=0.05,
    display_step=25,
    test_size=0.1,
    evaluator="tensorpot",
)


def pacemaker_profile() -> PacemakerProfile:
    """pacemaker's profile; skips when pacemaker or pace_yaml2yace is missing (fails under CI=true)."""
    from mlip_autopipec.trainer import PacemakerProfile

    profile = PacemakerProfile()
    for program in ("pacemaker", "pace_yaml2yace"):
        if profile.find(program) is None:
            require_executable(program)
    return profile


def write_dataset(path: Path, structures, drop: tuple[str, ...] = ()) -> Path:
    """``structures`` (with energies and forces) as pacemaker's dataset, without the columns in ``drop``."""
    import pandas as pd

    rows = [
        {
            "ase_atoms": atoms,
            "energy": atoms.get_potential_energy(),
            "forces": atoms.get_forces(),
            "energy_corrected": atoms.get_potential_energy(),
            "name": f"cu_{i}",
        }
        for i, atoms in enumerate(structures)
    ]
    pd.DataFrame(rows).drop(columns=list(drop)).to_pickle(path, compression="gzip", protocol=4)
    return path


@pytest.fixture(scope="session")
def cu_structures():
    """20 rattled, isotropically strained 32-atom fcc Cu cells labelled with EMT."""
    import numpy as np
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator

    rng = np.random.default_rng(0)
    structures = []
    for i in range(20):
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
        atoms.set_cell(atoms.cell * (1 + rng.uniform(-0.04, 0.04)), scale_atoms=True)
        atoms.rattle(0.05, seed=i)
        atoms.calc = EMT()
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        structures.append(atoms)
    return structures


class CuFit(NamedTuple):
    """The session's fit: pacemaker's result, the progress it reported, the dataset it was trained on."""

    result: TrainingResult
    reports: list
    dataset: Path


@pytest.fixture(scope="session")
def cu_fit(cu_structures, tmp_path_factory) -> CuFit:
    """One real pacemaker fit (:data:`CU_FIT`) to :func:`cu_structures`, shared by every test that needs a working
    tiny potential rather than a fit of its own.  Read it only: copy a file or folder of it before changing it."""
    from mlip_autopipec.config import TrainingConfig
    from mlip_autopipec.trainer import PacemakerRunner

    profile = pacemaker_profile()
    tmp = tmp_path_factory.mktemp("cu_fit")
    dataset = write_dataset(tmp / "cu.pckl.gzip", cu_structures)
    reports: list = []
    result = PacemakerRunner(TrainingConfig(**CU_FIT), profile, on_progress=reports.append).train(dataset, tmp / "gen0")
    return CuFit(result, reports, dataset)


@pytest.fixture(scope="session")
def cu_active_set(cu_fit) -> Path:
    """The active set (.asi, beside the potential) of :func:`cu_fit` on its training data (real pace_activeset)."""
    from mlip_autopipec.explore import build_active_set
    from mlip_autopipec.trainer import PacemakerProfile

    if PacemakerProfile().find("pace_activeset") is None:
        require_executable("pace_activeset")
    return build_active_set(cu_fit.result.potential_yaml, cu_fit.dataset)
