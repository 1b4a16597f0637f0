"""Screening of teacher-labelled candidates: a structure with unphysical teacher forces or distances never reaches
the oracle (pure functions; the thresholds are ``foundation_model.max_force`` and ``min_distance`` /
``min_distance_fraction``)."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list

from mlip_autopipec.config.schemas.foundation import FoundationModelConfig

#: what a candidate that passes the screening carries in its provenance (``teacher_screen``)
KEPT = "kept"


def shortest_distance(atoms: Atoms, cutoff: float = 6.0) -> float:
    """The shortest distance (Å) between two atoms, periodic images included; ``inf`` when none is within
    ``cutoff`` Å."""
    d = neighbor_list("d", atoms, cutoff, self_interaction=False)
    return float(d.min()) if len(d) else float("inf")


def distance_floor(fm: FoundationModelConfig, seed_nn_distance: float) -> float:
    """The shortest distance (Å) a candidate may have: ``min_distance``, else ``min_distance_fraction`` of its seed
    crystal's nearest-neighbour distance ``seed_nn_distance`` (Å)."""
    return fm.min_distance if fm.min_distance is not None else fm.min_distance_fraction * seed_nn_distance


def screen(atoms: Atoms, forces: np.ndarray, max_force: float, min_distance: float) -> str:
    """:data:`KEPT`, or why the candidate is unphysical: a teacher force component above ``max_force`` (eV/Å), non-
    finite forces, or two atoms closer than ``min_distance`` (Å)."""
    forces = np.asarray(forces, dtype=float)
    if not np.all(np.isfinite(forces)):
        return "non-finite teacher forces"
    fmax = float(np.abs(forces).max()) if forces.size else 0.0
    if fmax > max_force:
        return f"teacher force {fmax:.3g} eV/Å above max_force {max_force:g} eV/Å"
    d = shortest_distance(atoms, cutoff=max(min_distance, 0.1))
    if d < min_distance:
        return f"atoms {d:.2f} Å apart, below {min_distance:.2f} Å"
    return KEPT


__all__ = ["KEPT", "distance_floor", "screen", "shortest_distance"]
