"""MD stability: an NVT run with the potential; did it complete, or where and why did it halt?

The machinery is exploration's (:mod:`mlip_autopipec.explore.md`): the same
supercell rule, Maxwell-Boltzmann start, ASE ``Langevin`` thermostat, the watch
and its driver (:class:`~mlip_autopipec.explore.md.MDWatch`,
:func:`~mlip_autopipec.explore.md.run_watched`), and two of its observers: the
blow-up check (non-finite values or γ, degenerate cell, runaway temperature every
step; atoms closer than a fraction of their covalent radii every ``check_interval``
steps and at a γ halt) and, when the calculator carries an active set
(``PyACECalculator.set_active_set``: γ per atom in ``calc.results["gamma"]``), the
halt at ``gamma_halt``.  Added here, as one more observer: the temperatures for
their mean, and an energy runaway (potential energy more than ``max_energy_rise``
eV/atom above the start).  Unlike exploration the start (step 0) is not looked at:
a crowded start may fly apart, and the run says at which step it did.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from mlip_autopipec.config.schemas.active_learning import ActiveLearningConfig
from mlip_autopipec.exceptions import PropertyError
from mlip_autopipec.explore.md import (
    BlowUp,
    MDCondition,
    MDWatch,
    Observer,
    bare_copy,
    blowup_reason,
    check_blowup,
    halt_on_gamma,
    md_dynamics,
    run_watched,
    supercell_for_md,
    thermalize,
)

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


@dataclass
class _Runaway:
    """md_stability's own observer: the temperature of each step, then an energy runaway (checked after the basic
    blow-up checks, which name a non-finite value or a runaway temperature first)."""

    e0: float  # eV/atom at the start
    max_rise: float  # eV/atom
    temperatures: list[float] = field(default_factory=list)

    def __call__(self, watch: MDWatch) -> None:
        self.temperatures.append(watch.work.get_temperature())
        if blowup_reason(watch.work, watch.calc, watch.temperature, watch.settings) is None:
            rise = watch.calc.results["energy"] / len(watch.work) - self.e0
            if rise > self.max_rise:
                raise BlowUp(f"potential energy {rise:.2f} eV/atom above the start (> {self.max_rise:g})")


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
    """Run NVT (``temperature_k`` K, ``time_ps`` ps) from the crystal ``atoms`` with ``calculator``; how did it end?"""
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
        sample_interval=check_interval,
        gamma_select=1.0,
        gamma_halt=math.inf if gamma_halt is None else gamma_halt,
        n_rattled_copies=0,
        blowup_candidates=0,
    )
    condition = MDCondition("nvt", float(temperature_k))
    work = supercell_for_md(bare_copy(atoms), min_atoms)
    vel_rng, dyn_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    work.calc = calculator
    thermalize(work, condition.temperature, vel_rng)
    runaway = _Runaway(work.get_potential_energy() / len(work), max_energy_rise_ev_per_atom)
    watch = MDWatch(
        work,
        calculator,
        settings,
        condition.temperature,
        provenance={},
        rattle_rng=np.random.default_rng(seed),  # unused: no rattled copies at a γ halt
        max_gamma=-math.inf,
        reason=f"ran all {n_steps} steps ({time_ps:g} ps)",
        has_gamma=calculator.results.get("gamma") is not None,
    )
    observers: list[Observer] = [(runaway, 1), (check_blowup, 1)]
    if watch.has_gamma:
        observers.append((halt_on_gamma, 1))
    run_watched(md_dynamics(work, "nvt", condition, settings, dyn_rng), watch, observers, check_start=False)
    return MDStabilityResult(
        completed=watch.stop == "completed",
        stop=watch.stop,
        reason=watch.reason,
        steps=int(watch.step),
        n_steps=n_steps,
        temperature_k=float(temperature_k),
        time_ps=float(time_ps),
        n_atoms=len(work),
        max_gamma=watch.max_gamma if math.isfinite(watch.max_gamma) else None,
        mean_temperature_k=float(np.mean(runaway.temperatures)) if runaway.temperatures else float("nan"),
    )


__all__ = ["MDStabilityResult", "md_stability"]
