"""One exploration trajectory: ASE molecular dynamics with the fitted potential, watching the extrapolation grade γ.

``run_trajectory`` is a plain module-level function of picklable arguments, so a
driver can submit one trajectory per Dask task; it writes nothing and returns a
:class:`TrajectoryResult`.  Its three detectors are ASE observers attached to the
dynamics (``dyn.attach``): the blow-up check and the γ watch every step, the sampler
every ``sample_interval`` steps; one that ends the run raises an exception that the
driver (:func:`run_watched`) catches.  The report's MD-stability run
(:mod:`mlip_autopipec.report.properties.md_stability`) reuses the watch
(:class:`MDWatch`), the blow-up check, the γ halt and the driver, with one observer
of its own.

Ensembles: NVT is ASE's ``Langevin`` (fixed cell).  NPT is ASE's
``LangevinBAOAB`` (Langevin thermostat on the atoms, Langevin-Hoover barostat on
the cell, Leimkuhler-Matthews BAOAB splitting): it takes any periodic cell,
hydrostatic or fully flexible, is seeded through a numpy ``Generator`` and
samples NPT correctly.  ``ase.md.npt.NPT`` (Melchionna) needs an
upper-triangular cell and is unstable when started away from equilibrium;
``NPTBerendsen`` does not sample the NPT ensemble.

γ comes from ``pyace.PyACECalculator`` built on the B-basis ``.yaml`` with
``set_active_set(asi)``: after each evaluation ``calc.results["gamma"]`` holds
one γ per atom ("gamma" is not in the calculator's ``implemented_properties``,
so ``calc.get_property("gamma")`` does not work; read ``calc.results``).
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator
from ase.md.md import MolecularDynamics
from ase.neighborlist import natural_cutoffs, neighbor_list

from mlip_autopipec.config.schemas.active_learning import ActiveLearningConfig
from mlip_autopipec.exceptions import ConfigurationError, StructureError, TrainerError
from mlip_autopipec.trainer.pyace_import import import_pyace_calculator

StopKind = Literal["completed", "gamma", "blowup"]
SOURCE_HALT = "md_halt"
SOURCE_SAMPLE = "md_sample"
SOURCE_BLOWUP = "md_blowup"
#: a gap (Å) this wide between the atoms' periodic images along a cell axis makes that axis a vacuum axis
#: (a slab's normal)
VACUUM_MIN_GAP = 5.0


@dataclass(frozen=True)
class MDCondition:
    """A thermodynamic condition of exploration: ensemble, temperature (K) and, for NPT, pressure (GPa)."""

    ensemble: Literal["nvt", "npt"]
    temperature: float
    pressure: float | None = None

    def __post_init__(self) -> None:
        if self.ensemble not in ("nvt", "npt"):
            raise ValueError(f"ensemble must be 'nvt' or 'npt', got {self.ensemble!r}")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"temperature must be positive (K), got {self.temperature}")
        if self.ensemble == "npt" and self.pressure is None:
            raise ValueError("an NPT condition needs a pressure (GPa)")
        if self.ensemble == "nvt" and self.pressure is not None:
            raise ValueError("an NVT condition has no pressure")

    @property
    def label(self) -> str:
        """A short name such as ``nvt_300K`` or ``npt_900K_-5GPa``."""
        text = f"{self.ensemble}_{self.temperature:g}K"
        if self.pressure is not None:
            text += f"_{self.pressure:g}GPa"
        return text


def md_conditions(config: ActiveLearningConfig) -> list[MDCondition]:
    """Every condition the config asks for: NVT at each temperature, NPT at each (temperature, pressure)."""
    out: list[MDCondition] = []
    for ensemble in config.ensembles:
        for t in config.temperatures:
            if ensemble == "nvt":
                out.append(MDCondition("nvt", t))
            else:
                out.extend(MDCondition("npt", t, p) for p in config.pressures)
    return out


@dataclass
class TrajectoryResult:
    """What one trajectory found.

    ``stop`` is "completed" (ran all steps), "gamma" (γ reached gamma_halt) or
    "blowup" (non-finite energy or forces, atoms too close, runaway temperature);
    ``reason`` says it in words.  ``candidates`` carry their provenance in
    ``atoms.info`` (source, md_condition, md_step, md_time_fs, max_gamma, ...).
    ``gamma_trace`` holds (step, largest γ) at every sample.
    """

    condition: MDCondition
    seed: int
    ensemble_used: str
    n_atoms: int
    n_steps: int
    n_steps_done: int
    stop: StopKind
    reason: str
    max_gamma: float
    candidates: list[Atoms] = field(default_factory=list)
    gamma_trace: list[tuple[int, float]] = field(default_factory=list)
    final_structure: Atoms | None = None
    wall_time: float = 0.0

    @property
    def halted(self) -> bool:
        """True when the trajectory stopped before its last step (γ or blow-up)."""
        return self.stop != "completed"


def bare_copy(atoms: Atoms) -> Atoms:
    """Species, positions, cell and periodicity only: no calculator, momenta, constraints or info."""
    return Atoms(
        numbers=atoms.numbers.copy(),
        positions=atoms.positions.copy(),
        cell=atoms.cell.array.copy(),
        pbc=atoms.pbc.copy(),
    )


def vacuum_axes(atoms: Atoms, min_gap: float = VACUUM_MIN_GAP) -> tuple[bool, bool, bool]:
    """Per cell axis: True when it is not periodic, or when the atoms leave a gap of at least ``min_gap`` Å
    between them and their periodic images along it (a slab's vacuum, in a fully periodic cell)."""
    out = []
    cell = np.asarray(atoms.cell)
    volume = abs(np.linalg.det(cell)) if atoms.cell.rank == 3 else 0.0
    for axis in range(3):
        if not atoms.pbc[axis] or volume == 0.0 or len(atoms) == 0:
            out.append(not atoms.pbc[axis])
            continue
        other = [a for a in range(3) if a != axis]
        width = volume / np.linalg.norm(np.cross(cell[other[0]], cell[other[1]]))
        frac = np.sort(np.mod(atoms.get_scaled_positions(wrap=False)[:, axis], 1.0))
        gaps = np.diff(np.concatenate([frac, [frac[0] + 1.0]]))
        out.append(bool(gaps.max() * width >= min_gap))
    return (out[0], out[1], out[2])


def md_cell(atoms: Atoms) -> tuple[Atoms, tuple[bool, bool, bool]]:
    """``atoms`` as MD and pyace take it, and its vacuum axes: a slab periodic in-plane only (pbc (T, T, F)) becomes
    fully periodic with its vacuum gap kept (pyace takes only fully periodic or non-periodic cells)."""
    vacuum = vacuum_axes(atoms)
    out = bare_copy(atoms)
    if out.pbc.any() and not out.pbc.all():
        closed = out.copy()
        closed.pbc = True
        if not all(vacuum_axes(closed)[a] for a in range(3) if not out.pbc[a]):
            raise StructureError(
                f"{out.get_chemical_formula()}: the cell has no vacuum gap of {VACUUM_MIN_GAP:g} Å along its "
                "non-periodic axis; add vacuum (pyace needs a fully periodic cell)"
            )
        out.pbc = True
    return out, vacuum


def supercell_for_md(atoms: Atoms, min_atoms: int, axes: tuple[bool, bool, bool] | None = None) -> Atoms:
    """Repeat ``atoms`` along its shortest periodic cell vectors (only those of ``axes`` when given: never a
    vacuum axis) until it has at least ``min_atoms`` atoms."""
    reps = [1, 1, 1]
    allowed = atoms.pbc if axes is None else np.asarray(axes, dtype=bool) & atoms.pbc
    periodic = [i for i in range(3) if allowed[i]]
    lengths = atoms.cell.lengths()
    if not periodic or len(atoms) >= min_atoms:
        return atoms.copy()
    while len(atoms) * reps[0] * reps[1] * reps[2] < min_atoms:
        i = min(periodic, key=lambda k: (reps[k] * lengths[k], k))
        reps[i] += 1
    return atoms.repeat(tuple(reps))


def closest_pair(atoms: Atoms, fraction: float) -> tuple[int, int, float] | None:
    """The closest pair (i, j, distance Å) among those closer than ``fraction`` × the sum of their covalent radii,
    or None.

    Uses matscipy's neighbour list (compiled, ~0.04 ms for 108 atoms) where the
    cell has volume, ASE's (~10 ms) otherwise.
    """
    radii = natural_cutoffs(atoms, mult=fraction)
    d = None
    if atoms.cell.rank == 3:
        try:
            from matscipy.neighbours import neighbour_list

            i, j, d = neighbour_list("ijd", atoms, np.asarray(radii, dtype=float))
        except (ImportError, np.linalg.LinAlgError):
            d = None
    if d is None:
        i, j, d = neighbor_list("ijd", atoms, radii, self_interaction=False)
    if len(d) == 0:
        return None
    k = int(np.argmin(d))
    return int(i[k]), int(j[k]), float(d[k])


def rattled_copies(
    atoms: Atoms, n: int, stdev: float, rng: np.random.Generator, min_distance_fraction: float, max_draws: int = 20
) -> list[Atoms]:
    """``n`` copies of ``atoms`` with Gaussian displacements (``stdev`` Å); a copy with atoms too close is drawn
    again."""
    out: list[Atoms] = []
    for _ in range(n):
        for _draw in range(max_draws):
            copy = bare_copy(atoms)
            copy.positions += rng.normal(0.0, stdev, size=copy.positions.shape)
            if closest_pair(copy, min_distance_fraction) is None:
                out.append(copy)
                break
    return out


def thermalize(atoms: Atoms, temperature: float, rng: np.random.Generator) -> None:
    """Maxwell-Boltzmann momenta at ``temperature`` (K) drawn with ``rng``, without a drift of the whole."""
    from ase.md.velocitydistribution import Stationary

    try:
        from ase.md.velocitydistribution import thermalize_momenta
    except ImportError:  # ASE < 3.29
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta
    thermalize_momenta(atoms, temperature_K=temperature, rng=rng)
    Stationary(atoms)


def md_dynamics(
    atoms: Atoms, ensemble: str, condition: MDCondition, settings: ActiveLearningConfig, rng: np.random.Generator
) -> MolecularDynamics:
    """ASE's integrator for ``ensemble``: ``Langevin`` (NVT) or ``LangevinBAOAB`` (NPT), seeded with ``rng``."""
    dt = settings.timestep * units.fs
    if ensemble == "nvt":
        from ase.md.langevin import Langevin

        return Langevin(
            atoms,
            dt,
            temperature_K=condition.temperature,
            friction=1.0 / (settings.thermostat_time * units.fs),
            fixcm=False,
            rng=rng,
        )
    try:
        from ase.md.langevinbaoab import LangevinBAOAB
    except ImportError:
        raise ConfigurationError(
            "NPT exploration needs ase.md.langevinbaoab (ASE 3.29 has it); upgrade ASE or use ensembles: [nvt]"
        ) from None

    assert condition.pressure is not None
    with warnings.catch_warnings():
        # the barostat mass comes from P_tau on purpose; ASE warns that it used its heuristic
        warnings.filterwarnings("ignore", message="Using heuristic P_mass", category=UserWarning)
        return LangevinBAOAB(
            atoms,
            dt,
            temperature_K=condition.temperature,
            externalstress=-condition.pressure * units.GPa,  # ASE: stress = -pressure
            hydrostatic=settings.npt_hydrostatic,
            T_tau=settings.thermostat_time * units.fs,
            P_tau=settings.barostat_time * units.fs,
            rng=rng,
        )


def _load_calculator(potential_yaml: Path, active_set_asi: Path) -> Calculator:
    if not potential_yaml.is_file():
        raise TrainerError(f"potential file not found: {potential_yaml}")
    if not potential_yaml.name.endswith(".yaml"):
        raise TrainerError(f"{potential_yaml}: γ needs the B-basis .yaml potential, not a .yace")
    if not active_set_asi.is_file():
        raise TrainerError(f"active set file not found: {active_set_asi}")
    PyACECalculator = import_pyace_calculator()
    try:
        calc = PyACECalculator(str(potential_yaml))
    except (RuntimeError, ValueError) as err:
        raise TrainerError(f"cannot load potential {potential_yaml}: {err}") from None
    try:
        calc.set_active_set(str(active_set_asi))
    except (RuntimeError, ValueError) as err:
        raise TrainerError(f"cannot load active set {active_set_asi} for {potential_yaml}: {err}") from None
    return calc


def blowup_reason(atoms: Atoms, calc: Calculator, temperature: float, settings: ActiveLearningConfig) -> str | None:
    """What makes this step a blow-up (non-finite values, a degenerate cell, a runaway temperature), or None."""
    energy = calc.results.get("energy", float("nan"))
    forces = calc.results.get("forces")
    if (
        not math.isfinite(energy)
        or forces is None
        or not np.all(np.isfinite(forces))
        or not np.all(np.isfinite(atoms.positions))
    ):
        return "non-finite energy, forces or positions"
    if not np.all(np.isfinite(atoms.cell.array)) or (atoms.pbc.all() and abs(atoms.cell.volume) < 1e-8):
        return "degenerate cell"
    t_now = atoms.get_temperature()
    if t_now > settings.max_temperature_ratio * temperature:
        return f"temperature {t_now:.0f} K above {settings.max_temperature_ratio:g} × target {temperature:g} K"
    return None


class _Halted(Exception):
    """Raised by an observer that has recorded why the trajectory stops; ends the run (:func:`run_watched`)."""


class BlowUp(Exception):
    """Raised by a blow-up check with what went wrong; :func:`run_watched` records it on the one blow-up path."""


@dataclass
class MDWatch:
    """What the MD observers share: the dynamics' atoms and calculator, the settings, the step just done and its largest
    γ (:meth:`read`), and what the trajectory has found so far.  ``has_gamma`` False: the calculator reports no γ
    (no active set), so none is checked for being finite."""

    work: Atoms
    calc: Calculator
    settings: ActiveLearningConfig
    temperature: float
    provenance: dict[str, object]
    rattle_rng: np.random.Generator
    step: int = 0
    gamma: float = math.nan
    max_gamma: float = 0.0
    stop: StopKind = "completed"
    reason: str = ""
    candidates: list[Atoms] = field(default_factory=list)
    trace: list[tuple[int, float]] = field(default_factory=list)
    #: recent sampled frames (step, largest γ, frame), oldest first: what led into a blow-up
    history: list[tuple[int, float, Atoms]] = field(default_factory=list)
    has_gamma: bool = True

    def __post_init__(self) -> None:
        self.reason = self.reason or f"ran all {self.settings.n_steps} steps"

    def start(self, label: str | None) -> None:
        """Evaluate the start structure (:class:`StructureError` when the potential cannot) and remember it."""
        try:
            self.work.get_potential_energy()
        except ValueError as err:
            raise StructureError(f"start structure {label or self.work.get_chemical_formula()}: {err}") from None
        self.history.append((0, _largest_gamma(self.calc), bare_copy(self.work)))

    def read(self, dyn: MolecularDynamics) -> None:
        """Observer, every step and first: the step just done and its largest γ, for the detectors after it."""
        self.step = dyn.nsteps
        self.gamma = _largest_gamma(self.calc)

    def frame(self, source: str, step: int, gamma: float, structure: Atoms, **extra: object) -> Atoms:
        """A candidate: a bare copy of ``structure`` with its provenance in ``info``."""
        out = bare_copy(structure)
        out.info.update(self.provenance)
        out.info.update(
            source=source, md_step=int(step), md_time_fs=float(step * self.settings.timestep), max_gamma=float(gamma)
        )
        out.info.update(extra)
        return out

    def result(self, condition: MDCondition, seed: int, ensemble: str, wall_time: float) -> TrajectoryResult:
        """What the trajectory found, as it stands."""
        return TrajectoryResult(
            condition=condition,
            seed=int(seed),
            ensemble_used=ensemble,
            n_atoms=len(self.work),
            n_steps=self.settings.n_steps,
            n_steps_done=self.step,
            stop=self.stop,
            reason=self.reason,
            max_gamma=self.max_gamma,
            candidates=self.candidates,
            gamma_trace=self.trace,
            final_structure=bare_copy(self.work),
            wall_time=wall_time,
        )

    def blow_up(self, what: str) -> None:
        """The one blow-up path: stop at this step; the sane frames sampled before it become candidates."""
        self.stop, self.reason = "blowup", f"blow-up at step {self.step}: {what}"
        lead_up = blowup_candidates(self.history, self.settings.blowup_candidates, self.settings.min_distance_fraction)
        self.candidates.extend(self.frame(SOURCE_BLOWUP, s, g, a, blowup_step=int(self.step)) for s, g, a in lead_up)


def _largest_gamma(calc: Calculator) -> float:
    gammas = np.asarray(calc.results.get("gamma", []), dtype=float)
    return float(gammas.max()) if gammas.size else float("nan")


def check_blowup(watch: MDWatch) -> None:
    """Observer, every step: raise :class:`BlowUp` on non-finite values, a degenerate cell, a runaway temperature
    or a non-finite γ, and, at samples and at a halt, on atoms closer than ``min_distance_fraction`` of their
    covalent radii."""
    settings = watch.settings
    bad = blowup_reason(watch.work, watch.calc, watch.temperature, settings)
    if bad is None and watch.has_gamma and not math.isfinite(watch.gamma):
        bad = "non-finite extrapolation grade"
    if bad is None and (watch.step % settings.sample_interval == 0 or watch.gamma >= settings.gamma_halt):
        pair = closest_pair(watch.work, settings.min_distance_fraction)
        if pair is not None:
            bad = f"atoms {pair[0]} and {pair[1]} at {pair[2]:.2f} Å"
    if bad is not None:
        raise BlowUp(bad)


def halt_on_gamma(watch: MDWatch) -> None:
    """Observer, every step: keep the largest γ; at γ ≥ gamma_halt stop, the frame and ``n_rattled_copies`` rattled
    copies of it becoming candidates (source "md_halt")."""
    step, gamma, settings = watch.step, watch.gamma, watch.settings
    watch.max_gamma = max(watch.max_gamma, gamma)
    if not gamma >= settings.gamma_halt:
        return
    watch.stop, watch.reason = "gamma", f"γ = {gamma:.3g} ≥ gamma_halt {settings.gamma_halt:g} at step {step}"
    watch.trace.append((step, gamma))
    watch.candidates.append(watch.frame(SOURCE_HALT, step, gamma, watch.work, rattled=False))
    copies = rattled_copies(
        watch.work, settings.n_rattled_copies, settings.rattle_stdev, watch.rattle_rng, settings.min_distance_fraction
    )
    for k, copy in enumerate(copies):
        copy.calc = watch.calc
        copy.get_potential_energy()
        g_copy = float(np.max(watch.calc.results["gamma"]))
        watch.candidates.append(watch.frame(SOURCE_HALT, step, g_copy, copy, rattled=True, rattle_index=k))
    raise _Halted


def _collect_sample(watch: MDWatch) -> None:
    """Observer, every ``sample_interval`` steps: trace γ, remember the frame (a blow-up's lead-up), and keep it as a
    candidate (source "md_sample") when gamma_select ≤ γ."""
    step, gamma = watch.step, watch.gamma
    watch.trace.append((step, gamma))
    watch.history.append((step, gamma, bare_copy(watch.work)))
    del watch.history[: -max(watch.settings.blowup_candidates, 1) * 2]
    if gamma >= watch.settings.gamma_select:
        watch.candidates.append(watch.frame(SOURCE_SAMPLE, step, gamma, watch.work))


#: An observer: a function of the :class:`MDWatch` and the interval (steps) it is called at.
Observer = tuple[Callable[[MDWatch], None], int]


def _explore_observers(settings: ActiveLearningConfig) -> list[Observer]:
    """The detectors in the order they look at each step (after :meth:`MDWatch.read`): blow-up check, γ halt,
    samples."""
    return [(check_blowup, 1), (halt_on_gamma, 1), (_collect_sample, settings.sample_interval)]


def run_watched(
    dyn: MolecularDynamics, watch: MDWatch, observers: Sequence[Observer], *, check_start: bool = True
) -> None:
    """Run ``dyn`` for ``settings.n_steps`` steps with :meth:`MDWatch.read` and then ``observers`` attached as ASE
    observers (``dyn.attach``), from the start (step 0) on, or from step 1 with ``check_start=False``.

    An observer that stops the run raises :class:`_Halted` (its reason recorded) or :class:`BlowUp`; a blow-up
    and the calculator's or integrator's own numerical failures (RuntimeError, FloatingPointError, LinAlgError)
    all end on :meth:`MDWatch.blow_up`.
    """
    steps = dyn.irun(watch.settings.n_steps)
    try:
        if not check_start:
            next(steps)  # the start: evaluated, not looked at
        dyn.attach(watch.read, 1, dyn)
        for observer, interval in observers:
            dyn.attach(observer, interval, watch)
        for _ in steps:
            pass
    except _Halted:
        pass
    except (BlowUp, RuntimeError, FloatingPointError, np.linalg.LinAlgError) as err:
        watch.blow_up(str(err) if isinstance(err, BlowUp) else f"{type(err).__name__}: {err}")


def _md_system(atoms: Atoms, condition: MDCondition, settings: ActiveLearningConfig) -> tuple[Atoms, str]:
    """The atoms the MD runs on (:func:`md_cell`, :func:`supercell_for_md`, never along a vacuum axis) and the
    ensemble it runs: NPT needs a cell periodic in all directions, so a slab runs NVT."""
    start, vacuum = md_cell(atoms)
    work = supercell_for_md(start, settings.md_min_atoms, axes=(not vacuum[0], not vacuum[1], not vacuum[2]))
    ensemble: str = condition.ensemble
    if ensemble == "npt" and (not work.pbc.all() or any(vacuum)):
        ensemble = "nvt"
    return work, ensemble


def _provenance(condition: MDCondition, ensemble: str, seed: int, label: str | None) -> dict[str, object]:
    """What every candidate of the trajectory carries in ``info``."""
    info: dict[str, object] = {
        "md_condition": condition.label,
        "md_ensemble": ensemble,
        "md_temperature_K": float(condition.temperature),
        "md_seed": int(seed),
    }
    if ensemble == "npt" and condition.pressure is not None:
        info["md_pressure_GPa"] = float(condition.pressure)
    if label is not None:
        info["md_start"] = str(label)
    return info


def run_trajectory(
    atoms: Atoms,
    potential_yaml: str | Path,
    active_set_asi: str | Path,
    condition: MDCondition,
    settings: ActiveLearningConfig,
    seed: int,
    *,
    label: str | None = None,
) -> TrajectoryResult:
    """Run one MD trajectory from ``atoms`` under ``condition`` with the potential and its active set.

    Every step the largest per-atom γ is checked: γ ≥ gamma_halt halts the run,
    and the halting frame plus ``n_rattled_copies`` rattled copies become
    candidates (source "md_halt").  Every ``sample_interval`` steps a frame with
    gamma_select ≤ γ < gamma_halt becomes a candidate (source "md_sample").  A
    blow-up (non-finite values, runaway temperature every step; atoms closer than
    ``min_distance_fraction`` of their covalent radii at samples and at a halt)
    stops the run; its own frame is no candidate, but the last ``blowup_candidates``
    sane frames sampled before it are (source "md_blowup",
    :func:`blowup_candidates`): the loop learns the path into the blow-up.
    A slab (a vacuum axis, :func:`vacuum_axes`) runs NVT whatever the condition
    and is never repeated along its vacuum axis.  The same ``seed`` gives
    the same trajectory.  ``label`` (e.g. the start structure's id) is stored in
    the candidates' info as ``md_start``.  The MD itself is :func:`run_md`.
    """
    t0 = time.perf_counter()
    calc = _load_calculator(Path(potential_yaml), Path(active_set_asi))
    result = run_md(atoms, calc, condition, settings, seed, label=label)
    return dataclasses.replace(result, wall_time=time.perf_counter() - t0)


def run_md(
    atoms: Atoms,
    calc: Calculator,
    condition: MDCondition,
    settings: ActiveLearningConfig,
    seed: int,
    *,
    label: str | None = None,
) -> TrajectoryResult:
    """The MD of :func:`run_trajectory` with a loaded calculator, which leaves per-atom γ in ``calc.results["gamma"]``.

    The detectors are ASE observers attached to the dynamics (:func:`_explore_observers`, run by
    :func:`run_watched`).
    """
    t0 = time.perf_counter()
    work, ensemble = _md_system(atoms, condition, settings)
    vel_rng, dyn_rng, rattle_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    work.calc = calc
    thermalize(work, condition.temperature, vel_rng)
    provenance = _provenance(condition, ensemble, seed, label)
    watch = MDWatch(work, calc, settings, condition.temperature, provenance, rattle_rng)
    watch.start(label)
    dyn = md_dynamics(work, ensemble, condition, settings, dyn_rng)
    run_watched(dyn, watch, _explore_observers(settings))
    return watch.result(condition, seed, ensemble, wall_time=time.perf_counter() - t0)


def blowup_candidates(
    history: list[tuple[int, float, Atoms]], n: int, min_distance_fraction: float
) -> list[tuple[int, float, Atoms]]:
    """The frames leading into a blow-up that are worth labelling: of ``history`` ((step, largest γ, frame),
    oldest first), the ``n`` latest whose positions, cell and γ are finite and whose atoms are no closer than
    ``min_distance_fraction`` of their covalent radii; returned oldest first.

    The blow-up's own frame is never among them (the oracle may fail on it);
    the frames before it show the potential where it starts to go wrong.
    """
    picked: list[tuple[int, float, Atoms]] = []
    for step, gamma, atoms in reversed(history):
        if len(picked) >= n:
            break
        if not (np.all(np.isfinite(atoms.positions)) and np.all(np.isfinite(atoms.cell.array))):
            continue
        if not math.isfinite(gamma) or closest_pair(atoms, min_distance_fraction) is not None:
            continue
        picked.append((step, gamma, atoms))
    return picked[::-1]
