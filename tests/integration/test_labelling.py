"""label_pending on a real two-process Dask LocalCluster and a real SQLite database.

The slow cases use ``mlip_autopipec.oracle.testing.SlowEMT`` through the ``ase``
oracle: EMT that sleeps per calculation and logs ``start``/``done`` lines with
its process id and folder, so a test can see who computed what, and how often.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from test_safety import live_ctrl_c

from mlip_autopipec.config import ASEOracleConfig, DaskComputeConfig, EMTOracleConfig, LocalComputeConfig
from mlip_autopipec.database import DatabaseManager, StructureMetadata
from mlip_autopipec.exceptions import ConfigurationError, OracleError
from mlip_autopipec.oracle import label_pending, make_oracle

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client():
    """One real cluster of two worker processes, shared by the tests that do not test its life cycle."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as c,
    ):
        yield c


def cu_pool(n: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    pool = []
    for i in range(n):
        atoms = bulk("Cu", "fcc", a=3.61 * (0.97 + 0.06 * rng.random()), cubic=True)
        atoms.rattle(0.05, seed=seed * 1000 + i)
        pool.append(atoms)
    return pool


def make_db(path: Path, structures: list) -> tuple[DatabaseManager, list[int]]:
    db = DatabaseManager(path)
    ids = db.add_structures(structures, StructureMetadata(source="test_pool"))
    assert len(set(ids)) == len(structures) and db.count(status="pending") == len(structures)
    return db, ids


def slow_oracle(log: Path, delay_s: float = 0.3):
    return make_oracle(
        ASEOracleConfig(
            calculator="mlip_autopipec.oracle.testing.SlowEMT", kwargs={"delay_s": delay_s, "log_file": str(log)}
        )
    )


def log_events(log: Path) -> list[tuple[str, int, int]]:
    """(event, pid, structure id) for every line of a SlowEMT log."""
    out = []
    for line in log.read_text().splitlines() if log.exists() else []:
        event, pid, directory = line.split()
        out.append((event, int(pid), int(Path(directory).name.removeprefix("structure_"))))
    return out


def test_emt_labels_through_dask_equal_a_direct_emt_call(client, tmp_path):
    pool = cu_pool(8)
    db, ids = make_db(tmp_path / "pool.db", pool)
    summary = label_pending(db, EMTOracleConfig(), client, workdir=tmp_path / "runs", progress=True)
    assert sorted(summary.labelled) == ids and summary.failed == {} and summary.n_remaining == 0
    assert db.count(status="labelled") == 8 and db.count(status="pending") == 0
    for rec in db.select():
        ref = rec.atoms.copy()
        ref.calc = EMT()
        assert abs(rec.atoms.get_potential_energy() - ref.get_potential_energy()) < 1e-10
        assert np.abs(rec.atoms.get_forces() - ref.get_forces()).max() < 1e-10
        assert np.abs(rec.atoms.get_stress() - ref.get_stress()).max() < 1e-10
        assert rec.label_info["oracle"] == "emt" and rec.label_info["oracle_attempts"] == 1
    workers = {rec.label_info["oracle_worker"] for rec in db.select()}
    assert os.getpid() not in {int(w.rsplit(":", 1)[1]) for w in workers}  # computed in the worker processes, not here
    # nothing pending: a second call does nothing and starts no cluster (this address would not answer)
    again = label_pending(db, EMTOracleConfig(), DaskComputeConfig(address="tcp://127.0.0.1:1"))
    assert again.n_pending == 0 and again.labelled == []


def test_failures_are_recorded_with_their_reason_and_the_run_goes_on(client, tmp_path):
    pool = cu_pool(5) + [bulk("Si", "diamond", a=5.43)]
    db, ids = make_db(tmp_path / "pool.db", pool)
    summary = label_pending(
        db, EMTOracleConfig(), client, workdir=tmp_path / "runs", max_failure_fraction=0.5, progress=False
    )
    assert sorted(summary.labelled) == ids[:5] and list(summary.failed) == [ids[5]]
    rec = db.record(ids[5])
    assert rec.status == "failed" and "EMT has no parameters for Si" in rec.failure_reason


def test_too_many_failures_stop_the_run_with_a_clear_error(client, tmp_path):
    pool = [bulk("Si", "diamond", a=5.43 + 0.01 * i) for i in range(3)] + cu_pool(5)
    db, ids = make_db(tmp_path / "pool.db", pool)
    with pytest.raises(
        OracleError, match=r"of 8 structures failed, more than max_failure_fraction=0.2 allows \(1\)"
    ) as err:
        label_pending(db, EMTOracleConfig(max_failure_fraction=0.2), client, workdir=tmp_path / "runs", progress=False)
    assert f"structure {ids[0]}: EMT has no parameters for Si" in str(err.value)
    n_failed, n_labelled, n_pending = (db.count(status=s) for s in ("failed", "labelled", "pending"))
    assert n_failed >= 2 and n_failed + n_labelled + n_pending == 8  # what finished was written; the rest stays pending
    # the next run picks up exactly what is left
    rest = label_pending(
        db, EMTOracleConfig(), client, workdir=tmp_path / "runs", max_failure_fraction=1.0, progress=False
    )
    assert rest.n_pending == n_pending and db.count(status="pending") == 0


def test_killing_a_worker_mid_calculation_does_not_sink_the_run(client, tmp_path):
    log = tmp_path / "calls.log"
    db, ids = make_db(tmp_path / "pool.db", cu_pool(12, seed=1))
    pids = set(client.run(os.getpid).values())
    assert len(pids) == 2
    killed: list[int] = []

    def kill_the_other_worker(outcome):
        if not killed:
            # Both workers run 0.5 s calculations in step;
            # 0.25 s after a result the other worker is half-way through one.
            time.sleep(0.25)
            victim = next(p for p in pids if outcome.worker.rsplit(":", 1)[1] != str(p))
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    summary = label_pending(
        db, slow_oracle(log, 0.5), client, workdir=tmp_path / "runs", callback=kill_the_other_worker, progress=False
    )
    assert killed
    assert sorted(summary.labelled) == ids and summary.failed == {}
    assert db.count(status="labelled") == 12 and db.count() == 12
    events = log_events(log)
    started_by_victim = {sid for ev, pid, sid in events if ev == "start" and pid == killed[0]}
    done_by_victim = {sid for ev, pid, sid in events if ev == "done" and pid == killed[0]}
    lost = started_by_victim - done_by_victim
    assert lost, "the killed worker was not computing anything"
    for sid in lost:  # the structure it was computing was computed again by another process
        assert any(ev == "done" and pid != killed[0] and s == sid for ev, pid, s in events)
        assert db.record(sid).status == "labelled"
    assert all(rec.label_info["oracle_attempts"] == 1 for rec in db.select())
    # the cluster healed: two workers again
    deadline = time.monotonic() + 30
    while len(client.scheduler_info()["workers"]) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(client.scheduler_info()["workers"]) == 2


def test_a_rerun_after_an_interrupt_labels_nothing_twice(client, tmp_path):
    log = tmp_path / "calls.log"
    db, ids = make_db(tmp_path / "pool.db", cu_pool(10, seed=2))
    first: list[int] = []

    def interrupt_after_three(outcome):
        first.append(outcome.structure_id)
        if len(first) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        label_pending(
            db, slow_oracle(log), client, workdir=tmp_path / "runs", callback=interrupt_after_three, progress=False
        )
    # the three seen, plus any result that had already finished on a worker when the interrupt came (stored, not lost)
    kept = set(db.ids(status="labelled"))
    assert kept >= set(first) and db.count(status="pending") == 10 - len(kept)
    assert client.status == "running"  # a client given by the caller stays open
    # Dask cannot stop a calculation already running on a worker: let those finish (their results are dropped);
    # the queued ones were cancelled and never start.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        events = Counter(ev for ev, _, _ in log_events(log))
        if events["start"] == events["done"]:
            break
        time.sleep(0.1)
    time.sleep(1.0)  # > 3 calculations: a queued task that was not cancelled would start now
    assert Counter(ev for ev, _, _ in log_events(log)) == events and events["done"] < len(ids)

    n_events_before = len(log_events(log))
    second = label_pending(db, slow_oracle(log), client, workdir=tmp_path / "runs", progress=False)
    assert sorted(second.labelled) == sorted(set(ids) - kept)
    assert db.count(status="labelled") == 10 and db.count(status="pending") == 0
    done_in_second = Counter(sid for ev, _, sid in log_events(log)[n_events_before:] if ev == "done")
    assert set(done_in_second) == set(ids) - kept  # nothing labelled in the first run was computed again
    assert set(done_in_second.values()) == {1}  # and every remaining structure exactly once
    assert all(rec.label_info["oracle_attempts"] == 1 for rec in db.select())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_compute_and_oracle_mappings_are_refused_before_anything_runs(tmp_path):
    db, _ = make_db(tmp_path / "pool.db", cu_pool(2))
    with pytest.raises(ConfigurationError, match="compute takes a configuration model .*not a dict"):
        label_pending(db, EMTOracleConfig(), {"type": "local", "n_workers": 1})
    with pytest.raises(ConfigurationError, match="make_oracle takes a configuration model .*not a dict"):
        label_pending(db, {"type": "emt"}, LocalComputeConfig(n_workers=1))
    assert db.count(status="pending") == 2


DRIVER = """
import sys
from pathlib import Path

from mlip_autopipec.config import ASEOracleConfig, LocalComputeConfig
from mlip_autopipec.database import DatabaseManager
from mlip_autopipec.oracle import label_pending, make_oracle

if __name__ == "__main__":  # Dask's spawned workers re-import this script
    folder = Path(sys.argv[1])
    oracle = make_oracle(ASEOracleConfig(calculator="mlip_autopipec.oracle.testing.SlowEMT",
                                         kwargs={"delay_s": 0.3, "log_file": str(folder / "calls.log")}))
    db = DatabaseManager(folder / "pool.db")
    label_pending(db, oracle, LocalComputeConfig(n_workers=2), workdir=folder / "runs", progress=False)
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill"])
def test_an_interrupted_driver_process_loses_nothing_and_the_rerun_repeats_nothing(client, tmp_path, sig):
    import subprocess
    import sys

    db, ids = make_db(tmp_path / "pool.db", cu_pool(16, seed=3))
    (tmp_path / "drive.py").write_text(DRIVER)
    proc = subprocess.Popen(
        [sys.executable, str(tmp_path / "drive.py"), str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=live_ctrl_c,  # Ctrl-C acts, as in a terminal (an ignored SIGINT is inherited across exec)
    )
    try:
        deadline = time.monotonic() + 120
        while db.count(status="labelled") < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        proc.send_signal(sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    first = set(db.ids(status="labelled"))
    assert 3 <= len(first) < 16 and db.count(status="pending") == 16 - len(first)
    driver_workers = {pid for _, pid, _ in log_events(tmp_path / "calls.log")}
    deadline = time.monotonic() + 30
    while any(_alive(p) for p in driver_workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(p) for p in driver_workers), "the interrupted run left worker processes behind"

    n_before = len(log_events(tmp_path / "calls.log"))
    second = label_pending(
        db, slow_oracle(tmp_path / "calls.log", 0.0), client, workdir=tmp_path / "runs", progress=False
    )
    assert set(second.labelled) == set(ids) - first and db.count(status="labelled") == 16
    done_again = Counter(sid for ev, _, sid in log_events(tmp_path / "calls.log")[n_before:] if ev == "done")
    assert set(done_again) == set(ids) - first and set(done_again.values()) == {1}


def test_a_structure_that_keeps_killing_its_worker_is_recorded_as_failed(tmp_path):
    import dask

    pool = cu_pool(3) + [bulk("Ag", "fcc", a=4.09, cubic=True)]
    db, ids = make_db(tmp_path / "pool.db", pool)
    oracle = make_oracle(
        ASEOracleConfig(
            calculator="mlip_autopipec.oracle.testing.SlowEMT", kwargs={"delay_s": 0.0, "crash_element": "Ag"}
        )
    )
    # allowed-failures=0: the first worker death is final (default 3 reschedules, which only costs time here)
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        summary = label_pending(
            db,
            oracle,
            LocalComputeConfig(n_workers=1),
            workdir=tmp_path / "runs",
            max_failure_fraction=0.5,
            progress=False,
        )
    assert sorted(summary.labelled) == ids[:3] and list(summary.failed) == [ids[3]]
    reason = db.record(ids[3]).failure_reason
    assert reason.startswith("Dask task failed: KilledWorker") and "died" in reason
