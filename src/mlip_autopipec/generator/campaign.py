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
``vacuum``, ``surface_defect``), beside :class:`InitialExplorer`'s own (``operation``,
``strain``, ``defect``, ...).  The same config gives the same pool, bit for bit;
a seed's structures depend only on its own entry and the generator's random seed,
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
from typing import NamedTuple

import numpy as np
from ase import Atoms

from mlip_autopipec.config.schemas.generator import GeneratorConfig
from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.config.schemas.structure import AlloyConfig, SeedConfig, SurfaceConfig
from mlip_autopipec.exceptions import ConfigurationError, StructureError
from mlip_autopipec.generator import alloy as alloy_ops
from mlip_autopipec.generator import surface as surface_ops
from mlip_autopipec.generator.defects import supercell_repeats
from mlip_autopipec.generator.geometry import check_structure
from mlip_autopipec.generator.initial_pool import InitialExplorer
from mlip_autopipec.generator.seed import build_seed, check_overlaps
from mlip_autopipec.generator.size import check_size

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
    fields = {k: getattr(campaign, k) for k in GeneratorConfig.model_fields}  # max_atoms too (not dumped)
    try:
        return GeneratorConfig(**{**fields, **override})
    except Exception as err:
        raise ConfigurationError(f"seeds[{seed.name}].generator: {err}") from err


def _rng(rng_seed: int, name: str, stream: int) -> np.random.Generator:
    """The random stream ``stream`` of seed ``name``, from the generator's random seed ``rng_seed``."""
    return np.random.default_rng(
        np.random.SeedSequence([int(rng_seed) & 0xFFFFFFFF, zlib.crc32(name.encode()), stream])
    )


def seed_variants(seed: SeedConfig, rng_seed: int = 0) -> list[Atoms]:
    """The structures a seed's share is drawn from: the seed itself, or its alloy occupations and/or slab variants.

    ``rng_seed`` is the generator's random seed (``generator.seed``), which draws the alloy occupations,
    adatoms and surface vacancies.  Each variant is checked: storable, and no two atoms overlap.
    """
    variants = _made_variants(seed, rng_seed)
    _check_overlaps(seed, variants)
    return variants


def _made_variants(seed: SeedConfig, rng_seed: int) -> list[Atoms]:
    """:func:`seed_variants` before the overlap check (which takes seconds for tens of thousands of atoms)."""
    name = str(seed.name)
    where = f"seed {name!r}"
    try:
        crystal = build_seed(seed.model_copy(update={"repeat": (1, 1, 1)}) if seed.surface is not None else seed)
    except StructureError as err:
        raise StructureError(f"{where}: {err}") from err
    crystal.info["seed"] = name
    rng = _rng(rng_seed, name, 0)
    variants: list[Atoms] = []
    for parent, fractions in _alloy_parents(crystal, seed.alloy):
        if seed.surface is not None:
            sf = seed.surface
            parent = surface_ops.cut_slab(parent, sf.miller, sf.layers, sf.vacuum, seed.repeat[:2])
        for _ in range(1 if fractions is None or seed.alloy is None else seed.alloy.n_occupations):
            if fractions is None or seed.alloy is None:
                base = parent.copy()
            else:
                base = alloy_ops.random_occupation(parent, fractions, rng, seed.alloy.sublattice, where)
                base.info["alloy_fractions"] = {k: float(v) for k, v in fractions.items()}
            variants.extend(_surface_variants(seed.surface, base, rng, where) if seed.surface is not None else [base])
    for v in variants:
        v.info["seed"] = name
        v.info["composition"] = v.get_chemical_formula()
        if seed.surface is not None:
            v.info.setdefault("surface_defect", "none")
        check_structure(v, where)
    return variants


def _check_overlaps(seed: SeedConfig, variants: list[Atoms]) -> None:
    for v in variants:
        check_overlaps(v, f"seed {seed.name!r} ({v.get_chemical_formula()})")


def _alloy_parents(crystal: Atoms, alloy: AlloyConfig | None) -> list[tuple[Atoms, dict[str, float] | None]]:
    """The crystal as it is (no alloy), or one parent per alloy composition (its cell scaled by Vegard's law)."""
    if alloy is None:
        return [(crystal, None)]
    parents: list[tuple[Atoms, dict[str, float] | None]] = []
    for fractions in alloy.compositions:
        parent = crystal.copy()
        if alloy.volume == "vegard":
            s = alloy_ops.vegard_scale(parent, fractions, alloy.sublattice)
            parent.set_cell(parent.cell * s, scale_atoms=True)
        parents.append((parent, fractions))
    return parents


def _surface_variants(sf: SurfaceConfig, slab: Atoms, rng: np.random.Generator, where: str) -> list[Atoms]:
    out = [slab]
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


def _sizes(variants: list[Atoms], gen: GeneratorConfig) -> list[tuple[int, str]]:
    """The atoms of each kind of structure drawn from ``variants``, and what it is: the variants, then their
    defect supercells (with room for an interstitial)."""
    sizes = [(len(v), v.get_chemical_formula()) for v in variants]
    if gen.n_defect_structures:
        for v in variants:
            n = len(v) * int(np.prod(supercell_repeats(v, gen.defect_supercell_min_width))) + 1
            sizes.append((n, f"the defect supercell of {v.get_chemical_formula()}"))
    return sizes


def _check_sizes(sizes: list[tuple[int, str]], max_atoms: int, in_pool: int, name: str | None) -> None:
    """Refuse the first structure above ``max_atoms`` (a variant before its supercell)."""
    for n, what in sizes:
        check_size(n, max_atoms, in_pool, f"seed {name!r}: {what}")


class _Planned(NamedTuple):
    """A seed on its way into the pool: its share, its generator settings and its variants."""

    seed: SeedConfig
    share: int
    gen: GeneratorConfig
    variants: list[Atoms]


def check_seeds(config: PipelineConfig) -> list[str]:
    """Build every seed's variants once (no strain, no oracle): one line per seed for the preflight, or an error.

    A structure above ``generator.max_atoms`` (a variant or its defect supercell) is refused, before the
    overlap checks, with an estimate of the whole pool's memory.
    """
    shares = seed_shares([s.weight for s in config.seeds], config.generator.pool_size)
    planned = []
    for seed, share in zip(config.seeds, shares, strict=True):
        gen = seed_generator_config(seed, config.generator)
        planned.append(_Planned(seed, share, gen, _made_variants(seed, gen.seed)))
    sizes = [_sizes(p.variants, p.gen) for p in planned]
    in_pool = sum(p.share * max(s)[0] for p, s in zip(planned, sizes, strict=True))  # an upper bound
    for p, s in zip(planned, sizes, strict=True):
        _check_sizes(s, p.gen.max_atoms, in_pool, p.seed.name)
    notes = []
    for seed, share, gen, variants in planned:
        _check_overlaps(seed, variants)
        if (
            "antisite" in gen.defect_kinds
            and gen.n_defect_structures
            and any(len(set(v.numbers)) < 2 for v in variants)
        ):
            raise ConfigurationError(
                f"seed {seed.name}: antisite defects need two or more species, but a variant has one"
            )
        kinds = sorted({v.get_chemical_formula() for v in variants})
        slab = " slab" if seed.surface is not None else ""
        notes.append(
            f"seed {seed.name}: {share} structure(s) from {len(variants)}{slab} variant(s) {', '.join(kinds[:6])}"
            f"{' ...' if len(kinds) > 6 else ''}; {min(gen.n_defect_structures, share)} point defect(s)"
        )
    return notes


def build_pool(config: PipelineConfig, n: int | None = None, progress: ProgressCallback | None = None) -> list[Atoms]:
    """The campaign's starting pool: ``n`` structures (default ``generator.pool_size``) over all seeds.

    Raises :class:`StructureError` or :class:`ConfigurationError` naming the seed that failed.
    """
    n = config.generator.pool_size if n is None else int(n)
    shares = seed_shares([s.weight for s in config.seeds], n)
    pool: list[Atoms] = []
    for seed, share in zip(config.seeds, shares, strict=True):
        name = str(seed.name)
        gen = seed_generator_config(seed, config.generator)
        variants = _made_variants(seed, gen.seed)
        sizes = _sizes(variants, gen)
        _check_sizes(sizes, gen.max_atoms, share * max(sizes)[0], name)
        _check_overlaps(seed, variants)
        counts = (
            seed_shares([1.0] * len(variants), share)
            if share >= len(variants)
            else [1] * share + [0] * (len(variants) - share)
        )
        n_defects = min(gen.n_defect_structures, share)
        defects = _split(n_defects, counts)
        for v_index, (variant, count, n_def) in enumerate(zip(variants, counts, defects, strict=True)):
            if count == 0:
                continue
            stream_rng_seed = int(_rng(gen.seed, name, 1 + v_index).integers(2**31))
            vgen = gen.model_copy(update={"seed": stream_rng_seed, "n_defect_structures": n_def})
            try:
                part = InitialExplorer(vgen).generate(variant, count)
            except (StructureError, ConfigurationError) as err:
                raise type(err)(f"seed {name!r} ({variant.get_chemical_formula()}): {err}") from err
            for atoms in part:
                atoms.info["seed"] = name
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
