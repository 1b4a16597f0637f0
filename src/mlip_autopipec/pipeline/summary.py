"""The run's report: ``report/summary.json`` (:class:`~mlip_autopipec.pipeline.records.RunSummary`),
``report/summary.md`` and the plots, for the final potential."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.fileio import atomic_path
from mlip_autopipec.pipeline import migrate
from mlip_autopipec.pipeline.context import RunContext
from mlip_autopipec.pipeline.migrate import read_record
from mlip_autopipec.pipeline.records import ActiveLearningRecord, PotentialFiles, RunSummary, Timings, dump_record
from mlip_autopipec.report.build import build_figures
from mlip_autopipec.report.html import write_html
from mlip_autopipec.trainer.pace import TrainingResult

REPORT_DIR = "report"
SUMMARY_FILE = "summary.json"


def build_report(ctx: RunContext, fit: TrainingResult) -> RunSummary:
    """Compute the figures of ``fit``, draw the plots and write ``summary.json`` / ``summary.md`` under ``workdir/report``."""
    out = ctx.workdir / REPORT_DIR
    for stale in out.glob(
        "*.png"
    ):  # plots are redrawn; one of a seed no longer in the config must not stay on the page
        stale.unlink()
    figures = build_figures(ctx.config, ctx.db, fit, out, ctx.workdir)
    summary = RunSummary(
        workdir=ctx.workdir,
        potential=PotentialFiles(yace=fit.potential_yace, yaml=fit.potential_yaml),
        fit=fit.metrics,
        timings=timings(ctx),
        active_learning=ctx.active_learning,
        **dict(figures),
    )
    if ctx.active_learning is not None:
        active_learning_plot(ctx.active_learning, out)
    dump_record(out / SUMMARY_FILE, summary, ctx.workdir)
    with atomic_path(out / "summary.md") as tmp:
        tmp.write_text(markdown(summary))
    write_html(json.loads(summary.model_dump_json(context={"workdir": ctx.workdir})), config_text(ctx.config), out)
    return summary


def config_text(cfg: PipelineConfig) -> str:
    """The config as YAML for the report, with any password in a URL replaced by '***'."""
    text = yaml.safe_dump(cfg.model_dump(mode="json", exclude={"structure"} if cfg.seeds else set()), sort_keys=False)
    return re.sub(r"(://[^:/@\s]+:)[^@\s]+@", r"\1***@", text)


def read_summary(workdir: Path) -> RunSummary | None:
    """``workdir/report/summary.json`` (None: no report yet)."""
    workdir = Path(workdir)
    return read_record(
        workdir / REPORT_DIR / SUMMARY_FILE, RunSummary, workdir, lambda data: migrate.summary_v0(data, workdir)
    )


def active_learning_plot(al: ActiveLearningRecord, out: Path) -> Path | None:
    """``active_learning.png``: the validation force RMSE after each fit, and the halts of each generation."""
    from mlip_autopipec.report.plots import CurvePoint, GenerationHalts
    from mlip_autopipec.report.plots import active_learning_plot as draw

    points = []
    if al.initial is not None and al.initial.validation_force_rmse_mev_per_angstrom is not None:
        points.append(CurvePoint(al.initial.n_labelled_total, al.initial.validation_force_rmse_mev_per_angstrom, 0))
    points += [
        CurvePoint(r.n_labelled_total, r.validation_force_rmse_mev_per_angstrom, r.generation)
        for r in al.generations
        if r.validation_force_rmse_mev_per_angstrom is not None and r.n_labelled_total is not None
    ]
    final = al.final
    if final is not None and final.validation_force_rmse_mev_per_angstrom is not None and al.generations:
        points.append(
            CurvePoint(
                final.n_labelled_total,
                final.validation_force_rmse_mev_per_angstrom,
                al.generations[-1].generation,
                "final",
            )
        )
    halts = [
        GenerationHalts(
            r.generation, r.trajectories, r.gamma_halts if r.gamma_halts is not None else (r.halts or 0), r.blowups or 0
        )
        for r in al.generations
        if r.trajectories is not None
    ]
    return draw(points, halts, out)


def timings(ctx: RunContext) -> Timings:
    steps = dict(ctx.timings)
    total = ctx.total_before_report_s if ctx.total_before_report_s is not None else sum(steps.values())
    oracle = steps.get("label", 0.0)
    return Timings(
        steps_s=steps,
        total_s=total,
        oracle_s=oracle,
        pacemaker_s=ctx.pacemaker_s,
        other_s=max(0.0, total - oracle - ctx.pacemaker_s),
    )


def last_lines(summary: RunSummary) -> list[str]:
    """The figures a run prints at its end."""
    lines = []
    val = summary.validation
    if val.n_structures:
        lines.append(
            f"validation ({val.n_structures} structures): energy RMSE {val.energy_rmse_mev_per_atom:.2f} meV/atom, "
            f"force RMSE {val.force_rmse_mev_per_angstrom:.1f} meV/Å"
        )
    eos = summary.eos
    if eos is not None and eos.lattice_constant_error_percent is not None:
        lines.append(
            f"equation of state: a = {eos.potential.lattice_constant:.4f} Å vs {eos.oracle.lattice_constant:.4f} Å "
            f"({eos.lattice_constant_error_percent:+.3f} %), B = {eos.potential.bulk_modulus_gpa:.1f} GPa vs "
            f"{eos.oracle.bulk_modulus_gpa:.1f} GPa ({eos.bulk_modulus_error_percent:+.2f} %)"
        )
    for name, props in summary.properties_by_seed.items():
        lines.extend(property_lines(name, props))
    if summary.formation is not None:
        f = summary.formation
        lines.append(
            f"formation energies ({'-'.join(f.elements)}, {f.n_structures} structures): RMSE {f.rmse_mev_per_atom:.2f} meV/atom"
        )
    for c in summary.quality_bar.checks:
        value = "n/a" if c.value is None else f"{c.value:.3g}"
        lines.append(
            f"  [{'PASS' if c.passed else 'FAIL'}] {c.figure}: {value} {c.unit} (target <= {c.target} {c.unit})"
        )
    lines.append(f"potential: {summary.potential.yace}")
    return lines


def property_lines(name: str, props) -> list[str]:
    """One line per property of a bulk seed: oracle, potential, error."""
    from mlip_autopipec.report.properties.run import property_table

    lines = [
        f"properties of {name} ({props.oracle_calls} oracle calls, {props.oracle_cached} cached, {props.seconds:.1f} s):"
    ]
    for label, row in property_table(props.model_dump(exclude_none=True)).items():
        o, p, e = (row.get(k) for k in ("oracle", "potential", "error"))
        show = lambda v: "n/a" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))  # noqa: E731
        lines.append(f"  {label}: oracle {show(o)}, potential {show(p)}, error {show(e)}")
    for what, why in props.failures.items():
        lines.append(f"  not computed: {what}: {why}")
    return lines


def markdown(summary: RunSummary) -> str:
    counts = summary.counts
    parts = [
        "# mlip-autopipec report",
        "",
        f"Work directory: `{summary.workdir}`  ",
        f"Potential: `{summary.potential.yace}`",
        "",
        "## Figures",
        "",
        *[f"- {line.strip()}" for line in last_lines(summary)[:-1]],
        "",
        "## Structures",
        "",
        f"- total: {counts.total}; by status: {counts.by_status}",
        f"- labelled by split: {counts.labelled_by_split}",
        *[f"- {src}: {n}" for src, n in counts.by_source.items()],
        "",
        "### Per seed",
        "",
        *[f"- {seed}, {src}: {n}" for seed, by in counts.by_seed.items() for src, n in by.items()],
        "",
        "## Fit (pacemaker's own figures)",
        "",
        *[f"- {k}: {v}" for k, v in summary.fit.model_dump().items() if v is not None],
        "",
        "## Timings (s)",
        "",
        *[f"- {k}: {v:.1f}" for k, v in summary.timings.steps_s.items()],
        "",
        "Plots: the PNG files beside this file; everything on one page: `index.html`.",
        "",
    ]
    return "\n".join(parts)
