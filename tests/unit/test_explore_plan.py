"""Pure building blocks of exploration: the trajectory plan, the start order, candidate provenance."""

from __future__ import annotations

from ase.build import bulk

from mlip_autopipec.config.schemas.active_learning import ActiveLearningConfig
from mlip_autopipec.explore.md import MDCondition
from mlip_autopipec.explore.plan import SEED_LABEL, candidate_metadata, order_starts, sampled_source, trajectory_plan


def _starts(n_db: int):
    seed = bulk("Cu", "fcc", a=3.61, cubic=True)
    return [(SEED_LABEL, seed)] + [(str(10 + i), seed.copy()) for i in range(n_db)]


def test_plan_covers_every_condition_and_replica_with_distinct_reproducible_seeds():
    cfg = ActiveLearningConfig(
        temperatures=[300, 900], ensembles=["nvt", "npt"], pressures=[-5, 5], trajectories_per_condition=3
    )
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


def test_start_order_alternates_defects_and_others_reproducibly():
    crystal = bulk("Cu", "fcc", a=3.61, cubic=True)
    defects = [(f"d{i}", crystal) for i in range(2)]
    others = [(f"o{i}", crystal) for i in range(4)]
    starts = order_starts(crystal, defects, others, rng_seed=7, generation=1)
    labels = [label for label, _ in starts]
    assert labels[0] == SEED_LABEL and len(labels) == 7
    assert [label[0] for label in labels[1:]] == ["d", "o", "d", "o", "o", "o"]
    assert labels == [label for label, _ in order_starts(crystal, defects, others, rng_seed=7, generation=1)]
    assert sorted(labels[1:]) == sorted(label for label, _ in defects + others)
