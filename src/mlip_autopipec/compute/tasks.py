"""``run_tasks``: the one Dask task loop of the package (labelling, exploration and remote fits all use it).

The caller hands over a list of :class:`Task` and handles each :class:`Done` in
its own thread, in completion order.  ``run_tasks`` owns the rest:

* **keys**: each task's key is its name plus a random suffix, so two tasks of one
  name (or two runs) never share a result;
* **a window**: at most ``max_in_flight`` tasks are submitted at once (bounding the
  driver's memory), the next one after each result is handled;
* **release**: a task's key is released as soon as its ``on_done`` returns;
* **cancel on exit**: when ``on_done`` asks to stop (returns True) or raises, or on
  Ctrl-C, every task not started yet is cancelled at once, also on a caller's
  cluster, and every task still running after the grace below, so nothing runs on
  after the call;
* **salvage**: with a ``salvage``, the tasks already running on a worker (or
  finished there, their result not yet here) are given a brief grace
  (``grace_s``, default :data:`STOP_GRACE_S`; a second Ctrl-C ends it) before
  they are cancelled too, and every task that ended by then, but was not handled
  yet, goes to ``salvage`` (a DFT result costs hours; it is stored, not computed
  again next time);
* **the resubmit limit**: a task whose worker died is run again by Dask's
  scheduler, up to its ``allowed-failures`` (the compute's ``max_resubmits``, set by
  :func:`~mlip_autopipec.compute.cluster.make_cluster`); past that it comes back as a
  :class:`Done` whose :attr:`~Done.given_up` is true.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

if TYPE_CHECKING:
    from distributed import Client, Future, Worker

log = logging.getLogger("mlip_autopipec")

T = TypeVar("T")

#: How long (s) salvage waits for one finished result to come over from its worker.
SALVAGE_TIMEOUT_S = 10.0

#: How long (s) a stopping run with a ``salvage`` waits for the tasks running on workers, so a result that
#: finishes while a Ctrl-C or SIGTERM is handled (or had finished on its worker, its news still on the way) is
#: stored, not computed again next time.
STOP_GRACE_S = 5.0

#: Future states with an outcome: a value or an error.
_ENDED = ("finished", "error")

#: A worker's task states of a task that has started there (and may have finished: its result is held there).
_ON_A_WORKER = ("executing", "long-running", "memory")


@dataclass(frozen=True)
class Task(Generic[T]):
    """``fn(*args, **kwargs)`` as one Dask task; its key starts with ``name``."""

    name: str
    fn: Callable[..., T]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Done(Generic[T]):
    """A task that ended: ``index`` is its place in the task list; ``value`` what it returned, or ``error`` what
    it raised (or why it has no result: given up past the resubmit limit, cancelled by another client)."""

    index: int
    task: Task[T]
    value: T | None = None
    error: Exception | None = None

    def result(self) -> T:
        """The task's return value; its error is raised."""
        if self.error is not None:
            raise self.error
        return cast(T, self.value)

    @property
    def given_up(self) -> bool:
        """True when Dask gave the task up: its workers died more often than the resubmit limit allows."""
        from distributed import KilledWorker

        return isinstance(self.error, KilledWorker)

    @property
    def cancelled(self) -> bool:
        """True when the task was cancelled from outside (another client, a lost scheduler): it has no outcome."""
        from concurrent.futures import CancelledError

        return isinstance(self.error, CancelledError)


def run_tasks(
    client: Client,
    tasks: Sequence[Task[T]],
    on_done: Callable[[Done[T]], bool | None],
    *,
    max_in_flight: int | None = None,
    salvage: Callable[[Done[T]], object] | None = None,
    grace_s: float = STOP_GRACE_S,
) -> None:
    """Run ``tasks`` on ``client``, calling ``on_done`` in this thread with each task as it ends.

    ``on_done`` returns True to stop early.  On a stop, an exception (from ``on_done``
    too) or Ctrl-C, the tasks not started are cancelled; with a ``salvage``, those
    running on a worker get up to ``grace_s`` seconds to end before they are
    cancelled too, and each ended, unhandled one is passed to ``salvage`` (errors
    there are logged, not raised); this includes a task whose ``on_done`` was
    interrupted, so ``salvage`` must not record a task twice.  ``max_in_flight``: at
    most this many tasks submitted at once (default all).
    """
    from distributed import as_completed

    if max_in_flight is not None and max_in_flight < 1:
        raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
    stream = as_completed(loop=client.loop)  # not the default client's loop: another client may exist here
    running: dict[str, tuple[int, Task[T], Future]] = {}  # key -> (index, task, future), until handled
    queue = iter(enumerate(tasks))

    def submit_next() -> None:
        item = next(queue, None)
        if item is not None:
            index, task = item
            key = f"{task.name}-{os.urandom(4).hex()}"
            running[key] = (index, task, client.submit(task.fn, *task.args, key=key, pure=False, **task.kwargs))
            stream.add(running[key][2])

    try:
        for _ in range(min(max_in_flight or len(tasks), len(tasks))):
            submit_next()
        for future in stream:
            index, task, _ = running[future.key]
            stop = on_done(_outcome(index, task, future))
            del running[future.key]  # handled: from here on an interruption does not offer it to salvage
            future.release()
            if stop:
                break
            submit_next()
    finally:
        if running:
            _cancel_and_salvage(client, list(running.values()), salvage, grace_s)


def _outcome(index: int, task: Task[T], future: Future) -> Done[T]:
    try:
        # Waits if the result was lost with a dying worker before it reached us: Dask computes it again.
        return Done(index, task, value=future.result())
    except Exception as err:  # what the task raised, KilledWorker past the resubmit limit, or a cancel by others
        return Done(index, task, error=err)


def _cancel_and_salvage(
    client: Client,
    running: list[tuple[int, Task[T], Future]],
    salvage: Callable[[Done[T]], object] | None,
    grace_s: float,
) -> None:
    """Cancel the tasks not started; with a ``salvage``, give the started ones ``grace_s`` to end, cancel what
    still runs, then pass each ended one to ``salvage``; release all."""
    futures = [future for _, _, future in running]
    started = _started(client, futures, grace_s) if salvage is not None and grace_s > 0 else set()
    _cancel_unfinished(client, [future for future in futures if str(future.key) not in started])
    if started:
        _wait_briefly([future for future in futures if str(future.key) in started], grace_s)
        _cancel_unfinished(client, futures)
    for index, task, future in running:
        if salvage is not None and future.status in _ENDED:
            try:
                if future.status == "finished":
                    salvage(Done(index, task, value=future.result(timeout=SALVAGE_TIMEOUT_S)))
                else:
                    salvage(Done(index, task, error=future.exception()))
            except Exception as err:  # best effort: the reason for stopping matters more
                log.debug("stopping: the finished task %s could not be salvaged: %s", future.key, err)
        future.release()


def _started(client: Client, futures: list[Future], timeout_s: float) -> set[str]:
    """The keys of ``futures`` a worker runs or holds the result of (its news maybe still on the way here); not
    those waiting in a worker's queue.  Asked of the workers themselves: a task that starts just after the
    question is cancelled while it begins, but none that had run on a worker is missed.  No answer within
    ``timeout_s``: nothing is waited for."""
    try:
        # a worker that died meanwhile says nothing; callback_timeout is client.sync's, which client.run calls
        on_workers = client.run(_running_or_done, on_error="ignore", callback_timeout=timeout_s)
    except Exception as err:  # best effort: without an answer, nothing is waited for
        log.debug("stopping: the workers could not say which tasks run: %s", err)
        return set()
    keys = {key for worker_keys in on_workers.values() for key in worker_keys}
    return {str(future.key) for future in futures if str(future.key) in keys}


def _running_or_done(dask_worker: Worker) -> list[str]:
    """Run on each worker (``client.run``): the keys of the tasks it runs or holds a result of."""
    return [str(key) for key, ts in dask_worker.state.tasks.items() if ts.state in _ON_A_WORKER]


def _cancel_unfinished(client: Client, futures: list[Future]) -> None:
    """Cancel each of ``futures`` that has not ended here (a value or an error)."""

    async def cancel() -> None:
        # On the client's loop, where futures change state: a task either had ended here (kept) or is cancelled.
        unfinished = [future for future in futures if future.status not in _ENDED]
        if unfinished:
            await client.cancel(unfinished, asynchronous=True)

    try:
        client.sync(cancel)
    except Exception as err:  # best effort: a lost connection must not hide why the run stops
        log.debug("stopping: the unfinished tasks could not be cancelled: %s", err)


def _wait_briefly(futures: list[Future], grace_s: float) -> None:
    """Wait up to ``grace_s`` for ``futures`` to end; a second Ctrl-C (or signal) ends the wait at once."""
    from distributed import wait

    log.info(
        "stopping: waiting up to %g s for the %d task(s) started on the workers (Ctrl-C: stop at once)",
        grace_s,
        len(futures),
    )
    try:
        wait(futures, timeout=grace_s)
    except KeyboardInterrupt:
        log.info("stopping at once: the running tasks are cancelled")
    except Exception as err:  # the grace ran out (TimeoutError), or the connection was lost
        log.debug("stopping: %d task(s) did not end within %g s: %s", len(futures), grace_s, err)
