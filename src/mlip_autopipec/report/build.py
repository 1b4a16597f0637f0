"""The run's report: validation errors, EOS, plots, ``summary.json`` and ``summary.md``."""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from mlip_autopipec.fileio import atomic_path
from mlip_autopipec.generator import build_seed
from mlip_autopipec.report import plots
from mlip_autopipec.report.validate import compare_eos, energy_shift, error_metrics, predict

log = logging.getLogger("mlip_autopipec")


def database_counts(db) -> dict[str, Any]:
    """Structures by status, by source (and generation), and labelled ones by split."""
    from mlip_autopipec.database import STATUSES

    by_source: Counter = Counter()
    for source, generation in _source_generation_pairs(db):
        by_source[f"{source} (generation {generation})"] += 1
    by_status = {s: db.count(status=s) for s in STATUSES}
    return {
        "total": db.count(),
        "by_status": {s: n for s, n in by_status.items() if n},
        "by_source": dict(by_source),
        "labelled_by_split": {s: db.count(label=s, status="labelled") for s in ("train", "validation")},
    }


def _source_generation_pairs(db):
    for rec in db.select():
        yield rec.metadata.source, rec.metadata.generation


def _calculator(potential_yace: Path):
    from mlip_autopipec.trainer.pyace_import import import_pyace_calculator

    return import_pyace_calculator()(str(potential_yace))


def seed_lattice(cfg) -> tuple[float, float]:
    """Volume per atom (Å³) and lattice constant (Å) of the seed crystal."""
    seed = build_seed(cfg.structure)
    a = cfg.structure.a or float(np.linalg.norm(seed.cell[0]) / cfg.structure.repeat[0])
    return seed.get_volume() / len(seed), a


def build_report(ctx, fit) -> dict:
    """Compute the figures, draw the plots and write ``summary.json`` / ``summary.md`` under ``workdir/report``."""
    cfg = ctx.config
    out = ctx.workdir / "report"
    out.mkdir(parents=True, exist_ok=True)
    calc = _calculator(fit.potential_yace)
    summary: dict[str, Any] = {
        "workdir": str(ctx.workdir),
        "potential": {"yace": str(fit.potential_yace), "yaml": str(fit.potential_yaml)},
        "fit": fit.metrics.model_dump(),
        "counts": database_counts(ctx.db),
    }

    validation = [atoms for atoms, _m, _i in ctx.db.select(label="validation", status="labelled")]
    if validation:
        preds = predict(validation, calc, energy_shift(fit.reference_energy))
        metrics = error_metrics(preds)
        summary["validation"] = metrics.as_dict()
        plots.parity_plots(preds, metrics, out)
    else:
        summary["validation"] = {"n_structures": 0, "note": "no labelled validation structures (validation_fraction 0?)"}

    if cfg.report.eos:
        eos_structures = [
            atoms for atoms, meta, _i in ctx.db.select(status="labelled") if meta.provenance.get("operation") == "eos"
        ]
        try:
            v_seed, a_seed = seed_lattice(cfg)
            eos = compare_eos(eos_structures, calc, v_seed, a_seed)
            summary["eos"] = eos.as_dict()
            plots.eos_plot(eos, out)
        except Exception as err:  # the report goes on without an EOS (too few points, a failed fit)
            log.warning("report: no equation of state: %s", err)
            summary["eos"] = {"note": f"not computed: {err}"}

    summary["quality_bar"] = quality_bar(summary, cfg.report)
    summary["timings"] = timings(ctx, fit)
    if "active_learning" in ctx.notes:
        summary["active_learning"] = ctx.notes["active_learning"]
        plots.active_learning_plot(ctx.notes["active_learning"], out)
    with atomic_path(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2, default=_json_default))
    with atomic_path(out / "summary.md") as tmp:
        tmp.write_text(markdown(summary))
    return summary


def _json_default(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


def quality_bar(summary: dict, targets) -> dict[str, Any]:
    """Each target with the measured figure and whether it is met."""
    checks = []

    def check(name: str, value: float | None, limit: float | None, unit: str) -> None:
        if limit is None:
            return
        ok = value is not None and math.isfinite(value) and abs(value) <= limit
        checks.append({"figure": name, "value": value, "target": limit, "unit": unit, "passed": bool(ok)})

    val = summary.get("validation", {})
    eos = summary.get("eos", {})
    check("validation force RMSE", val.get("force_rmse_mev_per_angstrom"), targets.target_force_rmse_mev_per_angstrom, "meV/Å")
    check("validation energy RMSE", val.get("energy_rmse_mev_per_atom"), targets.target_energy_rmse_mev_per_atom, "meV/atom")
    if targets.eos:
        check("lattice constant error", eos.get("lattice_constant_error_percent"), targets.target_lattice_constant_error_percent, "%")
        check("bulk modulus error", eos.get("bulk_modulus_error_percent"), targets.target_bulk_modulus_error_percent, "%")
    return {"passed": all(c["passed"] for c in checks), "checks": checks}


def timings(ctx, fit) -> dict[str, float]:
    steps = {k: v for k, v in ctx.timings.items() if k != "total_before_report"}
    total = ctx.timings.get("total_before_report", sum(steps.values()))
    oracle = steps.get("label", 0.0)
    pacemaker = ctx.notes.get("pacemaker_s", 0.0)
    return {
        "steps_s": steps,
        "total_s": total,
        "oracle_s": oracle,
        "pacemaker_s": pacemaker,
        "other_s": max(0.0, total - oracle - pacemaker),
    }


def last_lines(summary: dict) -> list[str]:
    """The figures a run prints at its end."""
    lines = []
    val = summary.get("validation", {})
    if val.get("n_structures"):
        lines.append(
            f"validation ({val['n_structures']} structures): energy RMSE {val['energy_rmse_mev_per_atom']:.2f} meV/atom, "
            f"force RMSE {val['force_rmse_mev_per_angstrom']:.1f} meV/Å"
        )
    eos = summary.get("eos", {})
    if eos.get("lattice_constant_error_percent") is not None:
        lines.append(
            f"equation of state: a = {eos['potential']['lattice_constant']:.4f} Å vs {eos['oracle']['lattice_constant']:.4f} Å "
            f"({eos['lattice_constant_error_percent']:+.3f} %), B = {eos['potential']['bulk_modulus_gpa']:.1f} GPa vs "
            f"{eos['oracle']['bulk_modulus_gpa']:.1f} GPa ({eos['bulk_modulus_error_percent']:+.2f} %)"
        )
    for c in summary.get("quality_bar", {}).get("checks", []):
        value = "n/a" if c["value"] is None else f"{c['value']:.3g}"
        lines.append(f"  [{'PASS' if c['passed'] else 'FAIL'}] {c['figure']}: {value} {c['unit']} (target <= {c['target']} {c['unit']})")
    lines.append(f"potential: {summary['potential']['yace']}")
    return lines


def markdown(summary: dict) -> str:
    counts = summary["counts"]
    parts = [
        "# mlip-autopipec report",
        "",
        f"Work directory: `{summary['workdir']}`  ",
        f"Potential: `{summary['potential']['yace']}`",
        "",
        "## Figures",
        "",
        *[f"- {line.strip()}" for line in last_lines(summary)[:-1]],
        "",
        "## Structures",
        "",
        f"- total: {counts['total']}; by status: {counts['by_status']}",
        f"- labelled by split: {counts['labelled_by_split']}",
        *[f"- {src}: {n}" for src, n in counts["by_source"].items()],
        "",
        "## Fit (pacemaker's own figures)",
        "",
        *[f"- {k}: {v}" for k, v in summary["fit"].items() if v is not None],
        "",
        "## Timings (s)",
        "",
        *[f"- {k}: {v:.1f}" for k, v in summary["timings"]["steps_s"].items()],
        "",
        "Plots: `parity_energy.png`, `parity_forces.png`, `eos.png`.",
        "",
    ]
    return "\n".join(parts)
