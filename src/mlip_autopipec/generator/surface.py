"""Surfaces: slabs cut from any seed crystal (ase.build.surface), with optional adatoms or top-layer vacancies.

A slab is periodic in-plane and not along its normal (``pbc = (True, True,
False)``), so the strain generator and MD leave the vacuum axis alone.  Each
function returns a new :class:`ase.Atoms` with provenance in ``info``.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import surface
from ase.data import atomic_numbers, covalent_radii

from mlip_autopipec.exceptions import StructureError
from mlip_autopipec.generator.geometry import check_structure

__all__ = ["add_adatoms", "cut_slab", "remove_top_atoms", "top_layer"]

LAYER_TOLERANCE = 0.5  # Å: atoms within this height of the topmost atom form the top layer


def cut_slab(
    crystal: Atoms, miller: tuple[int, int, int], layers: int, vacuum: float, repeat: tuple[int, int] = (1, 1)
) -> Atoms:
    """The ``miller`` slab of ``crystal``: ``layers`` equivalent layers, ``vacuum`` Å on each side,
    repeated in-plane."""
    check_structure(crystal, "crystal for a surface")
    if not crystal.pbc.all():
        raise StructureError("a surface is cut from a bulk crystal periodic along all three axes")
    try:
        slab = surface(crystal, tuple(int(i) for i in miller), int(layers), vacuum=float(vacuum), periodic=False)
    except Exception as err:
        raise StructureError(
            f"ase.build.surface cannot cut the {tuple(miller)} surface of {crystal.get_chemical_formula()}: {err}"
        ) from err
    slab = slab.repeat((int(repeat[0]), int(repeat[1]), 1))
    slab.pbc = (True, True, False)
    slab.info = {k: v for k, v in crystal.info.items()}
    slab.info.update({"miller": [int(i) for i in miller], "layers": int(layers), "vacuum": float(vacuum)})
    check_structure(slab, f"({' '.join(map(str, miller))}) slab")
    return slab


def _normal(slab: Atoms) -> np.ndarray:
    a, b = np.asarray(slab.cell[0]), np.asarray(slab.cell[1])
    n = np.cross(a, b)
    n /= np.linalg.norm(n)
    return n if np.dot(n, slab.cell[2]) >= 0 else -n


def top_layer(slab: Atoms, tolerance: float = LAYER_TOLERANCE) -> np.ndarray:
    """Indices of the atoms within ``tolerance`` Å of the topmost atom along the surface normal."""
    height = slab.positions @ _normal(slab)
    return np.flatnonzero(height > height.max() - tolerance)


def remove_top_atoms(slab: Atoms, n: int, rng: np.random.Generator) -> Atoms:
    """Remove ``n`` random atoms of the top layer (surface vacancies)."""
    top = top_layer(slab)
    if n >= len(top):
        raise StructureError(f"cannot remove {n} atoms from a top layer of {len(top)}: repeat the slab in-plane")
    removed = sorted(rng.choice(top, size=n, replace=False).tolist())
    out = slab.copy()
    del out[removed]
    out.info["surface_defect"] = "vacancy"
    out.info["n_surface_defects"] = int(n)
    return out


def add_adatoms(slab: Atoms, element: str, n: int, rng: np.random.Generator, n_trials: int = 64) -> Atoms:
    """Place ``n`` atoms of ``element`` above the top surface, each at the best of ``n_trials`` random in-plane points.

    An adatom sits at the height where its nearest neighbour is one bond length
    (sum of covalent radii) away, at the in-plane point with the most room
    (a hollow rather than an on-top site).
    """
    if element not in atomic_numbers:
        raise StructureError(f"unknown adatom element {element!r}")
    out = slab.copy()
    normal = _normal(out)
    r_new = covalent_radii[atomic_numbers[element]]
    cell2 = np.asarray(out.cell)[:2]
    for _ in range(n):
        top = out.positions @ normal
        z_top = top.max()
        frac = rng.random((n_trials, 2))
        xy = frac @ cell2
        best, best_height = None, np.inf
        for p in xy:
            # the lowest height above the surface at which every atom is >= its bond length away
            base = p - (p @ normal) * normal
            d_inplane = _inplane_distances(out, base, normal)
            bond = r_new + covalent_radii[out.numbers]
            heights = top + np.sqrt(np.clip(bond**2 - d_inplane**2, 0.0, None))
            h = max(heights.max(), z_top + 0.5)
            if h < best_height:
                best, best_height = base, h
        if best is None:  # no trial point at all; with one, the first always improves on inf
            raise StructureError(f"n_trials must be at least 1, got {n_trials}")
        out.append(element)
        out.positions[-1] = best + best_height * normal
    vacuum_left = (np.asarray(out.cell[2]) @ normal) - (out.positions @ normal).max()
    if vacuum_left < 2.0:
        raise StructureError(f"adatoms leave only {vacuum_left:.2f} Å of vacuum above the slab: add vacuum")
    out.info["surface_defect"] = "adatom"
    out.info["n_surface_defects"] = int(n)
    out.info["adatom_element"] = element
    return out


def _inplane_distances(slab: Atoms, point: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """In-plane minimum-image distances from ``point`` to every atom (periodic along the two in-plane vectors)."""
    cell2 = np.asarray(slab.cell)[:2]
    proj = slab.positions - np.outer(slab.positions @ normal, normal)
    d = proj - point
    shifts = np.array([[i, j] for i in (-1, 0, 1) for j in (-1, 0, 1)]) @ cell2
    dist = np.linalg.norm(d[:, None, :] + shifts[None, :, :], axis=2)
    return dist.min(axis=1)
