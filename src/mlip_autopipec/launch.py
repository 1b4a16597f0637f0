"""Start an external program (pacemaker, pace_*, pw.x) and make sure it never outlives its caller.

Every program the package runs goes through :func:`run_program`, called by a
profile's ``run()`` (:class:`~mlip_autopipec.trainer.profile.PacemakerProfile`,
:class:`~mlip_autopipec.oracle.espresso.PwProfile`), in the spirit of ASE's
``genericfileio`` profiles: an argument list (never a shell), ``cwd=``, an
environment, a time limit and a log file.

No orphans.  The program runs in a process group of its own, so a time limit or
Ctrl-C stops all of it (SIGTERM to the group, SIGKILL after a grace period).
Should the caller die without cleaning up (``kill -9``, out of memory), two
guards stop the program:

* on Linux the program gets ``PR_SET_PDEATHSIG`` (SIGTERM): the kernel signals it
  when the thread that started it ends.  :func:`run_program` waits in the thread
  that started the program, so that thread lives exactly as long as the program;
* a small watchdog process holds the read end of a pipe from the caller; when
  the pipe closes without the caller's "done" (the caller died), the watchdog
  stops the whole process group, the program's own children included.

A program that ends by a signal is described in a sentence (:meth:`ProgramRun.failure`):
"pacemaker was killed by signal 9 (SIGKILL): possibly out of memory ...", never "exit code -9".
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

KILL_GRACE_S = 10.0
"""Seconds between SIGTERM and SIGKILL when a program is stopped (time limit, Ctrl-C, caller died)."""

_PR_SET_PDEATHSIG = 1

_SIGNAL_REASONS = {
    signal.SIGKILL: "possibly out of memory (the kernel's OOM killer sends SIGKILL; `dmesg` or the batch system's "
    "report says so) or killed by another process or the batch system; give it more memory or fewer threads",
    signal.SIGTERM: "stopped by another process (a user, the batch system at its time limit, a shutdown)",
    signal.SIGINT: "interrupted (Ctrl-C)",
    signal.SIGHUP: "its terminal or session closed",
    signal.SIGSEGV: "it crashed (segmentation fault: a bug, a broken installation or too little stack memory)",
    signal.SIGBUS: "it crashed (bus error: a damaged or vanished file, or a full /dev/shm)",
    signal.SIGABRT: "it aborted (an internal check failed, or a C/C++ library error)",
    signal.SIGFPE: "it crashed (floating-point exception)",
    signal.SIGILL: "it crashed (illegal instruction: a build for another CPU)",
    signal.SIGXCPU: "it ran past its CPU-time limit (ulimit -t or the batch system)",
}

# The watchdog: reads the pipe from the caller; EOF without b"done" means the caller died -> stop the group.
_WATCHDOG = """
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
pgid, grace = int(sys.argv[1]), float(sys.argv[2])
data = b""
while True:
    try:
        chunk = os.read(0, 64)
    except InterruptedError:
        continue
    if not chunk:
        break
    data += chunk
if b"done" in data:
    sys.exit(0)
try:
    os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        time.sleep(0.05)
        os.killpg(pgid, 0)
    os.killpg(pgid, signal.SIGKILL)
except (ProcessLookupError, PermissionError):
    pass
"""


@dataclass(frozen=True)
class ProgramRun:
    """How one run of an external program ended."""

    program: str  # the name used in messages, e.g. "pacemaker"
    argv: tuple[str, ...]
    cwd: Path
    returncode: int  # negative: killed by that signal (Popen's convention)
    timed_out: bool
    timeout_s: float | None
    elapsed_s: float
    log_path: Path | None

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    @property
    def killed_by(self) -> signal.Signals | None:
        """The signal that ended the program (None: it exited by itself)."""
        if self.returncode >= 0:
            return None
        try:
            return signal.Signals(-self.returncode)
        except ValueError:
            return None

    def failure(self) -> str | None:
        """A sentence saying why the run failed, where, and its log; None when it succeeded."""
        if self.ok:
            return None
        where = f" in {self.cwd}" + (f" (log {self.log_path})" if self.log_path is not None else "")
        if self.timed_out:
            return f"{self.program} ran past its {self.timeout_s:g} s time limit{where} and was stopped"
        if self.returncode < 0:
            number = -self.returncode
            sig = self.killed_by
            if sig is None:
                return f"{self.program} was killed by signal {number}{where}"
            reason = _SIGNAL_REASONS.get(sig)
            return f"{self.program} was killed by signal {number} ({sig.name}){where}{': ' + reason if reason else ''}"
        return f"{self.program} failed (exit code {self.returncode}){where}"


# distributed's Nanny writes ``distributed.nanny.pre-spawn-environ`` (MALLOC_TRIM_THRESHOLD_=65536,
# OMP/MKL/OPENBLAS_NUM_THREADS=1) and PYTHONHASHSEED into *this* process's os.environ before it spawns a
# local worker, and never restores them (distributed/nanny.py, WorkerProcess.start).  A program started here
# afterwards would inherit them: with MALLOC_TRIM_THRESHOLD_=65536 a pacemaker fit (TensorFlow) spends its time
# returning memory to the kernel and runs 2x slower (measured: 380 against 170 µs per atom per evaluation).
_BEFORE_DASK: dict[str, str | None] = {}


def remember_environment_before_dask(keys: Iterable[str]) -> None:
    """Record ``keys``' values now, before a local Dask cluster overwrites them (the first record of a key stays)."""
    for key in keys:
        _BEFORE_DASK.setdefault(key, os.environ.get(key))


#: what a nanny's pre-spawn environment holds that no program may inherit, even in a worker process (where the
#: nanny wrote it before the process started, so nothing recorded it): pw.x 6.7 crashes (SIGSEGV, in its first SCF
#: iteration) on a 32-atom Cu cell with MALLOC_TRIM_THRESHOLD_=65536 and runs without it; pacemaker runs 2x slower
_NANNY_ONLY = ("MALLOC_TRIM_THRESHOLD_",)


def _nanny_value(key: str) -> str | None:
    """The value distributed's nanny writes for ``key`` (None: Dask not loaded in this process, or no such key)."""
    if "dask" not in sys.modules:
        return None
    import dask

    value = (dask.config.get("distributed.nanny.pre-spawn-environ", default=None) or {}).get(key)
    return None if value is None else str(value)


def program_environment() -> dict[str, str]:
    """The environment for a program this process starts: os.environ, with what a local Dask cluster's nanny
    put into it set back (:func:`remember_environment_before_dask`); in a Dask worker process, the nanny's
    MALLOC_TRIM_THRESHOLD_ is left out."""
    environ = dict(os.environ)
    for key, value in _BEFORE_DASK.items():
        if value is None:
            environ.pop(key, None)
        else:
            environ[key] = value
    for key in _NANNY_ONLY:
        if key not in _BEFORE_DASK and environ.get(key) is not None and environ.get(key) == _nanny_value(key):
            del environ[key]
    return environ


def run_program(
    argv: Sequence[str],
    *,
    cwd: str | Path,
    env: Mapping[str, str] | None = None,
    timeout_s: float | None = None,
    log_path: str | Path | None = None,
    stderr_path: str | Path | None = None,
    append: bool = False,
    name: str | None = None,
    pass_fds: Sequence[int] = (),
) -> ProgramRun:
    """Run ``argv`` in ``cwd`` until it ends; never raises for the program's own failure
    (see :meth:`ProgramRun.failure`).

    ``env``: the whole environment (default: :func:`program_environment`).  ``timeout_s``: wall-time
    limit in seconds; past it the process group is stopped and ``timed_out`` is set.
    ``log_path``: stdout (and stderr unless ``stderr_path`` is given) go to this file,
    appended to with ``append``; without it the output is discarded.  ``name``: the
    program's name in messages (default: the file name of ``argv[0]``).  ``pass_fds``:
    file descriptors the program inherits (e.g. a lock that must be held as long as it
    runs).  Raises :class:`OSError` when the program cannot be started (not found, not
    executable) and ``KeyboardInterrupt`` after stopping the program on Ctrl-C.
    """
    argv = [str(a) for a in argv]
    cwd = Path(cwd)
    name = name or Path(argv[0]).name
    mode = "ab" if append else "wb"
    t0 = time.monotonic()
    with ExitStack() as stack:
        out: IO[bytes] | int = stack.enter_context(open(log_path, mode)) if log_path is not None else subprocess.DEVNULL
        err: IO[bytes] | int
        if stderr_path is not None:
            err = stack.enter_context(open(stderr_path, mode))
        else:
            err = subprocess.STDOUT if log_path is not None else subprocess.DEVNULL
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=dict(env) if env is not None else program_environment(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,  # its own process group: a time limit or Ctrl-C stops all of it
            pass_fds=tuple(pass_fds),
            preexec_fn=_die_with_parent(os.getpid()) if _PRCTL is not None else None,
        )
        watchdog = None
        timed_out = False
        try:
            watchdog = _start_watchdog(proc.pid)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                log.debug("%s ran past %s s in %s: stopping its process group", name, timeout_s, cwd)
                stop_group(proc)
        finally:
            try:
                if proc.poll() is None:  # interrupted (Ctrl-C) or an error while waiting
                    stop_group(proc)
            finally:  # even when a second Ctrl-C cuts the grace period short
                _kill_stragglers(proc.pid)  # children it left behind must not outlive it either
                try:
                    proc.wait(timeout=5)
                finally:
                    _release_watchdog(watchdog)
    return ProgramRun(
        program=name,
        argv=tuple(argv),
        cwd=cwd,
        returncode=proc.returncode,
        timed_out=timed_out,
        timeout_s=timeout_s,
        elapsed_s=time.monotonic() - t0,
        log_path=Path(log_path) if log_path is not None else None,
    )


def stop_group(proc: subprocess.Popen, grace_s: float = KILL_GRACE_S) -> None:
    """SIGTERM to ``proc``'s process group, SIGKILL after ``grace_s``; returns once ``proc`` has ended."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _kill_stragglers(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _load_prctl():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


_PRCTL = _load_prctl()


def _die_with_parent(parent_pid: int):
    """A ``preexec_fn``: SIGTERM to the program when the thread that started it ends (Linux)."""

    def preexec() -> None:  # runs in the forked child before exec: keep it to system calls
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent_pid:  # the caller died between fork and prctl
            os._exit(1)

    return preexec


def _start_watchdog(pgid: int) -> subprocess.Popen | None:
    try:
        return subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _WATCHDOG, str(pgid), str(KILL_GRACE_S)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C on the terminal does not reach it
        )
    except OSError as err:  # the program still runs; only the guard against a killed caller is missing
        log.warning("cannot start the watchdog for process group %d: %s", pgid, err)
        return None


def _release_watchdog(watchdog: subprocess.Popen | None) -> None:
    if watchdog is None:
        return
    try:
        if watchdog.stdin is not None:  # always, it was started with stdin=PIPE
            watchdog.stdin.write(b"done")
            watchdog.stdin.close()
    except OSError:
        pass
    try:
        watchdog.wait(timeout=5)
    except subprocess.TimeoutExpired:
        watchdog.kill()
        watchdog.wait()


__all__ = ["KILL_GRACE_S", "ProgramRun", "run_program", "stop_group"]
