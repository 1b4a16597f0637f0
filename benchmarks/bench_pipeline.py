"""Where the example run's wall time goes: oracle, pacemaker, everything else.

    .venv/bin/python benchmarks/bench_pipeline.py [--config examples/cu_emt.yaml]

Runs the config from scratch in a temporary work directory and prints the wall
time split into the labelling step (oracle, Dask included), the pacemaker run
and the rest (generation, database, export, report, start-up), and the overhead
ratio wall / (oracle + pacemaker) (target <= 1.10).  Also the report step's
seconds, its parts (validation, EOS, properties per bulk seed with their oracle
calls, formation energies) and what it adds to the run before it (target <= 25 %),
with the properties' oracle-vs-potential table.
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
    parser.add_argument(
        "--keep", type=Path, default=None, help="run in this (new) work directory and keep it (e.g. for its report)"
    )
    args = parser.parse_args()
    cfg = load_config(args.config)
    with tempfile.TemporaryDirectory(prefix="bench_pipeline_") as tmp:
        workdir = args.keep if args.keep is not None else Path(tmp) / "run"
        if workdir.exists():
            parser.error(f"{workdir} exists: the benchmark runs from scratch")
        t0 = time.perf_counter()
        summary = run_pipeline(cfg, workdir=workdir, progress=False)
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
    report = wall - t.total_s  # the summary is written inside the report step: its time is the rest of the run
    before = wall - report
    print(
        f"report step        : {report:8.1f} s  (adds {100 * report / before:.1f} % to the {before:.1f} s before it; "
        "target <= 25 %)"
    )
    for part, seconds in summary.report_seconds.items():
        print(f"  report {part:<22}: {seconds:8.1f} s")
    from mlip_autopipec.report.render import property_lines

    for name, props in summary.properties_by_seed.items():
        for line in property_lines(name, props):
            print(line)
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
