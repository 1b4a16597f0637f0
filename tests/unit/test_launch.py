"""The one launcher: real processes, real signals, a real SIGKILL of the driver.

A "driver" here is a separate Python process that starts a long program through
:func:`run_program` (or a whole fit through :class:`PacemakerRunner`); the test kills
the driver the way a user or the kernel would, and checks that nothing it started
lives on.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
from ase.build import bulk

from mlip_autopipec.config import TrainingConfig
from mlip_autopipec.exceptions import TrainerError
from mlip_autopipec.launch import ProgramRun, run_program
from mlip_autopipec.trainer import PacemakerProfile, PacemakerRunner

# A long program that also leaves a grandchild (as mpirun or a shell wrapper would) and records both pids.
LONG_PROGRAM = "echo $$ > program.pid\nsleep 300 &\necho $! > grandchild.pid\necho started\nwait\n"


def script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, dead but not yet reaped by init, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


def read_pid(path: Path) -> int:
    wait_for(lambda: path.is_file() and path.read_text().strip(), 20, f"{path}")
    return int(path.read_text())


def live_ctrl_c() -> None:
    """In the child before exec: Ctrl-C acts, as in a terminal, whatever this test process's disposition (an
    ignored SIGINT is inherited across exec; in the full suite the worker process running a test may have it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_driver(code: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=live_ctrl_c,
    )


# --- how a run ended, in words -------------------------------------------------------------------
def run_record(returncode: int, timed_out: bool = False) -> ProgramRun:
    return ProgramRun(
        "pacemaker",
        ("pacemaker", "input.yaml"),
        Path("/w/fit"),
        returncode,
        timed_out,
        60.0,
        1.0,
        Path("/w/fit/pacemaker.log"),
    )


def test_failures_are_sentences_naming_the_folder_and_log():
    assert run_record(0).ok and run_record(0).failure() is None
    assert run_record(-9).failure() == (
        "pacemaker was killed by signal 9 (SIGKILL) in /w/fit (log /w/fit/pacemaker.log): possibly out of memory "
        "(the kernel's OOM killer sends SIGKILL; `dmesg` or the batch system's report says so) or killed by another "
        "process or the batch system; give it more memory or fewer threads"
    )
    assert (
        run_record(-15)
        .failure()
        .endswith("pacemaker.log): stopped by another process (a user, the batch system at its time limit, a shutdown)")
    )
    assert "(SIGSEGV) in /w/fit (log /w/fit/pacemaker.log): it crashed" in run_record(-11).failure()
    assert run_record(3).failure() == "pacemaker failed (exit code 3) in /w/fit (log /w/fit/pacemaker.log)"
    assert run_record(-9, timed_out=True).failure() == (
        "pacemaker ran past its 60 s time limit in /w/fit (log /w/fit/pacemaker.log) and was stopped"
    )
    assert "exit code -" not in run_record(-6).failure()


def test_a_program_killed_by_a_signal_is_reported_as_such(tmp_path):
    prog = script(tmp_path / "prog", "echo before\nkill -KILL $$\n")
    run = run_program([str(prog)], cwd=tmp_path, log_path=tmp_path / "out.log")
    assert run.returncode == -9 and run.killed_by == signal.SIGKILL and not run.ok
    assert run.failure().startswith(
        f"prog was killed by signal 9 (SIGKILL) in {tmp_path} (log {tmp_path / 'out.log'}): possibly out of memory"
    )
    assert (tmp_path / "out.log").read_text() == "before\n"


def test_argument_list_cwd_environment_and_separate_error_file(tmp_path):
    prog = script(tmp_path / "prog", 'echo "$1|$2|$(pwd)|$MLIP_TEST_VAR"\necho oops >&2\nexit 4\n')
    (tmp_path / "run").mkdir()
    run = run_program(
        [str(prog), "two words", "$HOME"],
        cwd=tmp_path / "run",
        env={**os.environ, "MLIP_TEST_VAR": "x"},
        log_path=tmp_path / "run" / "out",
        stderr_path=tmp_path / "run" / "err",
        name="my-prog",
    )
    assert (tmp_path / "run" / "out").read_text() == f"two words|$HOME|{(tmp_path / 'run').resolve()}|x\n"  # no shell
    assert (tmp_path / "run" / "err").read_text() == "oops\n"
    assert run.returncode == 4 and run.failure().startswith("my-prog failed (exit code 4)")
    run_program([str(prog), "again"], cwd=tmp_path / "run", log_path=tmp_path / "run" / "out", append=True)
    assert (tmp_path / "run" / "out").read_text().count("\n") == 3  # appended, stderr into the same file


def test_a_missing_program_raises_oserror(tmp_path):
    with pytest.raises(FileNotFoundError):
        run_program([str(tmp_path / "nope")], cwd=tmp_path)


def test_timeout_stops_the_program_and_its_children(tmp_path):
    prog = script(tmp_path / "prog", LONG_PROGRAM)
    t0 = time.monotonic()
    run = run_program([str(prog)], cwd=tmp_path, timeout_s=0.5, log_path=tmp_path / "log")
    assert run.timed_out and time.monotonic() - t0 < 15
    assert not alive(int((tmp_path / "program.pid").read_text()))
    wait_for(lambda: not alive(int((tmp_path / "grandchild.pid").read_text())), 5, "the grandchild to end")


# --- the driver dies: nothing it started lives on -------------------------------------------------
@pytest.mark.parametrize("where", ["main thread", "worker thread"])
def test_sigkill_of_the_driver_leaves_no_orphans(tmp_path, where):
    prog = script(tmp_path / "prog", LONG_PROGRAM)
    call = f"run_program([{str(prog)!r}], cwd={str(tmp_path)!r}, log_path={str(tmp_path / 'log')!r})"
    if where == "worker thread":  # as a Dask worker would: the launch happens in a pool thread
        call = f"__import__('concurrent.futures').futures.ThreadPoolExecutor(2).submit(lambda: {call}).result()"
    driver = start_driver(f"from mlip_autopipec.launch import run_program\n{call}\n", tmp_path)
    program, grandchild = read_pid(tmp_path / "program.pid"), read_pid(tmp_path / "grandchild.pid")
    assert alive(program) and alive(grandchild)
    driver.kill()
    driver.wait()
    wait_for(lambda: not alive(program), 5, f"the program {program} to end after its driver was killed")
    wait_for(lambda: not alive(grandchild), 5, f"the program's child {grandchild} to end after the driver was killed")


def test_ctrl_c_in_the_driver_stops_the_program(tmp_path):
    prog = script(tmp_path / "prog", LONG_PROGRAM)
    driver = start_driver(
        f"""
        from mlip_autopipec.launch import run_program
        try:
            run_program([{str(prog)!r}], cwd={str(tmp_path)!r})
        except KeyboardInterrupt:
            print("interrupted")
        """,
        tmp_path,
    )
    program, grandchild = read_pid(tmp_path / "program.pid"), read_pid(tmp_path / "grandchild.pid")
    driver.send_signal(signal.SIGINT)
    out, _ = driver.communicate(timeout=30)
    assert "interrupted" in out
    assert not alive(program) and not alive(grandchild)


# --- a fit: the folder's lock, and a killed driver ------------------------------------------------
@pytest.fixture
def dataset(tmp_path) -> Path:
    path = tmp_path / "train.pckl.gzip"
    atoms = [bulk("Cu", "fcc", a=3.6 + 0.01 * i) for i in range(3)]
    pd.DataFrame({"ase_atoms": atoms, "energy": [0.0] * 3}).to_pickle(path, compression="gzip")
    return path


def test_a_killed_driver_leaves_no_pacemaker_and_frees_the_fit_folder(tmp_path, dataset):
    pacemaker = script(tmp_path / "pacemaker", LONG_PROGRAM)
    fit = tmp_path / "fit"
    profile = PacemakerProfile(pacemaker=str(pacemaker), pace_yaml2yace=str(pacemaker))
    driver = start_driver(
        f"""
        from mlip_autopipec.config import TrainingConfig
        from mlip_autopipec.trainer import PacemakerProfile, PacemakerRunner
        profile = PacemakerProfile(pacemaker={str(pacemaker)!r}, pace_yaml2yace={str(pacemaker)!r})
        PacemakerRunner(TrainingConfig(cutoff=5.0), profile, show_progress=False).train({str(dataset)!r}, {str(fit)!r})
        """,
        tmp_path,
    )
    program, grandchild = read_pid(fit / "program.pid"), read_pid(fit / "grandchild.pid")

    # a second fit into the same folder is refused, naming the folder and the holder
    with pytest.raises(TrainerError) as err:
        PacemakerRunner(TrainingConfig(cutoff=5.0), profile, show_progress=False).train(dataset, fit)
    assert f"fit folder {fit} is in use by another fit (pid {driver.pid} on " in str(err.value)
    assert alive(program), "the refused fit must not touch the running one"

    driver.kill()
    driver.wait()
    wait_for(lambda: not alive(program), 5, f"pacemaker {program} to end after its driver was killed")
    wait_for(lambda: not alive(grandchild), 5, f"pacemaker's child {grandchild} to end")

    # the lock went with its holders: a new fit may use the folder
    script(pacemaker, "exit 7\n")
    with pytest.raises(TrainerError, match=r"pacemaker failed \(exit code 7\)"):
        PacemakerRunner(TrainingConfig(cutoff=5.0), profile, show_progress=False).train(dataset, fit)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_without_the_watchdog_the_kernel_still_stops_the_program(tmp_path):
    # each guard alone: here only PR_SET_PDEATHSIG (the program itself; its children are the watchdog's job)
    prog = script(tmp_path / "prog", "echo $$ > program.pid\nexec sleep 300\n")
    driver = start_driver(
        f"""
        from mlip_autopipec import launch
        launch._start_watchdog = lambda pgid: None
        launch.run_program([{str(prog)!r}], cwd={str(tmp_path)!r})
        """,
        tmp_path,
    )
    program = read_pid(tmp_path / "program.pid")
    driver.kill()
    driver.wait()
    wait_for(lambda: not alive(program), 5, f"the program {program} to end after its driver was killed")


def test_only_the_launcher_starts_processes():
    # one launcher: any other module that imports subprocess (or os.system/os.spawn*) bypasses the orphan guards
    src = Path(__file__).resolve().parents[2] / "src" / "mlip_autopipec"
    offenders = [
        str(path.relative_to(src))
        for path in src.rglob("*.py")
        if path.name != "launch.py"
        and any(
            word in path.read_text()
            for word in ("import subprocess", "from subprocess", "os.system(", "os.spawn", "os.posix_spawn")
        )
    ]
    assert offenders == [], (
        f"start programs through mlip_autopipec.launch.run_program (a profile's run()), not in {offenders}"
    )


def test_programs_do_not_inherit_what_a_local_dask_cluster_wrote_into_the_environment(tmp_path, monkeypatch):
    """distributed's nanny writes MALLOC_TRIM_THRESHOLD_=65536 (and OMP/MKL/OPENBLAS_NUM_THREADS=1) into the driver's
    own os.environ when it starts a local worker; pacemaker inheriting it ran 2x slower. Programs the driver starts
    get the environment from before the cluster; the workers keep Dask's, but programs they start do not get
    MALLOC_TRIM_THRESHOLD_ (pw.x 6.7 crashed with it on a 32-atom Cu cell)."""
    from mlip_autopipec import launch
    from mlip_autopipec.compute.cluster import dask_client
    from mlip_autopipec.compute.models import LocalComputeConfig

    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)  # restored to absent afterwards
    monkeypatch.setattr(launch, "_BEFORE_DASK", {})
    probe = [sys.executable, "-c", "import os; print(os.environ.get('MALLOC_TRIM_THRESHOLD_'))"]
    with dask_client(LocalComputeConfig(n_workers=1)) as client:
        assert os.environ.get("MALLOC_TRIM_THRESHOLD_") == "65536"  # what the nanny did to this process
        assert set(client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_")).values()) == {"65536"}
        # a program a worker starts (pw.x labelling there) does not get it either: pw.x 6.7 crashed with it (SIGSEGV)
        in_worker = client.run(lambda: launch.program_environment().get("MALLOC_TRIM_THRESHOLD_", "absent"))
        assert set(in_worker.values()) == {"absent"}
        assert set(client.run(lambda: launch.program_environment().get("OMP_NUM_THREADS")).values()) == {"1"}
        run_program(probe, cwd=tmp_path, log_path=tmp_path / "out.txt")
        assert (tmp_path / "out.txt").read_text().strip() == "None"
        assert "MALLOC_TRIM_THRESHOLD_" not in PacemakerProfile().environment()
        assert PacemakerProfile(env={"MALLOC_TRIM_THRESHOLD_": "1"}).environment()["MALLOC_TRIM_THRESHOLD_"] == "1"
