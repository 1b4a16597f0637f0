"""Cost of watching γ: run_trajectory against a bare ASE Langevin loop with the same calculator, side by side.

    .venv/bin/python benchmarks/bench_explore_md.py [--potential P.yaml --asi P.asi] [--steps 500] [--repeats 3]

Without --potential it first fits a tiny Cu potential on EMT data with pacemaker
(about 20 s) and builds its active set.  Both sides run NVT Langevin at 1300 K
on the same 108-atom cell with PyACECalculator + active set (γ computed at every
step either way); run_trajectory adds the γ bookkeeping, blow-up checks and
the distance guard at samples.  Target: ratio (ours / bare) <= 1.10.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from ase import units
from ase.build import bulk

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

from mlip_autopipec.config.schemas.active_learning import ActiveLearningConfig  # noqa: E402
from mlip_autopipec.explore import MDCondition, build_active_set, run_trajectory  # noqa: E402
from mlip_autopipec.trainer.profile import PacemakerProfile  # noqa: E402
from mlip_autopipec.trainer.pyace_import import import_pyace_calculator  # noqa: E402

TARGET = 1.10


def fit_tiny(folder: Path) -> tuple[Path, Path]:
    from test_explore import PACEMAKER_INPUT, _emt_dataset  # the test suite's tiny fit

    data = folder / "train.pckl.gzip"
    _emt_dataset(data)
    (folder / "input.yaml").write_text(PACEMAKER_INPUT.format(data=data))
    env = dict(os.environ, OMP_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="-1")
    subprocess.run(
        [PacemakerProfile().executable("pacemaker"), "input.yaml"], cwd=folder, env=env, check=True, capture_output=True
    )
    pot = folder / "output_potential.yaml"
    return pot, build_active_set(pot, data)


def bare(potential: Path, asi: Path, steps: int, seed: int) -> float:
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import Stationary, thermalize_momenta

    calc = import_pyace_calculator()(str(potential))
    calc.set_active_set(str(asi))
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(3)
    atoms.calc = calc
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    thermalize_momenta(atoms, temperature_K=1300.0, rng=rng)
    Stationary(atoms)
    dyn = Langevin(atoms, 2 * units.fs, temperature_K=1300.0, friction=0.01 / units.fs, fixcm=False, rng=rng)
    dyn.run(steps)
    return time.perf_counter() - t0


def ours(potential: Path, asi: Path, steps: int, seed: int) -> float:
    cfg = ActiveLearningConfig(
        n_steps=steps,
        sample_interval=10,
        gamma_select=2.0,
        gamma_halt=1e9,
        md_min_atoms=108,
        max_temperature_ratio=100.0,
    )
    t0 = time.perf_counter()
    res = run_trajectory(
        bulk("Cu", "fcc", a=3.61, cubic=True).repeat(3), potential, asi, MDCondition("nvt", 1300.0), cfg, seed
    )
    elapsed = time.perf_counter() - t0
    assert res.n_steps_done == steps, res.reason
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--potential", type=Path)
    ap.add_argument("--asi", type=Path)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.potential is None:
            print("fitting a tiny Cu potential with pacemaker ...", flush=True)
            potential, asi = fit_tiny(Path(tmp))
        else:
            potential, asi = args.potential, args.asi or args.potential.with_suffix(".asi")
        t_bare, t_ours = [], []
        for r in range(args.repeats):
            t_bare.append(bare(potential, asi, args.steps, r))
            t_ours.append(ours(potential, asi, args.steps, r))
    b, o = statistics.median(t_bare), statistics.median(t_ours)
    print(f"108 atoms, {args.steps} NVT steps at 1300 K, median of {args.repeats}")
    print(f"bare ASE Langevin + PyACECalculator: {b:.3f} s ({1e3 * b / args.steps:.2f} ms/step)")
    print(f"run_trajectory (γ watch, guards):    {o:.3f} s ({1e3 * o / args.steps:.2f} ms/step)")
    print(f"ratio ours/bare: {o / b:.3f}  (target <= {TARGET:.2f}) {'OK' if o / b <= TARGET else 'MISSED'}")


if __name__ == "__main__":
    main()
