"""The MD detectors as ASE observers: each stops the trajectory at the right step and records what it found.

The calculator is EMT with a synthetic extrapolation grade (γ grows with each atom's distance
from its start position), so the γ watch, the blow-up check and the sampler run on a real ASE
Langevin trajectory in well under a second, without pyace.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT

from mlip_autopipec.config.schemas.active_learning import ActiveLearningConfig
from mlip_autopipec.explore.md import MDCondition, run_md


class GammaEMT(EMT):
    """EMT plus per-atom γ = 1 + ``scale`` × distance (Å) from the first structure it saw.

    ``nan_beyond``: γ is NaN once an atom is that far (Å) from its start; ``fail_after``: the
    calculation after that many raises RuntimeError.
    """

    def __init__(self, scale: float = 5.0, nan_beyond: float | None = None, fail_after: int | None = None) -> None:
        super().__init__()
        self.scale, self.nan_beyond, self.fail_after = scale, nan_beyond, fail_after
        self.reference: np.ndarray | None = None
        self.calls = 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        super().calculate(atoms, properties, system_changes)
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("synthetic failure")
        if self.reference is None:
            self.reference = self.atoms.positions.copy()
        distance = np.linalg.norm(self.atoms.positions - self.reference, axis=1)
        gamma = 1.0 + self.scale * distance
        if self.nan_beyond is not None and distance.max() > self.nan_beyond:
            gamma[np.argmax(distance)] = np.nan
        self.results["gamma"] = gamma


def settings(**kw) -> ActiveLearningConfig:
    base = dict(n_steps=200, sample_interval=1, gamma_select=1e3, gamma_halt=1e6, md_min_atoms=32, n_rattled_copies=2)
    base.update(kw)
    return ActiveLearningConfig(**base)


def cu() -> Atoms:
    return bulk("Cu", "fcc", a=3.61, cubic=True)


HOT = MDCondition("nvt", 1300.0)


@pytest.mark.parametrize("seed", [1, 4])  # halts at an odd and at an even step
def test_gamma_watch_halts_at_the_first_step_past_gamma_halt(seed):
    cfg = settings(gamma_select=1.5, gamma_halt=2.0, n_rattled_copies=3, rattle_stdev=0.05)
    res = run_md(cu(), GammaEMT(), HOT, cfg, seed=seed, label="start")
    assert res.stop == "gamma" and 0 < res.n_steps_done < cfg.n_steps
    steps = [s for s, _ in res.gamma_trace]
    gammas = [g for _, g in res.gamma_trace]
    assert steps == list(range(res.n_steps_done + 1))  # every step watched, none after the halt
    assert max(gammas[:-1]) < cfg.gamma_halt <= gammas[-1]  # the first step past gamma_halt, not a later one
    assert res.max_gamma == gammas[-1]
    assert res.reason == f"γ = {gammas[-1]:.3g} ≥ gamma_halt 2 at step {res.n_steps_done}"
    halt = [c for c in res.candidates if c.info["source"] == "md_halt"]
    assert [c.info["rattled"] for c in halt] == [False, True, True, True]
    assert all(c.info["md_step"] == res.n_steps_done and c.info["md_start"] == "start" for c in halt)
    np.testing.assert_array_equal(halt[0].positions, res.final_structure.positions)
    assert all(c.info["md_step"] < res.n_steps_done for c in res.candidates if c.info["source"] == "md_sample")
    again = run_md(cu(), GammaEMT(), HOT, cfg, seed=seed, label="start")
    assert again.n_steps_done == res.n_steps_done and again.gamma_trace == res.gamma_trace


def test_sampler_runs_every_sample_interval_steps_and_keeps_the_selection_window():
    cfg = settings(n_steps=40, sample_interval=5, gamma_select=1.3)
    res = run_md(cu(), GammaEMT(), MDCondition("nvt", 600.0), cfg, seed=1)
    assert res.stop == "completed" and res.n_steps_done == 40 and res.reason == "ran all 40 steps"
    assert [s for s, _ in res.gamma_trace] == list(range(0, 41, 5))
    expected = [s for s, g in res.gamma_trace if g >= cfg.gamma_select]
    assert expected  # the window is reached, so the check below can fail
    assert [c.info["md_step"] for c in res.candidates] == expected
    assert {c.info["source"] for c in res.candidates} == {"md_sample"}
    assert res.max_gamma >= max(g for _, g in res.gamma_trace)


def test_blowup_check_stops_at_the_first_bad_step_and_keeps_the_lead_up():
    cfg = settings(blowup_candidates=3)
    res = run_md(cu(), GammaEMT(nan_beyond=0.25), HOT, cfg, seed=2)
    assert res.stop == "blowup"
    assert res.reason == f"blow-up at step {res.n_steps_done}: non-finite extrapolation grade"
    assert [s for s, _ in res.gamma_trace] == list(range(res.n_steps_done))  # the bad step itself is not traced
    assert np.isfinite(res.max_gamma) and res.max_gamma == max(g for _, g in res.gamma_trace)
    lead_up = [c.info["md_step"] for c in res.candidates if c.info["source"] == "md_blowup"]
    assert lead_up == list(range(res.n_steps_done - 3, res.n_steps_done))
    assert all(c.info["blowup_step"] == res.n_steps_done for c in res.candidates)


def test_a_calculator_failure_ends_on_the_same_blowup_path():
    calc = GammaEMT(fail_after=12)
    res = run_md(cu(), calc, HOT, settings(blowup_candidates=2), seed=0)
    assert res.stop == "blowup" and calc.calls == 13
    assert res.reason == f"blow-up at step {res.n_steps_done}: RuntimeError: synthetic failure"
    assert [s for s, _ in res.gamma_trace] == list(range(res.n_steps_done + 1))  # the last step that finished
    assert [c.info["md_step"] for c in res.candidates] == [res.n_steps_done - 1, res.n_steps_done]


def test_a_crowded_start_blows_up_at_step_zero():
    crowded = cu().repeat(2)
    crowded.positions[1] = crowded.positions[0] + [0.4, 0.0, 0.0]
    res = run_md(crowded, GammaEMT(), MDCondition("nvt", 300.0), settings(), seed=0)
    assert (res.stop, res.n_steps_done, res.candidates, res.gamma_trace) == ("blowup", 0, [], [])
    assert res.reason == "blow-up at step 0: atoms 0 and 1 at 0.40 Å"
    assert res.max_gamma == pytest.approx(0.0)
