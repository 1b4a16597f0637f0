"""One exploration trajectory: ASE molecular dynamics with the fitted potential, watching the extrapolation grade γ.

``run_trajectory`` is a plain module-level function of picklable arguments, so a
driver can submit one trajectory per Dask task; it writes nothing and returns a
:class:`TrajectoryResult`.

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

import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from ase import Atoms, units
from ase.neighborlist import natural_cutoffs, neighbor_list

from mlip_autopipec.config.schemas.active_learning import ActiveLearningConfig
from mlip_autopipec.exceptions import ConfigurationError, StructureError, TrainerError
from mlip_autopipec.trainer.pyace_import import import_pyace_calculator

StopKind = Literal["completed", "gamma", "blowup"]
SOURCE_HALT = "md_halt"
SOURCE_SAMPLE = "md_sample"
SOURCE_BLOWUP = "md_blowup"
#: a gap (Å) this wide between the atoms' periodic images along a cell axis makes that axis a vacuum axis (a slab's normal)
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
                f"{out.get_chemical_formula()}: the cell has no vacuum gap of {VACUUM_MIN_GAP:g} Å along its non-periodic "
                "axis; add vacuum (pyace needs a fully periodic cell)"
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
    """The closest pair (i, j, distance Å) among those closer than ``fraction`` × the sum of their covalent radii, or None.

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
    """``n`` copies of ``atoms`` with Gaussian displacements (``stdev`` Å); a copy with atoms too close is drawn again."""
    out: list[Atoms] = []
    for _ in range(n):
        for _draw in range(max_draws):
            copy = bare_copy(atoms)
            copy.positions += rng.normal(0.0, stdev, size=copy.positions.shape)
            if closest_pair(copy, min_distance_fraction) is None:
                out.append(copy)
                break
    return out


def _thermalize(atoms: Atoms, temperature: float, rng: np.random.Generator) -> None:
    from ase.md.velocitydistribution import Stationary

    try:
        from ase.md.velocitydistribution import thermalize_momenta
    except ImportError:  # ASE < 3.29
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta
    thermalize_momenta(atoms, temperature_K=temperature, rng=rng)
    Stationary(atoms)


def _dynamics(
    atoms: Atoms, ensemble: str, condition: MDCondition, settings: ActiveLearningConfig, rng: np.random.Generator
):
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


def _load_calculator(potential_yaml: Path, active_set_asi: Path):
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


def _blowup(atoms: Atoms, calc, temperature: float, settings: ActiveLearningConfig) -> str | None:
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
    the candidates' info as ``md_start``.
    """
    t0 = time.perf_counter()
    potential_yaml = Path(potential_yaml)
    active_set_asi = Path(active_set_asi)
    calc = _load_calculator(potential_yaml, active_set_asi)

    start, vacuum = md_cell(atoms)
    work = supercell_for_md(start, settings.md_min_atoms, axes=tuple(not v for v in vacuum))
    ensemble = condition.ensemble
    if ensemble == "npt" and (not work.pbc.all() or any(vacuum)):
        ensemble = "nvt"  # no pressure without a cell periodic in all directions: a slab's vacuum axis is left alone
    vel_rng, dyn_rng, rattle_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    work.calc = calc
    _thermalize(work, condition.temperature, vel_rng)

    base_info: dict[str, object] = {
        "md_condition": condition.label,
        "md_ensemble": ensemble,
        "md_temperature_K": float(condition.temperature),
        "md_seed": int(seed),
    }
    if ensemble == "npt" and condition.pressure is not None:
        base_info["md_pressure_GPa"] = float(condition.pressure)
    if label is not None:
        base_info["md_start"] = str(label)

    def frame(source: str, step: int, gamma: float, structure: Atoms, **extra: object) -> Atoms:
        out = bare_copy(structure)
        out.info.update(base_info)
        out.info.update(
            source=source, md_step=int(step), md_time_fs=float(step * settings.timestep), max_gamma=float(gamma)
        )
        out.info.update(extra)
        return out

    candidates: list[Atoms] = []
    history: list[tuple[int, float, Atoms]] = []  # recent sampled frames: what led into a blow-up
    trace: list[tuple[int, float]] = []
    max_gamma = 0.0
    stop: StopKind = "completed"
    reason = f"ran all {settings.n_steps} steps"
    steps_done = 0
    try:
        work.get_potential_energy()
    except ValueError as err:
        raise StructureError(f"start structure {label or work.get_chemical_formula()}: {err}") from None
    gammas0 = np.asarray(calc.results.get("gamma", []), dtype=float)
    history.append((0, float(gammas0.max()) if gammas0.size else float("nan"), bare_copy(work)))
    dyn = _dynamics(work, ensemble, condition, settings, dyn_rng)
    try:
        for _ in dyn.irun(settings.n_steps):
            step = dyn.nsteps
            steps_done = step
            gammas = np.asarray(calc.results.get("gamma", []), dtype=float)
            gamma = float(gammas.max()) if gammas.size else float("nan")
            bad = _blowup(work, calc, condition.temperature, settings)
            if bad is None and not math.isfinite(gamma):
                bad = "non-finite extrapolation grade"
            sample = step % settings.sample_interval == 0
            if bad is None and (sample or gamma >= settings.gamma_halt):
                pair = closest_pair(work, settings.min_distance_fraction)
                if pair is not None:
                    bad = f"atoms {pair[0]} and {pair[1]} at {pair[2]:.2f} Å"
            if bad is not None:
                stop, reason = "blowup", f"blow-up at step {step}: {bad}"
                candidates.extend(
                    frame(SOURCE_BLOWUP, s_, g_, a_, blowup_step=int(step))
                    for s_, g_, a_ in blowup_candidates(
                        history, settings.blowup_candidates, settings.min_distance_fraction
                    )
                )
                break
            max_gamma = max(max_gamma, gamma)
            if gamma >= settings.gamma_halt:
                stop = "gamma"
                reason = f"γ = {gamma:.3g} ≥ gamma_halt {settings.gamma_halt:g} at step {step}"
                trace.append((step, gamma))
                candidates.append(frame(SOURCE_HALT, step, gamma, work, rattled=False))
                for k, copy in enumerate(
                    rattled_copies(
                        work,
                        settings.n_rattled_copies,
                        settings.rattle_stdev,
                        rattle_rng,
                        settings.min_distance_fraction,
                    )
                ):
                    copy.calc = calc
                    copy.get_potential_energy()
                    g_copy = float(np.max(calc.results["gamma"]))
                    candidates.append(frame(SOURCE_HALT, step, g_copy, copy, rattled=True, rattle_index=k))
                break
            if sample:
                trace.append((step, gamma))
                history.append((step, gamma, bare_copy(work)))
                del history[: -max(settings.blowup_candidates, 1) * 2]
                if gamma >= settings.gamma_select:
                    candidates.append(frame(SOURCE_SAMPLE, step, gamma, work))
    except (RuntimeError, FloatingPointError, np.linalg.LinAlgError) as err:
        stop, reason = "blowup", f"blow-up at step {steps_done}: {type(err).__name__}: {err}"
        candidates.extend(
            frame(SOURCE_BLOWUP, s_, g_, a_, blowup_step=int(steps_done))
            for s_, g_, a_ in blowup_candidates(history, settings.blowup_candidates, settings.min_distance_fraction)
        )

    return TrajectoryResult(
        condition=condition,
        seed=int(seed),
        ensemble_used=ensemble,
        n_atoms=len(work),
        n_steps=settings.n_steps,
        n_steps_done=steps_done,
        stop=stop,
        reason=reason,
        max_gamma=max_gamma,
        candidates=candidates,
        gamma_trace=trace,
        final_structure=bare_copy(work),
        wall_time=time.perf_counter() - t0,
    )


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
