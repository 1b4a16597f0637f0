"""Build the seed structure from its configuration (a file, or ``ase.build.bulk``)."""

from __future__ import annotations

from ase import Atoms
from ase.build import bulk
from ase.io import read

from mlip_autopipec.config.schemas.structure import StructureConfig
from mlip_autopipec.exceptions import StructureError
from mlip_autopipec.generator.geometry import check_structure


def build_seed(config: StructureConfig) -> Atoms:
    """Return the seed structure described by ``config`` (checked: finite, non-degenerate, non-empty)."""
    if config.file is not None:
        if not config.file.is_file():
            raise StructureError(f"seed structure file not found: {config.file}")
        try:
            atoms = read(config.file, index=config.index)
        except Exception as err:  # ASE raises many kinds for unreadable files
            raise StructureError(f"cannot read the seed structure from {config.file}: {err}") from err
    else:
        kwargs = {"crystalstructure": config.lattice, "a": config.a, "c": config.c, "cubic": config.cubic}
        try:
            atoms = bulk(config.element, **{k: v for k, v in kwargs.items() if v is not None})
        except Exception as err:
            raise StructureError(f"ase.build.bulk cannot build {config.element!r} with {kwargs}: {err}") from err
    atoms = atoms.repeat(config.repeat)
    atoms.calc = None
    check_structure(atoms, f"seed structure {atoms.get_chemical_formula()}")
    return atoms
