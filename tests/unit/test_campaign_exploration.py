"""Pure parts of active learning over a whole campaign: slabs keep their vacuum axis, blow-ups become candidates,
convergence needs an adequate fit AND a quiet exploration, exploration starts from every seed."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, fcc111

from mlip_autopipec.config.schemas.active_learning import ActiveLearningConfig
from mlip_autopipec.exceptions import StructureError
from mlip_autopipec.explore.convergence import FitErrors, convergence_verdict, quiet_streak
from mlip_autopipec.explore.md import blowup_candidates, md_cell, supercell_for_md, vacuum_axes
from mlip_autopipec.explore.plan import candidate_metadata, seed_label, trajectory_plan


def test_vacuum_axes_find_a_slab_in_a_periodic_or_mixed_cell_and_none_in_bulk():
    slab = fcc111("Cu", (2, 2, 4), vacuum=8.0)
    assert vacuum_axes(slab) == (False, False, True)
    slab.pbc = True
    assert vacuum_axes(slab) == (False, False, True)  # the gap, not the flag, makes the vacuum axis
    assert vacuum_axes(bulk("Cu", cubic=True)) == (False, False, False)
    assert vacuum_axes(bulk("Cu", cubic=True).repeat((1, 1, 6))) == (False, False, False)


def test_md_cell_closes_a_mixed_slab_and_refuses_one_without_vacuum():
    slab = fcc111("Cu", (2, 2, 3), vacuum=6.0)
    closed, vacuum = md_cell(slab)
    assert closed.pbc.all() and vacuum == (False, False, True)
    np.testing.assert_allclose(closed.cell.array, slab.cell.array)
    tight = fcc111("Cu", (2, 2, 3), vacuum=0.5)
    with pytest.raises(StructureError, match="vacuum"):
        md_cell(tight)


def test_slab_supercell_is_never_repeated_along_the_vacuum_axis():
    slab = fcc111("Cu", (1, 1, 3), vacuum=8.0)  # 3 atoms: must grow to 32 in-plane only
    _, vacuum = md_cell(slab)
    sc = supercell_for_md(slab, 32, axes=tuple(not v for v in vacuum))
    assert len(sc) >= 32
    np.testing.assert_allclose(sc.cell[2], slab.cell[2])


def test_plan_starts_from_every_seed_and_runs_slabs_only_under_nvt():
    cfg = ActiveLearningConfig(
        temperatures=[600], ensembles=["nvt", "npt"], pressures=[0.0], trajectories_per_condition=1
    )
    slab = fcc111("Cu", (2, 2, 3), vacuum=8.0)
    slab.pbc = True
    starts = [
        (seed_label("Cu_fcc"), bulk("Cu", cubic=True)),
        (seed_label("Cu3Au"), bulk("Cu", cubic=True)),
        (seed_label("s111"), slab),
    ]
    plan = trajectory_plan(cfg, starts, generation=1, n_seeds=3)
    runs = [(c.ensemble, label) for c, label, _a, _s in plan]
    assert runs == [
        ("nvt", "seed:Cu_fcc"),
        ("nvt", "seed:Cu3Au"),
        ("nvt", "seed:s111"),
        ("npt", "seed:Cu_fcc"),
        ("npt", "seed:Cu3Au"),
    ]
    assert len({s for *_, s in plan}) == len(plan)


def _frame(d: float):
    return Atoms("Cu2", positions=[[0.0, 0.0, 0.0], [d, 0.0, 0.0]], cell=[8.0, 8.0, 8.0], pbc=True)


def test_frames_leading_into_a_blowup_become_candidates_newest_sane_ones_oldest_first():
    history = [
        (0, 1.0, _frame(2.5)),
        (10, 1.5, _frame(2.4)),
        (20, 3.0, _frame(2.2)),
        (30, 9.0, _frame(0.3)),
        (40, float("nan"), _frame(2.3)),
    ]
    picked = blowup_candidates(history, 2, min_distance_fraction=0.5)
    assert [step for step, _g, _a in picked] == [10, 20]  # 30: atoms 0.3 Å apart, 40: γ not finite
    assert blowup_candidates(history, 0, 0.5) == []
    assert [s for s, *_ in blowup_candidates(history, 10, 0.5)] == [0, 10, 20]


def test_blowup_frames_are_stored_as_md_blowup():
    atoms = bulk("Cu", cubic=True)
    atoms.info.update(source="md_blowup", md_start="12")
    meta = candidate_metadata(atoms, 2)
    assert (meta.source, meta.generation, meta.parent_id) == ("md_blowup", 2, 12)


def test_quiet_streak_counts_the_last_generations_without_halts():
    assert quiet_streak([3, 0, 0]) == 2
    assert quiet_streak([0, 0, 1]) == 0
    assert quiet_streak([0, None, 0]) == 1
    assert quiet_streak([]) == 0


GOOD = FitErrors(12.0, 1.0, 15.0, 2.0)


def test_convergence_needs_an_adequate_fit_and_enough_quiet_generations():
    cfg = ActiveLearningConfig(
        target_force_rmse_mev_per_angstrom=25, target_energy_rmse_mev_per_atom=5, quiet_generations=2
    )
    v = convergence_verdict([4, 0, 0], GOOD, cfg)
    assert v.converged and v.fit_adequate and v.quiet and v.reason.startswith("converged: fit adequate")

    one_quiet = convergence_verdict([4, 0], GOOD, cfg)  # quiet once is not enough
    assert not one_quiet.converged and one_quiet.fit_adequate and not one_quiet.quiet
    assert "quiet for 1 generation(s) in a row (needs 2)" in one_quiet.reason

    poor = convergence_verdict(
        [0, 0, 0], FitErrors(60.0, 1.0, 50.0, 2.0), cfg
    )  # the Cu-Au run: quiet, poor fit
    assert not poor.converged and poor.quiet and not poor.fit_adequate
    assert (
        "training force RMSE 60.0 > 25 meV/Å" in poor.reason and "validation force RMSE 50.0 > 25 meV/Å" in poor.reason
    )

    energy = convergence_verdict([0, 0], FitErrors(12.0, 7.5, 15.0, 2.0), cfg)
    assert not energy.converged and "training energy RMSE 7.5 > 5 meV/atom" in energy.reason


def test_convergence_without_validation_split_or_targets():
    cfg = ActiveLearningConfig(quiet_generations=1)
    v = convergence_verdict([0], FitErrors(10.0, 1.0, None, None), cfg)
    assert v.converged and "validation force RMSE unknown" in v.reason
    off = ActiveLearningConfig(
        quiet_generations=1, target_force_rmse_mev_per_angstrom=None, target_energy_rmse_mev_per_atom=None
    )
    v = convergence_verdict([0], FitErrors(500.0, 90.0, 400.0, 80.0), off)
    assert v.converged and "fit targets not set" in v.reason
