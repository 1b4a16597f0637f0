"""Which structures should the oracle compute first?  Farthest points against D-optimality (pace_select) against
a random draw, at the same number of oracle calls, on a small Cu case (issue 19, item 2: selection).

    .venv/bin/python benchmarks/bench_guided_selection.py [--sizes 20 40] [--random-repeats 2] [--epochs 300]
                                                          [--pretrain] [--workdir DIR]

1. Candidates as the guided cold start makes them (:func:`~mlip_autopipec.explore.teacher.teacher_jobs`, run in
   this process): fcc Cu (16-atom cells), the generator's structures and MD frames run with CHGNet 0.3.0 at
   600 and 1200 K (NVT, NPT at 0 GPa), each labelled by CHGNet; screened with the default thresholds.  Kept in
   ``candidates.xyz`` of the work directory (a rerun reuses them).
2. For each size n: n candidates chosen by ``fps``, by ``pace_select`` and at random (``--random-repeats``
   draws); the oracle (EMT) labels them; pacemaker fits the same ACE (same basis, iterations, seed) to each set.
3. Each ACE against held-out EMT labels: 32-atom MD frames (EMT's own MD, 600 and 1200 K, NVT and NPT) and a
   fresh generator pool (another random seed).  Force RMSE (meV/Å) and energy RMSE (meV/atom) are printed.
4. With --pretrain, also: the fits continued from an ACE fitted to all the teacher's labels (pre-training).

Measured 2026-12-03 (2 busy cores; 120 candidates, 80 from the generator, 40 MD frames; 300 iterations per fit;
force RMSE on the MD frames / on the fresh pool, meV/Å):

    oracle calls   pace_select   fps         random (2 draws)       pace_select + pretrain   fps + pretrain
    20             3.4 / 2.1     3.7 / 2.9   7.8 / 5.9, 4.3 / 4.1   4.7 / 3.8                6.4 / 5.2
    40             4.3 / 3.7     4.5 / 3.9   6.0 / 5.0, 5.2 / 3.5   5.3 / 3.9                5.6 / 4.1

pace_select is the default (foundation_model.selection); pre-training on CHGNet's labels made every fit worse here.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from ase import Atoms  # noqa: E402
from ase.calculators.emt import EMT  # noqa: E402
from ase.calculators.singlepoint import SinglePointCalculator  # noqa: E402

CONFIG = {
    "workdir": "unused",
    "structure": {"element": "Cu", "lattice": "fcc", "a": 3.61, "cubic": True, "repeat": [2, 2, 1]},
    "generator": {"pool_size": 20, "seed": 3, "rattle_stdev": 0.08, "volume_range": [0.92, 1.08], "eos_fraction": 0.1},
    "foundation_model": {"name": "chgnet", "explore": True, "generator_candidates": 80, "md_steps": 100,
                         "md_frames": 5, "md_trajectories": 2},
    "active_learning": {"temperatures": [600, 1200], "pressures": [0.0], "ensembles": ["nvt", "npt"],
                        "timestep": 2.0},
    "training": {"cutoff": 5.0, "number_of_functions_per_element": 40, "max_num_epochs": 150, "energy_weight": 0.3,
                 "force_weight": 0.7, "test_size": 0, "seed": 1, "evaluator": "tensorpot", "display_step": 1000,
                 "repulsion": "none"},
}  # fmt: skip


def candidates(workdir: Path) -> list[Atoms]:
    """The screened, teacher-labelled candidates (made once, then read from ``candidates.xyz``)."""
    from ase.io import read, write

    from mlip_autopipec.config.schemas.pipeline import PipelineConfig
    from mlip_autopipec.explore.screening import KEPT, screen
    from mlip_autopipec.explore.teacher import exploration_settings, run_job, teacher_jobs, teacher_model
    from mlip_autopipec.pipeline.guided_start import seed_floors

    path = workdir / "candidates.xyz"
    if path.is_file():
        pool = list(read(path, ":"))
        if all(a.calc is not None for a in pool):
            return pool
        return teacher_labelled(pool, path)  # a file of an earlier version, without the labels
    cfg = PipelineConfig.model_validate(CONFIG)
    fm = cfg.foundation_model
    assert fm is not None
    t0 = time.perf_counter()
    labels = []
    for job in teacher_jobs(cfg):
        labels += run_job(job, teacher_model(fm), exploration_settings(cfg), fm.md_frames)
    floor = seed_floors(cfg)
    kept = []
    for lab in labels:
        if screen(lab.atoms, lab.atoms.get_forces(), fm.max_force, floor[str(lab.provenance["seed"])]) == KEPT:
            atoms = lab.atoms
            atoms.info = {"candidate": str(lab.provenance["candidate"])}
            kept.append(atoms)
    print(f"candidates: {len(labels)} teacher labels in {time.perf_counter() - t0:.0f} s, {len(kept)} kept")
    write(path, kept, format="extxyz")
    return kept


def teacher_labelled(pool: list[Atoms], path: Path) -> list[Atoms]:
    """``pool`` with CHGNet's labels (written back to ``path``)."""
    from ase.io import write

    from mlip_autopipec.config.schemas.foundation import FoundationModelConfig
    from mlip_autopipec.explore.teacher import label_structures, teacher_model

    labels = label_structures(pool, teacher_model(FoundationModelConfig(name="chgnet")), "relabel")
    out = []
    for before, lab in zip(pool, labels, strict=True):
        lab.atoms.info = {"candidate": str(before.info["candidate"])}
        out.append(lab.atoms)
    write(path, out, format="extxyz")
    return out


def emt_labelled(atoms: Atoms) -> Atoms:
    out = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=True)
    out.calc = EMT()
    e, f = out.get_potential_energy(), out.get_forces()
    out.calc = SinglePointCalculator(out, energy=e, forces=f)
    return out


def test_set() -> dict[str, list[Atoms]]:
    """Held-out EMT labels: 32-atom EMT MD frames (600, 1200 K; NVT, NPT) and a fresh generator pool."""
    from ase.build import bulk

    from mlip_autopipec.config.schemas.active_learning import ActiveLearningConfig
    from mlip_autopipec.config.schemas.pipeline import PipelineConfig
    from mlip_autopipec.explore.md import MDCondition, md_dynamics, thermalize
    from mlip_autopipec.generator.campaign import build_pool

    frames = []
    settings = ActiveLearningConfig(timestep=2.0)
    for k, cond in enumerate(
        [
            MDCondition("nvt", 600.0),
            MDCondition("nvt", 1200.0),
            MDCondition("npt", 600.0, 0.0),
            MDCondition("npt", 1200.0, 0.0),
        ]
    ):
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
        atoms.calc = EMT()
        rng = np.random.default_rng(100 + k)
        thermalize(atoms, cond.temperature, rng)
        dyn = md_dynamics(atoms, cond.ensemble, cond, settings, rng)
        for _ in range(15):
            dyn.run(20)
            frames.append(emt_labelled(atoms))
    data = {**CONFIG, "generator": {**CONFIG["generator"], "seed": 99}}
    pool = [emt_labelled(a) for a in build_pool(PipelineConfig.model_validate(data), 40)]
    return {"MD frames (600/1200 K)": frames, "generator pool": pool}


def fit(structures: list[Atoms], folder: Path, epochs: int, initial: Path | None = None) -> Path:
    """The ACE of :data:`CONFIG` fitted to ``structures`` (``epochs`` iterations; continued from ``initial``)."""
    import pandas as pd

    from mlip_autopipec.config import TrainingConfig
    from mlip_autopipec.trainer import PacemakerRunner

    folder.mkdir(parents=True, exist_ok=True)
    if (folder / "output_potential.yace").is_file():
        return folder
    rows = [
        {"ase_atoms": a, "energy": a.get_potential_energy(), "energy_corrected": a.get_potential_energy(),
         "forces": a.get_forces(), "name": f"s{i}"}
        for i, a in enumerate(structures)
    ]  # fmt: skip
    data = folder / "train.pckl.gzip"
    pd.DataFrame(rows).to_pickle(data, compression="gzip", protocol=4)
    settings = {**CONFIG["training"], "max_num_epochs": epochs}
    if initial is not None:
        settings.update(initial_potential=initial, initial_potential_mode="continue")
    PacemakerRunner(TrainingConfig(**settings)).train(data, folder)
    return folder


def errors(potential: Path, tests: list[Atoms]) -> tuple[float, float]:
    """Force RMSE (meV/Å) and energy RMSE after removing the mean offset (meV/atom) of ``potential`` on ``tests``."""
    from mlip_autopipec.trainer.pyace_import import import_pyace_calculator

    calc = import_pyace_calculator()(str(potential))
    df, de = [], []
    for ref in tests:
        atoms = Atoms(ref.numbers, ref.positions, cell=ref.cell, pbc=True)
        atoms.calc = calc
        df.append((atoms.get_forces() - ref.get_forces()).ravel())
        de.append((atoms.get_potential_energy() - ref.get_potential_energy()) / len(atoms))
    d_e = np.asarray(de) - np.mean(de)
    return 1000 * float(np.sqrt(np.mean(np.concatenate(df) ** 2))), 1000 * float(np.sqrt(np.mean(d_e**2)))


def main(argv: list[str] | None = None) -> int:
    from mlip_autopipec.config import TrainingConfig
    from mlip_autopipec.explore.diversity import choose

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[20, 40])
    ap.add_argument("--random-repeats", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=300, help="minimiser iterations of every fit")
    ap.add_argument("--pretrain", action="store_true", help="also: fits continued from an ACE fitted to the teacher")
    ap.add_argument("--workdir", type=Path, default=Path("runs/bench_guided_selection"))
    args = ap.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    pool = candidates(args.workdir)
    tests = test_set()
    training = TrainingConfig(**CONFIG["training"])
    teacher = fit(pool, args.workdir / f"teacher_e{args.epochs}", args.epochs) if args.pretrain else None
    rows = []
    for n in args.sizes:
        picks = {m: choose(pool, n, m, training, args.workdir / f"select_{m}_{n}") for m in ("fps", "pace_select")}
        for r in range(args.random_repeats):
            picks[f"random #{r + 1}"] = sorted(np.random.default_rng(r).choice(len(pool), n, replace=False).tolist())
        runs = [(m, idx, None) for m, idx in picks.items()]
        if teacher is not None:
            runs += [(f"{m}+pretrain", picks[m], teacher / "output_potential.yaml") for m in ("fps", "pace_select")]
        for method, idx, initial in runs:
            n_md = sum(pool[i].info.get("candidate") == "md" for i in idx)
            folder = args.workdir / f"fit_{method.replace(' #', '').replace('+', '_')}_{n}_e{args.epochs}"
            potential = (
                fit([emt_labelled(pool[i]) for i in idx], folder, args.epochs, initial) / "output_potential.yace"
            )
            figures = [errors(potential, t) for t in tests.values()]
            rows.append((n, method, n_md, figures))
            print(f"n={n} {method}: {n_md} MD frames; " + "; ".join(
                f"{name}: F {f:.1f} meV/Å, E {e:.2f} meV/atom" for name, (f, e) in zip(tests, figures, strict=True)
            ), flush=True)  # fmt: skip
    print(f"\n{len(pool)} candidates; {args.epochs} iterations per fit; test sets: "
          + ", ".join(f"{k} ({len(v)})" for k, v in tests.items()))  # fmt: skip
    print(f"{'oracle calls':>12}  {'selection':<22}{'MD frames':>10}" + "".join(f"{k[:22]:>26}" for k in tests))
    for n, method, n_md, figures in rows:
        print(f"{n:>12}  {method:<22}{n_md:>10}" + "".join(f"{f:>14.1f} meV/Å {e:>5.2f}" for f, e in figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
