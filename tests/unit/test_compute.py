"""The compute layer: clusters from ComputeConfig (batch job scripts, job submission and clean-up), per-step clients,
and run_tasks, the one Dask task loop (keys, window, release, cancel on exit, salvage) on a real in-process cluster."""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable

import pytest

from mlip_autopipec.compute.clients import StepClients
from mlip_autopipec.compute.cluster import SCHEDULER_CONFIG, dask_client, default_n_workers, make_cluster
from mlip_autopipec.compute.tasks import Done, Task, run_tasks
from mlip_autopipec.config import ComputeConfig, validate_config
from mlip_autopipec.exceptions import ConfigurationError, OracleError


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
    from mlip_autopipec.compute.models import walltime_seconds

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


def test_step_clients_share_a_local_cluster_and_hold_batch_jobs_only_for_their_step():
    local = validate_config(ComputeConfig, {"type": "local", "n_workers": 1})
    slurm = validate_config(ComputeConfig, {"type": "slurm", "cores": 1, "memory": "1GiB"})
    clients = StepClients({"label": local, "explore": local, "fit": slurm}.__getitem__)
    with clients.step("label") as label, clients.step("explore") as explore:
        assert label is explore and label.compute == local  # one local cluster (not started: nothing asked for it)
    with clients.step("fit") as fit:
        assert fit is not label and fit.compute == slurm
        closed: list[bool] = []
        fit._stack.callback(closed.append, True)
    assert closed == [True]  # the step's batch cluster is closed when the step ends
    clients.close()


# --------------------------------------------------------------------------- run_tasks on a real in-process cluster
# The cluster's workers are threads of this process, so the tasks below share these globals with the test.
_STARTED: list[str] = []
_EVENTS: dict[str, threading.Event] = {}
_ACTIVE = {"now": 0, "most": 0}
_LOCK = threading.Lock()


def _value(name: str, value: int) -> int:
    _STARTED.append(name)
    return value


def _after(event: str, name: str, value: int) -> int:
    """Return ``value`` once the test sets ``event`` (at most 30 s)."""
    _STARTED.append(name)
    _EVENTS[event].wait(30)
    return value


def _square(x: int) -> int:
    with _LOCK:
        _ACTIVE["now"] += 1
        _ACTIVE["most"] = max(_ACTIVE["most"], _ACTIVE["now"])
    time.sleep(0.05)
    with _LOCK:
        _ACTIVE["now"] -= 1
    if x == 3:
        raise ValueError("three is refused")
    return x * x


@pytest.fixture(scope="module")
def threads_client():
    """One worker with two threads in this process, scheduled as the package's clusters are (a worker holds only
    the tasks it runs)."""
    import dask
    from distributed import Client, LocalCluster

    with (
        dask.config.set(SCHEDULER_CONFIG),
        LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):
        yield client


@pytest.fixture
def events():
    _STARTED.clear()
    _EVENTS.clear()
    _EVENTS.update(go=threading.Event(), release=threading.Event())
    _ACTIVE.update(now=0, most=0)
    yield _EVENTS
    _EVENTS["go"].set()
    _EVENTS["release"].set()  # no task thread waits on after the test


def _scheduler_keys(client, prefix: str) -> list[str]:
    def keys(dask_scheduler) -> list[str]:
        return [str(k) for k in dask_scheduler.tasks]

    return [k for k in client.run_on_scheduler(keys) if k.startswith(prefix)]


def _wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


def _client_knows_finished(client, prefix: str) -> bool:
    return any(k.startswith(prefix) and st.status == "finished" for k, st in list(client.futures.items()))


def test_run_tasks_gives_each_task_its_own_key_keeps_the_window_and_releases_handled_keys(threads_client, events):
    seen: dict[int, int | str] = {}

    def on_done(done: Done[int]) -> None:
        try:
            seen[done.index] = done.result()
        except ValueError as err:  # the task's own error comes back with it
            seen[done.index] = str(err)
        if len(seen) == 6:  # the keys of the tasks handled before this one are gone from the scheduler
            _wait_until(lambda: len(_scheduler_keys(threads_client, "sq-")) <= 1, "the handled keys are released")

    # one name for all: the keys must still differ, or Dask would run one task and hand its result to all
    run_tasks(threads_client, [Task("sq", _square, (x,)) for x in range(6)], on_done, max_in_flight=1)
    assert seen == {0: 0, 1: 1, 2: 4, 3: "three is refused", 4: 16, 5: 25}
    assert _ACTIVE["most"] == 1  # two threads, but a window of one task
    _wait_until(lambda: not _scheduler_keys(threads_client, "sq-"), "every key is released")
    with pytest.raises(ValueError, match="max_in_flight"):
        run_tasks(threads_client, [], on_done, max_in_flight=0)


def test_an_error_in_on_done_cancels_every_task_not_finished(threads_client, events):
    waiting = ("b", "c", "d")  # two of them take the two threads, the third is queued behind them
    tasks = [Task("a", _value, ("a", 1)), *(Task(name, _after, ("release", name, 2)) for name in waiting)]

    def on_done(done: Done[int]) -> None:
        _wait_until(lambda: len(set(waiting) & set(_STARTED)) == 2, "two of b, c, d run")
        raise RuntimeError(f"handling {done.task.name} failed")

    with pytest.raises(RuntimeError, match="handling a failed") as err:
        run_tasks(threads_client, tasks, on_done)
    # (err keeps run_tasks' frame, and its futures, alive: only a cancel removes them from the scheduler)
    _wait_until(lambda: not any(_scheduler_keys(threads_client, f"{n}-") for n in waiting), "b, c and d are cancelled")
    events["release"].set()  # the two running end now; the queued one, cancelled, must never start
    time.sleep(0.5)
    assert len(set(waiting) & set(_STARTED)) == 2 and err.value is not None


def test_on_done_may_stop_the_run_and_what_finished_meanwhile_is_salvaged(threads_client, events):
    tasks = [Task("a", _value, ("a", 10)), Task("b", _after, ("go", "b", 11)), Task("c", _value, ("c", 12))]
    handled: list[int] = []
    salvaged: list[tuple[int, int]] = []

    def on_done(done: Done[int]) -> bool:
        handled.append(done.index)
        events["go"].set()  # b finishes while a is handled
        _wait_until(lambda: _client_knows_finished(threads_client, "b-"), "b has finished")
        return True

    run_tasks(threads_client, tasks, on_done, max_in_flight=2, salvage=lambda d: salvaged.append((d.index, d.result())))
    assert handled == [0] and salvaged == [(1, 11)]
    assert "c" not in _STARTED  # never submitted after the stop


def test_an_interrupt_gives_running_tasks_a_grace_salvages_what_ended_and_cancels_the_rest(threads_client, events):
    waiting = ("c", "d", "e")  # one of them runs beside b past the grace, the other two are queued behind them
    tasks = [
        Task("a", _value, ("a", 10)),
        Task("b", _after, ("go", "b", 11)),
        *(Task(name, _after, ("release", name, 12)) for name in waiting),
    ]
    salvaged: list[tuple[int, int]] = []

    def on_done(done: Done[int]) -> None:
        _wait_until(lambda: "b" in _STARTED and len(set(waiting) & set(_STARTED)) == 1, "b and one of c, d, e run")
        threading.Timer(0.3, events["go"].set).start()  # b finishes while the interrupt is handled
        raise KeyboardInterrupt  # Ctrl-C while a is being handled

    with pytest.raises(KeyboardInterrupt) as err:
        run_tasks(threads_client, tasks, on_done, salvage=lambda d: salvaged.append((d.index, d.result())), grace_s=1.5)
    # a (its on_done was interrupted) and b (it ended within the grace) are salvaged; the one running past the
    # grace is cancelled, and the queued ones were cancelled before b's thread came free: they never start
    assert sorted(salvaged) == [(0, 10), (1, 11)]
    events["release"].set()
    time.sleep(0.3)
    assert len(set(waiting) & set(_STARTED)) == 1
    # (err keeps run_tasks' frame, and its futures, alive: only a cancel removes them from the scheduler)
    _wait_until(lambda: not any(_scheduler_keys(threads_client, f"{n}-") for n in waiting), "c, d, e cancelled")
    assert err.type is KeyboardInterrupt


def _worker_setup() -> tuple[bool, bool, bool]:
    import logging
    import signal

    record = logging.LogRecord("distributed.worker", logging.ERROR, __file__, 1, "", None, None)
    worker_log = logging.getLogger("distributed.worker")
    record.msg = "Failed to communicate with scheduler during heartbeat."
    heartbeat_kept = worker_log.filter(record)
    record.msg = "Compute Failed"
    other_kept = worker_log.filter(record)
    return signal.getsignal(signal.SIGINT) == signal.SIG_IGN, bool(heartbeat_kept), bool(other_kept)


def test_local_workers_ignore_ctrl_c_and_drop_only_the_lost_scheduler_heartbeat_record():
    from distributed import Client

    from mlip_autopipec.config import LocalComputeConfig

    with make_cluster(LocalComputeConfig(n_workers=1)) as cluster, Client(cluster) as client:
        ((ignores_sigint, heartbeat_kept, other_kept),) = client.run(_worker_setup).values()
    assert ignores_sigint and not heartbeat_kept and other_kept
