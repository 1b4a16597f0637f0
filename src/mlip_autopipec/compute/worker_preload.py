"""Set-up of each local Dask worker process, run as it starts (also a restarted one): a Dask ``preload`` module.

* Ctrl-C in the terminal reaches the whole process group, and only the driver should act on it (it stores finished
  results, then closes the cluster); a worker that took it would print a KeyboardInterrupt traceback and lose its
  result.  Workers ignore SIGINT.
* A stopping run's cancelled calculations would print "Async instruction ... ended with CancelledError" warnings:
  the worker's state machine logs only errors.
* When the driver dies (kill -9), its workers exit at once (distributed watches the parent), but a heartbeat due in
  that instant fails first and would print "Failed to communicate with scheduler during heartbeat" with a
  traceback on the user's terminal, after the shell prompt.  :class:`LostSchedulerFilter` drops that record; the
  driver, not its orphaned workers, reports what went wrong.
"""

from __future__ import annotations

import logging
import signal

HEARTBEAT_FAILURE = "Failed to communicate with scheduler during heartbeat"


class LostSchedulerFilter(logging.Filter):
    """Drops the worker's record of a heartbeat that found its scheduler gone; keeps every other record."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(HEARTBEAT_FAILURE)


def set_up_worker_process() -> None:
    """What each local worker process does as it starts (see the module's description)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.getLogger("distributed.worker.state_machine").setLevel(logging.ERROR)
    worker_log = logging.getLogger("distributed.worker")
    if not any(isinstance(f, LostSchedulerFilter) for f in worker_log.filters):
        worker_log.addFilter(LostSchedulerFilter())


def dask_setup(worker: object) -> None:
    """Dask's hook for a preload module, called in each worker process as it starts (importing the module alone
    changes nothing in the importing process)."""
    set_up_worker_process()
