"""Real-DFT benchmark: the pw.x active-learning campaign of ``examples/si_qe_al.yaml`` against a random pool.

    .venv/bin/python benchmarks/bench_dft.py [--workdir /tmp/bench_dft] [--workers 2] [--quick]

Active learning: ``examples/si_qe_al.yaml`` as shipped (diamond Si, a vacancy and a
(100) slab as seeds; pw.x, ecutwfc 20 Ry, kspacing 0.3 Å⁻¹), run through
``run_pipeline`` with its report.  Random pool: the same config without active
learning, its starting pool (the same generator over the same seeds) as large as
the pw.x calls active learning used in all, one fit with as many minimiser
iterations as all of active learning's fits together, no report properties.

The test set no run trains on, built here with fixed seeds: molecular dynamics
with another model, CHGNet (the weights its wheel ships; Langevin NVT, one torch
thread), of a 16-atom diamond cell at 600 K and 1200 K, compressed to about
+5 GPa (a = 5.38 Å, pw.x's 0 K pressure 5.0 GPa) at 600 K, of a 15-atom vacancy
cell and a 16-atom (100) slab (8 atomic planes) at 900 K, labelled by pw.x with
exactly the example's ``oracle`` section (the project's espresso oracle and its
healing ladder).  It is kept in ``WORKDIR/test_set`` (the labels in its
database): a rerun labels nothing again.  Each run keeps its figures in
``WORKDIR/<run>/bench.json``: a rerun scores the finished runs without running
them again (delete the folder to measure anew).

Printed: pw.x calls; the wall-time split (pw.x labelling, fits, MD, the report,
the rest) and pw.x's own core time; force and energy RMSE per condition for both
runs; active learning's learning curve (the test set after each of its fits);
what broke on the way (failed pw.x calls with their reasons, and every label the
healing ladder needed more than one attempt for).  Progress lines go to stdout
as they come (run it under nohup with its output in a log file).
``--quick`` shrinks the campaign and the test set (a smoke run; not the benchmark's figures).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.build import bulk, surface

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "si_qe_al.yaml"
TEST_SEED = 2031
A0 = 5.47  # Å, the example's lattice constant (PBE with Si.pbe-rrkj.UPF at 20 Ry)
A_COMPRESSED = 5.38  # Å: pw.x gives 5.0 GPa at 0 K (B ≈ 88 GPa)
HOT = "bulk 1200 K"
DEFECTS = ("vacancy 900 K", "slab (100) 900 K")


@dataclass(frozen=True)
class Sizes:
    frames: int  # test frames per condition
    equilibration: int  # MD steps before the first frame
    interval: int  # MD steps between frames
    campaign: dict  # changes to the example (section -> fields)


FULL = Sizes(frames=5, equilibration=400, interval=80, campaign={})
QUICK = Sizes(
    frames=1,
    equilibration=100,
    interval=20,
    campaign={
        "generator": {"pool_size": 8},
        "training": {"max_num_epochs": 40},
        "active_learning": {
            "temperatures": [1200.0],
            "n_steps": 200,
            "max_generations": 1,
            "max_new_per_generation": 4,
            "max_oracle_calls": 4,
            "refit_max_epochs": 20,
            "final_max_epochs": 30,
        },
        "report": {"eos": False},
    },
)


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


# --------------------------------------------------------------------------- the test set
def test_conditions() -> dict[str, tuple[Atoms, float]]:
    """The start cell and temperature (K) of each condition's CHGNet trajectory."""
    cell16 = bulk("Si", "diamond", a=A0, cubic=True).repeat((1, 1, 2))
    compressed = bulk("Si", "diamond", a=A_COMPRESSED, cubic=True).repeat((1, 1, 2))
    vacancy = bulk("Si", "diamond", a=A0, cubic=True).repeat((1, 1, 2))
    del vacancy[5]  # not the vacancy seed's site: a different start (the cells are equivalent by symmetry)
    slab = surface(bulk("Si", "diamond", a=A0, cubic=True), (1, 0, 0), 2, vacuum=6.0, periodic=True)
    return {
        "bulk 600 K": (cell16, 600.0),
        HOT: (cell16, 1200.0),
        "bulk +5 GPa 600 K": (compressed, 600.0),
        DEFECTS[0]: (vacancy, 900.0),
        DEFECTS[1]: (slab, 900.0),
    }


def chgnet_md(name: str, atoms: Atoms, temperature: float, s: Sizes, seed: int) -> list[Atoms]:
    """Frames of one CHGNet Langevin NVT trajectory (2 fs, friction 0.02 fs⁻¹), positions only."""
    import torch

    torch.set_num_threads(1)
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary
    from chgnet.model.dynamics import CHGNetCalculator

    rng = np.random.default_rng([TEST_SEED, seed])
    atoms = atoms.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        atoms.calc = CHGNetCalculator(use_device="cpu")
        MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
        Stationary(atoms)
        dyn = Langevin(atoms, 2 * units.fs, temperature_K=temperature, friction=0.02 / units.fs, rng=rng)
        dyn.run(s.equilibration)
        frames = []
        for k in range(s.frames):
            dyn.run(s.interval)
            frame = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=True)  # a slab: 12 Å of vacuum
            frame.info.update(condition=name, frame=k, temperature_k=temperature)
            frames.append(frame)
    return frames


def label_settings(oracle) -> dict:
    """The oracle's settings that shape its labels (not how pw.x is started, its time limit or its retries), without
    the unset ones (a field added to the schema later leaves an older test set valid)."""
    from mlip_autopipec.pipeline.state import INVALIDATING

    dumped = oracle if isinstance(oracle, dict) else oracle.model_dump(mode="json")
    return {k: v for k, v in dumped.items() if k not in INVALIDATING["oracle"] and v not in (None, {}, [])}


def build_test_set(root: Path, oracle_cfg, s: Sizes, workers: int) -> dict[str, list[Atoms]]:
    """The labelled test set by condition: CHGNet frames labelled by pw.x in ``root`` (kept: a rerun labels
    nothing again, an interrupted labelling goes on)."""
    from mlip_autopipec.config import LocalComputeConfig
    from mlip_autopipec.database import DatabaseManager, StructureMetadata
    from mlip_autopipec.oracle import label_pending

    root.mkdir(parents=True, exist_ok=True)
    settings = root / "oracle.json"
    wanted = label_settings(oracle_cfg)
    if settings.is_file() and label_settings(json.loads(settings.read_text())) != wanted:
        raise SystemExit(f"{root} was labelled with other pw.x settings ({settings}): remove it or use --workdir")
    settings.write_text(json.dumps(wanted, indent=1))
    with DatabaseManager(root / "structures.db") as db:
        if len(db) == 0:
            t0 = time.perf_counter()
            conditions = test_conditions()
            with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
                futures = [
                    pool.submit(chgnet_md, name, atoms, temperature, s, k)
                    for k, (name, (atoms, temperature)) in enumerate(conditions.items())
                ]
                frames = [f for future in futures for f in future.result()]
            db.add_structures(frames, [StructureMetadata(source="test_chgnet_md") for _ in frames])
            say(f"test set: {len(frames)} CHGNet MD frames, {time.perf_counter() - t0:.0f} s")
        pending = db.count(status="pending")
        if pending:
            t0 = time.perf_counter()
            say(f"test set: labelling {pending} frames with pw.x ({workers} workers)")
            label_pending(
                db,
                oracle_cfg,
                LocalComputeConfig(n_workers=workers),
                root / "oracle",
                max_failure_fraction=1.0,
                progress=False,
            )
            say(f"test set: labelled in {time.perf_counter() - t0:.0f} s")
        out: dict[str, list[Atoms]] = {name: [] for name in test_conditions()}
        for rec in db.select(status="labelled"):
            out[str(rec.metadata.provenance["condition"])].append(periodic(rec.atoms))
        return out


def periodic(frame: Atoms) -> Atoms:
    """``frame`` with its labels, fully periodic (pyace takes no slab periodic in-plane only; a test set labelled
    before this stored its slab frames so, with the same single k-point across the vacuum)."""
    from ase.calculators.singlepoint import SinglePointCalculator

    out = Atoms(frame.numbers, frame.positions, cell=frame.cell, pbc=True, info=dict(frame.info))
    stress = frame.calc.results.get("stress") if frame.calc is not None else None
    out.calc = SinglePointCalculator(out, energy=frame.get_potential_energy(), forces=frame.get_forces(), stress=stress)
    return out


def pressure_gpa(frames: list[Atoms]) -> float | None:
    """Mean pw.x pressure (GPa) of the frames labelled with a stress (bulk; not a slab's)."""
    with_stress = [a for a in frames if a.calc is not None and a.calc.results.get("stress") is not None]
    values = [
        -float(np.mean(a.get_stress(voigt=True)[:3])) / units.GPa
        for a in with_stress
        if DEFECTS[1] not in a.info.get("condition", "")
    ]
    return float(np.mean(values)) if values else None


# --------------------------------------------------------------------------- scoring
def test_errors(fit, test_set: dict[str, list[Atoms]]) -> dict:
    """Force (meV/Å) and energy (meV/atom) RMSE of ``fit`` per condition and over all; the reference energies
    pacemaker subtracted (per element and its shift) are added back."""
    from mlip_autopipec.report.validate import Predictions, energy_shift, error_metrics, predict
    from mlip_autopipec.trainer.pyace_import import import_pyace_calculator

    calc = import_pyace_calculator()(str(fit.potential_yace))
    shift = energy_shift(fit.reference_energy)
    per = {name: predict(frames, calc, shift) for name, frames in test_set.items() if frames}
    fields = ("natoms", "energy_ref", "energy_pred", "forces_ref", "forces_pred")
    every = error_metrics(Predictions(*(np.concatenate([getattr(p, f) for p in per.values()]) for f in fields)))
    return {"by_condition": {name: error_metrics(p).as_dict() for name, p in per.items()}, "all": every.as_dict()}


def fit_iterations(state, training_epochs: int) -> int:
    """Minimiser iterations of all the fits of an active-learning run together."""
    refits = [row for row in state.generations if row.step == "fitted" and row.selected]
    total = training_epochs + sum(row.fit_max_epochs or training_epochs for row in refits)
    return total + (state.final.max_epochs if state.final is not None else 0)


def curve_fits(workdir: Path, state) -> list[tuple[int, str]]:
    """(pw.x calls for training data, fit folder) after each fit of active learning, the starting pool's first."""
    initial = state.initial
    pool_calls = spent_calls(workdir, generation=0)
    out = [(pool_calls, str(initial.fit_dir))]
    for row in state.generations:
        if row.step == "fitted" and row.selected:
            out.append((pool_calls + row.oracle_calls_total, str(row.fit_dir)))
    if state.final is not None:
        out.append((out[-1][0], str(state.final.fit_dir)))
    return out


# --------------------------------------------------------------------------- what a run spent and what broke
def spent_calls(workdir: Path, generation: int | None = None) -> int:
    """pw.x calls spent on training data (labelled or failed structures; the report's property calls not)."""
    from mlip_autopipec.database import DatabaseManager
    from mlip_autopipec.database.metadata import PROPERTY

    with DatabaseManager(workdir / "structures.db") as db:
        spent = set(db.ids(status="labelled")) | set(db.ids(status="failed"))
        if generation is not None:
            spent &= set(db.ids(generation=generation))
        return len(spent - set(db.ids(label=PROPERTY)))


def oracle_core_time(workdir: Path) -> dict[str, float]:
    """pw.x's own time (s, summed over the training calls; each label's ``oracle_wall_time_s``), its median per
    call, and the report's property calls (rows labelled ``property``; their time is the report's)."""
    from mlip_autopipec.database import DatabaseManager
    from mlip_autopipec.database.metadata import PROPERTY

    with DatabaseManager(workdir / "structures.db") as db:
        props = set(db.ids(label=PROPERTY))
        train = [
            float(rec.label_info["oracle_wall_time_s"])
            for rec in db.select(status="labelled")
            if rec.id not in props and rec.label_info and rec.label_info.get("oracle_wall_time_s") is not None
        ]
    return {
        "training_s": sum(train),
        "median_s": statistics.median(train) if train else 0.0,
        "property_calls": len(props),
    }


def property_calls(workdir: Path) -> int:
    """The report's property calculations in the database (rows labelled ``property``)."""
    from mlip_autopipec.database import DatabaseManager
    from mlip_autopipec.database.metadata import PROPERTY

    with DatabaseManager(workdir / "structures.db") as db:
        return db.count(label=PROPERTY)


def what_broke(db_path: Path) -> list[str]:
    """One line per failed pw.x call (its reason) and per label that needed the healing ladder (its attempts)."""
    from mlip_autopipec.database import DatabaseManager

    lines = []
    with DatabaseManager(db_path) as db:
        for rec in db.select():
            prov = rec.metadata.provenance
            what = prov.get("seed") or prov.get("condition") or prov.get("md_start") or ""
            where = f"#{rec.id} {rec.metadata.source} {what} ({len(rec.atoms)} atoms)"
            if rec.status == "failed":
                reason = (rec.failure_reason or "").splitlines()[0][:300]
                lines.append(f"  FAILED {where}: {reason}")
                continue
            attempts = (rec.label_info or {}).get("oracle_attempt_log") or []
            if len(attempts) > 1:
                steps = "; ".join(
                    f"#{a['number']} {a.get('settings') or 'configured'}: {a['outcome']} ({a['wall_time_s']:.0f} s)"
                    for a in attempts
                )
                lines.append(f"  healed {where}: {steps}")
    return lines


def wall_split(workdir: Path, wall: float) -> dict[str, float]:
    """Where a run's wall time went (s): pw.x labelling, fits, MD, the report, the rest."""
    from mlip_autopipec.records import RunSummary, read_record

    summary = read_record(workdir / "report" / "summary.json", RunSummary, workdir)
    if summary is None:
        raise SystemExit(f"{workdir}: no report/summary.json (the run did not finish)")
    steps = summary.timings.steps_s
    label, fits, md = steps.get("label", 0.0), steps.get("fit", 0.0), 0.0
    state = summary.active_learning
    if state is not None:
        for row in state.generations:
            label += row.label_s
            fits += row.fit_s
            md += row.explore_s
        if state.final is not None:
            fits += state.final.fit_s
    report = max(0.0, wall - summary.timings.total_s)
    return {
        "pw.x labelling": label,
        "fits": fits,
        "MD": md,
        "report": report,
        "rest": max(0.0, wall - label - fits - md - report),
    }


# --------------------------------------------------------------------------- the runs
def campaign_config(s: Sizes, workdir: Path, workers: int):
    """The example's config (paths resolved), with the mode's changes, in ``workdir``."""
    from mlip_autopipec.config import load_config

    cfg = load_config(EXAMPLE)
    update: dict = {"workdir": workdir, "compute": cfg.compute.model_copy(update={"n_workers": workers})}
    for section, fields in s.campaign.items():
        update[section] = getattr(cfg, section).model_copy(update=fields)
    return cfg.model_copy(update=update)


def run_once(cfg, name: str) -> dict:
    """Run ``cfg`` unless its figures are kept (``bench.json``); the run's figures."""
    from mlip_autopipec.pipeline.fits import latest_fit
    from mlip_autopipec.pipeline.run import run_pipeline
    from mlip_autopipec.pipeline.state import read_state

    workdir = Path(cfg.workdir)
    kept = workdir / "bench.json"
    if kept.is_file():
        say(f"{name}: figures kept in {kept} (delete {workdir} to run it again)")
        return {**json.loads(kept.read_text()), "workdir": str(workdir)}
    say(f"{name}: running in {workdir}; load average {os.getloadavg()[0]:.1f}")
    t0 = time.perf_counter()
    run_pipeline(cfg, progress=False)
    wall = time.perf_counter() - t0
    run_state, fit = read_state(workdir), latest_fit(workdir)
    if run_state is None or fit is None:
        raise SystemExit(f"{workdir}: no state.json or no fit (the run did not finish)")
    state = run_state.active_learning
    figures = {
        "workdir": str(workdir),
        "wall_s": wall,
        "load_average_end": os.getloadavg()[0],
        "calls": spent_calls(workdir),
        "pool_calls": spent_calls(workdir, generation=0),
        "split_s": wall_split(workdir, wall),
        "oracle": oracle_core_time(workdir),
        "fit_dir": str(fit.output_dir),
        "iterations": cfg.training.max_num_epochs
        if state is None
        else fit_iterations(state, cfg.training.max_num_epochs),
        "curve": [] if state is None else curve_fits(workdir, state),
        "generations": 0 if state is None else len(state.generations),
        "stop_reason": None if state is None else state.stop_reason,
    }
    kept.write_text(json.dumps(figures, indent=1))
    say(f"{name}: {figures['calls']} pw.x calls, {wall:.0f} s; load average {figures['load_average_end']:.1f}")
    return figures


def random_config(al_cfg, al: dict, workdir: Path):
    """The random pool: as many pw.x calls as active learning spent, as many minimiser iterations, no properties."""
    props = al_cfg.report.properties.model_copy(update={"elastic": False, "md_stability": None})
    return al_cfg.model_copy(
        update={
            "workdir": workdir,
            "active_learning": None,
            "generator": al_cfg.generator.model_copy(update={"pool_size": al["calls"]}),
            "training": al_cfg.training.model_copy(update={"max_num_epochs": al["iterations"]}),
            "report": al_cfg.report.model_copy(update={"properties": props}),
        }
    )


# --------------------------------------------------------------------------- printing
def print_split(name: str, fig: dict) -> None:
    split, wall = fig["split_s"], fig["wall_s"]
    parts = ", ".join(f"{k} {v:.0f} s ({100 * v / wall:.0f} %)" for k, v in split.items())
    o = fig["oracle"]
    print(
        f"{name}: {fig['calls']} pw.x calls ({fig['pool_calls']} in the pool), wall {wall:.0f} s = "
        f"{wall / 60:.1f} min: {parts}"
    )
    print(
        f"  pw.x's own time: {o['training_s']:.0f} s over the training calls (median {o['median_s']:.0f} s per call, "
        f"one core each); the report's properties: {property_calls(Path(fig['workdir']))} pw.x calls (in 'report')"
    )


def print_errors(test_set, al_err: dict, rnd_err: dict) -> None:
    print(
        f"{'condition':22}{'frames':>7}{'AL force':>10}{'random':>9}{'AL/random':>11}   {'AL energy':>10}{'random':>9}"
        "   (meV/Å, meV/atom)"
    )
    rows = [
        (name, len(frames), al_err["by_condition"][name], rnd_err["by_condition"][name])
        for name, frames in test_set.items()
        if name in al_err["by_condition"]
    ]
    rows.append(("all conditions", sum(len(v) for v in test_set.values()), al_err["all"], rnd_err["all"]))
    for name, n, a, r in rows:
        fa, fr = a["force_rmse_mev_per_angstrom"], r["force_rmse_mev_per_angstrom"]
        print(
            f"{name:22}{n:>7}{fa:>10.1f}{fr:>9.1f}{fa / fr:>11.2f}"
            f"   {a['energy_rmse_mev_per_atom']:>10.2f}{r['energy_rmse_mev_per_atom']:>9.2f}"
        )


def print_curve(al_dir: Path, al: dict, test_set) -> None:
    from mlip_autopipec.pipeline.fits import load_fit

    names = [n for n, frames in test_set.items() if frames]
    print(
        "active learning's learning curve: test force RMSE (meV/Å) after each fit, the starting pool's first (the "
        "refit known to be the last runs final_max_epochs; a closing fit, if one ran, is last, at the same calls)"
    )
    print(f"  {'pw.x calls':>10}{'all':>8}" + "".join(f"{n[:16]:>18}" for n in names))
    for calls, fit_dir in al["curve"]:
        err = test_errors(load_fit(al_dir, Path(fit_dir)), test_set)
        row = "".join(f"{err['by_condition'][n]['force_rmse_mev_per_angstrom']:>18.1f}" for n in names)
        print(f"  {calls:>10}{err['all']['force_rmse_mev_per_angstrom']:>8.1f}" + row, flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a small smoke run; not the benchmark's figures")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/bench_dft"), help="the test set and the runs (kept)")
    ap.add_argument("--workers", type=int, default=2, help="Dask workers: pw.x runs at a time (one core each)")
    args = ap.parse_args()
    s = QUICK if args.quick else FULL
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for handler in logging.getLogger().handlers:  # our INFO lines; other libraries' from WARNING only
        handler.addFilter(lambda r: r.levelno >= logging.WARNING or r.name.startswith("mlip_autopipec"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")  # the workers' own start-up lines
    root = args.workdir / ("quick" if args.quick else "full")
    t_start = time.perf_counter()
    say(
        f"bench_dft ({'quick' if args.quick else 'full'}): {EXAMPLE.name}; work in {root}; "
        f"load average {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)"
    )

    al_cfg = campaign_config(s, root / "active_learning", args.workers)
    test_set = build_test_set(root / "test_set", al_cfg.oracle, s, args.workers)
    for name, frames in test_set.items():
        p = pressure_gpa(frames)
        say(
            f"test set {name}: {len(frames)} frames of {len(frames[0]) if frames else 0} atoms"
            + (f", pw.x pressure {p:+.1f} GPa" if p is not None else "")
        )

    al = run_once(al_cfg, "active learning")
    rnd = run_once(random_config(al_cfg, al, root / "random"), "random pool")

    from mlip_autopipec.pipeline.fits import load_fit

    al_err = test_errors(load_fit(root / "active_learning", Path(al["fit_dir"])), test_set)
    rnd_err = test_errors(load_fit(root / "random", Path(rnd["fit_dir"])), test_set)

    print()
    print_split("active learning", al)
    print(
        f"  {al['generations']} generations; stopped: {al['stop_reason']}; minimiser iterations of all fits: "
        f"{al['iterations']}"
    )
    print_split("random pool", rnd)
    print(f"  one fit of {rnd['iterations']} iterations")
    print()
    print_errors(test_set, al_err, rnd_err)
    print()
    print_curve(root / "active_learning", al, test_set)
    print()
    for name, path in (
        ("test set", root / "test_set"),
        ("active learning", root / "active_learning"),
        ("random pool", root / "random"),
    ):
        lines = what_broke(path / "structures.db")
        print(f"what broke, {name}: {'nothing (every pw.x call converged at its first attempt)' if not lines else ''}")
        for line in lines:
            print(line)
    ahead = [
        n
        for n in (HOT, *DEFECTS)
        if n in al_err["by_condition"]
        and al_err["by_condition"][n]["force_rmse_mev_per_angstrom"]
        < rnd_err["by_condition"][n]["force_rmse_mev_per_angstrom"]
    ]
    print()
    print(
        f"active learning ahead of random (force RMSE) on {len(ahead)} of the 3 hot and defect conditions: "
        f"{', '.join(ahead) or 'none'}; pw.x calls {al['calls']} vs {rnd['calls']}; "
        f"total {time.perf_counter() - t_start:.0f} s; load average {os.getloadavg()[0]:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
