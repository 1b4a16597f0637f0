"""Progress display for long work, shared by the command-line steps.

Library functions take a plain ``progress(done, total)`` callback; the CLI
passes one made here, which draws a rich progress bar on a terminal and logs a
line every few percent otherwise (CI logs, batch jobs).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator

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
