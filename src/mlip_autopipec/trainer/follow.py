"""Follow a growing log file in a thread and hand each complete line to a callback (pacemaker's live progress)."""

from __future__ import annotations

import codecs
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from mlip_autopipec.trainer.parsing import split_complete_lines

log = logging.getLogger(__name__)


class LogFollower:
    """Follows a growing file in a thread and hands each complete line to ``on_line``.

    A failing ``on_line`` is logged once and not called again: a broken progress display
    must not break the program it watches.
    """

    def __init__(self, path: Path, on_line: Callable[[str], None], poll_s: float = 0.1) -> None:
        self.path = path
        self.on_line = on_line
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"follow {path.name}", daemon=True)
        self._callback_failed = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Read what is left, then end the thread."""
        self._stop.set()
        self._thread.join()

    def _emit(self, line: str) -> None:
        if self._callback_failed:
            return
        try:
            self.on_line(line)
        except Exception:  # a broken progress callback must not break the fit
            self._callback_failed = True
            log.exception("progress callback failed; no more progress reports for this fit")

    def _run(self) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        rest = ""
        with open(self.path, "rb") as f:
            while True:
                stopping = self._stop.is_set()  # checked before reading, so the last read sees everything
                chunk = f.read(1 << 16)
                if chunk:
                    lines, rest = split_complete_lines(rest + decoder.decode(chunk))
                    for line in lines:
                        self._emit(line)
                    continue
                if stopping:
                    break
                self._stop.wait(self.poll_s)
        rest += decoder.decode(b"", final=True)
        if rest.strip():
            self._emit(rest.rstrip("\r"))


__all__ = ["LogFollower"]
