"""Calculators for tests, benchmarks and demonstrations of the labelling machinery.

They live in the package (not under ``tests/``) so that every Dask worker,
local or on a cluster, can import them by path through the ``ase`` oracle::

    {"type": "ase", "calculator": "mlip_autopipec.oracle.testing.SlowEMT",
     "kwargs": {"delay_s": 0.3, "log_file": "calls.log"}}
"""

from __future__ import annotations

import os
import time

from ase.calculators.emt import EMT


class SlowEMT(EMT):
    """ASE's EMT that sleeps ``delay_s`` seconds per calculation, like a (very small) DFT code.

    With ``log_file``, each calculation appends ``start <pid> <directory>``
    before it sleeps and ``done <pid> <directory>`` when it has finished (single
    ``O_APPEND`` writes, safe across processes), so a test can see which
    process computed which structure, and how often.

    With ``crash_element``, a structure containing that element makes the
    process exit at once (``os._exit``), as a segmentation fault in a compiled
    code would: the worker dies with the task.

    With ``fail_while_exists``, every calculation raises ``RuntimeError`` for as
    long as that file exists (a licence server down, a scratch disk missing): a
    failure a test can cause and then fix without changing the config.
    """

    def __init__(
        self,
        delay_s: float = 0.3,
        log_file: str | None = None,
        crash_element: str | None = None,
        fail_while_exists: str | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.delay_s = float(delay_s)
        self.log_file = log_file
        self.crash_element = crash_element
        self.fail_while_exists = fail_while_exists

    def _log(self, event: str) -> None:
        if self.log_file:
            fd = os.open(self.log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, f"{event} {os.getpid()} {self.directory}\n".encode())
            finally:
                os.close(fd)

    def calculate(self, atoms=None, properties=("energy",), system_changes=("positions", "numbers", "cell", "pbc")):
        self._log("start")
        if self.crash_element is not None and self.crash_element in atoms.get_chemical_symbols():
            os._exit(139)
        if self.fail_while_exists is not None and os.path.exists(self.fail_while_exists):
            self._log("fail")
            raise RuntimeError(f"licence server unreachable (test: {self.fail_while_exists} exists)")
        time.sleep(self.delay_s)
        super().calculate(atoms, properties, system_changes)
        self._log("done")
