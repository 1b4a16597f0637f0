"""The error for a failed pacemaker program: one sentence on the terminal, the program's own output in its log.

pacemaker, pace_activeset and pace_select print Python tracebacks (matplotlib's on a full disk, TensorFlow's on a
bad dataset).  Those stay in the program's log file and in the run log (at DEBUG level, shown on the terminal only
with ``--verbose``); the error says in one sentence what failed, the program's own last error line, and names the
log.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from mlip_autopipec.exceptions import TrainerError
from mlip_autopipec.trainer.parsing import parse_error, tail

log = logging.getLogger(__name__)

TAIL_LINES = 30


def program_error(
    sentence: str, log_path: Path | None, log_text: str, *, hint: str = "", own_error: bool = True
) -> TrainerError:
    """A :class:`TrainerError` saying ``sentence``, the program's own error line (with ``own_error``: the exception
    line of its last traceback, else its last ERROR line, else its last line), the log's path and ``hint``.

    The log's last lines go to the run log (DEBUG), never into the message: callers print the message, and a
    traceback there would reach the terminal.
    """
    last = tail(log_text, TAIL_LINES)
    where = f"log {log_path}" if log_path is not None else "no log kept"
    if last.strip():
        log.debug("last %d lines of the program's output (%s):\n%s", TAIL_LINES, where, last)
    cause = (parse_error(log_text) or _last_line(log_text)) if own_error else None
    if log_path is not None and _disk_full(log_path.parent):
        hint = f"the disk of {log_path.parent} is full: free some space and run again" + (f"; {hint}" if hint else "")
    text = sentence + (f": {cause}" if cause and cause not in sentence else "")
    if log_path is not None and str(log_path) not in text:
        text += f" ({where})"
    return TrainerError(text + (f"; {hint}" if hint else ""))


def _disk_full(folder: Path) -> bool:
    """Whether ``folder``'s file system has less than 1 MiB free (a program there failed for want of space)."""
    try:
        return shutil.disk_usage(folder).free < 2**20
    except OSError:
        return False


def _last_line(text: str) -> str | None:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else None


__all__ = ["TAIL_LINES", "program_error"]
