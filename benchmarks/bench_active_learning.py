"""Headline benchmark: active learning against a random cold start with the same number of oracle calls (Cu, EMT).

    .venv/bin/python benchmarks/bench_active_learning.py [--quick] [--workdir DIR] [--workers 2]

Both sides run through ``run_pipeline`` with the same two seeds (32-atom fcc Cu
and a Cu (111) slab, 4 layers, 3×3 in-plane, the second seed since issue 12),
generator, oracle (EMT) and pacemaker settings (a tiny ACE basis):

* active learning: a small random starting pool, then generations of MD
  exploration (NVT and NPT at 300/900/1300 K and ±5 GPa) watched by γ,
  D-optimal selection, EMT labels and refits, until its oracle budget is spent;
* random cold start: the generator's random pool (strain, rattle, point
  defects) as large as the oracle calls active learning used, one fit; a
  second one with half the calls gives the random learning curve.

The test set neither side trains on: EMT molecular dynamics of a 108-atom cell
at 300, 900 and 1300 K (NVT), at ±5 GPa (NPT, 600 K), of a vacancy (107
atoms, 900 K), of a (100) and a (111) surface slab (600 K), sampled once with a
fixed seed.  Printed: force and energy RMSE on it for both, the oracle calls each
used, the ratio, active learning's learning curve, and MD stability: the
fraction of 20 ps, 1300 K NVT trajectories (32 atoms) that run without a γ
halt or a blow-up with each final potential.

Targets: active learning reaches the random start's force RMSE with at most
half its oracle calls, or has at most 0.6× its force RMSE at equal calls; the
Cu (111) surface at 600 K below 30 meV/Å with at most 150 oracle calls.
``--quick`` shrinks everything (a smoke run of a few minutes; its figures are
not the benchmark's).

``--fm``: the foundation model on against off (issue 19; ``bench_fm.py`` runs and
prints the comparison).  On: CHGNet guides the cold start (the same pool size,
chosen among teacher-labelled generator structures and CHGNet MD frames), then
active learning with at most ``FM_MAX_CALLS`` oracle calls in all; off: the
active learning above; and a random cold start with the model's calls
(``--teacher-ace``: a fourth run, the model on with
``foundation_model.explore_with_teacher_ace``).  Target:
every condition, both slabs included, ≤ 10 meV/Å with ≤ 60 oracle calls.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.build import bulk, fcc100, fcc111
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

TARGET_CALL_FRACTION = 0.5
TARGET_RMSE_RATIO = 0.6
TEST_SEED = 2024
TARGET_SURFACE_RMSE = 30.0  # meV/Å, Cu (111) slab at 600 K
TARGET_SURFACE_CALLS = 150
SURFACE_CATEGORY = "slab (111) 600 K"
FM_TARGET_FORCE = 10.0  # meV/Å, every condition
FM_MAX_CALLS = 60
#: with --fm, every side's active learning hands on a long last refit (active_learning.final_max_epochs): the
#: refits of 150 iterations steer the exploration but leave the potential short of converged (measured on the
#: runs of 2026-12-03: 300 more iterations on the same data took the model-on run from 11.5 to 8.5 meV/Å on
#: its worst condition); the random start gets the same minimiser iterations in its one fit
FM_FINAL_EPOCHS = 450
#: the foundation model's part of the config with --fm (CHGNet from its wheel; a short MD run per seed and condition)
FM_SECTION = {
    "name": "chgnet",
    "model_version": "0.3.0",
    "threads": 1,
    "explore": True,
    "generator_candidates": 72,
    "md_steps": 60,
    "md_frames": 3,
    "md_trajectories": 1,
}


@dataclass(frozen=True)
class Sizes:
    pool: int
    max_new: int
    generations: int
    md_steps: int
    trajectories_per_condition: int
    epochs: int
    functions: int
    test_frames: int
    test_equilibration: int
    test_interval: int
    stability_trajectories: int
    stability_ps: float


FULL = Sizes(
    pool=24,
    max_new=16,
    generations=5,
    md_steps=1000,
    trajectories_per_condition=1,
    epochs=150,
    functions=30,
    test_frames=8,
    test_equilibration=300,
    test_interval=50,
    stability_trajectories=4,
    stability_ps=20.0,
)
QUICK = Sizes(
    pool=16,
    max_new=8,
    generations=2,
    md_steps=300,
    trajectories_per_condition=1,
    epochs=60,
    functions=20,
    test_frames=3,
    test_equilibration=100,
    test_interval=40,
    stability_trajectories=2,
    stability_ps=2.0,
)


# --------------------------------------------------------------------------- the test set
def _emt_md(
    atoms: Atoms,
    temperature: float,
    n_frames: int,
    equilibration: int,
    interval: int,
    rng,
    pressure: float | None = None,
) -> list[Atoms]:
    """Frames (with EMT energy and forces) of one EMT trajectory: Langevin NVT, or LangevinBAOAB NPT
    at ``pressure`` GPa."""
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import Stationary

    try:
        from ase.md.velocitydistribution import thermalize_momenta
    except ImportError:  # ASE < 3.29
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta

    atoms = atoms.copy()
    atoms.calc = EMT()
    thermalize_momenta(atoms, temperature_K=temperature, rng=rng)
    Stationary(atoms)
    with (
        warnings.catch_warnings()
    ):  # ASE's notes on fixcm and on the barostat mass heuristic: the frames stay as they were
        warnings.simplefilter("ignore", FutureWarning)
        warnings.filterwarnings("ignore", message="Using heuristic P_mass", category=UserWarning)
        if pressure is None:
            dyn = Langevin(atoms, 2 * units.fs, temperature_K=temperature, friction=0.02 / units.fs, rng=rng)
        else:
            from ase.md.langevinbaoab import LangevinBAOAB

            dyn = LangevinBAOAB(
                atoms,
                2 * units.fs,
                temperature_K=temperature,
                externalstress=-pressure * units.GPa,
                hydrostatic=True,
                T_tau=50 * units.fs,
                P_tau=500 * units.fs,
                rng=rng,
            )
    dyn.run(equilibration)
    frames = []
    for _ in range(n_frames):
        dyn.run(interval)
        frame = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
        frame.calc = SinglePointCalculator(frame, energy=atoms.get_potential_energy(), forces=atoms.get_forces())
        frames.append(frame)
    return frames


def build_test_set(s: Sizes) -> dict[str, list[Atoms]]:
    """The held-out EMT test set, by category (same seed, same frames every run)."""
    rng = np.random.default_rng(TEST_SEED)
    cell108 = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(3)
    vacancy = cell108.copy()
    del vacancy[0]
    slab = fcc100(
        "Cu", size=(3, 3, 6), a=3.61, vacuum=7.0, periodic=True
    )  # periodic with vacuum: PyACECalculator needs full pbc
    slab111 = fcc111("Cu", size=(4, 4, 6), a=3.61, vacuum=7.0, periodic=True)
    md = dict(n_frames=s.test_frames, equilibration=s.test_equilibration, interval=s.test_interval, rng=rng)
    return {
        "bulk 300 K": _emt_md(cell108, 300.0, **md),
        "bulk 900 K": _emt_md(cell108, 900.0, **md),
        "bulk 1300 K": _emt_md(cell108, 1300.0, **md),
        "bulk +5 GPa": _emt_md(cell108, 600.0, pressure=5.0, **md),
        "bulk -5 GPa": _emt_md(cell108, 600.0, pressure=-5.0, **md),
        "vacancy 900 K": _emt_md(vacancy, 900.0, **md),
        "slab (100) 600 K": _emt_md(slab, 600.0, **md),
        SURFACE_CATEGORY: _emt_md(slab111, 600.0, **md),
    }


def test_errors(fit, test_set: dict[str, list[Atoms]]) -> dict:
    """Force (meV/Å) and energy (meV/atom) RMSE of ``fit`` on the test set, overall and per category."""
    from mlip_autopipec.report.validate import error_metrics, predict
    from mlip_autopipec.trainer.pyace_import import import_pyace_calculator

    calc = import_pyace_calculator()(str(fit.potential_yace))
    refs = fit.reference_energy or {}
    shift = (lambda a: float(sum(refs.get(x, 0.0) for x in a.get_chemical_symbols()))) if refs else None
    per = {name: predict(frames, calc, shift) for name, frames in test_set.items()}
    out = {"by_category": {name: error_metrics(p).as_dict() for name, p in per.items()}}
    from mlip_autopipec.report.validate import Predictions

    allp = Predictions(
        *(
            np.concatenate([getattr(p, f) for p in per.values()])
            for f in ("natoms", "energy_ref", "energy_pred", "forces_ref", "forces_pred")
        )
    )
    out.update(error_metrics(allp).as_dict())
    return out


# --------------------------------------------------------------------------- the two sides
def base_config(s: Sizes, workdir: Path, workers: int, pool: int) -> dict:
    return {
        "workdir": str(workdir),
        "seeds": [
            {"name": "Cu_fcc", "element": "Cu", "lattice": "fcc", "a": 3.61, "cubic": True, "repeat": [2, 2, 2]},
            {
                "name": "Cu_111",
                "element": "Cu",
                "lattice": "fcc",
                "a": 3.61,
                "repeat": [3, 3, 1],
                "weight": 0.5,
                "surface": {"miller": [1, 1, 1], "layers": 4, "vacuum": 7.0},
                "generator": {"n_defect_structures": 0},
            },
        ],
        "generator": {
            "pool_size": pool,
            "seed": 7,
            "rattle_stdev": 0.05,
            "volume_range": [0.9, 1.1],
            "max_anisotropic_strain": 0.03,
            "eos_fraction": 0.15,
            "anisotropic_fraction": 0.4,
            "n_defect_structures": 4,
            "defect_kinds": ["vacancy", "interstitial"],
            "defect_supercell_min_width": 7.0,
        },
        "oracle": {"type": "emt"},
        "compute": {"type": "local", "n_workers": workers},
        "database": {"validation_fraction": 0.1, "split_seed": 0},
        "training": {
            "cutoff": 5.0,
            "number_of_functions_per_element": s.functions,
            "nradmax_by_orders": [12, 4, 2],
            "lmax_by_orders": [0, 2, 1],
            "max_num_epochs": s.epochs,
            "batch_size": 500,
            "test_size": 0,
            "evaluator": "tensorpot",
            "seed": 1,
            "display_step": 1000,
        },
        "report": {"eos": False},
    }


def al_settings(s: Sizes) -> dict:
    return {
        "gamma_select": 1.5,
        "gamma_halt": 5.0,
        "temperatures": [300.0, 900.0, 1300.0],
        "ensembles": ["nvt", "npt"],
        "pressures": [-5.0, 5.0],
        "trajectories_per_condition": s.trajectories_per_condition,
        "n_steps": s.md_steps,
        "sample_interval": 20,
        "md_min_atoms": 16,
        "n_rattled_copies": 2,
        "max_new_per_generation": s.max_new,
        "max_generations": s.generations,
        "max_oracle_calls": s.max_new * s.generations,
        "seed": 11,
    }


def fm_configs(s: Sizes, workers: int):
    """(model on, model off) config makers for bench_fm: the same seeds, pool size and active learning; with the
    model on, active learning stops at FM_MAX_CALLS oracle calls in all."""
    from mlip_autopipec.config.loader import validate_config
    from mlip_autopipec.config.schemas.pipeline import PipelineConfig

    final = {"final_max_epochs": max(FM_FINAL_EPOCHS * s.epochs // FULL.epochs, s.epochs)}

    def off(workdir: Path):
        cfg = base_config(s, workdir, workers, s.pool)
        cfg["active_learning"] = {**al_settings(s), **final}
        return validate_config(PipelineConfig, cfg, "benchmark config")

    def on(workdir: Path, teacher_ace: bool = False):
        cfg = base_config(s, workdir, workers, s.pool)
        cfg["active_learning"] = {**al_settings(s), **final, "max_oracle_calls": FM_MAX_CALLS - s.pool}
        cfg["foundation_model"] = {**FM_SECTION, "explore_with_teacher_ace": teacher_ace}
        return validate_config(PipelineConfig, cfg, "benchmark config")

    return on, off, lambda workdir: on(workdir, teacher_ace=True)


def run(config: dict):
    from mlip_autopipec.config.loader import validate_config
    from mlip_autopipec.config.schemas.pipeline import PipelineConfig
    from mlip_autopipec.pipeline.fits import latest_fit
    from mlip_autopipec.pipeline.run import run_pipeline

    cfg = validate_config(PipelineConfig, config, "benchmark config")
    t0 = time.perf_counter()
    run_pipeline(cfg, progress=False)
    wall = time.perf_counter() - t0
    workdir = Path(config["workdir"])
    return latest_fit(workdir), training_calls(workdir), wall


def learning_curve(al_dir: Path, test_set: dict[str, list[Atoms]]) -> list[tuple[int, dict]]:
    """(oracle calls, test errors) after each fit of an active-learning run, the starting pool's fit first
    (a closing fit, active_learning.final_max_epochs, comes last with the calls of the refit it continued)."""
    from mlip_autopipec.pipeline.fits import load_fit
    from mlip_autopipec.pipeline.state import read_state

    state = read_state(al_dir).active_learning
    initial = state.initial
    curve = [(initial.n_labelled_total, load_fit(al_dir, initial.fit_dir))]
    for row in state.generations:
        if row.step == "fitted":
            curve.append((initial.n_labelled_total + row.oracle_calls_total, load_fit(al_dir, row.fit_dir)))
    if state.final is not None:
        curve.append((curve[-1][0], load_fit(al_dir, state.final.fit_dir)))
    return [(calls, test_errors(fit, test_set)) for calls, fit in curve]


def minimiser_iterations(al_dir: Path, training_epochs: int) -> int:
    """Minimiser iterations of all the fits of an active-learning run together (the starting pool's fit ran
    ``training_epochs``; a refit recorded before fit_max_epochs existed counts as that many too)."""
    from mlip_autopipec.pipeline.state import read_state

    state = read_state(al_dir).active_learning
    refits = [
        row for row in state.generations if row.step == "fitted" and row.selected
    ]  # a quiet generation refits nothing
    total = training_epochs + sum(row.fit_max_epochs or training_epochs for row in refits)
    return total + (state.final.max_epochs if state.final is not None else 0)


def training_calls(workdir: Path) -> int:
    """Oracle calls the campaign spent on its data (labelled or failed structures); the report's own reference
    calculations of the properties (stored with the ``property`` label) are not training data and are not counted."""
    from mlip_autopipec.database import DatabaseManager
    from mlip_autopipec.database.metadata import PROPERTY

    with DatabaseManager(workdir / "structures.db") as db:
        spent = set(db.ids(status="labelled")) | set(db.ids(status="failed"))
        return len(spent - set(db.ids(label=PROPERTY)))


def stability(fit, train_data: Path, gamma_halt: float, s: Sizes, workers: int) -> tuple[int, list[str]]:
    """How many of the 1300 K NVT trajectories (32 atoms, s.stability_ps ps) ran to the end; the stop reasons."""
    from mlip_autopipec.compute.cluster import dask_client
    from mlip_autopipec.config import LocalComputeConfig
    from mlip_autopipec.config.schemas.active_learning import ActiveLearningConfig
    from mlip_autopipec.explore import MDCondition, build_active_set, run_trajectory
    from mlip_autopipec.explore.activeset import asi_path_for

    asi = asi_path_for(fit.potential_yaml)
    if not asi.is_file():
        asi = build_active_set(fit.potential_yaml, train_data)
    steps = int(round(s.stability_ps * 1000 / 2.0))
    cfg = ActiveLearningConfig(
        n_steps=steps,
        timestep=2.0,
        sample_interval=100,
        gamma_select=gamma_halt * 0.999,
        gamma_halt=gamma_halt,
        md_min_atoms=32,
        n_rattled_copies=0,
    )
    seed_crystal = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    with dask_client(LocalComputeConfig(n_workers=workers)) as client:
        futures = [
            client.submit(
                run_trajectory,
                seed_crystal,
                str(fit.potential_yaml),
                str(asi),
                MDCondition("nvt", 1300.0),
                cfg,
                1000 + k,
                pure=False,
            )
            for k in range(s.stability_trajectories)
        ]
        results = client.gather(futures)
    return sum(1 for r in results if not r.halted), [r.reason for r in results]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--quick", action="store_true", help="a small smoke run (a few minutes); not the benchmark's figures"
    )
    ap.add_argument(
        "--workdir", type=Path, default=None, help="keep the runs here (default: a temporary folder, removed)"
    )
    ap.add_argument("--workers", type=int, default=2, help="Dask worker processes (oracle, MD)")
    ap.add_argument("--fm", action="store_true", help="the foundation model on against off (bench_fm.py)")
    ap.add_argument(
        "--teacher-ace",
        action="store_true",
        help="with --fm, a fourth run: the model on and its teacher ACE exploring before any oracle call",
    )
    ap.add_argument(
        "--pwx-seconds",
        type=float,
        default=None,
        help="wall time (s) of one pw.x call on a 32-atom Cu cell (bench_oracle.py --cu32): the model's cost "
        "in pw.x calls",
    )
    args = ap.parse_args()
    s = QUICK if args.quick else FULL
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for handler in logging.getLogger().handlers:  # our INFO lines; other libraries' (Dask) from WARNING only
        handler.addFilter(lambda r: r.levelno >= logging.WARNING or r.name.startswith("mlip_autopipec"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    root = args.workdir or Path(tempfile.mkdtemp(prefix="bench_al_"))
    root.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()
    t_start = time.perf_counter()
    print(
        f"bench_active_learning ({'quick' if args.quick else 'full'}); work in {root}; "
        f"load average {load_start[0]:.1f}",
        flush=True,
    )

    t0 = time.perf_counter()
    test_set = build_test_set(s)
    n_frames = sum(len(v) for v in test_set.values())
    n_atoms = sum(len(a) for v in test_set.values() for a in v)
    print(
        f"test set: {n_frames} EMT frames, {n_atoms} atoms ({', '.join(test_set)}), {time.perf_counter() - t0:.0f} s",
        flush=True,
    )

    if args.fm:
        from bench_fm import FmBench, compare_fm

        on, off, on_ace = fm_configs(s, args.workers)
        bench = FmBench(on, off, FM_TARGET_FORCE, FM_MAX_CALLS, None, on_ace if args.teacher_ace else None)
        compare_fm(bench, root, test_set, args.pwx_seconds)
        print(f"total {time.perf_counter() - t_start:.0f} s; load average {os.getloadavg()[0]:.1f}", flush=True)
        return 0
    # active learning
    al_dir = root / "active_learning"
    cfg = base_config(s, al_dir, args.workers, s.pool)
    cfg["active_learning"] = al_settings(s)
    al_fit, al_calls, al_wall = run(cfg)
    from mlip_autopipec.pipeline.state import read_state

    state = read_state(al_dir).active_learning
    print(
        f"active learning: {al_calls} oracle calls, {len(state.generations)} generations, {al_wall:.0f} s; "
        f"stopped: {state.stop_reason}",
        flush=True,
    )

    al_curve = learning_curve(al_dir, test_set)
    al_err = test_errors(al_fit, test_set)

    # random cold start, same calls and half of them
    rnd_fit, rnd_calls, rnd_wall = run(base_config(s, root / "random", args.workers, al_calls))
    half_fit, half_calls, _ = run(base_config(s, root / "random_half", args.workers, al_calls // 2))
    rnd_err, half_err = test_errors(rnd_fit, test_set), test_errors(half_fit, test_set)
    print(f"random cold start: {rnd_calls} oracle calls, {rnd_wall:.0f} s", flush=True)

    # MD stability with each final potential
    gamma_halt = al_settings(s)["gamma_halt"]
    al_ok, al_reasons = stability(al_fit, al_dir / "data" / "train.pckl.gzip", gamma_halt, s, args.workers)
    rnd_ok, rnd_reasons = stability(rnd_fit, root / "random" / "data" / "train.pckl.gzip", gamma_halt, s, args.workers)

    f_ratio = al_err["force_rmse_mev_per_angstrom"] / rnd_err["force_rmse_mev_per_angstrom"]
    e_ratio = al_err["energy_rmse_mev_per_atom"] / rnd_err["energy_rmse_mev_per_atom"]
    # the first refit of active learning (its starting pool alone does not count) that matches the random start
    reach = next(
        (
            calls
            for calls, e in al_curve[1:]
            if e["force_rmse_mev_per_angstrom"] <= rnd_err["force_rmse_mev_per_angstrom"]
        ),
        None,
    )
    call_fraction = None if reach is None else reach / rnd_calls

    print()
    print(f"{'':30}{'oracle calls':>13}{'force RMSE (meV/Å)':>20}{'energy RMSE (meV/atom)':>24}")
    for name, calls, e in (
        ("active learning", al_calls, al_err),
        ("random cold start", rnd_calls, rnd_err),
        ("random, half the calls", half_calls, half_err),
    ):
        print(f"{name:30}{calls:>13}{e['force_rmse_mev_per_angstrom']:>20.1f}{e['energy_rmse_mev_per_atom']:>24.2f}")
    print(
        "active learning after each fit, the starting pool's first "
        "(oracle calls: test force RMSE meV/Å, energy RMSE meV/atom):"
    )
    print(
        "  "
        + "; ".join(
            f"{c}: {e['force_rmse_mev_per_angstrom']:.1f}, {e['energy_rmse_mev_per_atom']:.2f}" for c, e in al_curve
        )
    )
    print("test force RMSE by category (meV/Å), active learning / random:")
    for name in test_set:
        a, r = al_err["by_category"][name], rnd_err["by_category"][name]
        print(f"  {name:20} {a['force_rmse_mev_per_angstrom']:8.1f} / {r['force_rmse_mev_per_angstrom']:8.1f}")
    print(
        f"ratio AL / random at equal calls: force RMSE {f_ratio:.3f} (target <= {TARGET_RMSE_RATIO}), "
        f"energy RMSE {e_ratio:.3f}"
    )
    if call_fraction is None:
        print(
            "active learning did not reach the random start's force RMSE "
            f"({rnd_err['force_rmse_mev_per_angstrom']:.1f} meV/Å)"
        )
    else:
        print(
            f"active learning reached the random start's force RMSE with {reach} of its {rnd_calls} calls: "
            f"{call_fraction:.2f} (target <= {TARGET_CALL_FRACTION})"
        )
    steps_ps = s.stability_ps
    print(
        f"MD stability ({s.stability_trajectories} × {steps_ps:g} ps NVT at 1300 K, 32 atoms, gamma_halt "
        f"{gamma_halt:g}): active learning {al_ok}/{s.stability_trajectories}, random "
        f"{rnd_ok}/{s.stability_trajectories}"
    )
    for who, reasons in (("AL", al_reasons), ("random", rnd_reasons)):
        print(f"  {who}: " + "; ".join(reasons))
    surface = al_err["by_category"][SURFACE_CATEGORY]["force_rmse_mev_per_angstrom"]
    surface_met = surface < TARGET_SURFACE_RMSE and al_calls <= TARGET_SURFACE_CALLS
    print(
        f"Cu (111) surface at 600 K: force RMSE {surface:.1f} meV/Å with {al_calls} oracle calls (random: "
        f"{rnd_err['by_category'][SURFACE_CATEGORY]['force_rmse_mev_per_angstrom']:.1f}); target < "
        f"{TARGET_SURFACE_RMSE:g} meV/Å with ≤ {TARGET_SURFACE_CALLS} calls: {'MET' if surface_met else 'NOT MET'}"
    )
    met = f_ratio <= TARGET_RMSE_RATIO or (call_fraction is not None and call_fraction <= TARGET_CALL_FRACTION)
    load_end = os.getloadavg()
    print(
        f"target {'MET' if met else 'NOT MET'}; total {time.perf_counter() - t_start:.0f} s; "
        f"load average {load_start[0]:.1f} at start, {load_end[0]:.1f} at end ({os.cpu_count()} CPUs)"
    )
    if args.workdir is None:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
