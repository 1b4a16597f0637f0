"""Benchmark of the Oracle's parallel labelling (issue 4).

1. pw.x: label 16 rattled 8-atom Si cells (cubic diamond) through ``label_pending``
   with 1 and with 2 Dask worker processes (OMP_NUM_THREADS=1), in the same run;
   print both throughputs and the speed-up (target >= 1.7 on 2 cores).
2. EMT: labels per second through ``label_pending`` (2 workers) against a plain
   loop over the same structures in this process, to show what the machinery
   (Dask round trip, database write) costs per task.

Clusters are started before the clock starts (their start-up is printed
separately).  On a machine shared with other work, the speed-up is bounded by
the cores actually free: the load average is printed with the results.

    .venv/bin/python benchmarks/bench_oracle.py [--structures 16] [--ecutwfc 12] [--kspacing 0.8]

3. ``--cu32 N``: the cost of one call on the 32-atom fcc Cu cells of the Cu and Cu-Au campaigns, side by side:
   pw.x (Debian's Cu.pbe-kjpaw.UPF, ecutwfc 30 Ry, ecutrho 240 Ry, kspacing 0.3 Å⁻¹, Marzari-Vanderbilt
   smearing 0.02 Ry; one worker per cell, 2 workers) against the foundation model CHGNet 0.3.0 (one torch
   thread), both through ``label_pending``.  The median wall time per call of each and their ratio: the rate at
   which ``bench_materials.py --fm`` and ``bench_active_learning.py --fm`` turn the model's time into pw.x calls.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from ase.build import bulk  # noqa: E402
from ase.calculators.emt import EMT  # noqa: E402

from mlip_autopipec.config import EMTOracleConfig, EspressoOracleConfig, FoundationModelOracleConfig  # noqa: E402
from mlip_autopipec.database import DatabaseManager, StructureMetadata  # noqa: E402
from mlip_autopipec.oracle import label_pending, make_oracle  # noqa: E402
from mlip_autopipec.oracle.qe_output import parse_pw_output  # noqa: E402


def si_cells(n: int) -> list:
    cells = []
    for i in range(n):
        atoms = bulk("Si", "diamond", a=5.43, cubic=True)
        atoms.rattle(0.05, seed=100 + i)
        cells.append(atoms)
    return cells


def cu_cells(n: int) -> list:
    cells = []
    for i in range(n):
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)  # 32 atoms
        atoms.rattle(0.05, seed=i)
        cells.append(atoms)
    return cells


def fresh_db(folder: Path, name: str, structures: list) -> DatabaseManager:
    db = DatabaseManager(folder / f"{name}.db")
    db.add_structures(structures, StructureMetadata(source="benchmark"))
    return db


def client_with(n_workers: int):
    from distributed import Client, LocalCluster

    start = time.perf_counter()
    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(cluster)
    return cluster, client, time.perf_counter() - start


def timed_label(db, oracle, client, workdir: Path) -> float:
    start = time.perf_counter()
    summary = label_pending(db, oracle, client, workdir=workdir, progress=False)
    elapsed = time.perf_counter() - start
    if summary.failed:
        raise SystemExit(f"benchmark structures failed: {summary.failed}")
    return elapsed


def pw_cpu_seconds(runs: Path) -> float:
    """pw.x's own CPU time summed over every run under ``runs`` (from its timing reports)."""
    total = 0.0
    for out in runs.glob("structure_*/attempt_*/espresso.pwo"):
        total += parse_pw_output(out.read_text(errors="replace")).cpu_s or 0.0
    return total


def bench_pw(args, root: Path) -> None:
    if shutil.which("pw.x") is None:
        print("pw.x: not installed, skipped")
        return
    oracle = make_oracle(
        EspressoOracleConfig(pseudopotentials={"Si": "Si.pbe-rrkj.UPF"}, ecutwfc=args.ecutwfc, kspacing=args.kspacing)
    )
    cells = si_cells(args.structures)
    rates = {}
    for n_workers in (1, 2):
        cluster, client, startup = client_with(n_workers)
        try:
            db = fresh_db(root, f"pw_{n_workers}", cells)
            elapsed = timed_label(db, oracle, client, root / f"pw_runs_{n_workers}")
            db.close()
        finally:
            client.close()
            cluster.close()
        rates[n_workers] = args.structures / elapsed
        cpu = pw_cpu_seconds(root / f"pw_runs_{n_workers}")
        print(
            f"pw.x, {n_workers} worker(s): {args.structures} Si8 cells in {elapsed:.1f} s = {rates[n_workers]:.3f} "
            f"structures/s (cluster start-up {startup:.1f} s, not counted); pw.x CPU {cpu:.1f} s, cores kept busy = "
            f"CPU / wall = {cpu / elapsed:.2f}"
        )
    ratio = rates[2] / rates[1]
    print(
        f"pw.x speed-up 2 workers / 1 worker: {ratio:.2f}  (target >= 1.7 on 2 cores)  -> "
        f"{'OK' if ratio >= 1.7 else 'BELOW TARGET'}"
    )
    print("  (cores kept busy well below the worker count means the cores were not free: other load on the machine)")


def per_call_s(db: DatabaseManager) -> list[float]:
    """Each labelled structure's oracle wall time (s), as the labelling recorded it."""
    from mlip_autopipec.records.cost import label_calls

    return [call.wall_time_s for call in label_calls(db.select(status="labelled"))]


def bench_cu32(args, root: Path) -> None:
    if shutil.which("pw.x") is None:
        raise SystemExit("--cu32 needs pw.x (bash scripts/setup.sh installs it)")
    pw = EspressoOracleConfig(
        pseudopotentials={"Cu": "Cu.pbe-kjpaw.UPF"}, ecutwfc=30.0, ecutrho=240.0, kspacing=0.3, degauss=0.02
    )
    fm = FoundationModelOracleConfig(type="foundation_model", name="chgnet", model_version="0.3.0", threads=1)
    cells = cu_cells(args.cu32)
    medians = {}
    for name, cfg in (("pw.x", pw), ("CHGNet", fm)):
        cluster, client, _ = client_with(2)
        try:
            db = fresh_db(root, f"cu32_{name}", cells)
            elapsed = timed_label(db, make_oracle(cfg), client, root / f"cu32_{name}")
            medians[name] = statistics.median(per_call_s(db))
            db.close()
        finally:
            client.close()
            cluster.close()
        print(f"{name}: {len(cells)} Cu32 cells in {elapsed:.1f} s (2 workers); median {medians[name]:.2f} s per call")
    print(f"one pw.x call on a Cu32 cell = {medians['pw.x'] / medians['CHGNet']:.0f} CHGNet calls")


def bench_emt(args, root: Path) -> None:
    cells = cu_cells(args.emt_structures)
    loop_times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for atoms in cells:
            a = atoms.copy()
            a.calc = EMT()
            a.get_potential_energy(), a.get_forces(), a.get_stress()
        loop_times.append(time.perf_counter() - start)
    cluster, client, startup = client_with(2)
    pending_times = []
    try:
        for r in range(args.repeats):
            db = fresh_db(root, f"emt_{r}", cells)
            pending_times.append(timed_label(db, make_oracle(EMTOracleConfig()), client, root / f"emt_runs_{r}"))
            db.close()
    finally:
        client.close()
        cluster.close()
    n = len(cells)
    t_loop, t_pending = statistics.median(loop_times), statistics.median(pending_times)
    print(f"EMT plain loop (1 process, no database): {n / t_loop:.0f} labels/s (median of {args.repeats})")
    print(
        f"EMT label_pending (2 workers, database writes): {n / t_pending:.0f} labels/s (median of {args.repeats}; "
        f"cluster start-up {startup:.1f} s, not counted)"
    )
    print(
        f"EMT ratio label_pending / loop: {t_loop / t_pending:.2f}; machinery cost "
        f"{1000 * (t_pending - t_loop / 2) / n:.1f} ms per task (wall time beyond the ideal 2-worker share of the loop)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--structures", type=int, default=16, help="Si8 cells labelled with pw.x per worker count")
    parser.add_argument("--ecutwfc", type=float, default=12.0, help="pw.x wavefunction cutoff (Ry)")
    parser.add_argument("--kspacing", type=float, default=0.8, help="k-point spacing (1/Å, VASP convention)")
    parser.add_argument("--emt-structures", type=int, default=200, help="32-atom Cu cells for the EMT comparison")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the EMT comparison (median reported)")
    parser.add_argument("--skip-pw", action="store_true", help="only the EMT comparison")
    parser.add_argument(
        "--cu32", type=int, default=0, help="only the cost per call on this many 32-atom Cu cells: pw.x against CHGNet"
    )
    args = parser.parse_args()
    print(
        f"cores usable: {len(os.sched_getaffinity(0))}, load average before: "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    with tempfile.TemporaryDirectory(prefix="bench_oracle_") as tmp:
        root = Path(tmp)
        if args.cu32:
            bench_cu32(args, root)
            return
        if not args.skip_pw:
            bench_pw(args, root)
        bench_emt(args, root)
    print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":  # Dask spawns worker processes that re-import this script: the guard is required
    main()
