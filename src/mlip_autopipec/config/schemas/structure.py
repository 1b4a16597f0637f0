"""The seed structures: a file ASE can read, or a bulk crystal built by ``ase.build.bulk``; a campaign's seeds
add a name, a share of the pool, random alloy occupations, a surface cut and generator settings of their own."""

from __future__ import annotations

import math
import re
import unicodedata
from pathlib import Path
from typing import Literal

from ase.data import chemical_symbols
from pydantic import Field, field_validator, model_validator

from mlip_autopipec.config.schemas.base import StrictModel, resolve_path
from mlip_autopipec.config.schemas.generator import GeneratorConfig

_NAME_RE = re.compile(r"^[\w.-]{1,64}$")  # \w: letters and digits of any script, and '_'
_NOT_NAME = re.compile(r"[^\w.-]")

Lattice = Literal[
    "sc", "fcc", "bcc", "hcp", "diamond", "zincblende", "rocksalt", "cesiumchloride", "fluorite", "wurtzite"
]


class StructureConfig(StrictModel):
    """Where the seed crystal comes from: give ``file`` or ``element`` (with ``lattice`` and ``a``)."""

    file: Path | None = Field(
        None, description="A structure file ASE can read (CIF, POSCAR, extxyz, ...); relative to the config file."
    )
    index: int = Field(0, description="Which frame of a multi-frame file to use.")
    element: str | None = Field(
        None, description="Chemical formula of the bulk crystal for ase.build.bulk, e.g. 'Cu', 'Si', 'NaCl', 'ZnO'."
    )
    lattice: Lattice | None = Field(
        None, description="Crystal structure for ase.build.bulk; default: ASE's reference structure of the element."
    )
    a: float | None = Field(None, gt=0, description="Lattice constant a (Å); default: ASE's reference value.")
    c: float | None = Field(None, gt=0, description="Lattice constant c (Å) for hcp and wurtzite.")
    cubic: bool = Field(False, description="Build the conventional cubic cell instead of the primitive one.")
    repeat: tuple[int, int, int] = Field((1, 1, 1), description="Supercell repetition along the three cell vectors.")

    @model_validator(mode="after")
    def _one_source(self) -> StructureConfig:
        if (self.file is None) == (self.element is None):
            raise ValueError("give exactly one of 'file' (a structure file) or 'element' (a bulk crystal)")
        if any(r < 1 for r in self.repeat):
            raise ValueError(f"repeat must be positive integers, got {list(self.repeat)}")
        return self

    def resolve_paths(self, base: Path) -> StructureConfig:
        """Return a copy whose relative ``file`` is taken relative to ``base``."""
        return self.model_copy(update={"file": resolve_path(self.file, base)})


class AlloyConfig(StrictModel):
    """Chemical disorder: random occupations of the parent lattice's sites over given compositions."""

    compositions: list[dict[str, float]] = Field(
        min_length=1,
        description="Site fractions of the substituted sites, one map element -> fraction per composition, each "
        "summing to 1, e.g. [{Cu: 0.75, Au: 0.25}, {Cu: 0.5, Au: 0.5}]. Atom counts are rounded to the nearest integer "
        "(largest remainder).",
    )
    sublattice: list[str] | None = Field(
        None,
        description="Species of the parent whose sites are substituted (e.g. [Cl] in NaCl); null: every site.",
    )
    n_occupations: int = Field(
        2,
        ge=1,
        description="How many independent random occupations are drawn per composition (each then strained and "
        "rattled).",
    )
    volume: Literal["vegard", "parent"] = Field(
        "vegard",
        description="'vegard': scale the parent cell so its volume follows Vegard's law from the elements' atomic "
        "volumes in ASE's reference crystals (substituted sites only); 'parent': keep the parent cell.",
    )

    @field_validator("compositions")
    @classmethod
    def _check_compositions(cls, v: list[dict[str, float]]) -> list[dict[str, float]]:
        for comp in v:
            unknown = [el for el in comp if el not in chemical_symbols[1:]]
            if unknown:
                raise ValueError(f"composition {comp}: unknown chemical symbol(s) {unknown}")
            if not comp or any(not math.isfinite(x) or x < 0 for x in comp.values()):
                raise ValueError(f"composition {comp}: fractions must be finite and non-negative")
            if abs(sum(comp.values()) - 1.0) > 1e-6:
                raise ValueError(f"composition {comp}: fractions sum to {sum(comp.values()):g}, not 1")
        return v

    @field_validator("sublattice")
    @classmethod
    def _check_sublattice(cls, v: list[str] | None) -> list[str] | None:
        if v is not None:
            unknown = [el for el in v if el not in chemical_symbols[1:]]
            if not v or unknown:
                raise ValueError(f"sublattice needs chemical symbols of the parent, got {v}")
        return v


class SurfaceConfig(StrictModel):
    """A slab cut from the seed crystal with ase.build.surface (periodic in-plane, vacuum along the third axis)."""

    miller: tuple[int, int, int] = Field(
        description="Miller indices (h, k, l) of the surface, in the seed cell's basis, e.g. [1, 1, 1]."
    )
    layers: int = Field(4, ge=1, description="Number of equivalent layers of the slab (ase.build.surface's layers).")
    vacuum: float = Field(8.0, gt=0.0, description="Vacuum (Å) added on each side of the slab.")
    n_adatoms: int = Field(
        0, ge=0, description="Adatoms placed on the top surface in an extra variant of the slab; 0: none."
    )
    adatom_element: str | None = Field(
        None, description="Chemical symbol of the adatoms; default: the most common species of the slab."
    )
    n_vacancies: int = Field(
        0, ge=0, description="Atoms removed from the top layer in an extra variant of the slab; 0: none."
    )

    @model_validator(mode="after")
    def _check(self) -> SurfaceConfig:
        if not any(self.miller):
            raise ValueError("miller indices (0, 0, 0) name no plane")
        if self.adatom_element is not None and self.adatom_element not in chemical_symbols[1:]:
            raise ValueError(f"adatom_element: unknown chemical symbol {self.adatom_element!r}")
        return self


class SeedConfig(StructureConfig):
    """One seed of a campaign: a structure (file or bulk crystal), optionally made a random alloy and/or a slab,
    its share of the starting pool, and generator settings of its own."""

    name: str | None = Field(
        None,
        description="Identifier of the seed (letters, digits, '_', '-', '.'), kept as provenance 'seed' of every "
        "structure drawn from it; default: the file's stem or '<element>_<lattice>'.",
    )
    weight: float = Field(1.0, gt=0.0, description="Share of the starting pool, relative to the other seeds' weights.")
    alloy: AlloyConfig | None = Field(
        None, description="Random occupations of the seed's sites (chemical disorder); null: as given."
    )
    surface: SurfaceConfig | None = Field(
        None,
        description="Cut a slab from the seed; `repeat` then repeats the slab in-plane (its third entry must be 1). "
        "null: bulk.",
    )
    generator: GeneratorConfig | None = Field(
        None,
        description="Generator settings for this seed only: the fields given here replace those of the campaign's "
        "`generator` section (e.g. {defect_kinds: [antisite], n_defect_structures: 4}); pool_size is the campaign's.",
    )

    @model_validator(mode="after")
    def _name_and_surface(self) -> SeedConfig:
        if self.name is None:
            base = self.file.stem if self.file is not None else f"{self.element}_{self.lattice or 'ref'}"
            name = _NOT_NAME.sub("_", unicodedata.normalize("NFC", base))  # 'séed ü' -> 'séed_ü'
            if self.surface is not None:
                name += "_" + "".join(str(i) for i in self.surface.miller)
            object.__setattr__(self, "name", name)
        elif not _NAME_RE.match(self.name):
            raise ValueError(f"seed name {self.name!r}: use letters, digits, '_', '-' and '.' (1 to 64 characters)")
        if self.surface is not None and self.repeat[2] != 1:
            raise ValueError(
                "a surface seed repeats the slab in-plane only: repeat's third entry must be 1, got "
                f"{list(self.repeat)}"
            )
        return self
