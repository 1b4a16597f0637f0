"""Benchmark of the DatabaseManager against ASE's own database, side by side in one run.

Measures, on N labelled 32-atom Cu structures (rattled fcc, single-point
energy/forces/stress, generator-like provenance in ``atoms.info``):

1. insert rate: ``DatabaseManager.add_structures`` (validation, duplicate
   check, provenance, one transaction) against ASE's ``db.write`` loop inside
   one ``with db:`` transaction on the same Atoms (target ratio >= 0.8);
2. export rate of ``save_dataset`` to pacemaker's ``.pckl.gzip`` (target >=
   5,000 structures/s) and to extended XYZ, next to the obvious ASE baseline
   (``row.toatoms()`` for every row, a DataFrame, ``to_pickle``);
3. peak memory (resident set, in fresh processes) of adding and exporting N and
   4N structures, next to the memory of one in-memory copy of the dataset
   (the DataFrame read back), to show that the export holds one copy;
4. with ``--url postgresql://user@host:port/db``: the insert and export rates of
   1 and 2 on that PostgreSQL database, next to SQLite, in the same run (each
   timing in a fresh campaign, i.e. a fresh schema, dropped at the end; ASE's
   baseline writes into a schema of its own through the URL's search_path).
   Give the password in PGPASSWORD or ~/.pgpass, not in the URL: a command
   line is visible to every user of the machine.

Usage::

    python benchmarks/bench_database.py            # N = 10,000, memory also at 40,000
    python benchmarks/bench_database.py --n 2000 --big 4000 --repeats 1   # quick
    PGPASSWORD=... python benchmarks/bench_database.py --n 2000 --repeats 1 --no-memory \
        --url postgresql://mlip@localhost:5432/mlip          # SQLite and PostgreSQL side by side

Timings are medians of ``--repeats`` runs, interleaved (ASE, ours, ASE, ours,
...) so that a busy machine slows both sides alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_structures(n: int, seed: int = 0):
    from ase.build import bulk
    from ase.calculators.singlepoint import SinglePointCalculator

    rng = np.random.default_rng(seed)
    base = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    out = []
    for i in range(n):
        atoms = base.copy()
        strain = np.eye(3) + rng.uniform(-0.02, 0.02, (3, 3))
        atoms.set_cell(base.cell.array @ strain, scale_atoms=True)
        atoms.positions += rng.normal(0.0, 0.05, atoms.positions.shape)
        atoms.info = {
            "operation": "anisotropic",
            "volume_ratio": float(np.linalg.det(strain)),
            "strain": strain - np.eye(3),
            "rattle_stdev": 0.05,
            "generator_seed": seed,
            "pool_index": i,
        }
        atoms.calc = SinglePointCalculator(
            atoms, energy=-100.0 + rng.normal(), forces=rng.normal(0, 0.5, (32, 3)), stress=rng.normal(0, 0.01, 6)
        )
        out.append(atoms)
    return out


def fresh(path: Path) -> Path:
    for suffix in ("", "-journal", "-wal", "-shm"):
        p = Path(str(path) + suffix)
        if p.exists():
            p.unlink()
    return path


# ----------------------------------------------------------------- targets: a SQLite file or a PostgreSQL schema
class PgTarget:
    """A schema of a PostgreSQL database: fresh on every :meth:`fresh` call, all dropped by :meth:`drop_all`."""

    def __init__(self, url: str):
        import psycopg2

        self.url = url
        self.made: set[str] = set()
        self.admin = psycopg2.connect(url)
        self.admin.autocommit = True

    def fresh(self, name: str, create: bool = False) -> PgSchema:
        with self.admin.cursor() as cur:
            cur.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
            if create:
                cur.execute(f"CREATE SCHEMA {name}")
        self.made.add(name)
        return PgSchema(self, name)

    def drop_all(self) -> None:
        with self.admin.cursor() as cur:
            for name in sorted(self.made):
                cur.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        self.admin.close()


class PgSchema:
    def __init__(self, target: PgTarget, name: str):
        self.target, self.name = target, name

    def ase_url(self) -> str:
        """The URL with ``options=-csearch_path=<schema>``: ASE's own backend then works inside the schema."""
        sep = "&" if "?" in self.target.url else "?"
        return f"{self.target.url}{sep}options=-csearch_path%3D{self.name}"


def connect_ase(where):
    import ase.db

    if isinstance(where, PgSchema):
        return ase.db.connect(where.ase_url(), serial=True)
    return ase.db.connect(str(where), use_lock_file=False)


def open_ours(where):
    from mlip_autopipec.database import DatabaseManager

    if isinstance(where, PgSchema):
        return DatabaseManager(where.target.url, campaign=where.name)
    return DatabaseManager(where)


def time_ase_insert(structures, path) -> float:
    db = connect_ase(path if isinstance(path, PgSchema) else fresh(path))
    t, c = time.perf_counter(), time.process_time()
    with db:
        for atoms in structures:
            db.write(atoms)
    return time.perf_counter() - t, time.process_time() - c


def time_ase_insert_with_metadata(structures, path) -> float:
    """ASE's loop storing what we store besides the structure: key-value pairs and the provenance."""
    db = connect_ase(path if isinstance(path, PgSchema) else fresh(path))
    t, c = time.perf_counter(), time.process_time()
    with db:
        for atoms in structures:
            db.write(
                atoms,
                key_value_pairs={"source": "initial_random", "generation": 0, "status": "labelled"},
                data={"provenance": atoms.info},
            )
    return time.perf_counter() - t, time.process_time() - c


def time_ours_insert(structures, path) -> float:
    from mlip_autopipec.database import StructureMetadata

    with open_ours(path if isinstance(path, PgSchema) else fresh(path)) as db:
        t, c = time.perf_counter(), time.process_time()
        db.add_structures(structures, StructureMetadata(source="initial_random", generation=0))
        dt = time.perf_counter() - t, time.process_time() - c
        assert db.count() == len(structures)
    return dt


def time_ase_export(db_path, out: Path) -> float:
    import pandas as pd

    db = connect_ase(db_path)
    t, c = time.perf_counter(), time.process_time()
    with db:  # one connection for the whole read, as ours uses
        atoms = [row.toatoms() for row in db.select()]
    df = pd.DataFrame(
        {
            "energy": [a.get_potential_energy() for a in atoms],
            "forces": [a.get_forces() for a in atoms],
            "ase_atoms": atoms,
        }
    )
    df["energy_corrected"] = df["energy"]
    df.to_pickle(out, compression="gzip")
    return time.perf_counter() - t, time.process_time() - c


def time_ours_export(db_path, out: Path) -> float:
    with open_ours(db_path) as db:
        t, c = time.perf_counter(), time.process_time()
        db.save_dataset(out)
        return time.perf_counter() - t, time.process_time() - c


# ----------------------------------------------------------------- memory (run in child processes)
def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # resets VmHWM to the current resident set (Linux >= 4.0)
        return True
    except OSError:
        return False


def memory_child(mode: str, n: int, db_path: str, out: str) -> None:
    """Print {"before_kib", "peak_kib"} for one operation in this fresh process."""
    import pandas as pd

    from mlip_autopipec.database import DatabaseManager, StructureMetadata

    structures = make_structures(n) if mode == "add" else None
    if mode in ("add", "export"):
        db = DatabaseManager(db_path)
    _reset_peak()
    before = _rss_kib("VmRSS")
    if mode == "add":
        db.add_structures(structures, StructureMetadata(source="initial_random"))
    elif mode == "export":
        db.save_dataset(out)
    elif mode == "load":
        df = pd.read_pickle(out, compression="gzip")
        assert len(df) == n
    peak = _rss_kib("VmHWM") if mode != "load" else _rss_kib("VmRSS")
    print(json.dumps({"before_kib": before, "peak_kib": peak}))


def run_child(mode: str, n: int, db_path: Path, out: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--memory-child", mode, str(n), str(db_path), str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure_memory(n: int, work: Path) -> dict:
    db_path = fresh(work / f"mem{n}.db")
    out = work / f"mem{n}.pckl.gzip"
    add = run_child("add", n, db_path, out)
    export = run_child("export", n, db_path, out)
    load = run_child("load", n, db_path, out)
    mib = lambda d: (d["peak_kib"] - d["before_kib"]) / 1024.0  # noqa: E731
    return {
        "add_mib": mib(add),
        "export_mib": mib(export),
        "one_copy_mib": mib(load),
        "file_mib": out.stat().st_size / 2**20,
    }


def rates(n: int, timings: list[tuple[float, float]]) -> tuple[float, float]:
    """Median wall-clock and CPU-time rates (items per second)."""
    return n / statistics.median(t[0] for t in timings), n / statistics.median(t[1] for t in timings)


def postgres_rates(url: str, structures, work: Path, repeats: int, sqlite: tuple) -> None:
    """Sections 1 and 2 on a PostgreSQL database, printed with the SQLite figures of this run beside them."""
    from mlip_autopipec.database.location import redact_url

    n = len(structures)
    target = PgTarget(url)
    try:
        t_ase, t_ase_md, t_ours = [], [], []
        for i in range(repeats):
            t_ase.append(time_ase_insert(structures, target.fresh(f"bench_ase_{i}", create=True)))
            t_ours.append(time_ours_insert(structures, target.fresh(f"bench_ours_{i}")))
            t_ase_md.append(time_ase_insert_with_metadata(structures, target.fresh(f"bench_ase_md_{i}", create=True)))
        ase_rate, ase_md_rate, ours_rate = rates(n, t_ase), rates(n, t_ase_md), rates(n, t_ours)
        e_ase, e_ours, e_xyz = [], [], []
        for _ in range(repeats):
            e_ase.append(time_ase_export(PgSchema(target, "bench_ase_0"), work / "pg_ase.pckl.gzip"))
            e_ours.append(time_ours_export(PgSchema(target, "bench_ours_0"), work / "pg_ours.pckl.gzip"))
            e_xyz.append(time_ours_export(PgSchema(target, "bench_ours_0"), work / "pg_ours.xyz"))
        ase_exp, ours_exp, xyz_exp = rates(n, e_ase), rates(n, e_ours), rates(n, e_xyz)
    finally:
        target.drop_all()
    sq_insert, sq_export = sqlite
    print()
    print(
        f"PostgreSQL {redact_url(url)}: {n} labelled 32-atom structures (median of {repeats}; wall-clock rates; CPU = "
        "this process only)"
    )
    print(f"  {'':44} {'PostgreSQL':>12} {'SQLite':>12}")
    print(f"  {'ASE db.write loop in `with db:`':44} {ase_rate[0]:9.0f} /s")
    print(
        f"  {'ASE db.write loop + our key-values and data':44} {ase_md_rate[0]:9.0f} /s   (the same rows as ours: the "
        "fair baseline)"
    )
    print(
        f"  {'DatabaseManager.add_structures':44} {ours_rate[0]:9.0f} /s {sq_insert[0]:9.0f} /s   ratio ours/ASE = "
        f"{ours_rate[0] / ase_rate[0]:.2f}, ours/ASE+key-values = {ours_rate[0] / ase_md_rate[0]:.2f}"
    )
    print(f"  {'ASE select + toatoms + DataFrame.to_pickle':44} {ase_exp[0]:9.0f} /s")
    print(
        f"  {'save_dataset(.pckl.gzip)':44} {ours_exp[0]:9.0f} /s {sq_export[0]:9.0f} /s   ratio ours/ASE on "
        f"PostgreSQL = {ours_exp[0] / ase_exp[0]:.2f}"
    )
    print(f"  {'save_dataset(.xyz)':44} {xyz_exp[0]:9.0f} /s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000, help="structures for the timings (default 10000)")
    ap.add_argument(
        "--big", type=int, default=40_000, help="second size for the memory figures (default 40000; 0 to skip)"
    )
    ap.add_argument("--repeats", type=int, default=3, help="timing repeats; the median is printed (default 3)")
    ap.add_argument("--no-memory", action="store_true", help="skip the memory measurements")
    ap.add_argument(
        "--url",
        help="also time inserts and exports on this PostgreSQL database (postgresql://user@host:port/db; the password "
        "in PGPASSWORD or ~/.pgpass); its role needs CREATE on the database (one schema per timing, dropped at the "
        "end)",
    )
    ap.add_argument("--memory-child", nargs=4, metavar=("MODE", "N", "DB", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        mode, n, db_path, out = args.memory_child
        memory_child(mode, int(n), db_path, out)
        return

    n = args.n
    with tempfile.TemporaryDirectory(prefix="bench_db_") as tmp:
        work = Path(tmp)
        print(f"building {n} labelled 32-atom structures ...", flush=True)
        structures = make_structures(n)
        t_ase, t_ase_md, t_ours = [], [], []
        for _ in range(args.repeats):
            t_ase.append(time_ase_insert(structures, work / "ase.db"))
            t_ours.append(time_ours_insert(structures, work / "ours.db"))
            t_ase_md.append(time_ase_insert_with_metadata(structures, work / "ase_md.db"))
        ase_rate, ours_rate, ase_md_rate = (rates(n, t) for t in (t_ase, t_ours, t_ase_md))
        ratio = ours_rate[0] / ase_rate[0]
        print()
        print(
            f"insert {n} labelled 32-atom structures, one transaction (median of {args.repeats}; wall-clock and "
            "CPU-time rates):"
        )
        print(f"  ASE db.write loop in `with db:`             {ase_rate[0]:9.0f} rows/s  {ase_rate[1]:9.0f} rows/CPU-s")
        print(
            f"  ASE db.write loop + our key-values and data {ase_md_rate[0]:9.0f} rows/s  {ase_md_rate[1]:9.0f} "
            "rows/CPU-s  (for reference)"
        )
        print(
            f"  DatabaseManager.add_structures              {ours_rate[0]:9.0f} rows/s  {ours_rate[1]:9.0f} rows/CPU-s"
        )
        print(
            f"  ratio ours/ASE = {ratio:.2f} wall, {ours_rate[1] / ase_rate[1]:.2f} CPU   (target >= 0.8)  "
            f"{'PASS' if ratio >= 0.8 else 'FAIL'}"
        )

        e_ours, e_xyz, e_ase = [], [], []
        for _ in range(args.repeats):
            e_ase.append(time_ase_export(work / "ase.db", work / "ase.pckl.gzip"))
            e_ours.append(time_ours_export(work / "ours.db", work / "ours.pckl.gzip"))
            e_xyz.append(time_ours_export(work / "ours.db", work / "ours.xyz"))
        ours_exp, xyz_exp, ase_exp = (rates(n, t) for t in (e_ours, e_xyz, e_ase))
        print()
        print(f"export {n} structures (median of {args.repeats}; CPU time counts every thread):")
        print(
            f"  ASE select + toatoms + DataFrame.to_pickle  {ase_exp[0]:9.0f} structures/s  {ase_exp[1]:9.0f} /CPU-s  "
            "(baseline)"
        )
        print(
            f"  save_dataset(.pckl.gzip)                    {ours_exp[0]:9.0f} structures/s  {ours_exp[1]:9.0f} "
            f"/CPU-s  (target >= 5000/s: {'PASS' if ours_exp[0] >= 5000 else 'FAIL'})  ratio ours/ASE = "
            f"{ours_exp[0] / ase_exp[0]:.2f}"
        )
        print(f"  save_dataset(.xyz)                          {xyz_exp[0]:9.0f} structures/s  {xyz_exp[1]:9.0f} /CPU-s")
        if args.url:
            postgres_rates(args.url, structures, work, args.repeats, (ours_rate, ours_exp))
        del structures

        if not args.no_memory:
            print()
            print("peak resident memory above the starting point, fresh process each (MiB):")
            print(f"  {'structures':>10} {'add':>8} {'export':>8} {'one copy':>9} {'export/copy':>12} {'file':>7}")
            for size in [n] + ([args.big] if args.big else []):
                m = measure_memory(size, work)
                print(
                    f"  {size:>10} {m['add_mib']:8.1f} {m['export_mib']:8.1f} {m['one_copy_mib']:9.1f} "
                    f"{m['export_mib'] / m['one_copy_mib']:12.2f} {m['file_mib']:7.1f}",
                    flush=True,
                )
            print("  ('add' includes the validated batch it holds; 'one copy' = the DataFrame read back from the file;")
            print("   export/copy near 1 means the export holds one copy of the data)")


if __name__ == "__main__":
    main()
