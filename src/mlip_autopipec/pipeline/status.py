"""What a work directory holds, for `mlip-autopipec status` and `export`."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.database import DatabaseManager
from mlip_autopipec.database.formats import EXTXYZ_SUFFIXES, PACEMAKER_SUFFIX, dataset_format
from mlip_autopipec.database.location import is_url
from mlip_autopipec.database.metadata import PROPERTY
from mlip_autopipec.exceptions import ConfigurationError, WorkdirError
from mlip_autopipec.fileio import os_error_sentence
from mlip_autopipec.pipeline.context import database_location, open_database
from mlip_autopipec.pipeline.fits import latest_fit
from mlip_autopipec.pipeline.lock import read_holder
from mlip_autopipec.pipeline.state import read_state
from mlip_autopipec.pipeline.summary import read_summary
from mlip_autopipec.progress import format_duration
from mlip_autopipec.records import ActiveLearningRecord, RunSummary
from mlip_autopipec.records.cost import LabelCall, OracleCost, label_call, oracle_costs, run_cores
from mlip_autopipec.trainer.pace import TrainingResult


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
    """What ``mlip-autopipec status`` prints: who holds the work directory, its structures and failures, active
    learning's generations, the latest fit and the report's validation errors."""
    workdir = Path(workdir).absolute()
    cfg, db = open_workdir(workdir)
    tally = tally_structures(db)
    state = read_state(workdir)
    return [
        f"work directory: {workdir}",
        *holder_lines(workdir),
        *structure_lines(db, tally),
        *failure_lines(tally.failures, max_failures),
        *teacher_lines(db),
        *oracle_cost_lines(oracle_costs(tally.calls, len(tally.failures), cfg.oracle.type, run_cores(cfg))),
        *active_learning_lines(state.active_learning if state is not None else None),
        *fit_lines(latest_fit(workdir)),
        *validation_lines(read_summary(workdir), workdir),
    ]


@dataclass
class StructureTally:
    """The database's structures counted in one pass: per (source, generation, status), per (seed, source,
    generation), the failed ones as ``(id, formula, reason)`` and the oracle calls behind the labels."""

    by_status: Counter[tuple[str, int, str]] = field(default_factory=Counter)
    by_seed: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    failures: list[tuple[int, str, str]] = field(default_factory=list)
    calls: list[LabelCall] = field(default_factory=list)


def tally_structures(db: DatabaseManager) -> StructureTally:
    tally = StructureTally()
    for rec in db.select():
        meta = rec.metadata
        tally.by_status[(meta.source, meta.generation, rec.status)] += 1
        tally.by_seed[(str(meta.provenance.get("seed") or "-"), meta.source, meta.generation)] += 1
        if rec.status == "failed":
            tally.failures.append((rec.id, rec.atoms.get_chemical_formula(), rec.failure_reason or ""))
        call = label_call(rec)
        if call is not None:
            tally.calls.append(call)
    return tally


def holder_lines(workdir: Path) -> list[str]:
    """The run holding the work directory's lock, or the one that ended without finishing (none: no line)."""
    holder = read_holder(workdir)
    if holder is None:
        return []
    line, alive = holder
    if alive is False:
        return [f"last run ended without finishing (killed?): {line}; `mlip-autopipec run` continues it"]
    return [f"run in progress: {line}" + ("" if alive else " (or killed, on another host)")]


def structure_lines(db: DatabaseManager, tally: StructureTally) -> list[str]:
    """The structures per status, per (source, generation, status) and per seed, and the labelled splits."""
    per_status = ", ".join(f"{s}: {db.count(status=s)}" for s in ("pending", "labelled", "failed"))
    lines = [
        f"structures: {sum(tally.by_status.values())} ({per_status})",
        f"  {'source':<28}{'generation':>10}  {'status':<10}{'count':>7}",
    ]
    for (source, gen, status), n in sorted(tally.by_status.items()):
        lines.append(f"  {source:<28}{gen:>10}  {status:<10}{n:>7}")
    lines.extend(seed_count_lines(tally.by_seed))
    train, validation = (db.count(label=split, status="labelled") for split in ("train", "validation"))
    lines.append(f"splits (labelled): train {train}, validation {validation}")
    return lines


def seed_count_lines(by_seed: Counter[tuple[str, str, int]]) -> list[str]:
    """The table of structures per (seed, source, generation); seed '-': none recorded."""
    lines = [f"  {'seed':<24}{'source':<28}{'generation':>10}{'count':>7}"]
    for (seed, source, gen), n in sorted(by_seed.items()):
        lines.append(f"  {seed:<24}{source:<28}{gen:>10}{n:>7}")
    return lines


def failure_lines(failures: list[tuple[int, str, str]], max_failures: int) -> list[str]:
    """The failed structures grouped by reason (at most ``max_failures`` reasons), and how to label them again."""
    if not failures:
        return []
    groups = failure_groups(failures)
    lines = [f"failures ({len(failures)}), by reason:"]
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
    return lines


def oracle_cost_lines(costs: list[OracleCost]) -> list[str]:
    """One line per oracle: labels done, failures, median and total wall time, core-hours (none: nothing labelled
    or failed yet)."""
    costs = [c for c in costs if c.calls or c.failed]
    if not costs:
        return []
    lines = ["oracle cost (labels done):"]
    for c in costs:
        median = "n/a" if c.median_s is None else f"{c.median_s:.3g} s"
        lines.append(
            f"  {c.oracle}: {c.calls} calls, {c.failed} failed; median {median} per call, total "
            f"{format_duration(c.total_s)}; {c.cores_per_call} core(s) per call: {c.core_hours:.3g} core-hours"
        )
    return lines


def teacher_lines(db: DatabaseManager) -> list[str]:
    """The foundation model's teacher labels, counted apart from the oracle's calls (none: no line)."""
    taught = db.teacher_calls()
    if not taught.calls:
        return []
    from mlip_autopipec.pipeline.teacher_labels import teacher_ace_frames

    model = f"{taught.name} {taught.version}"
    frames = teacher_ace_frames(db)
    ace = f"; {frames} of them frames the teacher ACE flagged, its fit and MD included" if frames else ""
    return [f"foundation model: {taught.calls} teacher labels, {taught.wall_time_s:.0f} s ({model}){ace}"]


def _rmse_text(rmse: float | None) -> str:
    return "n/a" if rmse is None else f"{rmse:.1f} meV/Å"


def active_learning_lines(al: ActiveLearningRecord | None) -> list[str]:
    """One row per generation, the final fit and why active learning stopped (none: not run)."""
    if al is None:
        return []
    lines = [
        "active learning:",
        f"  {'gen':>3} {'candidates':>10} {'selected':>8} {'labelled':>8} {'failed':>6} {'halts':>5} {'max γ':>8} "
        f"{'val F RMSE':>11} {'refit iters':>11}",
    ]
    for g in al.generations:
        max_gamma = float("nan") if g.max_gamma is None else g.max_gamma
        lines.append(
            f"  {g.generation:>3} {g.candidates or 0:>10} {g.selected or 0:>8} {g.labelled or 0:>8} "
            f"{g.failed or 0:>6} {g.halts or 0:>5} {max_gamma:>8.2f} "
            f"{_rmse_text(g.validation_force_rmse_mev_per_angstrom):>11} {g.fit_max_epochs or '':>11}"
        )
    if al.final is not None:
        lines.append(
            f"  final fit: {al.final.max_epochs} iterations from the last refit; "
            f"val F RMSE {_rmse_text(al.final.validation_force_rmse_mev_per_angstrom)}"
        )
    if al.stop_reason:
        lines.append(f"  stopped: {al.stop_reason}")
    return lines


def fit_lines(fit: TrainingResult | None) -> list[str]:
    """The latest fit's potential and pacemaker's own train (and test) errors."""
    if fit is None:
        return ["fit: none yet"]
    m = fit.metrics
    test = (
        ""
        if m.test_energy_rmse_mev_per_atom is None
        else f"; test: {m.test_energy_rmse_mev_per_atom:.2f} meV/atom, {m.test_force_rmse_mev_per_a:.1f} meV/Å"
    )
    return [
        f"latest fit: {fit.potential_yace}",
        f"  pacemaker train RMSE: {m.train_energy_rmse_mev_per_atom:.2f} meV/atom, "
        f"{m.train_force_rmse_mev_per_a:.1f} meV/Å{test}",
    ]


def validation_lines(summary: RunSummary | None, workdir: Path) -> list[str]:
    """The report's errors on the validation split (none: no report, or no validation structures)."""
    if summary is None or not summary.validation.n_structures:
        return []
    val = summary.validation
    return [
        f"  validation: {val.energy_rmse_mev_per_atom:.2f} meV/atom, {val.force_rmse_mev_per_angstrom:.1f} meV/Å "
        f"({val.n_structures} structures; report in {workdir / 'report'})"
    ]


def export_dataset(workdir: Path, fmt: str | None, output: Path, label: str | None = None) -> tuple[Path, int]:
    """Write the labelled structures (optionally one split) to exactly ``output``, in the format its name says.

    ``.xyz``/``.extxyz``: extended XYZ; ``.pckl.gzip``: pacemaker's DataFrame.  Another name is refused in
    one sentence (nothing is appended to it); ``fmt`` (``extxyz``/``pacemaker``), when given, must agree.
    """
    output = Path(output)
    kind = dataset_format(output)
    if fmt is not None and fmt != kind:
        wanted = PACEMAKER_SUFFIX if fmt == "pacemaker" else " or ".join(EXTXYZ_SUFFIXES)
        raise WorkdirError(
            f"cannot write {output}: --format {fmt}, but the name says {kind}; give a name ending in {wanted}"
        )
    _cfg, db = open_workdir(workdir)
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
