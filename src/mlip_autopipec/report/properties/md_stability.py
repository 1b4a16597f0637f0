"""MD stability: an NVT run with the potential; did it complete, or where and why did it halt?

The machinery is exploration's (:mod:`mlip_autopipec.explore.md`): the same
supercell rule, Maxwell-Boltzmann start, ASE ``Langevin`` thermostat and blow-up
checks (non-finite values, degenerate cell, runaway temperature, atoms closer than
a fraction of their covalent radii).  Added here: an energy runaway (potential
energy more than ``max_energy_rise`` eV/atom above the start) and, when the
calculator carries an active set (``PyACECalculator.set_active_set``: γ per atom in
``calc.results["gamma"]``), a halt at ``gamma_halt``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from mlip_autopipec.exceptions import PropertyError

Reason = Literal["completed", "gamma", "blowup"]


@dataclass
class MDStabilityResult:
    """Outcome of the stability run: ``completed`` or not, ``steps`` done of ``n_steps``, ``reason`` in words."""

    completed: bool
    stop: Reason
    reason: str
    steps: int
    n_steps: int
    temperature_k: float
    time_ps: float
    n_atoms: int
    max_gamma: float | None
    mean_temperature_k: float

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def md_stability(
    atoms: Atoms,
    calculator: Calculator,
    temperature_k: float,
    time_ps: float,
    timestep_fs: float = 2.0,
    min_atoms: int = 64,
    gamma_halt: float | None = None,
    min_distance_fraction: float = 0.5,
    max_temperature_ratio: float = 5.0,
    max_energy_rise_ev_per_atom: float = 1.0,
    check_interval: int = 10,
    seed: int = 0,
) -> MDStabilityResult:
    """Run NVT (``temperature_k`` K, ``time_ps`` ps) from the crystal ``atoms`` with ``calculator`` and report how it ended."""
    from mlip_autopipec.config.schemas.active_learning import ActiveLearningConfig
    from mlip_autopipec.explore.md import (
        MDCondition,
        _blowup,
        _dynamics,
        _thermalize,
        bare_copy,
        closest_pair,
        supercell_for_md,
    )

    if not (math.isfinite(temperature_k) and temperature_k > 0 and time_ps > 0):
        raise PropertyError(
            f"MD stability needs a positive temperature (K) and time (ps), got {temperature_k}, {time_ps}"
        )
    n_steps = max(1, round(time_ps * 1000.0 / timestep_fs))
    settings = ActiveLearningConfig(
        timestep=timestep_fs,
        n_steps=n_steps,
        min_distance_fraction=min_distance_fraction,
        max_temperature_ratio=max_temperature_ratio,
        md_min_atoms=min_atoms,
    )
    condition = MDCondition("nvt", float(temperature_k))
    work = supercell_for_md(bare_copy(atoms), min_atoms)
    vel_rng, dyn_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    work.calc = calculator
    _thermalize(work, condition.temperature, vel_rng)
    e0 = work.get_potential_energy() / len(work)
    dyn = _dynamics(work, "nvt", condition, settings, dyn_rng)

    stop: Reason = "completed"
    reason = f"ran all {n_steps} steps ({time_ps:g} ps)"
    steps = 0
    max_gamma: float | None = None
    temperatures = []
    try:
        for _ in dyn.irun(n_steps):
            steps = dyn.nsteps
            if steps == 0:
                continue
            temperatures.append(work.get_temperature())
            bad = _blowup(work, calculator, condition.temperature, settings)
            if bad is None:
                rise = calculator.results["energy"] / len(work) - e0
                if rise > max_energy_rise_ev_per_atom:
                    bad = f"potential energy {rise:.2f} eV/atom above the start (> {max_energy_rise_ev_per_atom:g})"
            if bad is None and steps % check_interval == 0:
                pair = closest_pair(work, min_distance_fraction)
                if pair is not None:
                    bad = f"atoms {pair[0]} and {pair[1]} at {pair[2]:.2f} Å"
            if bad is not None:
                stop, reason = "blowup", f"blow-up at step {steps}: {bad}"
                break
            gammas = calculator.results.get("gamma")
            if gammas is not None and len(gammas):
                g = float(np.max(gammas))
                max_gamma = g if max_gamma is None else max(max_gamma, g)
                if gamma_halt is not None and g >= gamma_halt:
                    stop, reason = "gamma", f"γ = {g:.3g} ≥ gamma_halt {gamma_halt:g} at step {steps}"
                    break
    except (RuntimeError, FloatingPointError, np.linalg.LinAlgError) as err:
        stop, reason = "blowup", f"blow-up at step {steps}: {type(err).__name__}: {err}"
    return MDStabilityResult(
        completed=stop == "completed",
        stop=stop,
        reason=reason,
        steps=int(steps),
        n_steps=n_steps,
        temperature_k=float(temperature_k),
        time_ps=float(time_ps),
        n_atoms=len(work),
        max_gamma=max_gamma,
        mean_temperature_k=float(np.mean(temperatures)) if temperatures else float("nan"),
    )


__all__ = ["MDStabilityResult", "md_stability"]
