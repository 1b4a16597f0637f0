"""Generator throughput and memory against a naive per-structure loop, side by side in one run.

    .venv/bin/python benchmarks/bench_generate.py [--count 10000] [--repeats 3]

Targets (issue 2): structures/s of InitialExplorer.generate >= the naive loop
(`atoms.copy()`, `set_cell(..., scale_atoms=True)`, `rattle()` per structure);
peak memory of generate <= 2x the size of its output.
"""

from __future__ import annotations

import argparse
import functools
import gc
import statistics
import time
import tracemalloc

import numpy as np
from ase.build import bulk

from mlip_autopipec.config import GeneratorConfig
from mlip_autopipec.generator import InitialExplorer


def naive(atoms, count, seed):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        a = atoms.copy()
        scale = rng.uniform(0.9, 1.1) ** (1 / 3)
        a.set_cell(a.cell * scale, scale_atoms=True)
        a.rattle(0.05, seed=i)
        out.append(a)
    return out


def timed(fn):
    gc.collect()
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(3)  # 108 atoms
    cfg = GeneratorConfig(seed=1, rattle_stdev=0.05, volume_range=(0.9, 1.1), max_anisotropic_strain=0.05)
    explorer = InitialExplorer(cfg)
    explorer.generate(atoms, 10)  # warm-up (imports, caches)

    ours, base = [], []
    for r in range(args.repeats):  # alternate the order so drift hits both sides alike
        pair = [
            ("ours", functools.partial(explorer.generate, atoms, args.count)),
            ("naive", functools.partial(naive, atoms, args.count, r)),
        ]
        if r % 2:
            pair.reverse()
        for name, fn in pair:
            dt, pool = timed(fn)
            (ours if name == "ours" else base).append(args.count / dt)
            del pool

    # Peak memory of one generate call against the memory its output keeps.
    gc.collect()
    tracemalloc.start()
    pool = explorer.generate(atoms, args.count)
    kept, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del pool

    m_ours, m_base = statistics.median(ours), statistics.median(base)
    print(f"structures: {args.count} x {len(atoms)} atoms, {args.repeats} repeats (medians)")
    print(f"InitialExplorer.generate : {m_ours:10.0f} structures/s")
    print(f"naive copy/set_cell/rattle: {m_base:10.0f} structures/s")
    print(f"ratio ours/naive          : {m_ours / m_base:10.2f}   (target >= 1.0)")
    print(f"output size               : {kept / 2**20:10.1f} MiB")
    print(f"peak during generate      : {peak / 2**20:10.1f} MiB")
    print(f"peak / output             : {peak / kept:10.2f}   (target <= 2.0)")


if __name__ == "__main__":
    main()
