"""What a work directory holds, for `mlip-autopipec status` and `export`."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.database import DatabaseManager
from mlip_autopipec.database.location import is_url
from mlip_autopipec.database.metadata import PROPERTY
from mlip_autopipec.exceptions import ConfigurationError, WorkdirError
from mlip_autopipec.fileio import os_error_sentence
from mlip_autopipec.pipeline.context import database_location, open_database
from mlip_autopipec.pipeline.fits import latest_fit
from mlip_autopipec.pipeline.lock import read_holder
from mlip_autopipec.pipeline.state import read_state
from mlip_autopipec.pipeline.summary import read_summary


def open_workdir(workdir: Path) -> tuple[PipelineConfig, DatabaseManager]:
    """The config a work directory was run with and its database, opened for reading only.

    Reads while a run holds the work directory's lock (nothing is written).
    """
    workdir = Path(workdir).absolute()
    if not workdir.is_dir():
        raise ConfigurationError(f"{workdir} is not a folder: give the work directory of a run")
    state = read_state(workdir)
    if state is None:
        raise ConfigurationError(
            f"{workdir} is not a mlip-autopipec work directory (no state.json): run `mlip-autopipec run` first"
        )
    location = database_location(state.config, workdir)
    if is_url(location):
        return state.config, open_database(state.config, workdir)
    return state.config, DatabaseManager(location, read_only=True)


_IN_DIR = re.compile(r" \(in [^()]*structure_\d+\)$")
_STRUCTURE_DIR = re.compile(r"structure_\d+")


def failure_groups(failures: list[tuple[int, str, str]]) -> list[tuple[str, list[int]]]:
    """Failures grouped by the first line of their reason: ``(reason, ids)``, the largest group first."""
    groups: dict[str, list[int]] = {}
    for sid, _formula, reason in failures:
        first = reason.strip().splitlines()[0] if reason.strip() else "(no reason recorded)"
        first = _STRUCTURE_DIR.sub("structure_<id>", _IN_DIR.sub("", first))  # one group for one cause
        groups.setdefault(first, []).append(sid)
    return sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[1][0]))


def status_lines(workdir: Path, max_failures: int = 20) -> list[str]:
    workdir = Path(workdir).absolute()
    cfg, db = open_workdir(workdir)
    lines = [f"work directory: {workdir}"]
    holder = read_holder(workdir)
    if holder is not None:
        line, alive = holder
        if alive is False:
            lines.append(f"last run ended without finishing (killed?): {line}; `mlip-autopipec run` continues it")
        else:
            lines.append(f"run in progress: {line}" + ("" if alive else " (or killed, on another host)"))
    table: Counter = Counter()
    by_seed: Counter = Counter()
    failures = []
    for rec in db.select():
        table[(rec.metadata.source, rec.metadata.generation, rec.status)] += 1
        by_seed[(str(rec.metadata.provenance.get("seed") or "-"), rec.metadata.source, rec.metadata.generation)] += 1
        if rec.status == "failed":
            failures.append((rec.id, rec.atoms.get_chemical_formula(), rec.failure_reason or ""))
    total = sum(table.values())
    lines.append(
        f"structures: {total} ({', '.join(f'{s}: {db.count(status=s)}' for s in ('pending', 'labelled', 'failed'))})"
    )
    lines.append(f"  {'source':<28}{'generation':>10}  {'status':<10}{'count':>7}")
    for (source, gen, status), n in sorted(table.items()):
        lines.append(f"  {source:<28}{gen:>10}  {status:<10}{n:>7}")
    lines.extend(seed_count_lines(by_seed))
    lines.append(
        f"splits (labelled): train {db.count(label='train', status='labelled')}, validation {db.count(label='validation', status='labelled')}"
    )
    if failures:
        groups = failure_groups(failures)
        lines.append(f"failures ({len(failures)}), by reason:")
        for reason, ids in groups[:max_failures]:
            shown = ", ".join(str(i) for i in ids[:8]) + (f", ... ({len(ids)} in all)" if len(ids) > 8 else "")
            lines.append(f"  {len(ids):>5} x {reason}")
            lines.append(f"          ids {shown}")
        if len(groups) > max_failures:
            lines.append(f"  ... and {len(groups) - max_failures} more reasons")
        lines.append(
            "  to label them again once the cause is fixed: mlip-autopipec run CONFIG --retry-failed "
            "(earlier reasons stay in each structure's failure_history)"
        )
    al = read_state(workdir).active_learning
    if al is not None:
        lines.append("active learning:")
        lines.append(
            f"  {'gen':>3} {'candidates':>10} {'selected':>8} {'labelled':>8} {'failed':>6} {'halts':>5} {'max γ':>8} {'val F RMSE':>11} {'refit iters':>11}"
        )
        for g in al.generations:
            rmse = g.validation_force_rmse_mev_per_angstrom
            max_gamma = float("nan") if g.max_gamma is None else g.max_gamma
            lines.append(
                f"  {g.generation:>3} {g.candidates or 0:>10} {g.selected or 0:>8} {g.labelled or 0:>8} "
                f"{g.failed or 0:>6} {g.halts or 0:>5} {max_gamma:>8.2f} "
                f"{('%.1f meV/Å' % rmse) if rmse is not None else 'n/a':>11} {g.fit_max_epochs or '':>11}"
            )
        if al.final is not None:
            rmse = al.final.validation_force_rmse_mev_per_angstrom
            lines.append(
                f"  final fit: {al.final.max_epochs} iterations from the last refit; "
                f"val F RMSE {'n/a' if rmse is None else '%.1f meV/Å' % rmse}"
            )
        if al.stop_reason:
            lines.append(f"  stopped: {al.stop_reason}")
    fit = latest_fit(workdir)
    if fit is None:
        lines.append("fit: none yet")
    else:
        m = fit.metrics
        lines.append(f"latest fit: {fit.potential_yace}")
        lines.append(
            f"  pacemaker train RMSE: {m.train_energy_rmse_mev_per_atom:.2f} meV/atom, {m.train_force_rmse_mev_per_a:.1f} meV/Å"
            + (
                f"; test: {m.test_energy_rmse_mev_per_atom:.2f} meV/atom, {m.test_force_rmse_mev_per_a:.1f} meV/Å"
                if m.test_energy_rmse_mev_per_atom is not None
                else ""
            )
        )
    summary = read_summary(workdir)
    if summary is not None and summary.validation.n_structures:
        val = summary.validation
        lines.append(
            f"  validation: {val.energy_rmse_mev_per_atom:.2f} meV/atom, {val.force_rmse_mev_per_angstrom:.1f} meV/Å "
            f"({val.n_structures} structures; report in {workdir / 'report'})"
        )
    return lines


def seed_count_lines(by_seed: Counter) -> list[str]:
    """The table of structures per (seed, source, generation); seed '-': none recorded."""
    lines = [f"  {'seed':<24}{'source':<28}{'generation':>10}{'count':>7}"]
    for (seed, source, gen), n in sorted(by_seed.items()):
        lines.append(f"  {seed:<24}{source:<28}{gen:>10}{n:>7}")
    return lines


def export_dataset(workdir: Path, fmt: str, output: Path, label: str | None = None) -> tuple[Path, int]:
    """Write the labelled structures (optionally one split) as extxyz or pacemaker's .pckl.gzip."""
    _cfg, db = open_workdir(workdir)
    output = Path(output)
    suffix = ".pckl.gzip" if fmt == "pacemaker" else ".xyz"
    if fmt == "pacemaker" and not output.name.endswith(".pckl.gzip"):
        output = output.with_name(output.name + suffix)
    if fmt == "extxyz" and output.suffix not in (".xyz", ".extxyz"):
        output = output.with_name(output.name + suffix)
    if output.parent.exists() and not output.parent.is_dir():
        raise WorkdirError(f"cannot write {output}: {output.parent} is a file, not a folder; choose another -o path")
    if output.is_dir():
        raise WorkdirError(f"cannot write {output}: it is a folder; give a file name with -o")
    # without --label: everything the campaign labelled; the report's property structures are not training data
    selection = (
        {"label": label} if label else {"ids": sorted(set(db.ids(status="labelled")) - set(db.ids(label=PROPERTY)))}
    )
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        n = db.save_dataset(output, **selection)
    except OSError as err:
        if err.filename is None:
            err.filename = str(output)
        raise WorkdirError(os_error_sentence(err, "cannot write the export")) from err
    return output, n
