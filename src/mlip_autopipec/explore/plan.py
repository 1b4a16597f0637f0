"""Pure planning of a generation's exploration: where trajectories start, their seeds, and what a selected
candidate is recorded as.  No files, no database, no Dask."""

from __future__ import annotations

import numpy as np
from ase import Atoms

from mlip_autopipec.config.schemas.active_learning import ActiveLearningConfig
from mlip_autopipec.database import StructureMetadata
from mlip_autopipec.explore.md import SOURCE_BLOWUP, SOURCE_HALT, MDCondition, md_conditions, vacuum_axes

SEED_LABEL = "seed"


def sampled_source(generation: int) -> str:
    """The source of a structure sampled from the exploration of ``generation`` (halting ones keep "md_halt")."""
    return f"active_learning_iter_{generation}"


def seed_label(name: str | None) -> str:
    """The start label of a campaign seed's crystal: ``seed:<name>`` (plain ``seed`` without a name)."""
    return SEED_LABEL if name is None else f"{SEED_LABEL}:{name}"


def is_slab(atoms: Atoms) -> bool:
    """True when ``atoms`` has a vacuum axis (a slab, wire or molecule): it explores NVT only."""
    return any(vacuum_axes(atoms))


def order_starts(
    start_crystals: Atoms | list[tuple[str, Atoms]],
    defects: list[tuple[str, Atoms]],
    others: list[tuple[str, Atoms]],
    rng_seed: int,
    generation: int,
) -> list[tuple[str, Atoms]]:
    """Where trajectories start: the campaign seeds' crystals first (one Atoms: label ``"seed"``; else (label,
    atoms) per campaign seed, in the config's order), then point defects and other structures alternating, each
    group shuffled with the random ``SeedSequence([rng_seed, generation])``."""
    rng = np.random.default_rng(np.random.SeedSequence([rng_seed & 0xFFFFFFFF, generation]))
    defects = [defects[i] for i in rng.permutation(len(defects))]
    others = [others[i] for i in rng.permutation(len(others))]
    mixed: list[tuple[str, Atoms]] = []
    for k in range(max(len(defects), len(others))):
        mixed.extend(group[k] for group in (defects, others) if k < len(group))
    crystals = [(SEED_LABEL, start_crystals)] if isinstance(start_crystals, Atoms) else list(start_crystals)
    return [*crystals, *mixed]


def trajectory_plan(
    settings: ActiveLearningConfig, starts: list[tuple[str, Atoms]], generation: int, n_seeds: int = 1
) -> list[tuple[MDCondition, str, Atoms, int]]:
    """(condition, start label, start structure, seed) of every trajectory of a generation.

    ``starts[:n_seeds]`` are the campaign's seed crystals: replica 0 of each
    condition starts from each of them (a slab, :func:`is_slab`, only under NVT
    conditions: NPT would move its vacuum axis); replicas 1, 2, ... take the
    other starts in turn (the seed crystals again when there are none).
    Trajectory ``i`` gets the random seed ``SeedSequence([settings.seed, generation, i])``.
    """
    plan = []
    n_seeds = max(1, min(n_seeds, len(starts)))
    seeds = starts[:n_seeds]
    slab = [is_slab(atoms) for _label, atoms in seeds]
    others = starts[n_seeds:] or seeds
    k = 0
    i = 0

    def add(condition: MDCondition, label: str, atoms: Atoms) -> None:
        nonlocal i
        seq = np.random.SeedSequence([settings.seed & 0xFFFFFFFF, generation, i])
        plan.append((condition, label, atoms, int(seq.generate_state(1, dtype=np.uint32)[0])))
        i += 1

    for condition in md_conditions(settings):
        for (label, atoms), is_a_slab in zip(seeds, slab, strict=True):
            if condition.ensemble == "npt" and is_a_slab:
                continue
            add(condition, label, atoms)
        for _replica in range(1, settings.trajectories_per_condition):
            label, atoms = others[k % len(others)]
            k += 1
            add(condition, label, atoms)
    return plan


def _parent_id(atoms: Atoms) -> int | None:
    start = atoms.info.get("md_start")
    if isinstance(start, (int, np.integer)) and int(start) >= 1:
        return int(start)
    if isinstance(start, str) and start.isdigit() and int(start) >= 1:
        return int(start)
    return None


def candidate_metadata(atoms: Atoms, generation: int) -> StructureMetadata:
    """Where a selected candidate came from: "md_halt" for halting frames and their copies, "md_blowup" for frames
    leading into a blow-up, else active_learning_iter_<g>; its parent is the database id the trajectory started
    from (none for a seed crystal)."""
    given = atoms.info.get("source")
    source = given if given in (SOURCE_HALT, SOURCE_BLOWUP) else sampled_source(generation)
    return StructureMetadata(source=source, generation=generation, parent_id=_parent_id(atoms))
