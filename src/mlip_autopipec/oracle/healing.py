"""The SCF healing ladder: attempt number -> safer pw.x settings (a pure function).

Attempt 1 runs the configured settings.  Each later attempt moves down one rung:

====  ==========================================================================
 2    mixing_beta <= 0.3, electron_maxstep >= 300
 3    mixing_beta <= 0.1, mixing_mode 'local-TF', electron_maxstep >= 300
 4    as 3, plus diagonalization 'cg' and twice the smearing width (with smearing)
 5+   as 4, the smearing width doubled again on every attempt
====  ==========================================================================

The rungs only ever make settings safer than the configured ones (a smaller
beta, more steps): a user's ``mixing_beta=0.05`` is never raised to 0.3.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ScfSettings:
    """The pw.x settings the ladder changes, as configured for the first attempt."""

    mixing_beta: float = 0.7
    electron_maxstep: int = 100
    mixing_mode: str = "plain"
    diagonalization: str = "david"
    degauss: float | None = 0.01  # Ry; None with fixed occupations


def healing_overrides(attempt: int, base: ScfSettings) -> dict[str, dict[str, Any]]:
    """Settings to change on ``attempt`` (1-based), by pw.x namelist; ``{}`` for the first attempt."""
    if attempt < 1:
        raise ValueError(f"attempts are numbered from 1, got {attempt}")
    if attempt == 1:
        return {}
    electrons: dict[str, Any] = {
        "mixing_beta": min(base.mixing_beta, 0.3 if attempt == 2 else 0.1),
        "electron_maxstep": max(base.electron_maxstep, 300),
    }
    system: dict[str, Any] = {}
    if attempt >= 3:
        electrons["mixing_mode"] = "local-TF"
    if attempt >= 4:
        electrons["diagonalization"] = "cg"
        if base.degauss is not None:
            system["degauss"] = base.degauss * 2.0 ** (attempt - 3)
    out: dict[str, dict[str, Any]] = {"electrons": electrons}
    if system:
        out["system"] = system
    return out


def merge_namelists(*layers: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Merge nested ``{namelist: {key: value}}`` mappings; later layers win (keys compared in lower case)."""
    out: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for section, params in layer.items():
            target = out.setdefault(section.lower(), {})
            for key, value in params.items():
                target[key.lower()] = value
    return out
