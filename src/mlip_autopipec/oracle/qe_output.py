"""Pure parsers of ``pw.x`` text output (tested on canned outputs in tests/data/qe_*).

Energies, forces and stress are read by ASE's ``espresso-out`` reader; these
functions answer the questions ASE does not: did the SCF converge, did the
program finish, and what error did it print.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_CONVERGED = re.compile(r"convergence has been achieved in\s+(\d+)\s+iterations")
_NOT_CONVERGED = re.compile(r"convergence NOT achieved after\s+(\d+)\s+iterations")
_VERSION = re.compile(r"Program PWSCF\s+v\.(\S+)")
_ERROR_BLOCK = re.compile(r"^\s*%{20,}\s*\n(.*?)\n\s*%{20,}", re.S | re.M)
_TIMING_REPORT = re.compile(r"^\s*init_run\s*:", re.M)
_DURATION = r"((?:\d+h\s*)?(?:\d+m\s*)?(?:[\d.]+s)?)"
_PWSCF_TIME = re.compile(r"^\s*PWSCF\s*:\s*" + _DURATION + r"\s*CPU\s+" + _DURATION + r"\s*WALL", re.M)


@dataclass(frozen=True)
class PwStatus:
    """What a pw.x output says about how the run ended."""

    version: str | None = None
    #: True: the SCF converged; False: pw.x said "convergence NOT achieved"; None: neither (crashed or cut short)
    converged: bool | None = None
    n_iterations: int | None = None
    job_done: bool = False
    errors: list[str] = field(default_factory=list)
    #: pw.x's own account of its CPU and wall time (s), from the final timing report
    cpu_s: float | None = None
    wall_s: float | None = None

    def describe(self) -> str:
        """One line for a failure reason."""
        if self.errors:
            return "pw.x error: " + " | ".join(self.errors)
        if self.converged is False:
            return f"SCF convergence NOT achieved after {self.n_iterations} iterations"
        if self.converged is None and not self.job_done:
            return "pw.x stopped before the end of the SCF (no convergence message, no JOB DONE)"
        return "pw.x finished" + (" (SCF converged)" if self.converged else "")


def parse_pw_output(text: str) -> PwStatus:
    """Parse a pw.x output: version, SCF convergence (of the last SCF), iterations, JOB DONE, error messages."""
    version = _VERSION.search(text)
    conv = list(_CONVERGED.finditer(text))
    notconv = list(_NOT_CONVERGED.finditer(text))
    converged: bool | None = None
    n_iter: int | None = None
    last_conv = conv[-1].start() if conv else -1
    last_not = notconv[-1].start() if notconv else -1
    if last_conv > last_not:
        converged, n_iter = True, int(conv[-1].group(1))
    elif last_not > last_conv:
        converged, n_iter = False, int(notconv[-1].group(1))
    errors = []
    for block in _ERROR_BLOCK.finditer(text):
        lines = [ln.strip() for ln in block.group(1).splitlines() if ln.strip() and not set(ln.strip()) <= {"%"}]
        if lines:
            errors.append(" ".join(lines))
    timing = list(_PWSCF_TIME.finditer(text))
    cpu_s = wall_s = None
    if timing:
        cpu_s, wall_s = parse_duration(timing[-1].group(1)), parse_duration(timing[-1].group(2))
    return PwStatus(
        version=version.group(1) if version else None,
        converged=converged,
        n_iterations=n_iter,
        job_done="JOB DONE" in text,
        errors=errors,
        cpu_s=cpu_s,
        wall_s=wall_s,
    )


def parse_duration(text: str) -> float | None:
    """Seconds in a pw.x duration such as '2.29s', '1m 5.43s' or '2h 3m'; None when empty."""
    match = re.fullmatch(r"\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:([\d.]+)s)?\s*", text)
    if not match or not any(match.groups()):
        return None
    h, m, sec = match.groups()
    return 3600.0 * int(h or 0) + 60.0 * int(m or 0) + float(sec or 0.0)


def pw_output_tail(text: str, n_lines: int = 20) -> str:
    """The informative end of a pw.x output: up to the end of its error message if it printed one,
    else the last lines before the timing report (which says nothing about why a run failed)."""
    end = len(text)
    errors = list(_ERROR_BLOCK.finditer(text))
    if errors:
        end = errors[-1].end()
    else:
        timing = _TIMING_REPORT.search(text)
        if timing:
            end = timing.start()
    lines = [ln.rstrip() for ln in text[:end].splitlines() if ln.strip()]
    return "\n".join(lines[-n_lines:])
