"""Pure parts of the active-learning loop: the trajectory plan, candidate provenance, the candidates file, the plot."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from mlip_autopipec.config.schemas.active_learning import ActiveLearningConfig
from mlip_autopipec.database import DatabaseManager, StructureMetadata
from mlip_autopipec.explore.loop import (
    SEED_LABEL,
    candidate_metadata,
    read_candidates,
    sampled_source,
    stored_already,
    trajectory_plan,
    write_candidates,
)
from mlip_autopipec.explore.md import MDCondition
from mlip_autopipec.report.plots import active_learning_plot


def _starts(n_db: int):
    seed = bulk("Cu", "fcc", a=3.61, cubic=True)
    return [(SEED_LABEL, seed)] + [(str(10 + i), seed.copy()) for i in range(n_db)]


def test_plan_covers_every_condition_and_replica_with_distinct_reproducible_seeds():
    cfg = ActiveLearningConfig(temperatures=[300, 900], ensembles=["nvt", "npt"], pressures=[-5, 5], trajectories_per_condition=3)
    plan = trajectory_plan(cfg, _starts(4), generation=2)
    conditions = {(c.ensemble, c.temperature, c.pressure) for c, *_ in plan}
    assert len(plan) == 6 * 3 and len(conditions) == 6  # nvt × 2 T + npt × 2 T × 2 p, three replicas each
    assert [label for _c, label, _a, _s in plan[:3]] == [SEED_LABEL, "10", "11"]  # replica 0: the seed crystal
    assert all(label == SEED_LABEL for i, (_c, label, _a, _s) in enumerate(plan) if i % 3 == 0)
    db_labels = [label for i, (_c, label, _a, _s) in enumerate(plan) if i % 3]
    assert set(db_labels) == {"10", "11", "12", "13"}  # the database starts are used in turn
    seeds = [s for *_, s in plan]
    assert len(set(seeds)) == len(seeds)
    assert seeds == [s for *_, s in trajectory_plan(cfg, _starts(4), generation=2)]
    assert set(seeds).isdisjoint(s for *_, s in trajectory_plan(cfg, _starts(4), generation=3))


def test_plan_without_database_structures_starts_everything_from_the_seed():
    cfg = ActiveLearningConfig(temperatures=[300], ensembles=["nvt"], trajectories_per_condition=2)
    plan = trajectory_plan(cfg, _starts(0), generation=1)
    assert [label for _c, label, _a, _s in plan] == [SEED_LABEL, SEED_LABEL]
    assert plan[0][0] == MDCondition("nvt", 300.0)


def test_halting_frames_keep_md_halt_and_samples_get_the_generation_source():
    halt = bulk("Cu", cubic=True)
    halt.info.update(source="md_halt", md_start=7)
    sample = bulk("Cu", cubic=True)
    sample.info.update(source="md_sample", md_start="seed")
    m_halt, m_sample = candidate_metadata(halt, 3), candidate_metadata(sample, 3)
    assert (m_halt.source, m_halt.generation, m_halt.parent_id) == ("md_halt", 3, 7)
    assert (m_sample.source, m_sample.generation, m_sample.parent_id) == (sampled_source(3), 3, None)
    assert sampled_source(3) == "active_learning_iter_3"


def test_candidates_file_round_trip(tmp_path):
    a = bulk("Cu", cubic=True)
    a.info.update(source="md_halt", md_start="12", max_gamma=3.5, rattled=True, md_condition="npt_900K_0GPa")
    path = tmp_path / "candidates.xyz"
    write_candidates(path, [a, a.copy()])
    back = read_candidates(path)
    assert len(back) == 2 and np.allclose(back[0].positions, a.positions)
    assert back[0].info["source"] == "md_halt" and back[0].info["max_gamma"] == pytest.approx(3.5)
    assert candidate_metadata(back[0], 1).parent_id == 12
    write_candidates(path, [])
    assert read_candidates(path) == []


def test_stored_already_finds_exact_copies_only(tmp_path):
    with DatabaseManager(tmp_path / "s.db") as db:
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
        atoms.positions[0] += 0.1
        db.add_structure(atoms, StructureMetadata(source="initial_random"))
        known = stored_already(db)
        assert known(atoms.copy())
        moved = atoms.copy()
        moved.positions[1] += 0.01
        assert not known(moved)
        broken = moved.copy()
        broken.positions[2, 0] = np.nan
        assert known(broken)  # the database would refuse it: never selected


def test_active_learning_plot(tmp_path):
    al = {
        "initial": {"n_labelled_total": 20, "validation_force_rmse_mev_per_angstrom": 80.0},
        "generations": [
            {"generation": 1, "trajectories": 4, "halts": 3, "gamma_halts": 2, "blowups": 1, "n_labelled_total": 24,
             "validation_force_rmse_mev_per_angstrom": 50.0},
            {"generation": 2, "trajectories": 4, "halts": 0, "gamma_halts": 0, "blowups": 0},
        ],
    }  # fmt: skip
    path = active_learning_plot(al, tmp_path)
    assert path == tmp_path / "active_learning.png" and path.read_bytes()[:4] == b"\x89PNG"
    assert active_learning_plot({"generations": []}, tmp_path / "none") is None
