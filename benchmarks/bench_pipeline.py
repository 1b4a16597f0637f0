"""Where the example run's wall time goes: oracle, pacemaker, everything else.

    .venv/bin/python benchmarks/bench_pipeline.py [--config examples/cu_emt.yaml]

Runs the config from scratch in a temporary work directory and prints the wall
time split into the labelling step (oracle, Dask included), the pacemaker run
and the rest (generation, database, export, report, start-up), and the overhead
ratio wall / (oracle + pacemaker) (target <= 1.10).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from mlip_autopipec.config import load_config
from mlip_autopipec.pipeline import run_pipeline

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, default=ROOT / "examples" / "cu_emt.yaml")
    args = parser.parse_args()
    cfg = load_config(args.config)
    with tempfile.TemporaryDirectory(prefix="bench_pipeline_") as tmp:
        t0 = time.perf_counter()
        summary = run_pipeline(cfg, workdir=Path(tmp) / "run", progress=False)
        wall = time.perf_counter() - t0
    t = summary.timings
    oracle, pace = t.oracle_s, t.pacemaker_s
    other = wall - oracle - pace
    print(f"config: {args.config}")
    print(f"wall time          : {wall:8.1f} s")
    print(f"oracle (labelling) : {oracle:8.1f} s  ({100 * oracle / wall:.1f} %)")
    print(f"pacemaker          : {pace:8.1f} s  ({100 * pace / wall:.1f} %)")
    print(f"everything else    : {other:8.1f} s  ({100 * other / wall:.1f} %)")
    for step, seconds in t.steps_s.items():
        print(f"  step {step:<14}: {seconds:8.1f} s")
    print(f"overhead ratio wall / (oracle + pacemaker): {wall / (oracle + pace):.3f}   (target <= 1.10)")
    nan = float("nan")
    force = summary.validation.force_rmse_mev_per_angstrom
    eos = summary.eos
    da = eos.lattice_constant_error_percent if eos is not None else None
    db = eos.bulk_modulus_error_percent if eos is not None else None
    print(
        f"quality: force RMSE {nan if force is None else force:.1f} meV/Å, "
        f"Δa {nan if da is None else da:+.3f} %, ΔB {nan if db is None else db:+.2f} %"
    )


if __name__ == "__main__":
    main()
