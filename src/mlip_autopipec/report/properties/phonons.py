"""Phonons by finite displacements with phonopy: frequencies (THz), band structure, DOS and the oracle/potential RMSE.

Two steps, for caching (see :mod:`.cache`): :func:`phonon_structures` builds
phonopy's displaced supercells of the relaxed conventional cell (primitive cell
found by phonopy, ``primitive_matrix="auto"``); :func:`phonons_from_forces` turns
their forces into force constants and a :class:`PhononResult`.  :func:`phonons`
does both with a calculator.  q-points are in reduced coordinates of the
primitive cell, so the same q means the same point of the Brillouin zone for two
calculators with slightly different lattice constants.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from mlip_autopipec.exceptions import PropertyError


@dataclass
class PhononSetup:
    """phonopy's object and its displaced supercells (as ASE Atoms, in phonopy's order)."""

    phonopy: Any
    structures: list[Atoms]


@dataclass
class PhononResult:
    """Force constants of one calculator, and what the report shows of them."""

    phonopy: Any = field(repr=False)
    primitive: Atoms
    supercell_atoms: int
    n_displacements: int
    mesh: tuple[int, int, int]
    dos_frequencies_thz: np.ndarray = field(repr=False)
    dos: np.ndarray = field(repr=False)

    def frequencies_at(self, qpoints: np.ndarray) -> np.ndarray:
        """Frequencies (THz, imaginary ones negative) at q-points (reduced, primitive cell):
        shape (n_q, n_bands), ascending."""
        self.phonopy.run_qpoints(np.atleast_2d(np.asarray(qpoints, dtype=float)))
        return np.sort(np.asarray(self.phonopy.qpoints.frequencies), axis=1)

    def mesh_frequencies(self, mesh: tuple[int, int, int] | None = None) -> np.ndarray:
        """Frequencies (THz) on the full Γ-centred ``mesh`` (default: the result's), shape (n_q, n_bands)."""
        return self.frequencies_at(gamma_mesh(mesh or self.mesh))

    def as_dict(self) -> dict:
        f = self.mesh_frequencies()
        return {
            "supercell_atoms": self.supercell_atoms,
            "n_displacements": self.n_displacements,
            "mesh": list(self.mesh),
            "max_frequency_thz": float(f.max()),
            "min_frequency_thz": float(f.min()),
        }


def gamma_mesh(mesh: tuple[int, int, int]) -> np.ndarray:
    """Every q-point (reduced coordinates) of the Γ-centred ``mesh``."""
    axes = [np.arange(n) / n for n in mesh]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    return grid - np.round(grid)  # into (-1/2, 1/2]


def supercell_matrix(cell: Atoms, min_length: float) -> np.ndarray:
    """Diagonal repetition of ``cell`` so that every height (distance between opposite faces) is ≥ ``min_length`` Å."""
    volume = abs(np.linalg.det(cell.cell.array))
    heights = [volume / np.linalg.norm(np.cross(cell.cell[(i + 1) % 3], cell.cell[(i + 2) % 3])) for i in range(3)]
    return np.diag([max(1, math.ceil(min_length / h - 1e-9)) for h in heights])


def _to_phonopy(atoms: Atoms):
    from phonopy.structure.atoms import PhonopyAtoms

    return PhonopyAtoms(
        symbols=atoms.get_chemical_symbols(),
        cell=atoms.cell.array,
        scaled_positions=atoms.get_scaled_positions(),
        masses=atoms.get_masses(),
    )


def _to_ase(cell) -> Atoms:
    return Atoms(
        symbols=list(cell.symbols), cell=cell.cell, scaled_positions=cell.scaled_positions, masses=cell.masses, pbc=True
    )


def phonon_structures(
    unitcell: Atoms, supercell: np.ndarray | None = None, min_length: float = 10.0, displacement: float = 0.01
) -> PhononSetup:
    """phonopy's displaced supercells of the relaxed ``unitcell``
    (displacement in Å; supercell: a 3×3 matrix or None)."""
    from phonopy import Phonopy

    matrix = supercell_matrix(unitcell, min_length) if supercell is None else np.asarray(supercell)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # phonopy 4 warns that "auto" differs from v3's default, which we do not use
        ph = Phonopy(_to_phonopy(unitcell), supercell_matrix=matrix, primitive_matrix="auto")
    ph.generate_displacements(distance=displacement)
    displaced = ph.supercells_with_displacements
    if displaced is None:  # phonopy returns None only before generate_displacements
        raise PropertyError(f"phonopy made no displaced supercells of {unitcell.get_chemical_formula()}")
    return PhononSetup(ph, [_to_ase(sc) for sc in displaced])


def phonons_from_forces(
    setup: PhononSetup, forces: list[np.ndarray], mesh: tuple[int, int, int] = (8, 8, 8)
) -> PhononResult:
    """Force constants from the forces (eV/Å) on the displaced supercells, then the DOS on ``mesh``."""
    ph = setup.phonopy
    if len(forces) != len(setup.structures):
        raise PropertyError(f"{len(forces)} force arrays for {len(setup.structures)} displaced supercells")
    ph.forces = np.asarray(forces, dtype=float)
    ph.produce_force_constants()
    ph.run_mesh(list(mesh), is_gamma_center=True)
    ph.run_total_dos()
    dos = ph.total_dos
    return PhononResult(
        ph,
        _to_ase(ph.primitive),
        len(ph.supercell),
        len(setup.structures),
        tuple(int(n) for n in mesh),  # type: ignore[arg-type]
        np.asarray(dos.frequency_points),
        np.asarray(dos.dos),
    )


def phonons(
    unitcell: Atoms,
    calculator: Calculator,
    supercell: np.ndarray | None = None,
    min_length: float = 10.0,
    displacement: float = 0.01,
    mesh: tuple[int, int, int] = (8, 8, 8),
) -> PhononResult:
    """Phonons of the relaxed ``unitcell`` with ``calculator`` (see :func:`phonon_structures`)."""
    setup = phonon_structures(unitcell, supercell, min_length, displacement)
    forces = []
    for sc in setup.structures:
        sc = sc.copy()
        sc.calc = calculator
        forces.append(sc.get_forces())
    return phonons_from_forces(setup, forces, mesh)


def phonon_frequency_rmse(
    oracle: PhononResult, potential: PhononResult, mesh: tuple[int, int, int] | None = None
) -> float:
    """RMSE (THz) of the potential's frequencies against the oracle's, every band at every q of the Γ-centred mesh."""
    if len(oracle.primitive) != len(potential.primitive):
        raise PropertyError(
            f"phonons of different primitive cells ({len(oracle.primitive)} and {len(potential.primitive)} atoms)"
        )
    q = gamma_mesh(mesh or oracle.mesh)
    return float(np.sqrt(np.mean((oracle.frequencies_at(q) - potential.frequencies_at(q)) ** 2)))


def band_path(result: PhononResult, npoints: int = 200):
    """ASE's standard band path (``ase.cell.Cell.bandpath``) of the primitive cell of ``result``."""
    return result.primitive.cell.bandpath(npoints=npoints)


__all__ = [
    "PhononResult",
    "PhononSetup",
    "band_path",
    "gamma_mesh",
    "phonon_frequency_rmse",
    "phonon_structures",
    "phonons",
    "phonons_from_forces",
    "supercell_matrix",
]
