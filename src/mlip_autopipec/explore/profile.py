"""Which pyace command-line tool to run (pace_activeset, pace_select) and in which environment.

Like ASE's profiles: the executable and its environment are data, so a user can
point at another installation or add variables without touching the code.  By
default a tool is looked for next to the running Python (the virtual
environment's ``bin/``, which need not be on ``PATH``) and then on ``PATH``.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mlip_autopipec.exceptions import TrainerError

INSTALL_HINT = "it comes with python-ace (pip install python-ace), which also provides pacemaker"


def find_pace_tool(name: str) -> str | None:
    """Full path of ``name``: next to ``sys.executable`` first, then on ``PATH``; None if absent."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


@dataclass(frozen=True)
class PaceToolProfile:
    """A pyace tool: ``executable`` (a name looked up as above, or a path) and extra environment variables."""

    executable: str
    env: Mapping[str, str] = field(default_factory=dict)

    def resolve(self) -> str:
        """The executable's full path; :class:`TrainerError` saying how to install it when absent."""
        if os.sep in self.executable:
            path = Path(self.executable)
            if path.is_file() and os.access(path, os.X_OK):
                return str(path)
            raise TrainerError(f"{self.executable} is not an executable file; {INSTALL_HINT}")
        found = find_pace_tool(self.executable)
        if found is None:
            raise TrainerError(
                f"{self.executable} not found next to {sys.executable} nor on PATH; {INSTALL_HINT}"
            )
        return found

    def environment(self) -> dict[str, str]:
        """The process environment with this profile's variables on top."""
        merged = dict(os.environ)
        merged.update(self.env)
        return merged


def tail(text: str, n_lines: int = 30) -> str:
    """The last ``n_lines`` lines of ``text`` (for error messages)."""
    return "\n".join(text.splitlines()[-n_lines:])
