"""Dask clusters from ComputeConfig: batch job scripts, job submission and clean-up, client reuse."""

from __future__ import annotations

import os
import stat
import time

import pytest

from mlip_autopipec.config import ComputeConfig, validate_config
from mlip_autopipec.exceptions import ConfigurationError, OracleError
from mlip_autopipec.oracle.compute import dask_client, default_n_workers, make_cluster


def test_slurm_job_script_carries_the_config():
    cfg = validate_config(
        ComputeConfig,
        {
            "type": "slurm",
            "cores": 1,
            "job_cpu": 4,
            "memory": "8GiB",
            "processes": 1,
            "queue": "short",
            "account": "proj1",
            "walltime": "00:30:00",
            "job_script_prologue": ["module load quantum-espresso"],
            "job_extra_directives": ["--exclusive"],
        },
    )
    cluster = make_cluster(cfg)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    for line in (
        "#SBATCH -p short",
        "#SBATCH -A proj1",
        "#SBATCH --cpus-per-task=4",
        "#SBATCH -t 00:30:00",
        "#SBATCH --exclusive",
        "module load quantum-espresso",
    ):
        assert line in script
    assert (
        "--nthreads 1" in script and "--nworkers" not in script
    )  # one calculation at a time, on 4 CPUs (mpirun -np 4 pw.x)


def test_pbs_job_script_carries_the_config():
    cfg = validate_config(
        ComputeConfig,
        {
            "type": "pbs",
            "cores": 8,
            "memory": "16GiB",
            "processes": 2,
            "resource_spec": "select=1:ncpus=8",
            "walltime": "01:00:00",
        },
    )
    cluster = make_cluster(cfg)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#PBS -l select=1:ncpus=8" in script and "#PBS -l walltime=01:00:00" in script and "--nworkers 2" in script


def _fake_slurm(bindir, log):
    """sbatch / scancel / squeue stand-ins that record their calls (no SLURM here; only the calls can be shown)."""
    scripts = {
        "sbatch": f'#!/bin/sh\necho "sbatch $*" >> {log}\necho "Submitted batch job $$"\n',
        "scancel": f'#!/bin/sh\necho "scancel $*" >> {log}\n',
        "squeue": "#!/bin/sh\nexit 0\n",
    }
    for name, text in scripts.items():
        path = bindir / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_slurm_client_submits_the_configured_jobs_and_cancels_them_on_exit(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "calls.log"
    _fake_slurm(bindir, log)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    with dask_client(
        validate_config(ComputeConfig, {"type": "slurm", "cores": 2, "memory": "2GiB", "processes": 1, "jobs": 3})
    ) as client:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (not log.exists() or log.read_text().count("sbatch") < 3):
            time.sleep(0.1)
        assert client.status == "running"
    calls = log.read_text().splitlines()
    assert sum(c.startswith("sbatch") for c in calls) == 3
    assert any(c.startswith("scancel") for c in calls)  # the jobs are cancelled when the client closes


def test_compute_dicts_are_validated_at_the_door_and_refused_inside():
    with pytest.raises(ConfigurationError, match="local.n_workers"):
        validate_config(ComputeConfig, {"type": "local", "n_workers": -1}, "compute")
    with pytest.raises(ConfigurationError, match="compute takes a configuration model .*not a dict"):
        with dask_client({"type": "local", "n_workers": 1}):
            pass


def test_unreachable_scheduler_is_an_oracle_error():
    with pytest.raises(OracleError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:1"):
        with dask_client(
            validate_config(ComputeConfig, {"type": "dask", "address": "tcp://127.0.0.1:1", "timeout_s": 1})
        ):
            pass


def test_default_worker_count_is_the_usable_cores():
    assert default_n_workers() == len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("text", "bare", "seconds"),
    [
        ("90", 60, 5400),
        ("90", 1, 90),
        ("01:30", 60, 90),
        ("01:00:00", 60, 3600),
        ("2-00", 60, 172800),
        ("1-02:03:04", 60, 93784),
    ],
)
def test_walltimes_are_read_as_slurm_and_pbs_write_them(text, bare, seconds):
    from mlip_autopipec.config.schemas.oracle import walltime_seconds

    assert walltime_seconds(text, bare) == seconds


def test_workers_leave_before_the_walltime_and_their_logs_go_where_the_config_says(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = {
        "type": "slurm",
        "cores": 2,
        "memory": "2GiB",
        "processes": 2,
        "job_name": "label-cu",
        "log_directory": "joblogs",
    }
    cfg = validate_config(ComputeConfig, {**base, "walltime": "01:00:00"})
    assert cfg.worker_lifetime_s() == 3600 - 300  # default margin: 10 %, at most 5 min
    assert validate_config(ComputeConfig, {**base, "walltime": "1"}).worker_lifetime_s() == 50  # at least 10 s
    assert validate_config(ComputeConfig, {**base, "walltime": "1", "lifetime_margin_s": 0}).worker_lifetime_s() is None
    assert validate_config(ComputeConfig, base).worker_lifetime_s() is None
    cluster = make_cluster(cfg)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "--lifetime 3300s" in script and "#SBATCH -J label-cu" in script
    assert f"#SBATCH -e {tmp_path / 'joblogs'}/label-cu-%J.err" in script  # absolute: jobs may start elsewhere
    # a lifetime given by hand wins
    own = validate_config(ComputeConfig, {**base, "walltime": "01:00:00", "worker_extra_args": ["--lifetime", "20m"]})
    assert own.cluster_kwargs()["worker_extra_args"] == ["--lifetime", "20m"]


@pytest.mark.parametrize(
    ("over", "match"),
    [({"walltime": "1h"}, "not a walltime"), ({"walltime": "00:01:00", "lifetime_margin_s": 60}, "leaves no time")],
)
def test_bad_walltimes_are_refused_at_validation(over, match):
    with pytest.raises(ConfigurationError, match=match):
        validate_config(ComputeConfig, {"type": "slurm", "cores": 1, "memory": "1GiB", **over})
