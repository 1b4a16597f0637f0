"""The bulk crystal every property starts from: its symmetry (spglib), standard cells and relaxations (ASE).

Each calculator is taken to its *own* equilibrium (:func:`relax_bulk`), so the
properties compared are what each method predicts, as a user would compute them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from mlip_autopipec.exceptions import PropertyError

SYMPREC = 1e-3  # Å, spglib's tolerance

_SYSTEMS = (
    (2, "triclinic"),
    (15, "monoclinic"),
    (74, "orthorhombic"),
    (142, "tetragonal"),
    (167, "trigonal"),
    (194, "hexagonal"),
    (230, "cubic"),
)


@dataclass(frozen=True)
class Symmetry:
    """Space group of a crystal (spglib) and what the properties need of it."""

    number: int
    international: str
    crystal_system: str
    n_atoms_primitive: int


def _spglib_cell(atoms: Atoms):
    return (atoms.cell.array.copy(), atoms.get_scaled_positions(), atoms.numbers.copy())


def _from_spglib(cell) -> Atoms:
    lattice, positions, numbers = cell
    return Atoms(numbers=numbers, cell=lattice, scaled_positions=positions, pbc=True)


def symmetry(atoms: Atoms, symprec: float = SYMPREC) -> Symmetry:
    """Space group, crystal system and atoms per primitive cell of a periodic crystal."""
    import spglib

    data = spglib.get_symmetry_dataset(_spglib_cell(atoms), symprec=symprec)
    if data is None:
        raise PropertyError(f"spglib finds no symmetry for {atoms.get_chemical_formula()} (symprec {symprec} Å)")
    system = next(name for last, name in _SYSTEMS if data.number <= last)
    prim = spglib.find_primitive(_spglib_cell(atoms), symprec=symprec)
    if prim is None:
        raise PropertyError(f"spglib finds no primitive cell of {atoms.get_chemical_formula()} (symprec {symprec} Å)")
    return Symmetry(int(data.number), str(data.international), system, len(prim[2]))


def conventional_cell(atoms: Atoms, symprec: float = SYMPREC) -> Atoms:
    """spglib's standardized conventional cell, in the standard orientation (cubic axes along x, y, z)."""
    import spglib

    cell = spglib.standardize_cell(_spglib_cell(atoms), to_primitive=False, no_idealize=False, symprec=symprec)
    if cell is None:
        raise PropertyError(f"spglib cannot standardize {atoms.get_chemical_formula()}")
    return _from_spglib(cell)


def primitive_cell(atoms: Atoms, symprec: float = SYMPREC) -> Atoms:
    """spglib's standardized primitive cell, in the same Cartesian frame as :func:`conventional_cell`."""
    import spglib

    cell = spglib.standardize_cell(_spglib_cell(atoms), to_primitive=True, no_idealize=False, symprec=symprec)
    if cell is None:
        raise PropertyError(f"spglib cannot standardize {atoms.get_chemical_formula()}")
    return _from_spglib(cell)


def relax_positions(atoms: Atoms, calculator: Calculator, fmax: float, steps: int, what: str) -> Atoms:
    """A copy of ``atoms`` with its positions relaxed at fixed cell (ASE BFGS) to forces below ``fmax`` (eV/Å)."""
    from ase.optimize import BFGS

    work = atoms.copy()
    work.calc = calculator
    if np.abs(work.get_forces()).max() < fmax:
        return work
    if not BFGS(work, logfile=None).run(fmax=fmax, steps=steps):
        raise PropertyError(f"{what}: the relaxation did not reach fmax {fmax} eV/Å in {steps} steps")
    return work


def relax_bulk(
    atoms: Atoms, calculator: Calculator, fmax: float = 0.005, steps: int = 500, symprec: float = SYMPREC
) -> Atoms:
    """The conventional cell of ``atoms`` relaxed (cell and positions, space group kept) with ``calculator``.

    The primitive cell is relaxed, then standardized to the conventional one.  ASE's ``FixSymmetry``
    constraint and ``FrechetCellFilter`` with BFGS; ``fmax`` (eV/Å) also bounds the stress (eV/Å³ ×
    volume per atom, ASE's filter convention).  The result carries ``calculator``, no constraint.
    """
    from ase.constraints import FixSymmetry
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS

    work = primitive_cell(atoms, symprec)  # the fewest atoms: the cheapest relaxation with a DFT oracle
    work.calc = calculator
    work.set_constraint(FixSymmetry(work, symprec=symprec))
    # ASE annotates BFGS's first argument as Atoms, but its optimizers take any Optimizable, filters included
    optimizer = BFGS(FrechetCellFilter(work), logfile=None)  # type: ignore[arg-type]
    converged = optimizer.run(fmax=fmax, steps=steps)
    work.set_constraint()
    if not converged:
        raise PropertyError(
            f"bulk {work.get_chemical_formula()}: the cell relaxation did not reach fmax {fmax} eV/Å in {steps} steps"
        )
    out = conventional_cell(work, symprec)
    out.calc = calculator
    return out


def supercell(atoms: Atoms, min_atoms: int) -> Atoms:
    """``atoms`` repeated along its shortest vectors until it has at least ``min_atoms`` atoms (explore.md's rule)."""
    from mlip_autopipec.explore.md import supercell_for_md

    return supercell_for_md(atoms, min_atoms)


__all__ = [
    "SYMPREC",
    "Symmetry",
    "conventional_cell",
    "primitive_cell",
    "relax_bulk",
    "relax_positions",
    "supercell",
    "symmetry",
]
