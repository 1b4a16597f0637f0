"""The run's report step: the figures of the final potential, ``report/summary.json``
(:class:`~mlip_autopipec.records.summary.RunSummary`), and from it ``summary.md`` and ``index.html``
(:mod:`mlip_autopipec.report.render`) and the plots."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.pipeline.context import RunContext
from mlip_autopipec.pipeline.teacher_labels import teacher_ace_frames
from mlip_autopipec.records import (
    ActiveLearningRecord,
    PotentialFiles,
    RunSummary,
    Timings,
    dump_record,
    migrate,
    read_record,
    run_oracle_costs,
)
from mlip_autopipec.report.build import build_figures
from mlip_autopipec.report.calls import oracle_calls
from mlip_autopipec.report.foundation import foundation_model_summary
from mlip_autopipec.report.render import write_pages
from mlip_autopipec.trainer.pace import TrainingResult

REPORT_DIR = "report"
SUMMARY_FILE = "summary.json"


def build_report(ctx: RunContext, fit: TrainingResult) -> RunSummary:
    """Compute the figures of ``fit``, draw the plots and write ``summary.json``, ``summary.md`` and ``index.html``
    under ``workdir/report``."""
    out = ctx.workdir / REPORT_DIR
    # plots are redrawn; one of a seed no longer in the config must not stay on the page
    for stale in out.glob("*.png"):
        stale.unlink()
    figures = build_figures(ctx.config, ctx.db, fit, out, ctx.workdir)
    calls = oracle_calls(ctx.db)
    costs = run_oracle_costs(ctx.config, ctx.db.select())  # the run's oracle first
    teacher = ctx.db.teacher_calls()  # the guided cold start's teacher labels (calls, wall time); zero without
    foundation = foundation_model_summary(ctx.config, ctx.db, figures, ctx.workdir, calls, teacher=teacher)
    if foundation is not None and foundation.role == "teacher":
        foundation = foundation.model_copy(update={"teacher_ace_frames": teacher_ace_frames(ctx.db)})
    summary = RunSummary(
        workdir=ctx.workdir,
        potential=PotentialFiles(yace=fit.potential_yace, yaml=fit.potential_yaml),
        fit=fit.metrics,
        timings=timings(ctx),
        active_learning=ctx.active_learning,
        oracle_calls=calls,
        foundation_model=foundation,
        oracle_cost=costs[0],
        other_oracle_costs=costs[1:],
        **dict(figures),
    )
    if ctx.active_learning is not None:
        active_learning_plot(ctx.active_learning, out)
    dump_record(out / SUMMARY_FILE, summary, ctx.workdir)
    write_pages(summary, config_text(ctx.config), out)
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
