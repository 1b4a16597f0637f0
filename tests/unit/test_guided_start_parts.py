"""The guided cold start's parts without the model: its config fields, the jobs it plans, screening, farthest
points and the selection (pyace's basis, no fit)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from pydantic import ValidationError

from mlip_autopipec.config.schemas.foundation import FoundationModelConfig
from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.config.schemas.training import TrainingConfig
from mlip_autopipec.explore.diversity import (
    choose,
    farthest_points,
    shortest_contacts,
    structure_descriptors,
    write_basis,
)
from mlip_autopipec.explore.screening import KEPT, distance_floor, screen, shortest_distance
from mlip_autopipec.explore.teacher import exploration_settings, teacher_jobs
from mlip_autopipec.pipeline.guided_start import guided
from mlip_autopipec.pipeline.state import section_fingerprints

SLAB_SEED = {
    "name": "Cu_111",
    "element": "Cu",
    "lattice": "fcc",
    "a": 3.61,
    "repeat": [2, 2, 1],
    "surface": {"miller": [1, 1, 1], "layers": 3, "vacuum": 6.0, "n_adatoms": 1},
}


def config(**over) -> PipelineConfig:
    data = {
        "seeds": [{"name": "Cu", "element": "Cu", "lattice": "fcc", "a": 3.61, "cubic": True}, SLAB_SEED],
        "generator": {"pool_size": 10, "seed": 2},
        "foundation_model": {"name": "chgnet", "explore": True, "md_steps": 10, "md_frames": 2},
    }
    data.update(over)
    return PipelineConfig.model_validate(data)


def test_the_section_defaults_and_checks():
    fm = FoundationModelConfig(name="chgnet")
    assert (fm.explore, fm.selection, fm.max_force, fm.min_distance, fm.min_distance_fraction) == (
        False,
        "pace_select",
        20.0,
        None,
        0.75,
    )
    assert (
        fm.n_generator_candidates(50) == 150
        and FoundationModelConfig(name="chgnet", generator_candidates=7).n_generator_candidates(50) == 7
    )
    with pytest.raises(ValidationError, match=r"md_frames \(5\) cannot exceed md_steps \(3\)"):
        FoundationModelConfig(name="chgnet", md_steps=3, md_frames=5)
    with pytest.raises(ValidationError, match="selection"):
        FoundationModelConfig(name="chgnet", selection="random")
    FoundationModelConfig(name="chgnet", md_steps=0, md_frames=5)  # no MD: the frames do not matter


def test_a_model_that_does_not_explore_leaves_the_run_and_its_data_fingerprint_as_without_one():
    plain = config(foundation_model=None)
    quiet = config(foundation_model={"name": "chgnet", "explore": False})
    assert not guided(plain) and not guided(quiet) and guided(config())
    assert section_fingerprints(plain)["foundation_model"] == section_fingerprints(quiet)["foundation_model"]
    on = section_fingerprints(config())["foundation_model"]
    assert on != section_fingerprints(plain)["foundation_model"]
    threads = config(foundation_model={"name": "chgnet", "explore": True, "md_steps": 10, "md_frames": 2, "threads": 2})
    assert section_fingerprints(threads)["foundation_model"] == on


def test_the_jobs_cover_every_seed_and_condition_and_slabs_run_nvt_only():
    cfg = config(
        foundation_model={"name": "chgnet", "explore": True, "md_steps": 10, "md_frames": 2, "md_trajectories": 2}
    )
    jobs = teacher_jobs(cfg)
    gen = [j for j in jobs if j.kind == "single_points"]
    assert sum(len(j.structures) for j in gen) == 30  # 3 x pool_size, over both seeds
    assert {a.info["seed"] for j in gen for a in j.structures} == {"Cu", "Cu_111"}
    md = [j for j in jobs if j.kind == "md"]
    bulk_md = [j for j in md if j.key.startswith("md:Cu:")]
    slab_md = [j for j in md if j.key.startswith("md:Cu_111:")]
    # no active_learning section: NVT and NPT (0 GPa) at 300 and 900 K, twice each
    assert sorted(j.condition.label for j in bulk_md) == sorted(
        ["nvt_300K", "nvt_900K", "npt_300K_0GPa", "npt_900K_0GPa"] * 2
    )
    assert sorted(j.condition.label for j in slab_md) == sorted(["nvt_300K", "nvt_900K"] * 2)
    assert {len(j.structures[0]) for j in slab_md} == {12, 13}  # the slab and its adatom variant take turns
    assert len({j.key for j in jobs}) == len(jobs) and len({j.seed for j in md}) == len(md)
    again = teacher_jobs(cfg)
    assert [(j.key, j.seed) for j in again] == [(j.key, j.seed) for j in jobs]
    assert all(
        np.allclose(a.positions, b.positions)
        for j, k in zip(jobs, again, strict=True)
        for a, b in zip(j.structures, k.structures, strict=True)
    )


def test_the_md_takes_active_learnings_conditions_and_none_without_steps():
    cfg = config(
        active_learning={"temperatures": [500], "ensembles": ["npt"], "pressures": [1.0, 2.0], "timestep": 1.0}
    )
    settings = exploration_settings(cfg)
    assert (settings.n_steps, settings.timestep, settings.blowup_candidates) == (10, 1.0, 0)
    md = [j for j in teacher_jobs(cfg) if j.kind == "md"]
    assert sorted(j.condition.label for j in md) == ["npt_500K_1GPa", "npt_500K_2GPa", "nvt_500K"]
    no_md = config(foundation_model={"name": "chgnet", "explore": True, "md_steps": 0})
    assert {j.kind for j in teacher_jobs(no_md)} == {"single_points"}


def test_screening_drops_unphysical_forces_and_distances():
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    nn = shortest_distance(atoms)
    assert nn == pytest.approx(3.61 / np.sqrt(2))
    fm = FoundationModelConfig(name="chgnet")
    assert distance_floor(fm, nn) == pytest.approx(0.75 * nn)
    assert distance_floor(FoundationModelConfig(name="chgnet", min_distance=1.5), nn) == 1.5
    zero = np.zeros((4, 3))
    assert screen(atoms, zero, 20.0, 1.9) == KEPT
    hot = zero.copy()
    hot[2, 1] = -25.0
    assert screen(atoms, hot, 20.0, 1.9) == "teacher force 25 eV/Å above max_force 20 eV/Å"
    assert screen(atoms, zero * np.nan, 20.0, 1.9) == "non-finite teacher forces"
    squeezed = atoms.copy()
    squeezed.positions[1] = squeezed.positions[0] + [1.2, 0.0, 0.0]
    assert screen(squeezed, zero, 20.0, 1.9) == "atoms 1.20 Å apart, below 1.90 Å"


def test_farthest_points_spread_over_the_space():
    x = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 0.0], [0.0, 5.0], [5.0, 5.0], [2.5, 2.5], [2.6, 2.5]])
    picked = farthest_points(x, 5)
    assert picked[0] in (5, 6)  # the one nearest the centre first
    assert set(picked[1:5]) == {0, 2, 3, 4} or set(picked[1:5]) == {1, 2, 3, 4}
    assert farthest_points(x, 2, chosen=[5]) != [] and 5 not in farthest_points(x, 3, chosen=[5])
    assert sorted(farthest_points(x, 50)) == list(range(7))
    assert farthest_points(x, 50, chosen=[0, 1]) == [i for i in farthest_points(x, 50, chosen=[0, 1]) if i > 1]


def cu_structures(n: int) -> list:
    out = []
    for i in range(n):
        atoms = bulk("Cu", "fcc", a=3.61 * (0.97 + 0.003 * i), cubic=True)
        atoms.rattle(0.02 * (i % 4), seed=i)
        out.append(atoms)
    return out


def test_descriptors_and_both_selections_in_the_training_basis(tmp_path: Path):
    training = TrainingConfig(
        cutoff=4.5, number_of_functions_per_element=10, nradmax_by_orders=[6, 3], lmax_by_orders=[0, 2]
    )
    structures = cu_structures(16)
    basis = write_basis(training, ["Cu"], tmp_path / "b" / "basis.yaml")
    x = structure_descriptors(structures, basis)
    assert x.shape == (16, 1 + 2 * 10) and np.allclose(x[:, 0], 1.0)
    assert np.allclose(x[0, 11:], 0.0, atol=1e-6)  # a perfect crystal: all its atoms alike
    for method in ("fps", "pace_select"):
        picked = choose(structures, 6, method, training, tmp_path / method)
        assert len(picked) == 6 and len(set(picked)) == 6, (method, picked)
    assert choose(structures, 16, "fps", training, tmp_path / "all") == list(range(16))


def test_the_shortest_contact_of_each_pair_is_always_chosen(tmp_path: Path):
    """pacemaker's repulsion: auto puts its ZBL core below the data's shortest distance per pair: a pool without
    the candidates' shortest contacts puts that wall inside the range MD visits."""
    structures = cu_structures(16)
    squeezed = structures[9]
    squeezed.positions[1] = squeezed.positions[0] + 0.8 * (squeezed.positions[1] - squeezed.positions[0])
    assert shortest_contacts(structures, 4.5) == [9]
    alloy = bulk("Cu", "fcc", a=3.61, cubic=True)
    alloy.symbols[[1, 2]] = "Au"
    tight = alloy.copy()
    tight.positions[3] = tight.positions[0] + 0.9 * (tight.positions[3] - tight.positions[0])  # a Cu-Cu pair
    assert shortest_contacts([alloy, tight], 4.5) == [1, 0]  # Cu-Cu, Cu-Au: tight; Au-Au: alloy (first seen)
    training = TrainingConfig(
        cutoff=4.5, number_of_functions_per_element=10, nradmax_by_orders=[6, 3], lmax_by_orders=[0, 2]
    )
    for method in ("fps", "pace_select"):
        picked = choose(structures, 3, method, training, tmp_path / method)
        assert picked[0] == 9 and len(set(picked)) == 3, (method, picked)
