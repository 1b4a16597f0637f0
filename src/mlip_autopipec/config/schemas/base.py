"""Common base for every configuration model: :class:`~mlip_autopipec.strict.StrictModel`, and relative paths."""

from __future__ import annotations

from pathlib import Path

from mlip_autopipec.strict import StrictModel

__all__ = ["StrictModel", "resolve_path"]


def resolve_path(path: Path | None, base: Path) -> Path | None:
    """``path`` made absolute against ``base`` when it is relative (None stays None)."""
    if path is None or Path(path).is_absolute():
        return path
    return (base / path).resolve()
