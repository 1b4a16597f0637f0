"""Candidates labelled by a foundation model as a *teacher*: the guided cold start's work on the Dask workers.

Two kinds of :class:`TeacherJob`, planned by :func:`teacher_jobs` (pure, the same config gives the same jobs):

* ``single_points``: a chunk of the generator's structures (drawn over every seed as the starting pool is),
  each labelled by the model (:func:`label_structures`);
* ``md``: one trajectory run with the model's ASE calculator from a seed's variant under one condition
  (:func:`teacher_md`): ASE's Langevin (NVT) or LangevinBAOAB (NPT), as active learning runs them
  (:func:`~mlip_autopipec.explore.md.md_dynamics`); a slab runs NVT only and keeps its vacuum.  ``md_frames``
  frames evenly spaced over the trajectory are kept, each with the model's energy, forces and stress of that step.

Both run on a worker, where the model is loaded once per process
(:func:`~mlip_autopipec.oracle.foundation.load_calculator`), and return :class:`TeacherLabel` s; the driver
stores them (teacher rows, :mod:`mlip_autopipec.database.teacher`).  The cells are not enlarged: the oracle later
computes the frames chosen, at the size the seeds give.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.calculators.singlepoint import SinglePointCalculator

from mlip_autopipec.config.schemas.active_learning import ActiveLearningConfig
from mlip_autopipec.config.schemas.foundation import FoundationModelConfig
from mlip_autopipec.config.schemas.oracle import FoundationModelOracleConfig
from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.explore.md import (
    MDCondition,
    MDWatch,
    bare_copy,
    check_blowup,
    md_cell,
    md_conditions,
    md_dynamics,
    run_watched,
    thermalize,
)
from mlip_autopipec.oracle.base import LabelFailed, fully_periodic

#: generator structures per single-point task (one task amortises the model's call overhead, many keep workers busy)
CHUNK = 8
#: the MD conditions without an active_learning section: NVT and NPT at 0 GPa, 300 and 900 K, 2 fs steps
DEFAULT_EXPLORATION = ActiveLearningConfig(temperatures=[300.0, 900.0], pressures=[0.0], ensembles=["nvt", "npt"])
#: a force (eV/Å) no physical structure reaches: the model's label is kept whatever it says, screening judges it
_NO_FORCE_LIMIT = 1.0e9


@dataclass(frozen=True)
class TeacherLabel:
    """A candidate with its teacher's label: ``atoms`` carries energy (eV), forces (eV/Å) and stress (eV/Å³, ASE's
    Voigt order) in a single-point calculator; ``provenance`` says where it came from; ``wall_time_s`` the model's
    time for it (an MD frame: its share of the trajectory)."""

    atoms: Atoms
    provenance: dict[str, object]
    wall_time_s: float


@dataclass(frozen=True)
class TeacherJob:
    """One worker task: a chunk of generator structures to label, or one MD trajectory (its start, condition and
    random seed).  ``key`` names it in the teacher rows' provenance (``teacher_task``): a rerun skips done jobs."""

    key: str
    kind: Literal["single_points", "md"]
    structures: list[Atoms] = field(default_factory=list)
    condition: MDCondition | None = None
    seed: int = 0


def teacher_model(fm: FoundationModelConfig) -> FoundationModelOracleConfig:
    """The model as the foundation_model oracle kind loads it, with no force limit (screening judges the labels)."""
    return FoundationModelOracleConfig(
        name=fm.name, model_version=fm.model_version, threads=fm.threads, max_force=_NO_FORCE_LIMIT
    )


def exploration_settings(config: PipelineConfig) -> ActiveLearningConfig:
    """The MD settings of the candidates: active learning's (conditions, time step, thermostat), else
    :data:`DEFAULT_EXPLORATION`; ``md_steps`` long, no blow-up lead-up frames."""
    fm = config.foundation_model
    assert fm is not None
    base = config.active_learning or DEFAULT_EXPLORATION
    return base.model_copy(update={"n_steps": max(fm.md_steps, 1), "blowup_candidates": 0})


def job_seed(base: int, key: str) -> int:
    """A job's random seed: the run's seed and the job's key, hashed."""
    return int(np.random.SeedSequence([int(base) & 0xFFFFFFFF, zlib.crc32(key.encode())]).generate_state(1)[0])


def slab_conditions(conditions: list[MDCondition]) -> list[MDCondition]:
    """The conditions a slab runs: NVT at each temperature of ``conditions`` (once each)."""
    temperatures = dict.fromkeys(c.temperature for c in conditions)
    return [MDCondition("nvt", t) for t in temperatures]


def teacher_jobs(config: PipelineConfig) -> list[TeacherJob]:
    """Every job of the guided cold start: the generator's candidates in chunks, then ``md_trajectories`` MD
    trajectories per seed and condition, taking the seed's variants in turn (a slab seed: NVT at each temperature)."""
    from mlip_autopipec.explore.md import vacuum_axes
    from mlip_autopipec.generator.campaign import build_pool, seed_generator_config, seed_variants

    fm = config.foundation_model
    assert fm is not None
    pool = build_pool(config, fm.n_generator_candidates(config.generator.pool_size))
    jobs = [TeacherJob(f"gen:{i}", "single_points", structures=pool[i : i + CHUNK]) for i in range(0, len(pool), CHUNK)]
    if fm.md_steps == 0:
        return jobs
    conditions = md_conditions(exploration_settings(config))
    for seed in config.seeds:
        variants = seed_variants(seed, rng_seed=seed_generator_config(seed, config.generator).seed)
        own = slab_conditions(conditions) if any(vacuum_axes(variants[0])) else conditions
        for k in range(fm.md_trajectories * len(own)):
            c, variant = own[k % len(own)], variants[(k + k // len(own)) % len(variants)]
            key = f"md:{seed.name}:{c.label}:{k // len(own)}"
            jobs.append(
                TeacherJob(key, "md", structures=[variant], condition=c, seed=job_seed(config.generator.seed, key))
            )
    return jobs


def _labelled(atoms: Atoms, energy: float, forces: np.ndarray, stress: np.ndarray | None) -> Atoms:
    out = bare_copy(atoms)
    forces = np.asarray(forces, dtype=float)
    stress = None if stress is None else np.asarray(stress, dtype=float)
    out.calc = SinglePointCalculator(out, energy=float(energy), forces=forces, stress=stress)
    return out


def label_structures(structures: list[Atoms], model: FoundationModelOracleConfig, key: str) -> list[TeacherLabel]:
    """Run on a worker: the model's label of each structure (one that the model cannot label is left out)."""
    from mlip_autopipec.oracle.foundation import FoundationModelOracle

    oracle = FoundationModelOracle(model)
    out = []
    for i, atoms in enumerate(structures):
        work = bare_copy(atoms)
        if work.pbc.any() and not work.pbc.all():
            work.pbc = True  # a slab keeps its vacuum gap in a fully periodic cell, as the pool stores it
        try:
            res = oracle.label(work)
        except LabelFailed:
            continue  # non-finite: not a candidate
        provenance = {**atoms.info, "candidate": "generator", "teacher_task": key, "teacher_index": i}
        out.append(TeacherLabel(_labelled(work, res.energy, res.forces, res.stress), provenance, res.wall_time_s))
    return out


def _frame_keeper(frames: list[tuple[int, Atoms]]):
    """An MD observer keeping the frame of each step it is called at (not the start), with the model's results."""

    def keep(watch: MDWatch) -> None:
        if watch.step == 0:
            return
        work = watch.work
        stress = work.get_stress(voigt=True) if fully_periodic(work) else None
        frames.append((watch.step, _labelled(work, work.get_potential_energy(), work.get_forces(), stress)))

    return keep


def _run_teacher_md(
    start: Atoms,
    calc: Calculator,
    condition: MDCondition,
    settings: ActiveLearningConfig,
    seed: int,
    n_frames: int,
    key: str,
) -> tuple[MDWatch, list[tuple[int, Atoms]], str]:
    """The MD of :func:`teacher_md`: the watch, the frames kept (step, labelled frame) and the ensemble run."""
    work, vacuum = md_cell(start)
    ensemble = "nvt" if condition.ensemble == "nvt" or any(vacuum) else "npt"
    vel_rng, dyn_rng, rattle_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    work.calc = calc
    thermalize(work, condition.temperature, vel_rng)
    watch = MDWatch(work, calc, settings, condition.temperature, {}, rattle_rng, has_gamma=False)
    watch.start(key)
    frames: list[tuple[int, Atoms]] = []
    interval = max(settings.n_steps // n_frames, 1)
    observers = [(check_blowup, 1), (_frame_keeper(frames), interval)]
    try:
        run_watched(md_dynamics(work, ensemble, condition, settings, dyn_rng), watch, observers)
    finally:
        work.calc = None
    return watch, frames, ensemble


def teacher_md(
    start: Atoms,
    model: FoundationModelOracleConfig,
    condition: MDCondition,
    settings: ActiveLearningConfig,
    seed: int,
    n_frames: int,
    key: str,
) -> list[TeacherLabel]:
    """Run on a worker: one MD trajectory of ``settings.n_steps`` steps with the model from ``start`` under
    ``condition`` (a slab: NVT, its vacuum kept); every ``n_steps // n_frames`` steps a frame is kept with the
    model's label of that step.  A blow-up (non-finite values, a runaway temperature, atoms too close) ends the
    trajectory; the frames before it stay."""
    from mlip_autopipec.oracle.foundation import _LOCK, _import_torch, load_calculator

    t0 = time.perf_counter()
    calc = load_calculator(model)
    with _LOCK:  # the process's one calculator: one trajectory (or labelling call) at a time, as the oracle does
        torch = _import_torch()
        torch.set_num_threads(model.threads)
        watch, frames, ensemble = _run_teacher_md(start, calc, condition, settings, seed, n_frames, key)
    share = (time.perf_counter() - t0) / max(len(frames), 1)
    base = {
        **start.info,
        "candidate": "md",
        "teacher_task": key,
        "md_condition": condition.label,
        "md_ensemble": ensemble,
        "md_temperature_K": float(condition.temperature),
        "md_seed": int(seed),
        "md_stop": watch.stop,
    }
    if ensemble == "npt" and condition.pressure is not None:
        base["md_pressure_GPa"] = float(condition.pressure)
    return [
        TeacherLabel(a, {**base, "md_step": int(s), "md_time_fs": float(s * settings.timestep)}, share)
        for s, a in frames[-n_frames:]
    ]


def run_job(
    job: TeacherJob, model: FoundationModelOracleConfig, settings: ActiveLearningConfig, n_frames: int
) -> list[TeacherLabel]:
    """Run on a worker: one :class:`TeacherJob`."""
    if job.kind == "single_points":
        return label_structures(job.structures, model, job.key)
    assert job.condition is not None
    return teacher_md(job.structures[0], model, job.condition, settings, job.seed, n_frames, job.key)


__all__ = [
    "DEFAULT_EXPLORATION",
    "TeacherJob",
    "TeacherLabel",
    "exploration_settings",
    "label_structures",
    "run_job",
    "teacher_jobs",
    "teacher_md",
    "teacher_model",
]
