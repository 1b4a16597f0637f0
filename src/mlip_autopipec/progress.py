"""Progress display for long work, shared by the command-line steps.

Library functions take a plain ``progress(done, total)`` callback; the CLI
passes one made here, which draws a rich progress bar on a terminal and logs a
line every few percent otherwise (CI logs, batch jobs).
"""

from __future__ import annotations

import contextlib
import logging
import statistics
import sys
from collections.abc import Callable, Iterator, Sequence

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

log = logging.getLogger("mlip_autopipec")


@contextlib.contextmanager
def progress_bar(description: str, total: int | None = None, enabled: bool = True) -> Iterator[Callable[..., None]]:
    """Yield ``update(done, total=None, **fields)``; draws a bar on a TTY, logs every 10 % elsewhere."""
    if not enabled:
        yield lambda *a, **k: None
        return
    if sys.stderr.isatty():
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[extra]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            transient=False,
        ) as bar:
            task = bar.add_task(description, total=total, extra="")

            def update(done: int, total_: int | None = None, extra: str = "") -> None:
                bar.update(task, completed=done, total=total_ or total, extra=extra)

            yield update
        return
    state = {"last": -1}

    def update_plain(done: int, total_: int | None = None, extra: str = "") -> None:
        tot = total_ or total or 0
        decile = int(10 * done / tot) if tot else done
        if decile != state["last"] or done == tot:
            state["last"] = decile
            log.info("%s: %d/%s %s", description, done, tot or "?", extra)

    yield update_plain


def time_left_s(remaining: int, call_times_s: Sequence[float], parallel: int) -> float | None:
    """Estimated wall time (s) until ``remaining`` calls are done: remaining × the median of the finished calls'
    wall times (``call_times_s``) / the calls running at once (``parallel`` worker slots, at most ``remaining``).

    None before the first call has finished (nothing to estimate from); 0 when nothing remains.  The median,
    not the mean, so one slow call (a healed SCF) does not swing the estimate; queue waits for batch jobs are
    not in it.
    """
    if remaining <= 0:
        return 0.0
    if not call_times_s:
        return None
    return remaining * float(statistics.median(call_times_s)) / max(1, min(parallel, remaining))


def format_duration(seconds: float) -> str:
    """``seconds`` for a person: '42 s', '3.5 min', '2.1 h', '1.5 d'."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
