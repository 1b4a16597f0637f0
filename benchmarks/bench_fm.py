"""The foundation model on against off, side by side on one test set (issue 19); used by
``bench_materials.py --fm`` (Cu-Au) and ``bench_active_learning.py --fm`` (Cu).

Three runs (and an optional fourth, ``FmBench.config_on_ace``: the model on with ``explore_with_teacher_ace``
flipped), each kept in ``ROOT/<run>/bench.json`` (a rerun scores it without running it again; delete a run's
folder after its config changed):

- ``fm``: the example with the foundation model guiding the cold start;
- ``no_fm``: the example without the model (a random cold start, then the same active learning);
- ``random_equal``: the model off at equal calls: a random cold start as large as ``fm``'s oracle calls and one
  fit with as many minimiser iterations as all of ``fm``'s fits.

Printed: oracle calls to reach the target (force RMSE at or below it on every condition, the learning curve's
first fit that does) with the model and without; accuracy at equal calls; each run's wall-time split (foundation
model, oracle, fits, MD, the rest); the model's cost in pw.x calls at a measured pw.x rate for the same cells.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ase import Atoms

from bench_active_learning import minimiser_iterations, test_errors, training_calls


@dataclass(frozen=True)
class FmBench:
    """What a benchmark compares: its two configs (model on, off), its target and its call budget."""

    config_on: Callable[[Path], object]  # workdir -> the config with the model on
    config_off: Callable[[Path], object]  # workdir -> the same campaign with the model off
    target_force: float  # meV/Å, on every condition
    max_calls: int  # oracle calls the model's run may spend
    max_wall_s: float | None  # wall time the model's run may take (s), or None
    #: a fourth run: config_on with explore_with_teacher_ace flipped
    config_on_ace: Callable[[Path], object] | None = None
    ace_label: str = "on + teacher ACE"  # ... its name in the tables
    ace_dir: str = "fm_ace"  # ... its work directory under the benchmark's


def wall_split(workdir: Path, wall: float) -> dict[str, float]:
    """Where a run's wall time went (s): foundation model, oracle labelling, fits, MD, the rest (report included)."""
    from mlip_autopipec.records import RunSummary, read_record

    summary = read_record(workdir / "report" / "summary.json", RunSummary, workdir)
    if summary is None:
        raise SystemExit(f"{workdir}: no report/summary.json (the run did not finish)")
    steps = summary.timings.steps_s
    fm, label, fits, md = steps.get("foundation_model", 0.0), steps.get("label", 0.0), steps.get("fit", 0.0), 0.0
    state = summary.active_learning
    if state is not None:
        for row in state.generations:
            label, fits, md = label + row.label_s, fits + row.fit_s, md + row.explore_s
        if state.final is not None:
            fits += state.final.fit_s
    return {
        "foundation model": fm,
        "oracle": label,
        "fits": fits,
        "MD": md,
        "rest": max(0.0, wall - fm - label - fits - md),
    }


def fit_dirs(workdir: Path) -> list[tuple[int, str]]:
    """(oracle calls, fit folder) after each fit of a run: the starting pool's first, a closing fit last."""
    from mlip_autopipec.pipeline.fits import latest_fit
    from mlip_autopipec.pipeline.state import read_state

    run_state = read_state(workdir)
    state = run_state.active_learning if run_state is not None else None
    if state is None:
        fit = latest_fit(workdir)
        if fit is None:
            raise SystemExit(f"{workdir}: no fit")
        return [(training_calls(workdir), str(fit.output_dir))]
    out = [(state.initial.n_labelled_total, str(state.initial.fit_dir))]
    for row in state.generations:
        if row.step == "fitted":
            out.append((state.initial.n_labelled_total + row.oracle_calls_total, str(row.fit_dir)))
    if state.final is not None:
        out.append((out[-1][0], str(state.final.fit_dir)))
    return out


def fm_cost(workdir: Path) -> tuple[int, float]:
    """The foundation model's calls (teacher labels) and their wall time summed over the workers (s)."""
    from mlip_autopipec.database import DatabaseManager

    with DatabaseManager(workdir / "structures.db") as db:
        cost = db.teacher_calls()
    return cost.calls, cost.wall_time_s


def run_kept(cfg, name: str) -> dict:
    """Run ``cfg`` unless its figures are kept in its work directory's bench.json; the run's figures."""
    from mlip_autopipec.pipeline.run import run_pipeline

    workdir = Path(cfg.workdir)
    kept = workdir / "bench.json"
    if kept.is_file():
        print(f"{name}: figures kept in {kept} (delete {workdir} to run it again)", flush=True)
        return json.loads(kept.read_text())
    print(f"[{time.strftime('%H:%M:%S')}] {name}: running in {workdir}; load {os.getloadavg()[0]:.1f}", flush=True)
    t0 = time.perf_counter()
    run_pipeline(cfg, progress=False)
    wall = time.perf_counter() - t0
    fm_calls, fm_s = fm_cost(workdir)
    training = cfg.training.max_num_epochs
    figures = {
        "wall_s": wall,
        "load_average_end": os.getloadavg()[0],
        "calls": training_calls(workdir),
        "split_s": wall_split(workdir, wall),
        "fm_calls": fm_calls,
        "fm_call_s": fm_s,
        "iterations": training if cfg.active_learning is None else minimiser_iterations(workdir, training),
        "fits": fit_dirs(workdir),
    }
    kept.write_text(json.dumps(figures, indent=1))
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {figures['calls']} oracle calls, {wall:.0f} s", flush=True)
    return figures


def curve(workdir: Path, figures: dict, test_set: dict[str, list[Atoms]]) -> list[tuple[int, dict]]:
    """(oracle calls, test errors) after each of a run's fits."""
    from mlip_autopipec.pipeline.fits import load_fit

    return [(calls, test_errors(load_fit(workdir, Path(d)), test_set)) for calls, d in figures["fits"]]


def worst(err: dict) -> tuple[str, float]:
    name, e = max(err["by_category"].items(), key=lambda kv: kv[1]["force_rmse_mev_per_angstrom"])
    return name, e["force_rmse_mev_per_angstrom"]


def calls_to_target(points: list[tuple[int, dict]], target: float) -> int | None:
    """The oracle calls of the first fit with every condition at or below ``target`` (meV/Å); None: none did."""
    return next((calls for calls, err in points if worst(err)[1] <= target), None)


def random_equal_config(off_cfg, calls: int, iterations: int, workdir: Path):
    """The model off at equal calls: a random cold start of ``calls`` structures, one fit of ``iterations``."""
    return off_cfg.model_copy(
        update={
            "workdir": workdir,
            "active_learning": None,
            "generator": off_cfg.generator.model_copy(update={"pool_size": calls}),
            "training": off_cfg.training.model_copy(update={"max_num_epochs": iterations}),
        }
    )


def print_split(name: str, fig: dict, pwx_seconds: float | None) -> None:
    wall, split = fig["wall_s"], fig["split_s"]
    parts = ", ".join(f"{k} {v:.0f} s ({100 * v / wall:.0f} %)" for k, v in split.items())
    print(f"{name}: {fig['calls']} oracle calls, wall {wall:.0f} s = {wall / 60:.1f} min: {parts}")
    if fig["fm_calls"]:
        line = f"  foundation model: {fig['fm_calls']} teacher labels, {fig['fm_call_s']:.0f} s summed over the workers"
        if pwx_seconds:
            line += f" = {fig['fm_call_s'] / pwx_seconds:.1f} pw.x calls of the same cells ({pwx_seconds:.0f} s each)"
        print(line)


def print_table(test_set: dict, errs: dict[str, dict]) -> None:
    names = list(errs)
    print(f"{'condition':30}" + "".join(f"{n:>18}" for n in names) + "   (force RMSE, meV/Å)")
    for cond in test_set:
        row = "".join(f"{errs[n]['by_category'][cond]['force_rmse_mev_per_angstrom']:>18.1f}" for n in names)
        print(f"{cond:30}{row}")
    print(f"{'all conditions':30}" + "".join(f"{errs[n]['force_rmse_mev_per_angstrom']:>18.1f}" for n in names))
    print(f"{'energy, all (meV/atom)':30}" + "".join(f"{errs[n]['energy_rmse_mev_per_atom']:>18.2f}" for n in names))


def print_curves(curves: dict[str, list[tuple[int, dict]]]) -> None:
    print("learning curves (oracle calls: force RMSE over all conditions; the worst condition), meV/Å:")
    for name, points in curves.items():
        text = "; ".join(f"{c}: {e['force_rmse_mev_per_angstrom']:.1f} ({worst(e)[1]:.1f})" for c, e in points)
        print(f"  {name}: {text}")


def compare_fm(bench: FmBench, root: Path, test_set: dict[str, list[Atoms]], pwx_seconds: float | None) -> bool:
    """Run (or score the kept) three runs and print the comparison; True when the target is met."""
    on = run_kept(bench.config_on(root / "fm"), "model on")
    off_cfg = bench.config_off(root / "no_fm")
    off = run_kept(off_cfg, "model off")
    rnd_cfg = random_equal_config(off_cfg, on["calls"], on["iterations"], root / "random_equal")
    rnd = run_kept(rnd_cfg, f"model off, random cold start of {on['calls']} calls")
    runs = {"model on": (on, root / "fm"), "model off": (off, root / "no_fm")}
    if bench.config_on_ace is not None:
        runs[bench.ace_label] = (
            run_kept(bench.config_on_ace(root / bench.ace_dir), bench.ace_label),
            root / bench.ace_dir,
        )
    curves = {name: curve(workdir, fig, test_set) for name, (fig, workdir) in runs.items()}
    errs = {name: points[-1][1] for name, points in curves.items()}
    errs["off, = calls"] = curve(root / "random_equal", rnd, test_set)[-1][1]
    print()
    for name, fig in [*((n, f) for n, (f, _) in runs.items()), ("off, equal calls", rnd)]:
        print_split(name, fig, pwx_seconds)
    print()
    print_table(test_set, errs)
    print_curves(curves)
    reach = {name: calls_to_target(points, bench.target_force) for name, points in curves.items()}
    for name, calls in reach.items():
        final = curves[name][-1][0]
        said = f"{calls} oracle calls" if calls is not None else f"not reached in {final} calls"
        print(f"calls to reach {bench.target_force:g} meV/Å on every condition, {name}: {said}")
    worst_on, worst_rnd = worst(errs["model on"]), worst(errs["off, = calls"])
    all_on, all_rnd = (errs[n]["force_rmse_mev_per_angstrom"] for n in ("model on", "off, = calls"))
    print(
        f"at equal calls ({on['calls']}): worst condition {worst_on[1]:.1f} meV/Å with the model ({worst_on[0]}), "
        f"{worst_rnd[1]:.1f} without ({worst_rnd[0]}); all conditions "
        f"{all_on:.1f} vs {all_rnd:.1f}"
    )
    met = worst_on[1] <= bench.target_force and on["calls"] <= bench.max_calls
    if bench.max_wall_s is not None:
        met = met and on["wall_s"] <= bench.max_wall_s
    limit = f", ≤ {bench.max_wall_s / 60:.0f} min" if bench.max_wall_s is not None else ""
    print(
        f"target (model on: every condition ≤ {bench.target_force:g} meV/Å with ≤ {bench.max_calls} oracle calls"
        f"{limit}): {'MET' if met else 'NOT MET'} (worst {worst_on[1]:.1f} meV/Å, {on['calls']} calls, "
        f"{on['wall_s'] / 60:.1f} min)",
        flush=True,
    )
    return met
