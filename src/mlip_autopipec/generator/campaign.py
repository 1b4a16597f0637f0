"""The whole starting pool of a campaign, from its config, in one call: :func:`build_pool`.

The recipe lives in the config (``seeds:``, or the one-seed ``structure:``).
For each seed:

1. its structure is built (a checked, storable file or ``ase.build.bulk``);
2. its *variants* are made: random alloy occupations (``alloy``: each
   composition × ``n_occupations``, the cell scaled by Vegard's law), a slab
   cut from it (``surface``, plus an adatom and a vacancy variant when asked);
   a plain seed is its own single variant;
3. the seed's share of the pool (``weight``) is split evenly over its
   variants, and each variant goes through :class:`InitialExplorer` with the
   seed's generator settings (equation-of-state points, strain, rattle, point
   defects), under the same distance guard.

Every structure carries ``info['seed']`` (the seed's name) and its variant's
provenance (``composition``, ``alloy_fractions``, ``miller``, ``layers``,
``vacuum``, ``surface_defect``), beside the explorer's own (``operation``,
``strain``, ``defect``, ...).  The same config gives the same pool, bit for bit;
a seed's structures depend only on its own entry and the generator's seed,
not on the order of the seeds.

Example::

    from mlip_autopipec.config.loader import load_config
    from mlip_autopipec.generator.campaign import build_pool

    pool = build_pool(load_config("examples/cuau_emt.yaml"))
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from mlip_autopipec.config.schemas.generator import GeneratorConfig
from mlip_autopipec.config.schemas.structure import SeedConfig
from mlip_autopipec.exceptions import ConfigurationError, StructureError
from mlip_autopipec.generator import alloy as alloy_ops
from mlip_autopipec.generator import surface as surface_ops
from mlip_autopipec.generator.explorer import InitialExplorer
from mlip_autopipec.generator.geometry import check_structure
from mlip_autopipec.generator.seed import build_seed, check_overlaps

__all__ = ["SeedPlan", "build_pool", "check_seeds", "seed_generator_config", "seed_shares", "seed_variants"]

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class SeedPlan:
    """One seed's part of the pool: its name, how many structures, and from which variants."""

    name: str
    count: int
    variants: tuple[str, ...]  # each variant's formula


def seed_shares(weights: list[float], n: int) -> list[int]:
    """Split ``n`` structures over seeds by weight (largest remainder); every seed gets at least one."""
    k = len(weights)
    if n < k:
        raise ConfigurationError(
            f"generator.pool_size ({n}) is smaller than the number of seeds ({k}): every seed needs a structure"
        )
    w = np.asarray(weights, dtype=float)
    exact = 1 + (n - k) * w / w.sum()
    counts = np.floor(exact).astype(int)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: n - counts.sum()]] += 1
    return [int(c) for c in counts]


def seed_generator_config(seed: SeedConfig, campaign: GeneratorConfig) -> GeneratorConfig:
    """The campaign's generator settings with the fields the seed sets replaced (validated again)."""
    if seed.generator is None:
        return campaign
    override = {k: getattr(seed.generator, k) for k in seed.generator.model_fields_set if k != "pool_size"}
    try:
        return GeneratorConfig(**{**campaign.model_dump(), **override})
    except Exception as err:
        raise ConfigurationError(f"seeds[{seed.name}].generator: {err}") from err


def _rng(campaign_seed: int, name: str, stream: int) -> np.random.Generator:
    return np.random.default_rng(
        np.random.SeedSequence([int(campaign_seed) & 0xFFFFFFFF, zlib.crc32(name.encode()), stream])
    )


def seed_variants(seed: SeedConfig, campaign_seed: int = 0) -> list[Atoms]:
    """The structures a seed's share is drawn from: the seed itself, or its alloy occupations and/or slab variants."""
    where = f"seed {seed.name!r}"
    try:
        crystal = build_seed(seed.model_copy(update={"repeat": (1, 1, 1)}) if seed.surface is not None else seed)
    except StructureError as err:
        raise StructureError(f"{where}: {err}") from err
    crystal.info["seed"] = seed.name
    rng = _rng(campaign_seed, seed.name, 0)
    bases: list[tuple[Atoms, dict | None]] = []
    if seed.alloy is None:
        bases.append((crystal, None))
    else:
        for fractions in seed.alloy.compositions:
            parent = crystal.copy()
            if seed.alloy.volume == "vegard":
                s = alloy_ops.vegard_scale(parent, fractions, seed.alloy.sublattice)
                parent.set_cell(parent.cell * s, scale_atoms=True)
            bases.append((parent, fractions))
    variants: list[Atoms] = []
    for parent, fractions in bases:
        if seed.surface is not None:
            sf = seed.surface
            parent = surface_ops.cut_slab(parent, sf.miller, sf.layers, sf.vacuum, seed.repeat[:2])
        n_occ = 1 if fractions is None else seed.alloy.n_occupations
        for _ in range(n_occ):
            if fractions is None:
                base = parent.copy()
            else:
                base = alloy_ops.random_occupation(parent, fractions, rng, seed.alloy.sublattice, where)
                base.info["alloy_fractions"] = {k: float(v) for k, v in fractions.items()}
            variants.extend(_surface_variants(seed, base, rng) if seed.surface is not None else [base])
    for v in variants:
        v.info["seed"] = seed.name
        v.info["composition"] = v.get_chemical_formula()
        if seed.surface is not None:
            v.info.setdefault("surface_defect", "none")
        check_structure(v, where)
        check_overlaps(v, f"{where} ({v.get_chemical_formula()})")
    return variants


def _surface_variants(seed: SeedConfig, slab: Atoms, rng: np.random.Generator) -> list[Atoms]:
    sf = seed.surface
    out = [slab]
    where = f"seed {seed.name!r}"
    try:
        if sf.n_adatoms:
            element = sf.adatom_element or _most_common(slab)
            out.append(surface_ops.add_adatoms(slab, element, sf.n_adatoms, rng))
        if sf.n_vacancies:
            out.append(surface_ops.remove_top_atoms(slab, sf.n_vacancies, rng))
    except StructureError as err:
        raise StructureError(f"{where}: {err}") from err
    return out


def _most_common(atoms: Atoms) -> str:
    symbols, counts = np.unique(atoms.get_chemical_symbols(), return_counts=True)
    return str(symbols[np.argmax(counts)])


def check_seeds(config) -> list[str]:
    """Build every seed's variants once (no strain, no oracle): one line per seed for the preflight, or an error.

    ``config`` is a :class:`PipelineConfig` (anything with ``seeds`` and ``generator``).
    """
    shares = seed_shares([s.weight for s in config.seeds], config.generator.pool_size)
    notes = []
    for seed, share in zip(config.seeds, shares):
        gen = seed_generator_config(seed, config.generator)
        variants = seed_variants(seed, gen.seed)
        kinds = sorted({v.get_chemical_formula() for v in variants})
        slab = " slab" if seed.surface is not None else ""
        notes.append(
            f"seed {seed.name}: {share} structure(s) from {len(variants)}{slab} variant(s) {', '.join(kinds[:6])}"
            f"{' ...' if len(kinds) > 6 else ''}; {min(gen.n_defect_structures, share)} point defect(s)"
        )
        if (
            "antisite" in gen.defect_kinds
            and gen.n_defect_structures
            and any(len(set(v.numbers)) < 2 for v in variants)
        ):
            raise ConfigurationError(
                f"seed {seed.name}: antisite defects need two or more species, but a variant has one"
            )
    return notes


def build_pool(config, n: int | None = None, progress: ProgressCallback | None = None) -> list[Atoms]:
    """The campaign's starting pool: ``n`` structures (default ``generator.pool_size``) over all seeds.

    ``config`` is a :class:`PipelineConfig`.  Raises :class:`StructureError` or
    :class:`ConfigurationError` naming the seed that failed.
    """
    n = config.generator.pool_size if n is None else int(n)
    shares = seed_shares([s.weight for s in config.seeds], n)
    pool: list[Atoms] = []
    for seed, share in zip(config.seeds, shares):
        gen = seed_generator_config(seed, config.generator)
        variants = seed_variants(seed, gen.seed)
        counts = (
            seed_shares([1.0] * len(variants), share)
            if share >= len(variants)
            else [1] * share + [0] * (len(variants) - share)
        )
        n_defects = min(gen.n_defect_structures, share)
        defects = _split(n_defects, counts)
        for v_index, (variant, count, n_def) in enumerate(zip(variants, counts, defects)):
            if count == 0:
                continue
            stream_seed = int(_rng(gen.seed, seed.name, 1 + v_index).integers(2**31))
            vgen = gen.model_copy(update={"seed": stream_seed, "n_defect_structures": n_def})
            try:
                part = InitialExplorer(vgen).generate(variant, count)
            except (StructureError, ConfigurationError) as err:
                raise type(err)(f"seed {seed.name!r} ({variant.get_chemical_formula()}): {err}") from err
            for atoms in part:
                atoms.info["seed"] = seed.name
                atoms.info["variant"] = v_index
                atoms.info["pool_index"] = len(pool)
                pool.append(atoms)
            if progress is not None:
                progress(len(pool), n)
    return pool


def _split(total: int, capacity: list[int]) -> list[int]:
    """Spread ``total`` over slots proportionally to ``capacity``, never above a slot's capacity."""
    cap = np.asarray(capacity)
    if total == 0 or cap.sum() == 0:
        return [0] * len(cap)
    exact = total * cap / cap.sum()
    out = np.minimum(np.floor(exact).astype(int), cap)
    order = np.argsort(-(exact - out), kind="stable")
    for i in order:
        if out.sum() >= total:
            break
        if out[i] < cap[i]:
            out[i] += 1
    return [int(x) for x in out]
