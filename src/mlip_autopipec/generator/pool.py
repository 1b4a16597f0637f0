"""Write a generated pool to disk (extended XYZ, provenance in each frame's ``info``)."""

from __future__ import annotations

from pathlib import Path

from ase import Atoms
from ase.io import write

from mlip_autopipec.fileio import atomic_path


def write_pool(pool: list[Atoms], path: str | Path) -> Path:
    """Write ``pool`` to ``path`` as extended XYZ; the file appears only when complete."""
    path = Path(path)
    with atomic_path(path) as tmp:
        write(tmp, pool, format="extxyz")
    return path
