"""What a work directory holds, for `mlip-autopipec status` and `export`."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.exceptions import ConfigurationError
from mlip_autopipec.database import DatabaseManager
from mlip_autopipec.database.metadata import PROPERTY
from mlip_autopipec.pipeline.context import open_database
from mlip_autopipec.pipeline.fits import latest_fit
from mlip_autopipec.pipeline.state import read_state
from mlip_autopipec.pipeline.summary import read_summary


def open_workdir(workdir: Path) -> tuple[PipelineConfig, DatabaseManager]:
    """The config a work directory was run with and its database."""
    workdir = Path(workdir).absolute()
    state = read_state(workdir)
    if state is None:
        raise ConfigurationError(f"{workdir} is not a mlip-autopipec work directory (no state.json): run `mlip-autopipec run` first")
    return state.config, open_database(state.config, workdir)


def status_lines(workdir: Path, max_failures: int = 20) -> list[str]:
    workdir = Path(workdir).absolute()
    cfg, db = open_workdir(workdir)
    lines = [f"work directory: {workdir}"]
    table: Counter = Counter()
    by_seed: Counter = Counter()
    failures = []
    for rec in db.select():
        table[(rec.metadata.source, rec.metadata.generation, rec.status)] += 1
        by_seed[(str(rec.metadata.provenance.get("seed") or "-"), rec.metadata.source, rec.metadata.generation)] += 1
        if rec.status == "failed":
            failures.append((rec.id, rec.atoms.get_chemical_formula(), rec.failure_reason or ""))
    total = sum(table.values())
    lines.append(f"structures: {total} ({', '.join(f'{s}: {db.count(status=s)}' for s in ('pending', 'labelled', 'failed'))})")
    lines.append(f"  {'source':<28}{'generation':>10}  {'status':<10}{'count':>7}")
    for (source, gen, status), n in sorted(table.items()):
        lines.append(f"  {source:<28}{gen:>10}  {status:<10}{n:>7}")
    lines.extend(seed_count_lines(by_seed))
    lines.append(f"splits (labelled): train {db.count(label='train', status='labelled')}, validation {db.count(label='validation', status='labelled')}")
    if failures:
        lines.append(f"failures ({len(failures)}):")
        for sid, formula, reason in failures[:max_failures]:
            first = reason.strip().splitlines()[0] if reason.strip() else "(no reason recorded)"
            lines.append(f"  id {sid} {formula}: {first}")
        if len(failures) > max_failures:
            lines.append(f"  ... and {len(failures) - max_failures} more")
    al = read_state(workdir).active_learning
    if al is not None:
        lines.append("active learning:")
        lines.append(f"  {'gen':>3} {'candidates':>10} {'selected':>8} {'labelled':>8} {'failed':>6} {'halts':>5} {'max γ':>8} {'val F RMSE':>11}")
        for g in al.generations:
            rmse = g.validation_force_rmse_mev_per_angstrom
            max_gamma = float("nan") if g.max_gamma is None else g.max_gamma
            lines.append(
                f"  {g.generation:>3} {g.candidates or 0:>10} {g.selected or 0:>8} {g.labelled or 0:>8} "
                f"{g.failed or 0:>6} {g.halts or 0:>5} {max_gamma:>8.2f} "
                f"{('%.1f meV/Å' % rmse) if rmse is not None else 'n/a':>11}"
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
    if label:
        return output, db.save_dataset(output, label=label)
    # everything the campaign labelled; the report's property structures are not training data
    return output, db.save_dataset(output, ids=sorted(set(db.ids(status="labelled")) - set(db.ids(label=PROPERTY))))
