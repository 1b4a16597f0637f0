"""label_pending through real SLURM batch jobs (dask-jobqueue), on the cluster of scripts/start_local_slurm.sh.

Every test submits real jobs with its own job name, and reads the scheduler's own
record of them (``scontrol show jobs``; finished jobs stay there for MinJobAge).
Without a running cluster the tests skip, and fail under CI=true (``require_slurm``).

The slow cases use ``mlip_autopipec.oracle.testing.SlowEMT`` (EMT that sleeps and
logs each calculation), so that a job can be cancelled, or reach its walltime,
while structures are still being labelled.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from conftest import require_slurm
from mlip_autopipec.config import ASEOracleConfig, EMTOracleConfig, SlurmComputeConfig
from mlip_autopipec.database import DatabaseManager, StructureMetadata
from mlip_autopipec.oracle import label_pending

pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture
def job_name():
    """A job name unique to the test; any job of that name still queued or running afterwards is cancelled."""
    require_slurm()
    name = f"mlip-test-{uuid.uuid4().hex[:8]}"
    yield name
    subprocess.run(["scancel", f"--name={name}"], capture_output=True, timeout=30)
    slurm_jobs(name)  # wait until they have ended: a job still completing holds the node's cores from the next test


FINAL_STATES = {
    "COMPLETED",
    "CANCELLED",
    "FAILED",
    "TIMEOUT",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
}


def slurm_jobs(name: str, settle_s: float = 60.0) -> list[dict[str, str]]:
    """The scheduler's records of every job called ``name``, oldest first (``scontrol show jobs``, one line each).

    Waits up to ``settle_s`` for the jobs to reach a final state (a cancelled job is COMPLETING while its
    processes exit).
    """
    deadline = time.monotonic() + settle_s
    while True:
        out = subprocess.run(
            ["scontrol", "show", "jobs", "--oneliner"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
        jobs = []
        for line in out.splitlines():
            fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
            if fields.get("JobName") == name:
                jobs.append(fields)
        if all(j["JobState"] in FINAL_STATES for j in jobs) or time.monotonic() > deadline:
            return sorted(jobs, key=lambda j: int(j["JobId"]))
        time.sleep(0.5)


def run_seconds(text: str) -> int:
    """Seconds in scontrol's RunTime, '[D-]HH:MM:SS'."""
    days, _, hms = text.rpartition("-")
    h, m, sec = (int(x) for x in hms.split(":"))
    return int(days or 0) * 86400 + h * 3600 + m * 60 + sec


def compute(name: str, tmp_path: Path, **over) -> SlurmComputeConfig:
    """One job of two 1-core workers (this test node has 2 cores), its logs under tmp_path/joblogs."""
    cfg = {
        "type": "slurm",
        "jobs": 1,
        "cores": 2,
        "processes": 2,
        "memory": "2GiB",
        "walltime": "00:05:00",
        "job_name": name,
        "log_directory": str(tmp_path / "joblogs"),
    }
    cfg.update(over)
    return SlurmComputeConfig(**cfg)


def cu_pool(n: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    pool = []
    for i in range(n):
        atoms = bulk("Cu", "fcc", a=3.61 * (0.97 + 0.06 * rng.random()), cubic=True)
        atoms.rattle(0.05, seed=seed * 1000 + i)
        pool.append(atoms)
    return pool


def make_db(path: Path, n: int) -> tuple[DatabaseManager, list[int]]:
    db = DatabaseManager(path)
    ids = db.add_structures(cu_pool(n), StructureMetadata(source="slurm_test"))
    assert len(set(ids)) == n
    return db, ids


def slow_emt(log: Path, delay_s: float) -> ASEOracleConfig:
    return ASEOracleConfig(
        calculator="mlip_autopipec.oracle.testing.SlowEMT", kwargs={"delay_s": delay_s, "log_file": str(log)}
    )


def labelled_once(db: DatabaseManager, ids: list[int], written: Counter) -> None:
    """Every structure labelled, none failed or pending, and each written exactly once by the driver."""
    assert db.count(status="labelled") == len(ids)
    assert db.count(status="pending") == 0 and db.count(status="failed") == 0
    assert sorted(written) == sorted(ids) and set(written.values()) == {1}, written


def test_labelling_runs_in_slurm_jobs_that_the_scheduler_records_with_their_logs_where_configured(
    job_name, tmp_path, monkeypatch
):
    # the jobs inherit this environment (sbatch --export=ALL): the CLI, run in-process by earlier tests, sets Dask's log
    # level to 'warning' for its workers, which would hide the INFO line this test reads
    monkeypatch.setenv("DASK_LOGGING__DISTRIBUTED", "info")
    db, ids = make_db(tmp_path / "pool.db", 6)
    summary = label_pending(
        db, EMTOracleConfig(), compute(job_name, tmp_path), workdir=tmp_path / "runs", progress=False
    )
    assert sorted(summary.labelled) == ids and summary.failed == {}

    jobs = slurm_jobs(job_name)
    assert jobs, f"scontrol show jobs lists no job named {job_name}"
    job_ids = {j["JobId"] for j in jobs}
    for rec in db.select():
        # computed inside one of those jobs, and equal to a direct EMT call
        assert rec.label_info["oracle_job"].removeprefix("slurm:") in job_ids
        ref = rec.atoms.copy()
        ref.calc = EMT()
        assert abs(rec.atoms.get_potential_energy() - ref.get_potential_energy()) < 1e-10
        assert np.abs(rec.atoms.get_forces() - ref.get_forces()).max() < 1e-10
    logs = (tmp_path / "joblogs").resolve()
    for job in jobs:
        assert job["JobState"] in ("COMPLETED", "CANCELLED"), job  # cancelled by the driver once labelling is done
        assert Path(job["StdErr"].replace("%J", job["JobId"])).parent == logs
        err = logs / f"{job_name}-{job['JobId']}.err"
        assert err.is_file(), sorted(p.name for p in logs.iterdir())
    worker_logs = "".join((logs / f"{job_name}-{j['JobId']}.err").read_text() for j in jobs)
    assert "Registered to" in worker_logs, worker_logs  # the Dask workers wrote their (INFO) log there


def test_a_job_cancelled_mid_labelling_is_replaced_and_costs_no_structure(job_name, tmp_path):
    db, ids = make_db(tmp_path / "pool.db", 16)
    written: Counter = Counter()
    cancelled: list[str] = []

    def on_outcome(outcome) -> None:
        written[outcome.structure_id] += 1
        if len(written) == 4 and not cancelled:  # a quarter done: cancel the job that is doing the work
            job = outcome.job.removeprefix("slurm:")
            subprocess.run(["scancel", job], check=True, timeout=30)
            cancelled.append(job)

    start = time.monotonic()
    summary = label_pending(
        db,
        slow_emt(tmp_path / "calls.log", 1.0),
        compute(job_name, tmp_path),
        workdir=tmp_path / "runs",
        progress=False,
        callback=on_outcome,
    )
    took = time.monotonic() - start
    assert cancelled, "the callback never cancelled a job"
    assert sorted(summary.labelled) == ids and summary.failed == {}
    labelled_once(db, ids, written)

    jobs = {j["JobId"]: j for j in slurm_jobs(job_name)}
    assert jobs[cancelled[0]]["JobState"] == "CANCELLED"
    replacements = [j for j in jobs if int(j) > int(cancelled[0])]
    assert replacements, f"no job replaced the cancelled one: {sorted(jobs)}"
    # the structures still to do after the cancel were labelled in the replacement job
    by_job = Counter(rec.label_info["oracle_job"].removeprefix("slurm:") for rec in db.select())
    assert set(by_job) <= set(jobs) and sum(by_job[j] for j in replacements) >= 16 - 4 - 2, by_job
    print(f"16 structures with a cancel after 4: {took:.1f} s, jobs {dict(by_job)}")


def test_a_job_reaching_its_walltime_is_replaced_and_the_run_finishes(job_name, tmp_path):
    # walltime 1 min with a 30 s margin: the worker leaves after 30 s (half the walltime, the least it serves), a new
    # job takes over; 18 structures x 2 s outlast it.  (The default margin, 10 s here, is unit-tested in test_compute.)
    db, ids = make_db(tmp_path / "pool.db", 18)
    written: Counter = Counter()

    def on_outcome(outcome) -> None:
        written[outcome.structure_id] += 1

    cfg = compute(job_name, tmp_path, cores=1, processes=1, memory="1GiB", walltime="00:01:00", lifetime_margin_s=30)
    start = time.monotonic()
    summary = label_pending(
        db, slow_emt(tmp_path / "calls.log", 2.0), cfg, workdir=tmp_path / "runs", progress=False, callback=on_outcome
    )
    took = time.monotonic() - start
    assert sorted(summary.labelled) == ids and summary.failed == {}
    labelled_once(db, ids, written)

    jobs = slurm_jobs(job_name)
    assert len(jobs) >= 2, f"the job at its walltime was not replaced: {[(j['JobId'], j['JobState']) for j in jobs]}"
    first = jobs[0]
    # its worker left before the walltime, and the job ended then (on its own, or cancelled by the driver once its
    # workers were gone), not killed by SLURM at the limit
    assert first["JobState"] in ("COMPLETED", "CANCELLED"), first
    assert first["TimeLimit"] == "00:01:00" and run_seconds(first["RunTime"]) < 60, first
    by_job = Counter(rec.label_info["oracle_job"].removeprefix("slurm:") for rec in db.select())
    assert len(by_job) >= 2, by_job
    print(f"18 structures x 2 s through 1-minute jobs leaving after 30 s: {took:.1f} s, jobs {dict(by_job)}")


def test_jobs_that_cannot_start_end_the_run_with_an_error_naming_their_logs(job_name, tmp_path):
    from mlip_autopipec.exceptions import OracleError

    db, ids = make_db(tmp_path / "pool.db", 2)
    cfg = compute(job_name, tmp_path, python=str(tmp_path / "no-such-python"), start_timeout_s=15)
    with pytest.raises(OracleError, match="no Dask worker connected within start_timeout_s=15") as err:
        label_pending(db, EMTOracleConfig(), cfg, workdir=tmp_path / "runs", progress=False)
    assert str((tmp_path / "joblogs").resolve()) in str(err.value)
    assert (
        db.count(status="pending") == 2
    )  # nothing lost, nothing marked failed: a rerun with a fixed config labels them
    jobs = slurm_jobs(job_name)
    assert jobs and all(j["JobId"] in str(err.value) for j in jobs[:1])
    err_log = (tmp_path / "joblogs" / f"{job_name}-{jobs[0]['JobId']}.err").read_text()
    assert "no-such-python" in err_log  # the job's own log says why
