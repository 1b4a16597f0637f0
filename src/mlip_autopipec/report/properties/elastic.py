"""Elastic constants (GPa) by finite strains: the slope of stress against strain.

Each Voigt strain component ε_k is applied at −ε, −ε/2, +ε/2, +ε to the relaxed
bulk cell (ASE's Voigt order xx yy zz yz xz xy, shear as engineering strain); the
least-squares slope of each stress component σ_i gives C_ik, so quadratic terms
cancel.  Cubic crystals (spglib) need ε_1 and ε_4 only; lower symmetry gets all
six and the symmetrized 6×6 matrix.  With more than one atom per primitive cell
the internal coordinates of each strained cell are relaxed (ASE BFGS, fixed cell),
e.g. diamond's C44.

Two steps, for caching (see :mod:`.cache`): :func:`elastic_strain_set` lists the
strained cells, :func:`elastic_from_stresses` turns their stresses into constants;
:func:`elastic_constants` does both with a calculator.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.units import GPa

from mlip_autopipec.exceptions import PropertyError
from mlip_autopipec.report.properties.bulk import SYMPREC, primitive_cell, relax_positions, symmetry

VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))
_FRACTIONS = (-1.0, -0.5, 0.5, 1.0)


@dataclass
class ElasticStrainSet:
    """The strained cells of an elastic-constant calculation
    (``structures[n]`` has ``strains[n]`` on ``components[n]``)."""

    reference: Atoms
    crystal_system: str
    spacegroup: str
    components: list[int]
    strains: list[float]
    structures: list[Atoms]
    relax_internal: bool


@dataclass
class ElasticConstants:
    """The 6×6 elastic matrix (GPa, Voigt order xx yy zz yz xz xy) of a relaxed crystal."""

    matrix_gpa: np.ndarray
    crystal_system: str
    spacegroup: str
    max_strain: float
    relaxed_internal: bool
    n_structures: int = field(default=0)

    @property
    def c11(self) -> float:
        return float(self.matrix_gpa[0, 0])

    @property
    def c12(self) -> float:
        return float(self.matrix_gpa[0, 1])

    @property
    def c44(self) -> float:
        return float(self.matrix_gpa[3, 3])

    @property
    def bulk_modulus_voigt_gpa(self) -> float:
        c = self.matrix_gpa
        return float((c[0, 0] + c[1, 1] + c[2, 2] + 2 * (c[0, 1] + c[0, 2] + c[1, 2])) / 9.0)

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "C11": self.c11,
            "C12": self.c12,
            "C44": self.c44,
            "bulk_modulus_voigt_gpa": self.bulk_modulus_voigt_gpa,
        }
        out.update(crystal_system=self.crystal_system, spacegroup=self.spacegroup, max_strain=self.max_strain)
        if self.crystal_system != "cubic":
            out["matrix_gpa"] = self.matrix_gpa.tolist()
        return out


def strain_tensor(component: int, strain: float) -> np.ndarray:
    """The symmetric strain tensor of Voigt ``component`` (0..5) with engineering shear strain."""
    eps = np.zeros((3, 3))
    i, j = VOIGT[component]
    if component < 3:
        eps[i, i] = strain
    else:
        eps[i, j] = eps[j, i] = strain / 2.0
    return eps


def strained(atoms: Atoms, component: int, strain: float) -> Atoms:
    """A copy of ``atoms`` with its cell (and atoms) deformed by (1 + ε)."""
    out = atoms.copy()
    out.calc = None
    out.set_cell(atoms.cell.array @ (np.eye(3) + strain_tensor(component, strain)), scale_atoms=True)
    return out


def elastic_strain_set(atoms: Atoms, strain: float = 0.01, symprec: float = SYMPREC) -> ElasticStrainSet:
    """The strained cells (of spglib's standard primitive cell) for the elastic constants of the relaxed
    crystal ``atoms``.

    The constants are in spglib's standard Cartesian frame (cubic axes along x, y, z).
    """
    if not 0 < strain <= 0.05:
        raise PropertyError(f"elastic strain must be in (0, 0.05], got {strain}")
    sym = symmetry(atoms, symprec)
    ref = primitive_cell(atoms, symprec)  # same Cartesian frame as the conventional cell, fewer atoms
    components = [0, 3] if sym.crystal_system == "cubic" else list(range(6))
    comps, strains, structures = [], [], []
    for k in components:
        for f in _FRACTIONS:
            comps.append(k)
            strains.append(f * strain)
            structures.append(strained(ref, k, f * strain))
    return ElasticStrainSet(
        ref, sym.crystal_system, sym.international, comps, strains, structures, sym.n_atoms_primitive > 1
    )


def elastic_from_stresses(strain_set: ElasticStrainSet, stresses: list[np.ndarray]) -> ElasticConstants:
    """The elastic matrix from the stresses (eV/Å³, ASE Voigt, tensile positive) of the strained cells."""
    if len(stresses) != len(strain_set.structures):
        raise PropertyError(f"{len(stresses)} stresses for {len(strain_set.structures)} strained cells")
    s = np.asarray(stresses, dtype=float) / GPa
    comps = np.asarray(strain_set.components)
    eps = np.asarray(strain_set.strains)
    c = np.zeros((6, 6))
    for k in sorted(set(strain_set.components)):
        mask = comps == k
        x = eps[mask]
        for i in range(6):
            c[i, k] = np.polyfit(x, s[mask, i], 1)[0]
    if strain_set.crystal_system == "cubic":
        c11, c12, c44 = c[0, 0], 0.5 * (c[1, 0] + c[2, 0]), c[3, 3]
        c = np.zeros((6, 6))
        c[:3, :3] = c12
        c[range(3), range(3)] = c11
        c[range(3, 6), range(3, 6)] = c44
    else:
        c = 0.5 * (c + c.T)
    return ElasticConstants(
        c,
        strain_set.crystal_system,
        strain_set.spacegroup,
        float(max(abs(e) for e in eps)),
        strain_set.relax_internal,
        len(stresses),
    )


def elastic_constants(
    atoms: Atoms,
    calculator: Calculator,
    strain: float = 0.01,
    fmax: float = 0.005,
    steps: int = 500,
    symprec: float = SYMPREC,
) -> ElasticConstants:
    """Elastic constants of the relaxed crystal ``atoms`` (see :func:`relax_bulk`) with ``calculator``."""
    strain_set = elastic_strain_set(atoms, strain, symprec)
    stresses = []
    for k, e, cell in zip(strain_set.components, strain_set.strains, strain_set.structures, strict=True):
        if strain_set.relax_internal:
            cell = relax_positions(cell, calculator, fmax, steps, f"elastic strain {e:+g} on component {k + 1}")
        else:
            cell = cell.copy()
            cell.calc = calculator
        stresses.append(cell.get_stress(voigt=True))
    return elastic_from_stresses(strain_set, stresses)


__all__ = [
    "ElasticConstants",
    "ElasticStrainSet",
    "elastic_constants",
    "elastic_from_stresses",
    "elastic_strain_set",
    "strain_tensor",
    "strained",
]
