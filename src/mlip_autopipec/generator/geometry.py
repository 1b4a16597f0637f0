"""Input checks and the minimum-distance guard, vectorised over a batch of deformations.

The checks of a structure itself are the database's invariants
(:func:`mlip_autopipec.database.validation.check_structure`): what the generator
accepts is exactly what the database would store.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.data import covalent_radii
from ase.neighborlist import neighbor_list

from mlip_autopipec.database.validation import check_structure

__all__ = ["check_structure", "min_distance_ok", "pair_thresholds"]


def pair_thresholds(numbers: np.ndarray, i: np.ndarray, j: np.ndarray, fraction: float) -> np.ndarray:
    """Closest allowed distance (Å) of each pair: ``fraction`` × the sum of covalent radii."""
    radii = covalent_radii[numbers]
    return fraction * (radii[i] + radii[j])


def min_distance_ok(
    reference: Atoms,
    deformations: np.ndarray,
    displacements: np.ndarray,
    fraction: float,
) -> np.ndarray:
    """Which of a batch of deformed and rattled copies of ``reference`` keep every pair far enough apart.

    Copy ``b`` has positions ``R F_bᵀ + δ_b`` and cell ``C F_bᵀ``.  Only pairs that
    could come closer than their threshold are examined: a pair at distance
    ``d`` in the reference is at least ``σ_min(F) d − 2 max|δ|`` apart after the
    change, so one neighbour list of the reference, with a cutoff from the
    batch's smallest singular value and largest displacement, covers the batch.

    Returns a boolean array (batch,).
    """
    n_batch = len(deformations)
    if fraction <= 0.0 or len(reference) < 2 and not reference.pbc.any():
        return np.ones(n_batch, dtype=bool)
    numbers = reference.numbers
    t_max = fraction * 2.0 * covalent_radii[np.unique(numbers)].max()
    sigma_min = np.linalg.svd(deformations, compute_uv=False).min()
    max_disp = np.sqrt((displacements**2).sum(axis=2)).max() if displacements.size else 0.0
    cutoff = (t_max + 2.0 * max_disp) / max(sigma_min, 1e-6) + 1e-6
    i, j, shifts = neighbor_list("ijS", reference, cutoff)
    if len(i) == 0:
        return np.ones(n_batch, dtype=bool)
    keep = i < j
    keep |= (i == j) & _first_half(shifts)
    i, j, shifts = i[keep], j[keep], shifts[keep]
    if len(i) == 0:
        return np.ones(n_batch, dtype=bool)
    threshold2 = pair_thresholds(numbers, i, j, fraction) ** 2
    ref_vec = reference.positions[j] - reference.positions[i] + shifts @ np.asarray(reference.cell)
    ok = np.empty(n_batch, dtype=bool)
    chunk = max(1, 2_000_000 // max(len(i), 1))
    for start in range(0, n_batch, chunk):
        f = deformations[start : start + chunk]
        d = displacements[start : start + chunk]
        vec = np.einsum("pk,bjk->bpj", ref_vec, f) + d[:, j] - d[:, i]
        dist2 = np.einsum("bpj,bpj->bp", vec, vec)
        ok[start : start + chunk] = (dist2 >= threshold2).all(axis=1)
    return ok


def _first_half(shifts: np.ndarray) -> np.ndarray:
    """For self-image pairs keep one of each ±shift couple (the lexicographically positive one)."""
    first = np.zeros(len(shifts), dtype=bool)
    undecided = np.ones(len(shifts), dtype=bool)
    for axis in range(3):
        s = shifts[:, axis]
        first |= undecided & (s > 0)
        undecided &= s == 0
    return first
