"""Point defects: vacancies, interstitials and antisites, in a supercell sized to keep images apart.

Each function returns a new :class:`ase.Atoms` (the input is never modified)
whose ``info`` records the defect (kind, count, affected indices, seed), for the
database to keep as provenance.
"""

from __future__ import annotations

import math

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers
from ase.geometry import get_distances

from mlip_autopipec.exceptions import StructureError
from mlip_autopipec.generator.geometry import check_structure

_PAIRS_PER_CHUNK = 20_000


def perpendicular_widths(atoms: Atoms) -> np.ndarray:
    """Distance (Å) between opposite faces of the cell, one per cell vector."""
    cell = np.asarray(atoms.cell)
    volume = abs(np.linalg.det(cell))
    widths = np.empty(3)
    for axis in range(3):
        other = [a for a in range(3) if a != axis]
        face = np.linalg.norm(np.cross(cell[other[0]], cell[other[1]]))
        widths[axis] = volume / face if face > 0 else 0.0
    return widths


def supercell_repeats(atoms: Atoms, min_width: float) -> list[int]:
    """How often :func:`defect_supercell` repeats ``atoms`` along each axis (1 along non-periodic axes)."""
    if min_width <= 0:
        raise StructureError(f"min_width must be positive, got {min_width} Å")
    widths = perpendicular_widths(atoms)
    return [max(1, math.ceil(min_width / w - 1e-9)) if atoms.pbc[a] and w > 0 else 1 for a, w in enumerate(widths)]


def defect_supercell(atoms: Atoms, min_width: float = 8.0) -> Atoms:
    """Repeat ``atoms`` along its periodic axes until every perpendicular width is at least ``min_width`` Å.

    A point defect in the result is at least ``min_width`` from its periodic
    images.  Non-periodic axes are not repeated.  ``info['supercell']`` records the
    repetition.
    """
    check_structure(atoms, "structure for a defect")
    reps = supercell_repeats(atoms, min_width)
    sc = atoms.repeat(reps)
    sc.info = dict(atoms.info)
    sc.info["supercell"] = np.array(reps)
    return sc


def _rng(seed: int | np.random.Generator) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _tag(atoms: Atoms, kind: str, n: int, indices: list[int], seed: int | np.random.Generator) -> Atoms:
    atoms.info["defect"] = kind
    atoms.info["n_defects"] = n
    atoms.info["defect_indices"] = np.array(indices, dtype=int)
    if not isinstance(seed, np.random.Generator):
        atoms.info["defect_seed"] = int(seed)
    return atoms


def vacancies(atoms: Atoms, n: int = 1, seed: int | np.random.Generator = 0) -> Atoms:
    """Remove ``n`` randomly chosen atoms.  ``info['defect_indices']`` are the removed atoms' indices in the input."""
    check_structure(atoms, "structure for a defect")
    if n < 1:
        raise StructureError(f"the number of vacancies must be at least 1, got {n}")
    if n >= len(atoms):
        raise StructureError(
            f"cannot make {n} vacancies in a structure of {len(atoms)} atoms: at least one atom must remain"
        )
    removed = sorted(_rng(seed).choice(len(atoms), size=n, replace=False).tolist())
    out = atoms.copy()
    del out[removed]
    return _tag(out, "vacancy", n, removed, seed)


def interstitials(
    atoms: Atoms, element: str, n: int = 1, seed: int | np.random.Generator = 0, n_trials: int = 256
) -> Atoms:
    """Insert ``n`` atoms of ``element``, each at the emptiest of ``n_trials`` random points of the cell.

    The emptiest point is the one farthest from every atom (minimum-image
    distances), so inserted atoms land in the largest voids.
    ``info['defect_indices']`` are the new atoms' indices (at the end).
    """
    check_structure(atoms, "structure for a defect")
    if n < 1:
        raise StructureError(f"the number of interstitials must be at least 1, got {n}")
    if element not in atomic_numbers:
        raise StructureError(f"unknown interstitial element {element!r}")
    if not atoms.pbc.all():
        raise StructureError("interstitials need a structure periodic along all three axes")
    rng = _rng(seed)
    out = atoms.copy()
    added = []
    for _ in range(n):
        trial = rng.random((n_trials, 3)) @ np.asarray(out.cell)
        best = int(np.argmax(_clearance(trial, out)))
        out.append(element)
        out.positions[-1] = trial[best]
        added.append(len(out) - 1)
    return _tag(out, "interstitial", n, added, seed)


def _clearance(points: np.ndarray, atoms: Atoms) -> np.ndarray:
    """Minimum-image distance (Å) from each point to its nearest atom.

    ASE's general minimum-image search holds 27 images of every point-atom
    vector (about 2 KB per pair), so the points go in chunks of at most
    ``_PAIRS_PER_CHUNK`` pairs: a few tens of MB, whatever the structure's size.
    """
    chunk = max(1, _PAIRS_PER_CHUNK // len(atoms))
    out = np.empty(len(points))
    for start in range(0, len(points), chunk):
        _, dist = get_distances(points[start : start + chunk], atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
        out[start : start + chunk] = dist.min(axis=1)
    return out


def antisites(atoms: Atoms, n: int = 1, seed: int | np.random.Generator = 0) -> Atoms:
    """Swap the species of ``n`` random pairs of atoms of different species (the composition is kept).

    ``info['defect_indices']`` lists the swapped pairs, flattened.
    """
    check_structure(atoms, "structure for a defect")
    species = np.unique(atoms.numbers)
    if len(species) < 2:
        raise StructureError(
            "an antisite swaps two atoms of different species, but this structure has only "
            f"{atoms.get_chemical_formula()}'s one species"
        )
    if n < 1:
        raise StructureError(f"the number of antisites must be at least 1, got {n}")
    rng = _rng(seed)
    out = atoms.copy()
    numbers = out.numbers.copy()
    used: set[int] = set()
    swapped: list[int] = []
    for _ in range(n):
        free = np.array([k for k in range(len(out)) if k not in used])
        if len(free) < 2 or len(np.unique(numbers[free])) < 2:
            raise StructureError(
                f"not enough atoms of different species left for {n} antisite pairs in {len(out)} atoms"
            )
        first = int(rng.choice(free))
        partners = free[numbers[free] != numbers[first]]
        second = int(rng.choice(partners))
        numbers[first], numbers[second] = numbers[second], numbers[first]
        used.update((first, second))
        swapped.extend((first, second))
    out.numbers = numbers
    return _tag(out, "antisite", n, swapped, seed)
