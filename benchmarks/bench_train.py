"""PacemakerRunner.train against `pacemaker input.yaml` run by hand: the same small fit, side by side.

Both fit the same input.yaml on the same 20-structure EMT copper dataset; the runs
alternate (wrapper first, then direct first, ...) so drifting machine load hits both,
and the median of the repeats is compared.  The wrapper also converts the potential
to .yace (pace_yaml2yace), which `pacemaker input.yaml` alone does not do; the manual
equivalent (pacemaker, then pace_yaml2yace) is timed as well and shown for reference.

The wrapper runs as in a pipeline run: with a local Dask cluster up in this process.  The
direct runs get the environment from before that cluster started: distributed's nanny
writes MALLOC_TRIM_THRESHOLD_=65536 and *_NUM_THREADS=1 into its parent's environment, and
a fit that inherited them ran 2x slower (launch.program_environment keeps them out).

Target: wrapper / `pacemaker input.yaml` <= 1.05 (the wrapper adds nothing that matters).
Both wall-clock and CPU time (this process plus its children: user + system) are
reported; on a shared, busy machine the CPU time is the steadier of the two.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_train.py [--repeats 3] [--epochs 100]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from mlip_autopipec.config import TrainingConfig
from mlip_autopipec.trainer import PacemakerProfile, PacemakerRunner
from mlip_autopipec.trainer.template import input_yaml

TARGET = 1.05


def make_dataset(path: Path, n: int = 20) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
        atoms.set_cell(atoms.cell * (1 + rng.uniform(-0.04, 0.04)), scale_atoms=True)
        atoms.rattle(0.05, seed=i)
        atoms.calc = EMT()
        e, f = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=e, forces=f)
        rows.append({"ase_atoms": atoms, "energy": e, "forces": f, "energy_corrected": e, "name": f"cu_{i}"})
    pd.DataFrame(rows).to_pickle(path, compression="gzip", protocol=4)
    return path


def cpu_seconds() -> float:
    """User + system CPU time of this process and of its finished children (s)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def environment() -> dict[str, str]:
    env = PacemakerProfile().environment()
    env.setdefault("PYTHONUNBUFFERED", "1")  # what the runner sets too
    env.setdefault("MPLBACKEND", "Agg")
    return env


def run_direct(
    config: TrainingConfig, dataset: Path, workdir: Path, convert: bool, env: dict[str, str]
) -> tuple[float, float]:
    profile = PacemakerProfile()
    workdir.mkdir(parents=True)
    (workdir / "input.yaml").write_text(input_yaml(config, dataset, ["Cu"]))
    t0, c0 = time.perf_counter(), cpu_seconds()
    with open(workdir / "pacemaker.log", "wb") as log:
        subprocess.run(
            [profile.executable("pacemaker"), "input.yaml"],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=True,
        )
        if convert:
            subprocess.run(
                [profile.executable("pace_yaml2yace"), "output_potential.yaml", "-o", "output_potential.yace"],
                cwd=workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=True,
            )
    return time.perf_counter() - t0, cpu_seconds() - c0


def run_wrapper(config: TrainingConfig, dataset: Path, workdir: Path):
    t0, c0 = time.perf_counter(), cpu_seconds()
    result = PacemakerRunner(config, show_progress=False).train(dataset, workdir)
    return time.perf_counter() - t0, cpu_seconds() - c0, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=100)
    args = parser.parse_args()
    config = TrainingConfig(
        cutoff=5.0,
        number_of_functions_per_element=10,
        nradmax_by_orders=[8, 3, 2],
        lmax_by_orders=[0, 2, 1],
        max_num_epochs=args.epochs,
        energy_weight=0.95,
        force_weight=0.05,
        display_step=25,
        test_size=0.1,
    )
    kinds = ("wrapper", "direct", "direct+yace")
    wall: dict[str, list[float]] = {k: [] for k in kinds}
    cpu: dict[str, list[float]] = {k: [] for k in kinds}
    from mlip_autopipec.compute.cluster import dask_client
    from mlip_autopipec.compute.models import LocalComputeConfig

    user_env = environment()  # before the Dask cluster below touches this process's environment
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp, dask_client(LocalComputeConfig(n_workers=2)):
        print("a local Dask cluster of 2 worker processes is up in this process, as in a pipeline run", flush=True)
        root = Path(tmp)
        dataset = make_dataset(root / "cu.pckl.gzip")
        result = None
        for i in range(args.repeats):
            order = kinds if i % 2 == 0 else kinds[::-1]
            for kind in order:
                workdir = root / f"{kind}_{i}"
                if kind == "wrapper":
                    w, c, result = run_wrapper(config, dataset, workdir)
                else:
                    w, c = run_direct(config, dataset, workdir, convert=kind == "direct+yace", env=user_env)
                wall[kind].append(w)
                cpu[kind].append(c)
                print(f"  repeat {i + 1}/{args.repeats}: {kind:12s} wall {w:7.2f} s   cpu {c:7.2f} s", flush=True)
    print(
        f"dataset: 20 Cu structures x 32 atoms (EMT), {args.epochs} iterations, evaluator {config.evaluator}, "
        f"median of {args.repeats}"
    )
    print(f"{'':38s}{'wall (s)':>10s}{'cpu (s)':>10s}")
    labels = {
        "direct": "pacemaker input.yaml (direct)",
        "direct+yace": "pacemaker + pace_yaml2yace (direct)",
        "wrapper": "PacemakerRunner.train (wrapper)",
    }
    med_w = {k: statistics.median(v) for k, v in wall.items()}
    med_c = {k: statistics.median(v) for k, v in cpu.items()}
    for kind in ("direct", "direct+yace", "wrapper"):
        print(f"{labels[kind] + ':':38s}{med_w[kind]:10.2f}{med_c[kind]:10.2f}")
    for measure, med in (("wall", med_w), ("cpu", med_c)):
        ratio = med["wrapper"] / med["direct"]
        print(
            f"ratio wrapper / pacemaker input.yaml ({measure}): {ratio:.3f} (target <= {TARGET}) "
            f"{'OK' if ratio <= TARGET else 'ABOVE TARGET'}; wrapper / pacemaker + yace: "
            f"{med['wrapper'] / med['direct+yace']:.3f}"
        )
    if result is not None:
        m = result.metrics
        print(
            f"train RMSE: {m.train_energy_rmse_mev_per_atom:.2f} meV/atom, {m.train_force_rmse_mev_per_a:.1f} meV/Å; "
            f"test RMSE: {m.test_energy_rmse_mev_per_atom:.2f} meV/atom, {m.test_force_rmse_mev_per_a:.1f} meV/Å"
        )


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
