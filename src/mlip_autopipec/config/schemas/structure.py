"""The seed structure: a file ASE can read, or a bulk crystal built by ``ase.build.bulk``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from mlip_autopipec.config.schemas.base import StrictModel, resolve_path

Lattice = Literal["sc", "fcc", "bcc", "hcp", "diamond", "zincblende", "rocksalt", "cesiumchloride", "fluorite", "wurtzite"]


class StructureConfig(StrictModel):
    """Where the seed crystal comes from: give ``file`` or ``element`` (with ``lattice`` and ``a``)."""

    file: Path | None = Field(None, description="A structure file ASE can read (CIF, POSCAR, extxyz, ...); relative to the config file.")
    index: int = Field(0, description="Which frame of a multi-frame file to use.")
    element: str | None = Field(
        None, description="Chemical formula of the bulk crystal for ase.build.bulk, e.g. 'Cu', 'Si', 'NaCl', 'ZnO'."
    )
    lattice: Lattice | None = Field(None, description="Crystal structure for ase.build.bulk; default: ASE's reference structure of the element.")
    a: float | None = Field(None, gt=0, description="Lattice constant a (Å); default: ASE's reference value.")
    c: float | None = Field(None, gt=0, description="Lattice constant c (Å) for hcp and wurtzite.")
    cubic: bool = Field(False, description="Build the conventional cubic cell instead of the primitive one.")
    repeat: tuple[int, int, int] = Field((1, 1, 1), description="Supercell repetition along the three cell vectors.")

    @model_validator(mode="after")
    def _one_source(self) -> "StructureConfig":
        if (self.file is None) == (self.element is None):
            raise ValueError("give exactly one of 'file' (a structure file) or 'element' (a bulk crystal)")
        if any(r < 1 for r in self.repeat):
            raise ValueError(f"repeat must be positive integers, got {list(self.repeat)}")
        return self

    def resolve_paths(self, base: Path) -> "StructureConfig":
        """Return a copy whose relative ``file`` is taken relative to ``base``."""
        return self.model_copy(update={"file": resolve_path(self.file, base)})
