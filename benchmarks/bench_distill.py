"""MD with an ACE distilled from a foundation model against MD with the foundation model itself (issue 19, item 4).

    .venv/bin/python benchmarks/bench_distill.py [--model chgnet] [--sizes 32 108] [--potential P.yace]

1. Distillation with no DFT: the pipeline runs examples/cu_emt.yaml with the foundation model as the oracle
   (``oracle: {type: foundation_model}``), a smaller pool and fewer fit iterations: the ACE has the example's
   basis (so its cost per MD step is the example's), not its accuracy.  --potential skips this step.
2. On the same fcc Cu cells (32 and 108 atoms), NVT Langevin at 300 K, 2 fs: the foundation model (loaded as the
   oracle loads it, one torch thread) and the ACE (PyACECalculator, one thread), side by side in this run.
   Each step is timed on its own, in interleaved rounds of both sides; the medians and their ratio (the
   speed-up) are printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from ase import Atoms, units  # noqa: E402
from ase.build import bulk  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "cu_emt.yaml"


def distil(model: str, workdir: Path, pool_size: int, epochs: int) -> tuple[Path, dict]:
    """Run the example with the foundation model as its oracle; the potential and the summary's figures."""
    import json

    from mlip_autopipec.config import load_config
    from mlip_autopipec.pipeline import run_pipeline

    base = load_config(EXAMPLE)
    data = base.model_dump(mode="json", exclude={"structure"})
    data["workdir"] = str(workdir)
    data["oracle"] = {"type": "foundation_model", "name": model}
    data["generator"] = {**data["generator"], "pool_size": pool_size, "n_defect_structures": 4}
    data["training"] = {**data["training"], "max_num_epochs": epochs}
    data["report"] = {**data["report"], "properties": {**data["report"]["properties"], "elastic": False,
                                                        "vacancy": False, "surfaces": [], "phonons": False,
                                                        "md_stability": None}}  # fmt: skip
    cfg = type(base).model_validate(data)
    t0 = time.perf_counter()
    summary = run_pipeline(cfg, progress=False)
    print(f"distilled in {time.perf_counter() - t0:.0f} s: {workdir}")
    return summary.potential.yace, json.loads((workdir / "report" / "summary.json").read_text())


def step_times(atoms: Atoms, calc, steps: int, seed: int = 1) -> list[float]:
    """Wall time (s) of each of ``steps`` Langevin steps (300 K, 2 fs) after two warm-up steps."""
    from ase.md.langevin import Langevin

    from mlip_autopipec.explore.md import thermalize

    atoms = atoms.copy()
    atoms.calc = calc
    thermalize(atoms, 300.0, np.random.default_rng(seed))
    dyn = Langevin(atoms, 2 * units.fs, temperature_K=300, friction=0.02, rng=np.random.default_rng(seed))
    dyn.run(2)
    stamps: list[float] = []
    dyn.attach(lambda: stamps.append(time.perf_counter()), interval=1)
    stamps.append(time.perf_counter())
    dyn.run(steps)
    return list(np.diff(stamps)[-steps:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["chgnet", "sevenn"], default="chgnet")
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 108], help="atoms: 4·n³ (32, 108, 256)")
    parser.add_argument("--potential", type=Path, help="an ACE already distilled (.yace); skips the distillation")
    parser.add_argument("--pool-size", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=20, help="fit iterations (no effect on the cost per step)")
    parser.add_argument("--fm-steps", type=int, default=15)
    parser.add_argument("--ace-steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of both sides")
    parser.add_argument("--workdir", type=Path, help="where the distillation runs (default: a temporary folder)")
    args = parser.parse_args()

    from mlip_autopipec.config import FoundationModelOracleConfig
    from mlip_autopipec.oracle.foundation import load_calculator
    from mlip_autopipec.trainer.pyace_import import import_pyace_calculator

    with tempfile.TemporaryDirectory(prefix="bench_distill_") as tmp:
        potential, figures = args.potential, None
        if potential is None:
            potential, figures = distil(args.model, args.workdir or Path(tmp) / "run", args.pool_size, args.epochs)
        fm = FoundationModelOracleConfig(name=args.model, threads=1)
        t0 = time.perf_counter()
        fm_calc = load_calculator(fm)
        print(f"{args.model} {fm.model_version} ready in {time.perf_counter() - t0:.1f} s (1 torch thread)")
        ace = import_pyace_calculator()(str(potential))
        if figures is not None:
            v = figures["validation"]
            print(
                f"ACE against {args.model} on {v['n_structures']} validation structures: energy RMSE "
                f"{v['energy_rmse_mev_per_atom']:.2f} meV/atom, force RMSE {v['force_rmse_mev_per_angstrom']:.1f} "
                f"meV/Å (oracle calls {figures['oracle_calls']['total']})"
            )
        print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; Langevin 300 K, 2 fs, fcc Cu")
        print(f"{'atoms':>6} {args.model + ' (s/step)':>18} {'ACE (s/step)':>14} {'speed-up':>9}")
        for size in args.sizes:
            n = round((size / 4) ** (1 / 3))
            cell = bulk("Cu", "fcc", a=3.62, cubic=True).repeat(n)
            fm_times: list[float] = []
            ace_times: list[float] = []
            for r in range(args.rounds):  # interleaved, so a change of the machine's load hits both sides
                fm_times += step_times(cell, fm_calc, max(1, args.fm_steps // args.rounds), seed=r)
                ace_times += step_times(cell, ace, max(1, args.ace_steps // args.rounds), seed=r)
            t_fm, t_ace = statistics.median(fm_times), statistics.median(ace_times)
            print(f"{len(cell):>6} {t_fm:>18.4f} {t_ace:>14.5f} {t_fm / t_ace:>8.0f}x")


if __name__ == "__main__":
    sys.exit(main())
