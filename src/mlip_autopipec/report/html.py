"""``report/index.html``: one static page, no server, no network: every PNG of the report folder embedded as base64.

The page holds the quality bar, the property table (oracle, potential, error) of
each bulk seed, every plot, the tables per seed/source/generation and per
active-learning generation, the timings and the config used.  It is written from
the run's summary (a :class:`~mlip_autopipec.pipeline.records.RunSummary`, read
here through its JSON form so this layer needs nothing above it).
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from string import Template
from typing import Any

from mlip_autopipec.fileio import atomic_path
from mlip_autopipec.report.properties.run import property_table

_PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>mlip-autopipec report</title>
<style>
body { font-family: sans-serif; margin: 2em auto; max-width: 1150px; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f2f2f2; }
.pass { color: #11772d; font-weight: bold; } .fail { color: #b00020; font-weight: bold; }
figure { display: inline-block; margin: 0.5em; vertical-align: top; }
figure img { max-width: 540px; border: 1px solid #ddd; }
figcaption { font-size: 0.85em; color: #555; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
.muted { color: #666; }
</style>
</head>
<body>
<h1>mlip-autopipec report</h1>
<p class="muted">Work directory: <code>$workdir</code><br>Potential: <code>$potential</code></p>
<h2>Quality bar: <span class="$bar_class">$bar_text</span></h2>
$quality
<h2>Validation</h2>
$validation
<h2>Properties against the oracle</h2>
$properties
<h2>Plots</h2>
$figures
<h2>Structures per seed, source and generation</h2>
$seeds
<h2>Active learning</h2>
$active_learning
<h2>Fit and timings</h2>
$fit
<h2>Config used</h2>
<pre>$config</pre>
</body>
</html>
""")


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return html.escape(str(value))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(path.name)}</figcaption></figure>"
    )


def render_html(summary: dict[str, Any], config_yaml: str, report_dir: Path) -> str:
    """The page for ``summary`` (summary.json's content), with every PNG of ``report_dir`` embedded."""
    bar = summary["quality_bar"]
    quality = (
        _table(
            ["figure", "value", "target", "unit", "result"],
            [
                [c["figure"], c["value"], c["target"], c["unit"], "PASS" if c["passed"] else "FAIL"]
                for c in bar["checks"]
            ],
        )
        .replace("<td>PASS</td>", '<td class="pass">PASS</td>')
        .replace("<td>FAIL</td>", '<td class="fail">FAIL</td>')
    )

    val = summary["validation"]
    validation = _table(
        ["structures", "energy RMSE (meV/atom)", "energy MAE (meV/atom)", "force RMSE (meV/Å)", "force MAE (meV/Å)"],
        [
            [
                val["n_structures"],
                val.get("energy_rmse_mev_per_atom"),
                val.get("energy_mae_mev_per_atom"),
                val.get("force_rmse_mev_per_angstrom"),
                val.get("force_mae_mev_per_angstrom"),
            ]
        ],
    )
    eos_rows = []
    for name, eos in (summary.get("eos_by_seed") or {}).items():
        o, p = eos.get("oracle") or {}, eos.get("potential") or {}
        eos_rows.append(
            [
                name,
                o.get("lattice_constant"),
                p.get("lattice_constant"),
                eos.get("lattice_constant_error_percent"),
                o.get("bulk_modulus_gpa"),
                p.get("bulk_modulus_gpa"),
                eos.get("bulk_modulus_error_percent"),
                eos.get("note"),
            ]
        )
    if eos_rows:
        validation += "<h3>Equation of state per bulk seed</h3>" + _table(
            [
                "seed",
                "a oracle (Å)",
                "a potential (Å)",
                "Δa (%)",
                "B oracle (GPa)",
                "B potential (GPa)",
                "ΔB (%)",
                "note",
            ],
            eos_rows,
        )
    formation = summary.get("formation")
    if formation:
        validation += (
            f"<p>Formation energies ({'–'.join(formation['elements'])}, {formation['n_structures']} structures): "
            f"RMSE {formation['rmse_mev_per_atom']:.2f} meV/atom, potential against oracle.</p>"
        )

    parts = []
    for name, props in (summary.get("properties_by_seed") or {}).items():
        rows = property_table(props)
        parts.append(
            f"<h3>{html.escape(name)} ({html.escape(props.get('formula') or '')})</h3>"
            + _table(
                ["property", "oracle", "potential", "error (potential − oracle)"],
                [[k, r.get("oracle"), r.get("potential"), r.get("error")] for k, r in rows.items()],
            )
            + f'<p class="muted">oracle calls: {props.get("oracle_calls", 0)} (cached: {props.get("oracle_cached", 0)}); '
            f"{props.get('seconds', 0.0):.1f} s</p>"
        )
        for what, why in (props.get("failures") or {}).items():
            parts.append(f'<p class="fail">not computed: {html.escape(what)}: {html.escape(why)}</p>')
    properties = (
        "".join(parts) or '<p class="muted">No properties computed (report.properties off, or no bulk seed).</p>'
    )

    images = sorted(report_dir.glob("*.png"))
    figures = "".join(_image(p) for p in images) or '<p class="muted">No plots.</p>'

    counts = summary["counts"]
    seed_rows = [[seed, key, n] for seed, by in (counts.get("by_seed") or {}).items() for key, n in by.items()]
    seeds = (
        f"<p>Total {counts['total']}; by status {html.escape(json.dumps(counts['by_status']))}; "
        f"labelled by split {html.escape(json.dumps(counts['labelled_by_split']))}.</p>"
        + _table(["seed", "source (generation)", "structures"], seed_rows)
    )

    al = summary.get("active_learning")
    if al:
        rows = [
            [
                g["generation"],
                g.get("trajectories"),
                g.get("candidates"),
                g.get("selected"),
                g.get("labelled"),
                g.get("gamma_halts"),
                g.get("blowups"),
                g.get("max_gamma"),
                g.get("n_labelled_total"),
                g.get("validation_force_rmse_mev_per_angstrom"),
                g.get("fit_max_epochs"),
            ]
            for g in al.get("generations", [])
        ]
        active_learning = (
            _table(
                [
                    "generation",
                    "trajectories",
                    "candidates",
                    "selected",
                    "labelled",
                    "γ halts",
                    "blow-ups",
                    "max γ",
                    "labelled total",
                    "validation force RMSE (meV/Å)",
                    "refit iterations",
                ],
                rows,
            )
            + f"<p>Stop: {html.escape(str(al.get('stop_reason')))}</p>"
        )
        final = al.get("final")
        if final:
            active_learning += (
                f"<p>Final fit: {final['max_epochs']} iterations continued from the last (short) refit on all "
                f"{final['n_labelled_total']} labelled structures; validation force RMSE "
                f"{final.get('validation_force_rmse_mev_per_angstrom')} meV/Å.</p>"
            )
    else:
        active_learning = '<p class="muted">Active learning was not run (the learning curve is in active_learning.png when it is).</p>'

    fit_rows = [[k, v] for k, v in summary["fit"].items() if v is not None]
    timing_rows = [[f"step {k}", v] for k, v in summary["timings"]["steps_s"].items()]
    timing_rows += [[f"report: {k}", v] for k, v in (summary.get("report_seconds") or {}).items()]
    fit = _table(["pacemaker figure", "value"], fit_rows) + _table(["timing", "seconds"], timing_rows)

    return _PAGE.substitute(
        workdir=html.escape(str(summary["workdir"])),
        potential=html.escape(str(summary["potential"]["yace"])),
        bar_class="pass" if bar["passed"] else "fail",
        bar_text="PASSED" if bar["passed"] else "NOT PASSED",
        quality=quality,
        validation=validation,
        properties=properties,
        figures=figures,
        seeds=seeds,
        active_learning=active_learning,
        fit=fit,
        config=html.escape(config_yaml),
    )


def write_html(summary: dict[str, Any], config_yaml: str, report_dir: Path) -> Path:
    """Write ``report_dir/index.html`` (atomically) and return its path."""
    path = report_dir / "index.html"
    with atomic_path(path) as tmp:
        tmp.write_text(render_html(summary, config_yaml, report_dir), encoding="utf-8")
    return path


__all__ = ["render_html", "write_html"]
