"""A campaign that cannot waste or corrupt (issue 11): each row of the issue's table, with real processes.

Real ``mlip-autopipec`` processes, real signals (SIGINT, SIGKILL), real read-only
mounts (a bind mount in a private mount namespace, ``unshare -rm``: as root
``chmod`` does not stop writes), real damaged files.  Oracle calls are counted
from the database and from :class:`~mlip_autopipec.oracle.testing.SlowEMT`'s
call log (one line per calculation started and finished).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase.build import bulk
from ase.io import write
from test_pipeline import TINY_TRAINING, tiny_config

from mlip_autopipec.cli import main
from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.database import DatabaseManager, StructureMetadata

pytestmark = pytest.mark.slow

EXE = str(Path(sys.executable).with_name("mlip-autopipec"))
QUICK_TRAINING = {**TINY_TRAINING, "evaluator": "pyace", "max_num_epochs": 4}  # a real fit, not these tests' subject


def slow_config(tmp_path: Path, workdir: Path, pool: int = 10, delay_s: float = 0.4, **oracle_kwargs) -> Path:
    """A tiny run whose oracle (SlowEMT) logs every calculation to ``tmp_path/calls.log``; returns the YAML file."""
    cfg = tiny_config(
        workdir,
        oracle={
            "type": "ase",
            "calculator": "mlip_autopipec.oracle.testing.SlowEMT",
            "kwargs": {"delay_s": delay_s, "log_file": str(tmp_path / "calls.log"), **oracle_kwargs},
        },
        training=dict(QUICK_TRAINING),
    )
    cfg["generator"]["pool_size"] = pool
    cfg["report"] = {
        "eos": False,
        "properties": {"elastic": False, "vacancy": False, "surfaces": [], "phonons": False, "md_stability": None},
    }  # the report's property rows are not these tests' subject
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def calls(tmp_path: Path, event: str) -> list[str]:
    """The structure folders of the oracle calls that logged ``event`` (start, done, fail)."""
    log = tmp_path / "calls.log"
    if not log.exists():
        return []
    return [Path(line.split()[-1]).name for line in log.read_text().splitlines() if line.startswith(event + " ")]


def live_ctrl_c() -> None:
    """In the child before exec: Ctrl-C acts, as in a terminal, whatever this test process's disposition (an
    ignored SIGINT is inherited across exec; in the full suite the worker process running a test may have it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_run(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [EXE, *args],
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=live_ctrl_c,
    )


def wait_for(condition, timeout: float = 120.0, what: str = "condition") -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def assert_one_sentence(stderr: str, *needles: str) -> str:
    """stderr ends with one ``error:`` line naming ``needles``; no traceback on the terminal."""
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


def needs_unshare() -> str:
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-rm", "true"], capture_output=True).returncode != 0:
        pytest.skip("needs `unshare -rm` (user and mount namespaces) for a read-only bind mount")
    return unshare


def run_read_only(folder: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """``mlip-autopipec ARGS`` with ``folder`` mounted read-only (a bind mount in a private mount namespace)."""
    unshare = needs_unshare()
    quoted = " ".join(f"'{a}'" for a in args)
    script = f"mount --bind '{folder}' '{folder}' && mount -o remount,bind,ro '{folder}' && exec '{EXE}' {quoted}"
    return subprocess.run([unshare, "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=timeout)


# --------------------------------------------------------------------------- one writer per work directory


def test_two_concurrent_runs_one_is_refused(tmp_path):
    """Row 1: two `run` on one work directory: the second exits 2 naming the holder; each structure labelled once."""
    workdir = tmp_path / "w"
    cfg = slow_config(tmp_path, workdir, pool=10)
    first = start_run("run", str(cfg), "--no-progress")
    try:
        wait_for(lambda: len(calls(tmp_path, "done")) >= 2, what="the first run's labelling")
        t0 = time.perf_counter()
        second = subprocess.run([EXE, "run", str(cfg), "--no-progress"], capture_output=True, text=True, timeout=120)
        refused_in = time.perf_counter() - t0
        # status and export read while the run holds the lock
        status = subprocess.run([EXE, "status", str(workdir)], capture_output=True, text=True, timeout=120)
        export = subprocess.run(
            [EXE, "export", str(workdir), "--format", "extxyz", "-o", str(tmp_path / "x.xyz")],
            capture_output=True,
            text=True,
            timeout=120,
        )
        out, err = first.communicate(timeout=400)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    assert first.returncode == 0, err
    assert second.returncode == 2
    line = assert_one_sentence(
        second.stderr, str(workdir), "in use by another run", f"pid {first.pid}", socket.gethostname(), "since"
    )
    print(f"second run refused in {refused_in:.1f} s: {line}")
    assert status.returncode == 0 and f"run in progress: pid {first.pid}" in status.stdout, (
        status.stdout + status.stderr
    )
    assert export.returncode == 0 and "labelled structures" in export.stdout, export.stderr
    db = DatabaseManager(workdir / "structures.db", read_only=True)
    n = db.count()
    started, done = calls(tmp_path, "start"), calls(tmp_path, "done")
    print(
        f"structures {n}, labelled {db.count(status='labelled')}, "
        f"oracle calls started {len(started)}, finished {len(done)}"
    )
    assert n == 10 and db.count(status="labelled") == 10
    assert len(started) == len(done) == 10 and len(set(started)) == 10  # each structure went to the oracle once
    assert len({rec.label_info["oracle_worker"] for rec in db.select()}) >= 1
    fits = [p for p in (workdir / "fits").iterdir() if p.is_dir()]
    assert len(fits) == 1, fits  # one fit folder, written by one pacemaker
    assert len(list((workdir / "logs").glob("run-*.log"))) == 1  # the refused run wrote no log
    assert (workdir / ".run.lock").read_text() == ""  # released on a clean end


def test_database_file_shared_by_two_work_directories_is_locked(tmp_path):
    """Two work directories pointing at one database file: the second run is refused, naming the database."""
    from mlip_autopipec.pipeline.lock import RunLock, database_lock_path

    shared = tmp_path / "shared" / "structures.db"
    shared.parent.mkdir()
    cfg = tiny_config(tmp_path / "a", database={"path": str(shared)})
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from mlip_autopipec.pipeline.lock import RunLock, database_lock_path\n"
            f"import pathlib, time\nl = RunLock(database_lock_path(pathlib.Path({str(shared)!r})), 'x'); l.acquire()\n"
            "print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        proc = subprocess.run(
            [EXE, "run", str(path), "--workdir", str(tmp_path / "b"), "--no-progress"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 2
    assert_one_sentence(proc.stderr, f"database {shared}", "in use by another run", f"pid {holder.pid}")
    assert not shared.exists()  # nothing was written into it
    # the holder was killed (SIGKILL): its lock is free at once, and the next taker sees it ended unfinished
    lock = RunLock(database_lock_path(shared), "database")
    lock.acquire()
    assert lock.taken_over and f"pid {holder.pid}" in lock.taken_over
    lock.release()


# --------------------------------------------------------------------------- run checks before it spends


def overlapping_seed(tmp_path: Path, distance: float) -> Path:
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    atoms.positions[1] = atoms.positions[0] + [distance, 0.0, 0.0]
    path = tmp_path / f"seed_{distance}.xyz"
    write(path, atoms)
    return path


BAD_CONFIGS = {
    "emt_lacks_element": ({"structure": {"element": "Si", "lattice": "diamond", "a": 5.43}}, "EMT has no parameters"),
    "missing_pseudopotential": (
        {
            "structure": {"element": "Si", "lattice": "diamond", "a": 5.43},
            "oracle": {"type": "espresso", "pseudopotentials": {"Si": "Si.nonexistent.UPF"}},
        },
        "oracle.pseudopotentials.Si",
    ),
    "missing_program": (
        {
            "structure": {"element": "Si", "lattice": "diamond", "a": 5.43},
            "oracle": {
                "type": "espresso",
                "command": "nonexistent_pw.x",
                "pseudopotentials": {"Si": "Si.pbe-rrkj.UPF"},
            },
        },
        "oracle.command",
    ),
    "seed_atoms_on_one_spot": ("overlap:0.0", "overlap"),
    "seed_atoms_0.3_A_apart": ("overlap:0.3", "overlap"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_run_refuses_a_config_that_cannot_work_before_any_oracle_call(tmp_path, capsys, case):
    """Row 3 and the last row: `validate` and `run` refuse the same configs; `run` spends nothing
    (no structure, no oracle call)."""
    over, needle = BAD_CONFIGS[case]
    workdir = tmp_path / "w"
    if isinstance(over, str):
        seed = overlapping_seed(tmp_path, float(over.split(":")[1]))
        over = {"structure": {"file": str(seed)}}
        needle = "overlapping"
    cfg = tiny_config(workdir, **over)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["validate", str(path)]) == 2
    said = capsys.readouterr().err
    assert needle in said, said
    assert main(["run", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert_one_sentence(err, needle)
    assert not (workdir / "structures.db").exists() and not (workdir / "oracle").exists()
    log = next((workdir / "logs").glob("run-*.log")).read_text()
    assert "run stopped: " + err.strip().splitlines()[-1].removeprefix("error: ").split(" (details in")[0] in log
    assert "Traceback" in log  # the detail is in the log file, not on the terminal
    assert "step label" not in log and "step generate" not in log


# --------------------------------------------------------------------------- retries


def test_retry_failed_labels_the_failed_structures_again(tmp_path, capsys):
    """Row 4: failures caused, then fixed; `run --retry-failed` labels them, keeping the earlier reasons."""
    workdir = tmp_path / "w"
    marker = tmp_path / "licence-server-down"
    marker.touch()
    cfg = slow_config(tmp_path, workdir, pool=8, delay_s=0.05, fail_while_exists=str(marker))
    data = yaml.safe_load(cfg.read_text())
    data["oracle"]["max_failure_fraction"] = 1.0  # every structure is tried once, none is left pending
    data["compute"]["n_workers"] = 1
    cfg.write_text(yaml.safe_dump(data))
    assert main(["run", str(cfg), "--no-progress"]) == 2
    first = capsys.readouterr().err
    assert_one_sentence(first, "no structure could be labelled (8 failed)", "--retry-failed")
    db = DatabaseManager(workdir / "structures.db", read_only=True)
    assert db.count(status="failed") == 8 and db.count(status="labelled") == 0
    assert len(calls(tmp_path, "fail")) == 8

    assert main(["status", str(workdir)]) == 0
    status = capsys.readouterr().out
    print(status)
    assert "failures (8), by reason:" in status
    assert "8 x RuntimeError: licence server unreachable" in status and "--retry-failed" in status

    marker.unlink()  # the cause is fixed
    assert main(["run", str(cfg), "--no-progress", "--retry-failed"]) == 0, capsys.readouterr().err
    db = DatabaseManager(workdir / "structures.db", read_only=True)
    assert db.count(status="labelled") == 8 and db.count(status="failed") == 0
    assert (
        len(calls(tmp_path, "done")) == 8 and len(calls(tmp_path, "start")) == 16
    )  # 8 failed calls + 8 good ones, none twice
    from ase.db import connect

    for row in connect(str(workdir / "structures.db")).select():
        history = row.data["failure_history"]
        assert len(history) == 1 and "licence server unreachable" in history[0]["reason"] and history[0]["reset"]


# --------------------------------------------------------------------------- a sentence for every failure


def test_work_directory_is_a_file(tmp_path):
    cfg = tiny_config(tmp_path / "w")
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    (tmp_path / "w").write_text("not a folder")
    proc = subprocess.run([EXE, "run", str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert_one_sentence(proc.stderr, str(tmp_path / "w"), "is a file")
    assert (tmp_path / "w").read_text() == "not a folder"
    # a file where the work directory's parent must be
    proc = subprocess.run(
        [EXE, "run", str(path), "--workdir", str(tmp_path / "w" / "sub")], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert_one_sentence(proc.stderr, str(tmp_path / "w"), "a file where a folder must be")


@pytest.mark.parametrize("where", ["workdir_read_only", "parent_read_only"])
def test_work_directory_not_writable(tmp_path, where):
    folder = tmp_path / "ro"
    folder.mkdir()
    workdir = folder if where == "workdir_read_only" else folder / "sub"
    cfg = tiny_config(workdir)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = run_read_only(folder, "run", str(path), "--no-progress")
    assert proc.returncode == 2, proc.stderr
    assert_one_sentence(proc.stderr, str(workdir), "read-only file system", "writable")
    assert list(folder.iterdir()) == []


def test_full_disk(tmp_path):
    """A work directory on a full file system (a 96 KiB tmpfs in a private mount namespace): one sentence,
    nothing half-written."""
    unshare = needs_unshare()
    folder = tmp_path / "small"
    folder.mkdir()
    cfg = tiny_config(folder / "w")
    cfg["generator"]["pool_size"] = 400
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    script = (
        f"mount -t tmpfs -o size=96k tmpfs '{folder}' && '{EXE}' run '{path}' --no-progress; "
        f"rc=$?; ls '{folder}/w'; exit $rc"
    )
    proc = subprocess.run([unshare, "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 2, proc.stderr
    assert_one_sentence(
        proc.stderr, str(folder / "w" / "structures.db"), "disk is full", "free some space", "nothing was half-written"
    )
    assert "Logging error" not in proc.stderr


@pytest.fixture(scope="module")
def labelled_workdir(tmp_path_factory):
    """A work directory with a few labelled structures (no fit needed for export and status)."""
    from mlip_autopipec.config import EMTOracleConfig, LocalComputeConfig
    from mlip_autopipec.oracle import label_pending
    from mlip_autopipec.pipeline.state import write_state

    workdir = tmp_path_factory.mktemp("labelled") / "w"
    workdir.mkdir()
    cfg = PipelineConfig.model_validate(tiny_config(workdir))
    write_state(workdir, cfg)
    atoms = [bulk("Cu", "fcc", a=a, cubic=True) for a in (3.55, 3.6, 3.65)]
    with DatabaseManager(workdir / "structures.db") as db:
        db.add_structures(atoms, StructureMetadata(source="initial_random"))
        label_pending(
            db, EMTOracleConfig(), LocalComputeConfig(n_workers=1), workdir=workdir / "oracle", progress=False
        )
    return workdir


def test_export_into_a_read_only_folder_or_under_a_file(labelled_workdir, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    proc = run_read_only(folder, "export", str(labelled_workdir), "--format", "extxyz", "-o", str(folder / "all.xyz"))
    assert proc.returncode == 2, proc.stderr
    assert_one_sentence(proc.stderr, str(folder), "read-only file system")
    assert list(folder.iterdir()) == []
    (tmp_path / "file").write_text("x")
    proc = subprocess.run(
        [EXE, "export", str(labelled_workdir), "--format", "extxyz", "-o", str(tmp_path / "file" / "all.xyz")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert_one_sentence(proc.stderr, str(tmp_path / "file"), "is a file")


def test_read_only_database_with_pending_structures_stops_before_dask(tmp_path):
    """The database file read-only (bind mount), structures pending: a sentence before any Dask cluster starts."""
    from mlip_autopipec.pipeline.state import write_state

    workdir = tmp_path / "w"
    workdir.mkdir()
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(tiny_config(workdir)))
    from mlip_autopipec.config import load_config

    write_state(workdir, load_config(path))
    db_file = workdir / "structures.db"
    with DatabaseManager(db_file) as db:
        db.add_structures(
            [bulk("Cu", "fcc", a=a, cubic=True) for a in (3.55, 3.6)], StructureMetadata(source="initial_random")
        )
    before = db_file.read_bytes()
    unshare = needs_unshare()
    script = (
        f"mount --bind '{db_file}' '{db_file}' && mount -o remount,bind,ro '{db_file}' && "
        f"exec '{EXE}' run '{path}' --no-progress"
    )
    proc = subprocess.run([unshare, "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 2, proc.stderr
    assert_one_sentence(proc.stderr, str(db_file), "read-only", "writable")
    assert "distributed" not in proc.stderr and "step label" not in proc.stderr and "step generate" not in proc.stderr
    assert db_file.read_bytes() == before
    assert not (workdir / "oracle").exists()


def test_damaged_database_run_and_status_say_a_sentence(labelled_workdir, tmp_path):
    workdir = tmp_path / "w"
    shutil.copytree(labelled_workdir, workdir)
    db_file = workdir / "structures.db"
    with DatabaseManager(db_file) as db:  # big enough that the damage lands in the rows
        rng = np.random.default_rng(0)
        db.add_structures(
            [bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2) for _ in range(1)], StructureMetadata(source="x")
        )
        for i in range(150):
            atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
            atoms.rattle(0.05, seed=i)
            db.add_structure(atoms, StructureMetadata(source="x"))
    size = db_file.stat().st_size
    with open(db_file, "r+b") as fh:
        fh.seek(size // 2)
        fh.write(rng.bytes(8192))
    for args in (["status", str(workdir)], ["run", str(tmp_path / "cfg.yaml"), "--no-progress"]):
        cfg = tiny_config(workdir)
        (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
        proc = subprocess.run([EXE, *args], capture_output=True, text=True, timeout=180)
        assert proc.returncode == 2, (args, proc.stderr)
        assert_one_sentence(proc.stderr, str(db_file), "damaged", ".recover")


def test_ctrl_c_during_labelling(tmp_path):
    """Row 9: SIGINT to the whole process group (as a terminal's Ctrl-C): exit 130, no worker tracebacks,
    finished calculations stored; the log says why the run stopped; no dashboard-port warning."""
    holder = socket.socket()
    try:
        holder.bind(("", 8787))  # the dashboard's default port busy: no warning may appear (the dashboard is off)
        holder.listen()
    except OSError:
        pass  # already busy (another cluster): the same situation
    workdir = tmp_path / "w"
    cfg = slow_config(tmp_path, workdir, pool=12, delay_s=1.0)
    proc = start_run("run", str(cfg), "--no-progress")
    try:
        wait_for(lambda: len(calls(tmp_path, "done")) >= 3, what="three finished calculations")
        finished = set(calls(tmp_path, "done"))
        time.sleep(0.3)  # these have surely reached the driver by now
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        holder.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err and "Dask Worker process" not in err, err
    assert "8787" not in err and "CancelledError" not in err, err
    assert err.count("interrupted") == 1 and "run the same command again" in err
    db = DatabaseManager(workdir / "structures.db", read_only=True)
    labelled = {f"structure_{i}" for i in db.ids(status="labelled")}
    print(
        f"finished before the signal: {len(finished)}; stored: {len(labelled)}; pending: {db.count(status='pending')}"
    )
    assert finished <= labelled  # nothing that finished was thrown away
    assert db.count(status="labelled") + db.count(status="pending") == 12
    log = next((workdir / "logs").glob("run-*.log")).read_text()
    assert "run stopped: interrupted (Ctrl-C / SIGINT)" in log


def test_sigterm_stops_like_ctrl_c(tmp_path):
    """A batch system's SIGTERM to the driver: exit 143 with a sentence, the lock released, finished work kept."""
    workdir = tmp_path / "w"
    cfg = slow_config(tmp_path, workdir, pool=8, delay_s=1.0)
    proc = start_run("run", str(cfg), "--no-progress")
    try:
        wait_for(lambda: len(calls(tmp_path, "done")) >= 2, what="two finished calculations")
        finished = set(calls(tmp_path, "done"))  # on the workers; their results may not have reached the driver
        proc.send_signal(signal.SIGTERM)  # the driver only, as `kill PID` or scancel's first signal
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "stopped by SIGTERM" in err
    assert (workdir / ".run.lock").read_text() == ""
    db = DatabaseManager(workdir / "structures.db", read_only=True)
    labelled = {f"structure_{i}" for i in db.ids(status="labelled")}
    print(f"finished before the signal: {len(finished)}, in all: {len(calls(tmp_path, 'done'))}; stored: {labelled}")
    assert len(finished) >= 2 and finished <= labelled  # each result that finished on a worker is stored (row 11)


def test_kill_9_of_the_driver_leaves_no_worker_and_nothing_on_the_terminal(tmp_path):
    """Issue 22, row 13: `kill -9 PID` of the driver alone while its workers calculate: the workers exit within
    seconds and nothing follows on the terminal (no heartbeat traceback, no resource-tracker warning)."""
    cfg = slow_config(tmp_path, tmp_path / "w", pool=8, delay_s=30.0)
    err_file = tmp_path / "stderr.txt"
    with open(err_file, "w") as err_out:
        proc = subprocess.Popen([EXE, "run", str(cfg), "--no-progress"], stdout=subprocess.DEVNULL, stderr=err_out)
    try:
        wait_for(lambda: len(calls(tmp_path, "start")) >= 2, what="two calculations running")
        workers = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        assert len(workers) >= 2
        time.sleep(1.0)  # a worker heartbeat (every 0.5–1 s) has happened since they started
        proc.kill()
        proc.wait()
        wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers), timeout=20, what="workers gone")
        time.sleep(2.0)  # anything a dying worker would print has been printed
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = err_file.read_text()
    after_start = err.split("step label: start", 1)[1]
    assert after_start.strip() == "", err  # the killed run says nothing more; nor do its workers
