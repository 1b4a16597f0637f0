"""Several seeds in one campaign: the config recipe, the pool built in one call, alloys, surfaces, provenance."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.data import covalent_radii
from ase.neighborlist import neighbor_list
from pydantic import ValidationError

from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.config.schemas.structure import SeedConfig
from mlip_autopipec.database import DatabaseManager, StructureMetadata
from mlip_autopipec.exceptions import ConfigurationError, StructureError
from mlip_autopipec.generator import alloy as alloy_ops
from mlip_autopipec.generator import surface as surface_ops
from mlip_autopipec.generator.campaign import build_pool, check_seeds, seed_generator_config, seed_shares, seed_variants

EXAMPLE_CIF = Path(__file__).resolve().parents[2] / "examples" / "cuau" / "Cu3Au_L12.cif"

CUAU = {
    "generator": {"pool_size": 40, "seed": 7, "defect_supercell_min_width": 7.0},
    "seeds": [
        {"name": "Cu", "element": "Cu", "lattice": "fcc", "cubic": True, "repeat": [2, 2, 2]},
        {
            "name": "Cu3Au",
            "file": str(EXAMPLE_CIF),
            "repeat": [2, 2, 2],
            "generator": {"n_defect_structures": 2, "defect_kinds": ["antisite"]},
        },
        {
            "name": "CuAu_random",
            "element": "Cu",
            "lattice": "fcc",
            "cubic": True,
            "repeat": [2, 2, 2],
            "weight": 2,
            "alloy": {"compositions": [{"Cu": 0.75, "Au": 0.25}, {"Cu": 0.5, "Au": 0.5}], "n_occupations": 2},
        },
        {
            "name": "Cu111",
            "element": "Cu",
            "lattice": "fcc",
            "a": 3.61,
            "repeat": [2, 2, 1],
            "surface": {"miller": [1, 1, 1], "layers": 4, "vacuum": 6.0, "n_adatoms": 1, "n_vacancies": 1},
        },
    ],
}


@pytest.fixture(scope="module")
def cuau_pool():
    config = PipelineConfig(**CUAU)
    return config, build_pool(config)


def test_structure_becomes_one_seed():
    config = PipelineConfig(structure={"element": "Cu", "lattice": "fcc", "cubic": True})
    assert len(config.seeds) == 1 and config.seeds[0].name == "Cu_fcc" and config.seeds[0].weight == 1.0
    assert config.structure is not None
    pool = build_pool(config, 6)
    assert len(pool) == 6 and {a.info["seed"] for a in pool} == {"Cu_fcc"}


def test_seeds_config_is_checked():
    with pytest.raises(ValidationError, match="not both"):
        PipelineConfig(structure={"element": "Cu"}, seeds=[{"element": "Au"}])
    with pytest.raises(ValidationError, match="needs `seeds`"):
        PipelineConfig()
    with pytest.raises(ValidationError, match="seed names must differ"):
        PipelineConfig(seeds=[{"element": "Cu"}, {"element": "Cu", "a": 3.7}])
    with pytest.raises(ValidationError, match="sum to 0.9"):
        SeedConfig(element="Cu", alloy={"compositions": [{"Cu": 0.5, "Au": 0.4}]})
    with pytest.raises(ValidationError, match="third entry must be 1"):
        SeedConfig(element="Cu", repeat=(1, 1, 2), surface={"miller": [1, 1, 1]})
    with pytest.raises(ValidationError, match="extra"):
        SeedConfig(element="Cu", wieght=2)
    assert SeedConfig(element="Cu", surface={"miller": [1, 0, 0]}).name == "Cu_ref_100"
    assert SeedConfig(file=EXAMPLE_CIF).name == "Cu3Au_L12"


def test_shares_follow_the_weights():
    assert seed_shares([1, 1, 2], 40) == [10, 10, 20]
    assert sum(seed_shares([1, 3, 0.5], 17)) == 17
    assert min(seed_shares([100, 1], 5)) == 1  # every seed is represented
    with pytest.raises(ConfigurationError, match="smaller than the number of seeds"):
        seed_shares([1, 1, 1], 2)


def test_seed_generator_fields_replace_the_campaigns():
    config = PipelineConfig(**CUAU)
    gen = seed_generator_config(config.seeds[1], config.generator)
    assert gen.defect_kinds == ["antisite"] and gen.n_defect_structures == 2
    assert gen.seed == 7 and gen.defect_supercell_min_width == 7.0  # the campaign's, not the defaults
    assert seed_generator_config(config.seeds[0], config.generator) is config.generator


def test_pool_covers_every_seed_with_its_share_and_provenance(cuau_pool):
    config, pool = cuau_pool
    assert len(pool) == 40
    counts = Counter(a.info["seed"] for a in pool)
    assert counts == {"Cu": 8, "Cu3Au": 8, "CuAu_random": 16, "Cu111": 8}
    assert [a.info["pool_index"] for a in pool] == list(range(40))
    for atoms in pool:
        if atoms.info["operation"] != "defect":  # a defect changes the formula; composition is the variant's
            assert atoms.info["composition"] == atoms.get_chemical_formula()
    # ordered phase: antisite swaps keep its composition
    antisites = [a for a in pool if a.info["seed"] == "Cu3Au" and a.info.get("defect") == "antisite"]
    assert len(antisites) == 2 and all(a.get_chemical_formula() in ("Au8Cu24", "Au64Cu192") for a in antisites)


def test_random_alloys_have_exact_compositions_and_vegard_cells(cuau_pool):
    _, pool = cuau_pool
    alloys = [a for a in pool if a.info["seed"] == "CuAu_random" and a.info["operation"] != "defect"]
    formulas = Counter(a.get_chemical_formula() for a in alloys)
    assert set(formulas) == {"Au8Cu24", "Au16Cu16"}
    assert {tuple(sorted(a.info["alloy_fractions"].items())) for a in alloys} == {
        (("Au", 0.25), ("Cu", 0.75)),
        (("Au", 0.5), ("Cu", 0.5)),
    }
    # two different random occupations per composition
    au16 = [a for a in alloys if a.get_chemical_formula() == "Au16Cu16"]
    assert len({a.info["variant"] for a in au16}) == 2
    # Vegard: the Cu50Au50 cell lies between fcc Cu and fcc Au (per atom), not on Cu's lattice
    v_cu, v_au = alloy_ops.atomic_volume("Cu"), alloy_ops.atomic_volume("Au")
    v = np.mean([a.get_volume() / len(a) / a.info["volume_ratio"] for a in au16])
    assert v == pytest.approx(0.5 * (v_cu + v_au), rel=1e-6)


def test_slabs_keep_their_vacuum_axis_and_carry_surface_provenance(cuau_pool):
    _, pool = cuau_pool
    slabs = [a for a in pool if a.info["seed"] == "Cu111"]
    assert len(slabs) == 8
    assert all(list(a.pbc) == [True, True, False] for a in slabs)
    assert all(a.info["miller"] == [1, 1, 1] and a.info["layers"] == 4 for a in slabs)
    assert {a.info["surface_defect"] for a in slabs} == {"none", "adatom", "vacancy"}
    ref_c = seed_variants(PipelineConfig(**CUAU).seeds[3])[0].cell[2]
    assert all(np.allclose(a.cell[2], ref_c) for a in slabs)  # strain only in-plane
    sizes = {a.info["surface_defect"]: len(a) for a in slabs}
    assert sizes["adatom"] == sizes["none"] + 1 == sizes["vacancy"] + 2


def test_every_structure_passes_the_distance_guard(cuau_pool):
    _, pool = cuau_pool
    assert len(pool) == 40
    for atoms in pool:
        i, j, d = neighbor_list("ijd", atoms, 3.0)
        assert len(d) > 0, atoms.info  # every structure has neighbours within 3 Å: the check below looks at pairs
        limit = 0.5 * (covalent_radii[atoms.numbers[i]] + covalent_radii[atoms.numbers[j]])
        assert (d >= limit).all(), atoms.info


def test_pool_is_reproducible_and_independent_of_seed_order(cuau_pool):
    config, pool = cuau_pool
    again = build_pool(config)
    assert len(again) == len(pool) == 40
    assert all(
        np.array_equal(a.positions, b.positions) and np.array_equal(a.numbers, b.numbers)
        for a, b in zip(pool, again, strict=True)
    )
    reordered = PipelineConfig(**{**CUAU, "seeds": CUAU["seeds"][::-1]})
    by_seed = {s: [a for a in build_pool(reordered) if a.info["seed"] == s] for s in ("Cu", "Cu111")}
    for s, members in by_seed.items():
        mine = [a for a in pool if a.info["seed"] == s]
        assert len(mine) == len(members) == 8
        assert all(np.array_equal(a.positions, b.positions) for a, b in zip(mine, members, strict=True))


def test_the_pool_is_storable_in_the_database(cuau_pool, tmp_path):
    _, pool = cuau_pool
    with DatabaseManager(tmp_path / "pool.db") as db:
        ids = db.add_structures(pool, StructureMetadata(source="initial_random"))
        assert len(set(ids)) == len(pool)
        _, meta = db.get(ids[-1])
        assert meta.provenance["seed"] == pool[-1].info["seed"]


def test_check_seeds_reports_each_seed_and_names_a_bad_one(tmp_path):
    notes = check_seeds(PipelineConfig(**CUAU))
    assert len(notes) == 4 and notes[2].startswith("seed CuAu_random: 16 structure(s) from 4 variant(s)")
    bad = tmp_path / "bad.xyz"
    bad.write_text("2\n\nCu 0 0 0\nCu 0 0 0.1\n")
    with pytest.raises(StructureError, match=r"seed 'bad'.*bad\.xyz"):
        check_seeds(PipelineConfig(seeds=[{"file": str(bad)}]))
    unary_antisite = PipelineConfig(
        seeds=[{"element": "Cu", "generator": {"n_defect_structures": 1, "defect_kinds": ["antisite"]}}]
    )
    with pytest.raises(ConfigurationError, match="seed Cu_ref: antisite"):
        check_seeds(unary_antisite)


def test_surface_operations():
    rng = np.random.default_rng(0)
    slab = surface_ops.cut_slab(bulk("Pt", "fcc", a=3.92), (1, 1, 1), 3, 5.0, (2, 2))
    assert list(slab.pbc) == [True, True, False] and len(slab) == 12
    top = surface_ops.top_layer(slab)
    assert len(top) == 4
    ad = surface_ops.add_adatoms(slab, "Au", 1, rng)
    d = ad.get_distances(len(ad) - 1, list(range(len(ad) - 1)), mic=True).min()
    assert d >= 0.99 * (covalent_radii[78] + covalent_radii[79]) and d < 3.2
    vac = surface_ops.remove_top_atoms(slab, 1, rng)
    assert len(vac) == 11 and len(surface_ops.top_layer(vac)) == 3
    with pytest.raises(StructureError, match="top layer of 4"):
        surface_ops.remove_top_atoms(slab, 4, rng)


def test_random_occupation_on_a_sublattice():
    nacl = bulk("NaCl", "rocksalt", a=5.64, cubic=True).repeat((2, 1, 1))
    out = alloy_ops.random_occupation(nacl, {"Cl": 0.5, "Br": 0.5}, np.random.default_rng(1), ["Cl"])
    assert out.get_chemical_formula() == "Br4Cl4Na8"
    assert (out.numbers[nacl.numbers == 11] == 11).all()
    assert alloy_ops.site_counts(10, {"Cu": 0.75, "Au": 0.25}) in ({"Au": 3, "Cu": 7}, {"Au": 2, "Cu": 8})
    assert alloy_ops.vegard_scale(nacl, {"Cl": 1.0}, ["Cl"]) == pytest.approx(1.0)
    with pytest.raises(StructureError, match="no sites"):
        alloy_ops.random_occupation(nacl, {"K": 1.0}, np.random.default_rng(1), ["K"])


def test_a_seed_above_max_atoms_is_refused_with_its_size_and_a_memory_estimate():
    """Row 9 of issue 22: `repeat: [20, 20, 20]` (32,000 atoms) was valid and took ~15 GB in the generate step."""
    config = PipelineConfig(
        structure={"element": "Cu", "cubic": True, "repeat": [20, 20, 20]}, generator={"pool_size": 30}
    )
    with pytest.raises(ConfigurationError) as err:
        check_seeds(config)
    message = str(err.value)
    assert message.startswith("seed 'Cu_ref': Cu32000 has 32000 atoms, more than generator.max_atoms (2000)")
    assert (
        "roughly 480.0 MB of memory" in message and "(an estimate: about 500 bytes per atom, 960000 atoms)" in message
    )
    with pytest.raises(ConfigurationError, match=r"seed 'Cu_ref': Cu32000 has 32000 atoms, more than"):
        build_pool(config)  # `generate` and the run refuse it too, before drawing anything
    small = {"structure": {"element": "Cu", "cubic": True, "repeat": [2, 2, 2]}}  # 32 atoms
    assert check_seeds(PipelineConfig(**small, generator={"pool_size": 4, "max_atoms": 32}))
    with pytest.raises(ConfigurationError, match=r"Cu32 has 32 atoms, more than generator.max_atoms \(31\)"):
        check_seeds(PipelineConfig(**small, generator={"pool_size": 4, "max_atoms": 31}))


def test_a_defect_supercell_above_max_atoms_is_refused():
    config = PipelineConfig(
        structure={"element": "Cu", "cubic": True},
        generator={"pool_size": 10, "n_defect_structures": 2, "defect_supercell_min_width": 30.0, "max_atoms": 500},
    )
    # 3.6 Å cubic cell: 9 × 9 × 9 repeats of 4 atoms, + 1 for an interstitial
    with pytest.raises(ConfigurationError, match=r"the defect supercell of Cu4 has 2917 atoms, more than .* \(500\)"):
        check_seeds(config)


def test_max_atoms_is_a_guard_left_out_of_dumps_and_fingerprints():
    """A guard, not a recipe: adding it must not change the generator's or the seeds' fingerprints."""
    config = PipelineConfig(**{**CUAU, "generator": {**CUAU["generator"], "max_atoms": 20}})
    assert "max_atoms" not in config.model_dump()["generator"]
    assert all("max_atoms" not in (s["generator"] or {}) for s in config.model_dump()["seeds"])
    # a seed's own generator settings keep the campaign's guard
    assert seed_generator_config(config.seeds[1], config.generator).max_atoms == 20
    with pytest.raises(ConfigurationError, match=r"seed 'Cu': Cu32 has 32 atoms, more than generator.max_atoms \(20\)"):
        check_seeds(config)
