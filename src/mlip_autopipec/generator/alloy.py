"""Chemical disorder: random occupations of a parent lattice at a given composition, and Vegard's-law volumes.

Random occupations are drawn with NumPy (an exact composition, shuffled over the
substituted sites).  A special quasirandom structure (icet's ``generate_sqs``)
would match the pair correlations of the ideal random alloy better in a small
cell, but needs a cluster space and a Monte Carlo search per composition
(seconds to minutes each) and another heavy dependency; the starting pool is
strained, rattled and followed by active learning anyway, and several
independent occupations per composition sample the disorder instead.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.data import atomic_numbers, covalent_radii

from mlip_autopipec.exceptions import StructureError

__all__ = ["atomic_volume", "random_occupation", "site_counts", "vegard_scale"]


@functools.cache
def atomic_volume(symbol: str) -> float:
    """Volume per atom (Å³) of the element's reference crystal in ASE; (4/3)π r_cov³ / 0.74 when ASE has none."""
    try:
        ref = bulk(symbol)
        return float(ref.get_volume() / len(ref))
    except Exception:  # no crystalline reference state (e.g. some gases)
        r = covalent_radii[atomic_numbers[symbol]]
        return float(4.0 / 3.0 * np.pi * r**3 / 0.74)


def _sites(atoms: Atoms, sublattice: Sequence[str] | None, where: str) -> np.ndarray:
    symbols = np.array(atoms.get_chemical_symbols())
    if sublattice is None:
        return np.arange(len(atoms))
    sites = np.flatnonzero(np.isin(symbols, list(sublattice)))
    if len(sites) == 0:
        raise StructureError(
            f"{where}: the sublattice {list(sublattice)} has no sites in {atoms.get_chemical_formula()}"
        )
    return sites


def site_counts(n_sites: int, fractions: dict[str, float]) -> dict[str, int]:
    """Atom counts per element on ``n_sites`` sites: the fractions rounded so the counts sum to ``n_sites``
    (largest remainder)."""
    symbols = sorted(fractions)
    exact = np.array([fractions[s] * n_sites for s in symbols])
    counts = np.floor(exact).astype(int)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: n_sites - counts.sum()]] += 1
    return {s: int(c) for s, c in zip(symbols, counts, strict=True) if c > 0}


def random_occupation(
    parent: Atoms,
    fractions: dict[str, float],
    rng: np.random.Generator,
    sublattice: Sequence[str] | None = None,
    where: str = "alloy",
) -> Atoms:
    """A copy of ``parent`` whose (sublattice) sites carry ``fractions`` of the elements, placed at random."""
    sites = _sites(parent, sublattice, where)
    counts = site_counts(len(sites), fractions)
    species = np.concatenate([np.full(c, atomic_numbers[s]) for s, c in counts.items()])
    out = parent.copy()
    numbers = out.numbers.copy()
    numbers[sites] = rng.permutation(species)
    out.numbers = numbers
    return out


def vegard_scale(parent: Atoms, fractions: dict[str, float], sublattice: Sequence[str] | None = None) -> float:
    """Linear scale factor of the cell for Vegard's law: the substituted sites' atomic volumes change,
    the others stay."""
    sites = _sites(parent, sublattice, "alloy")
    symbols = parent.get_chemical_symbols()
    before = sum(atomic_volume(s) for s in symbols)
    mean_new = sum(x * atomic_volume(el) for el, x in fractions.items())
    after = before - sum(atomic_volume(symbols[i]) for i in sites) + mean_new * len(sites)
    return float((after / before) ** (1.0 / 3.0))
