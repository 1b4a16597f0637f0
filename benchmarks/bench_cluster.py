"""Benchmark: labelling through SLURM batch jobs against local Dask workers (issue 14), on the local SLURM cluster.

The same pw.x set as ``bench_oracle.py`` (rattled 8-atom Si cells, small cutoff)
is labelled through ``label_pending`` with the same number of Dask workers on both sides
(``--rounds`` interleaved rounds, medians reported):

* local: a ``LocalCluster`` of ``--workers`` worker processes on this machine;
* SLURM: ``--workers`` batch jobs of one worker each (``cores: 1, processes: 1``),
  submitted by dask-jobqueue to the cluster of ``scripts/start_local_slurm.sh``.

For each side it prints the start-up (submission to all workers connected), the
first result (start-up + one calculation: submission to first result), the
labelling time with the workers up, and the end-to-end time.  Then the ratios
(SLURM / local throughput, with and without start-up) and the per-job overhead:
SLURM's submission-to-first-result minus the local one, i.e. what a batch job
adds before its first calculation (sbatch, scheduling, job start, Python and
Dask start, worker registration).  A short EMT run (``--emt-structures`` tiny
tasks) measures the per-*task* overhead of a worker in a batch job, which the
pw.x set hides.

Needs a running SLURM cluster (``sinfo``) with ``--workers`` free cores; jobs of
others on the node delay ours (``squeue`` is printed first).

    .venv/bin/python benchmarks/bench_cluster.py [--structures 16] [--workers 2] [--emt-structures 200]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

# the same cells as bench_oracle.py, so the two benchmarks' figures compare
# (this folder is on sys.path when run as a script)
from bench_oracle import cu_cells, si_cells  # noqa: E402
from mlip_autopipec.compute.cluster import dask_client  # noqa: E402
from mlip_autopipec.config import ComputeConfig, EMTOracleConfig, EspressoOracleConfig, validate_config  # noqa: E402
from mlip_autopipec.database import DatabaseManager, StructureMetadata  # noqa: E402
from mlip_autopipec.oracle import label_pending, make_oracle  # noqa: E402


def one_run(name: str, compute: dict, oracle, cells: list, root: Path, n_workers: int) -> dict:
    """Start the cluster, wait for every worker, label ``cells``; the times (s) from the start of the cluster."""
    db = DatabaseManager(root / f"{name}.db")
    db.add_structures(cells, StructureMetadata(source="benchmark"))
    first: list[float] = []
    t0 = time.perf_counter()
    with dask_client(validate_config(ComputeConfig, compute, name)) as client:
        client.wait_for_workers(n_workers, timeout=600)
        t_up = time.perf_counter() - t0
        t1 = time.perf_counter()
        summary = label_pending(
            db,
            oracle,
            client,
            workdir=root / f"{name}_runs",
            progress=False,
            callback=lambda _o: first or first.append(time.perf_counter() - t0),
        )
        t_label = time.perf_counter() - t1
    t_total = time.perf_counter() - t0
    db.close()
    if summary.failed:
        raise SystemExit(f"{name}: structures failed: {summary.failed}")
    return {"up": t_up, "first": first[0], "label": t_label, "total": t_total, "n": len(cells)}


def first_result_when_submitted(name: str, compute: dict, oracle, cell, root: Path) -> float:
    """Submission to first result with one structure, the workers not waited for first (s)."""
    db = DatabaseManager(root / f"{name}_first.db")
    db.add_structures([cell], StructureMetadata(source="benchmark"))
    t0 = time.perf_counter()
    label_pending(
        db, oracle, validate_config(ComputeConfig, compute, name), workdir=root / f"{name}_first_runs", progress=False
    )
    took = time.perf_counter() - t0
    db.close()
    return took


def show(name: str, r: dict) -> None:
    print(
        f"  {name:5s}: workers up {r['up']:6.1f} s | first result {r['first']:6.1f} s | {r['n']} labelled in "
        f"{r['label']:6.1f} s = {r['n'] / r['label']:.3f}/s with the workers up | end to end {r['total']:6.1f} s = "
        f"{r['n'] / r['total']:.3f}/s"
    )


def compare(title: str, oracle, cells: list, root: Path, args, tag: str) -> tuple[dict, dict]:
    local = {"type": "local", "n_workers": args.workers}
    slurm = {
        "type": "slurm",
        "jobs": args.workers,
        "cores": 1,
        "processes": 1,
        "memory": "1GiB",
        "walltime": "00:30:00",
        "job_name": f"bench-{tag}",
        "log_directory": str(root / "joblogs"),
        "start_timeout_s": 600,
    }
    print(title)
    import statistics

    runs: dict[str, list[dict]] = {"local": [], "SLURM": []}
    for i in range(args.rounds):  # interleaved, the order swapped every round: a load that drifts hits both sides alike
        order = [("local", local), ("SLURM", slurm)] if i % 2 == 0 else [("SLURM", slurm), ("local", local)]
        for side, compute_cfg in order:
            r = one_run(f"{tag}_{side}_{i}", compute_cfg, oracle, cells, root, args.workers)
            show(side, r)
            runs[side].append(r)
    r_local, r_slurm = (
        {k: statistics.median(r[k] for r in runs[side]) for k in runs[side][0]} for side in ("local", "SLURM")
    )
    if args.rounds > 1:
        print(f"  medians of {args.rounds} rounds:")
        show("local", r_local)
        show("SLURM", r_slurm)
    steady = r_slurm["label"] / r_local["label"]
    print(
        f"  throughput SLURM / local: {r_local['label'] / r_slurm['label']:.3f} with the workers up (labelling time "
        f"ratio {steady:.3f}); {r_local['total'] / r_slurm['total']:.3f} end to end (start-up included)"
    )
    return r_local, r_slurm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--structures", type=int, default=16, help="Si8 cells labelled with pw.x on each side")
    parser.add_argument("--workers", type=int, default=2, help="Dask workers on each side (SLURM: one job each)")
    parser.add_argument("--ecutwfc", type=float, default=12.0, help="pw.x wavefunction cutoff (Ry)")
    parser.add_argument("--kspacing", type=float, default=0.8, help="k-point spacing (1/Å, VASP convention)")
    parser.add_argument(
        "--emt-structures", type=int, default=200, help="32-atom Cu cells for the per-task overhead (0: skip)"
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="interleaved local/SLURM rounds per comparison (medians reported)"
    )
    parser.add_argument(
        "--overhead-repeats", type=int, default=3, help="one-structure runs for submission-to-first-result"
    )
    args = parser.parse_args()
    if shutil.which("sinfo") is None or subprocess.run(["scontrol", "ping"], capture_output=True).returncode != 0:
        raise SystemExit("no SLURM cluster answers: run scripts/start_local_slurm.sh (as root) first")
    print(
        f"cores usable: {len(os.sched_getaffinity(0))}, load average before: "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(
        "sinfo:",
        subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%N %T %c CPUs %m MB"], capture_output=True, text=True
        ).stdout.strip(),
    )
    print(
        "squeue before:", subprocess.run(["squeue", "-h"], capture_output=True, text=True).stdout.strip() or "(empty)"
    )
    with tempfile.TemporaryDirectory(prefix="bench_cluster_", dir=os.environ.get("BENCH_TMP")) as tmp:
        root = Path(
            tmp
        )  # the jobs run on this machine, so /tmp is "shared"; on a real cluster it must be a shared file system
        if shutil.which("pw.x") is None:
            raise SystemExit("pw.x is not installed (apt-get install quantum-espresso)")
        pw = make_oracle(
            EspressoOracleConfig(
                pseudopotentials={"Si": "Si.pbe-rrkj.UPF"}, ecutwfc=args.ecutwfc, kspacing=args.kspacing
            )
        )
        cells = si_cells(args.structures)
        r_local, r_slurm = compare(
            f"pw.x, {args.structures} Si8 cells, {args.workers} workers each side:", pw, cells, root, args, "pw"
        )
        per_calc = r_local["label"] * args.workers / args.structures
        print(f"  one pw.x calculation: {per_calc:.2f} s (local labelling time × workers / structures)")

        print(
            f"submission to first result, one structure, {args.overhead_repeats} repeats (cluster started inside "
            "label_pending):"
        )
        firsts = {"local": [], "slurm": []}
        for i in range(args.overhead_repeats):
            firsts["local"].append(
                first_result_when_submitted(
                    f"ov_local{i}", {"type": "local", "n_workers": 1}, pw, cells[i % len(cells)], root
                )
            )
            firsts["slurm"].append(
                first_result_when_submitted(
                    f"ov_slurm{i}",
                    {
                        "type": "slurm",
                        "cores": 1,
                        "processes": 1,
                        "memory": "1GiB",
                        "job_name": "bench-first",
                        "log_directory": str(root / "joblogs"),
                    },
                    pw,
                    cells[i % len(cells)],
                    root,
                )
            )
        import statistics

        local_first, slurm_first = statistics.median(firsts["local"]), statistics.median(firsts["slurm"])
        print(f"  local: {', '.join(f'{x:.1f}' for x in firsts['local'])} s (median {local_first:.1f})")
        print(f"  SLURM: {', '.join(f'{x:.1f}' for x in firsts['slurm'])} s (median {slurm_first:.1f})")
        print(f"  per-job overhead (SLURM - local, submission to first result): {slurm_first - local_first:.1f} s")

        if args.emt_structures:
            emt = make_oracle(EMTOracleConfig())
            e_local, e_slurm = compare(
                f"EMT, {args.emt_structures} Cu32 cells (tiny tasks: the per-task cost), {args.workers} workers each "
                "side:",
                emt,
                cu_cells(args.emt_structures),
                root,
                args,
                "emt",
            )
            extra_ms = 1000 * (e_slurm["label"] - e_local["label"]) * args.workers / args.emt_structures
            print(f"  per-task cost of a worker in a batch job beyond a local one: {extra_ms:.1f} ms")
    print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":  # Dask spawns worker processes that re-import this script: the guard is required
    main()
