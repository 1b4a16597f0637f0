"""Point defects and surfaces: relaxed vacancy formation energy (eV) and surface energies (J/m²).

Both start from the relaxed conventional bulk cell of the same calculator
(:func:`~.bulk.relax_bulk`), relax the defect at fixed cell with ASE's BFGS and
compare with the bulk energy per atom:

* vacancy: E_f = E(N−1, relaxed) − (N−1)/N · E(N), supercell of at least
  ``min_atoms`` atoms; one value per symmetry-inequivalent site (spglib), the
  lowest reported; elemental crystals only (a compound needs chemical potentials);
* surface: γ = (E_slab − n · E_bulk/atom) / 2A for a slab with the same facet on
  both sides (``ase.build.surface`` on the primitive cell, the Miller indices of the
  conventional cell converted), thickness ≥ ``min_thickness`` Å, vacuum gap
  ≥ ``vacuum`` Å, all atoms relaxed; elemental crystals only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from mlip_autopipec.exceptions import PropertyError
from mlip_autopipec.report.properties.bulk import SYMPREC, primitive_cell, relax_positions, supercell

EV_PER_A2_TO_J_PER_M2 = 16.021766339999996  # 1 eV/Å² in J/m²


def _elemental(atoms: Atoms, what: str) -> None:
    if len(set(atoms.get_chemical_symbols())) != 1:
        raise PropertyError(
            f"{what} of {atoms.get_chemical_formula()}: only elemental crystals (a compound needs chemical potentials)"
        )


# --------------------------------------------------------------------------- vacancy
@dataclass
class VacancyResult:
    """Relaxed (and unrelaxed) vacancy formation energy (eV) in a supercell of ``n_atoms`` atoms."""

    formation_energy_ev: float
    unrelaxed_formation_energy_ev: float
    n_atoms: int
    site: int
    per_site_ev: dict[int, float]

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def vacancy_structures(bulk: Atoms, min_atoms: int = 32, symprec: float = SYMPREC) -> tuple[Atoms, dict[int, Atoms]]:
    """The perfect supercell and, per inequivalent site (its index in the supercell), the supercell without it."""
    import spglib

    _elemental(bulk, "vacancy formation energy")
    perfect = supercell(bulk, min_atoms)
    perfect.calc = None
    data = spglib.get_symmetry_dataset((bulk.cell.array, bulk.get_scaled_positions(), bulk.numbers), symprec=symprec)
    sites = sorted(set(int(i) for i in data.equivalent_atoms)) if data is not None else list(range(len(bulk)))
    out = {}
    for site in sites:  # supercell_for_md repeats the cell, so the first len(bulk) atoms are the bulk cell's
        vac = perfect.copy()
        del vac[site]
        out[site] = vac
    return perfect, out


def vacancy_formation_energy(
    bulk: Atoms,
    calculator: Calculator,
    min_atoms: int = 32,
    fmax: float = 0.005,
    steps: int = 500,
    symprec: float = SYMPREC,
) -> VacancyResult:
    """Relaxed vacancy formation energy (eV) of the relaxed elemental crystal ``bulk`` with ``calculator``."""
    perfect, vacancies = vacancy_structures(bulk, min_atoms, symprec)
    perfect.calc = calculator
    e_bulk = perfect.get_potential_energy()
    n = len(perfect)
    per_site: dict[int, float] = {}
    unrelaxed: dict[int, float] = {}
    for site, vac in vacancies.items():
        vac.calc = calculator
        unrelaxed[site] = vac.get_potential_energy() - (n - 1) / n * e_bulk
        relaxed = relax_positions(
            vac, calculator, fmax, steps, f"vacancy at site {site} of {perfect.get_chemical_formula()}"
        )
        per_site[site] = float(relaxed.get_potential_energy() - (n - 1) / n * e_bulk)
    site = min(per_site, key=per_site.__getitem__)
    return VacancyResult(per_site[site], float(unrelaxed[site]), n, site, per_site)


# --------------------------------------------------------------------------- surfaces
@dataclass
class SurfaceResult:
    """Relaxed (and unrelaxed) surface energy (J/m²) of one facet."""

    facet: str
    energy_j_per_m2: float
    unrelaxed_energy_j_per_m2: float
    n_atoms: int
    n_layers: int
    area_angstrom2: float

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def primitive_miller(
    conventional: Atoms, hkl: tuple[int, int, int], symprec: float = SYMPREC
) -> tuple[Atoms, tuple[int, int, int]]:
    """The primitive cell of ``conventional`` and the Miller indices, in its basis, of the conventional (hkl) plane."""
    prim = primitive_cell(conventional, symprec)
    m = prim.cell.array @ np.linalg.inv(conventional.cell.array)  # rows: primitive vectors in conventional fractions
    fractions = [Fraction(float(x)).limit_denominator(24) for x in m @ np.asarray(hkl, dtype=float)]
    scale = math.lcm(*(f.denominator for f in fractions))
    ints = [int(f * scale) for f in fractions]
    g = math.gcd(*ints)
    return prim, tuple(i // g for i in ints)  # type: ignore[return-value]


def build_slab(
    conventional: Atoms, facet: str, min_thickness: float = 10.0, vacuum: float = 12.0, symprec: float = SYMPREC
) -> tuple[Atoms, int]:
    """A slab of the (hkl) ``facet`` of the conventional cell: (slab, number of layers), vacuum gap along z
    (fully periodic cell)."""
    from ase.build import surface

    from mlip_autopipec.config.schemas.report_properties import parse_facet

    prim, hkl = primitive_miller(conventional, parse_facet(facet), symprec)
    height = 1.0 / float(
        np.linalg.norm(np.asarray(hkl, dtype=float) @ prim.cell.reciprocal())
    )  # Å between lattice planes
    layers = max(2, math.ceil(min_thickness / height))
    slab = surface(prim, hkl, layers, vacuum=vacuum / 2.0)
    slab.pbc = True  # periodic along z too, across the vacuum: pyace (and pw.x) take fully periodic cells only
    return slab, layers


def surface_energy(
    bulk: Atoms,
    calculator: Calculator,
    facet: str,
    min_thickness: float = 10.0,
    vacuum: float = 12.0,
    fmax: float = 0.005,
    steps: int = 500,
    symprec: float = SYMPREC,
) -> SurfaceResult:
    """Relaxed surface energy (J/m²) of ``facet`` of the relaxed elemental crystal ``bulk`` with ``calculator``."""
    _elemental(bulk, "surface energy")
    ref = bulk.copy()
    ref.calc = calculator
    e_atom = ref.get_potential_energy() / len(ref)
    slab, layers = build_slab(bulk, facet, min_thickness, vacuum, symprec)
    area = float(np.linalg.norm(np.cross(slab.cell[0], slab.cell[1])))
    slab.calc = calculator
    unrelaxed = (slab.get_potential_energy() - len(slab) * e_atom) / (2 * area)
    relaxed = relax_positions(slab, calculator, fmax, steps, f"({facet}) slab of {bulk.get_chemical_formula()}")
    gamma = (relaxed.get_potential_energy() - len(slab) * e_atom) / (2 * area)
    return SurfaceResult(
        facet, float(gamma * EV_PER_A2_TO_J_PER_M2), float(unrelaxed * EV_PER_A2_TO_J_PER_M2), len(slab), layers, area
    )


__all__ = [
    "EV_PER_A2_TO_J_PER_M2",
    "SurfaceResult",
    "VacancyResult",
    "build_slab",
    "primitive_miller",
    "surface_energy",
    "vacancy_formation_energy",
    "vacancy_structures",
]
