"""Pure planning of a generation's exploration: where trajectories start, their seeds, and what a selected
candidate is recorded as.  No files, no database, no Dask."""

from __future__ import annotations

import numpy as np
from ase import Atoms

from mlip_autopipec.config.schemas.active_learning import ActiveLearningConfig
from mlip_autopipec.database import StructureMetadata
from mlip_autopipec.explore.md import SOURCE_HALT, MDCondition, md_conditions

SEED_LABEL = "seed"


def sampled_source(generation: int) -> str:
    """The source of a structure sampled from the exploration of ``generation`` (halting ones keep "md_halt")."""
    return f"active_learning_iter_{generation}"


def order_starts(
    seed_crystal: Atoms, defects: list[tuple[str, Atoms]], others: list[tuple[str, Atoms]], seed: int, generation: int
) -> list[tuple[str, Atoms]]:
    """Where trajectories start: the seed crystal (label ``"seed"``) first, then point defects and other
    structures alternating, each group shuffled with ``SeedSequence([seed, generation])``."""
    rng = np.random.default_rng(np.random.SeedSequence([seed & 0xFFFFFFFF, generation]))
    defects = [defects[i] for i in rng.permutation(len(defects))]
    others = [others[i] for i in rng.permutation(len(others))]
    mixed: list[tuple[str, Atoms]] = []
    for k in range(max(len(defects), len(others))):
        mixed.extend(group[k] for group in (defects, others) if k < len(group))
    return [(SEED_LABEL, seed_crystal), *mixed]


def trajectory_plan(
    settings: ActiveLearningConfig, starts: list[tuple[str, Atoms]], generation: int
) -> list[tuple[MDCondition, str, Atoms, int]]:
    """(condition, start label, start structure, seed) of every trajectory of a generation.

    Replica 0 of each condition starts from ``starts[0]`` (the seed crystal);
    replicas 1, 2, ... take the other starts in turn (the seed crystal again
    when there are none).  Trajectory ``i`` gets the seed ``SeedSequence([seed, generation, i])``.
    """
    plan = []
    others = starts[1:] or starts[:1]
    k = 0
    i = 0
    for condition in md_conditions(settings):
        for replica in range(settings.trajectories_per_condition):
            if replica == 0:
                label, atoms = starts[0]
            else:
                label, atoms = others[k % len(others)]
                k += 1
            seq = np.random.SeedSequence([settings.seed & 0xFFFFFFFF, generation, i])
            plan.append((condition, label, atoms, int(seq.generate_state(1, dtype=np.uint32)[0])))
            i += 1
    return plan


def _parent_id(atoms: Atoms) -> int | None:
    start = atoms.info.get("md_start")
    if isinstance(start, (int, np.integer)) and int(start) >= 1:
        return int(start)
    if isinstance(start, str) and start.isdigit() and int(start) >= 1:
        return int(start)
    return None


def candidate_metadata(atoms: Atoms, generation: int) -> StructureMetadata:
    """Where a selected candidate came from: "md_halt" for halting frames and their copies, else active_learning_iter_<g>;
    its parent is the database id the trajectory started from (none for the seed crystal)."""
    source = SOURCE_HALT if atoms.info.get("source") == SOURCE_HALT else sampled_source(generation)
    return StructureMetadata(source=source, generation=generation, parent_id=_parent_id(atoms))
