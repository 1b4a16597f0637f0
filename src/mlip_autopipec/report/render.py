"""The run's summary (:class:`~mlip_autopipec.records.summary.RunSummary`) rendered through the jinja2 templates of
``report/templates``: ``index.html`` (autoescaped), ``summary.md`` and the lines a run prints at its end.

The templates read the typed models themselves; this module only gives them a few
filters (number formats, a seed's property rows, embedded plots) and writes the files.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from mlip_autopipec.fileio import atomic_path
from mlip_autopipec.records.figures import PropertiesFigures
from mlip_autopipec.records.summary import RunSummary
from mlip_autopipec.report.properties.run import property_table

HTML_FILE = "index.html"
MARKDOWN_FILE = "summary.md"

#: A value of a table cell.
Cell = float | int | str | None


@dataclass(frozen=True)
class PropertyRow:
    """One row of a seed's property table; error is potential − oracle (the RMSE and MD rows carry it alone)."""

    label: str
    oracle: Cell
    potential: Cell
    error: Cell


@dataclass(frozen=True)
class EmbeddedImage:
    """A PNG of the report folder, embedded in the page as base64."""

    name: str
    stem: str
    base64: str

    @classmethod
    def of(cls, path: Path) -> EmbeddedImage:
        return cls(path.name, path.stem, base64.b64encode(path.read_bytes()).decode("ascii"))


def property_rows(props: PropertiesFigures) -> list[PropertyRow]:
    """The rows of ``props``' table, in the report's order
    (see :func:`~mlip_autopipec.report.properties.run.property_table`)."""
    return [
        PropertyRow(label, row.get("oracle"), row.get("potential"), row.get("error"))
        for label, row in property_table(props.model_dump()).items()
    ]


def _fmt(value: float | None, spec: str) -> str:
    """``value`` in the format ``spec``; n/a for none."""
    return "n/a" if value is None else format(value, spec)


def _show(value: Cell) -> str:
    """A value of the text: n/a for none, 4 significant digits for a float."""
    return "n/a" if value is None else format(value, ".4g") if isinstance(value, float) else str(value)


def _cell(value: Cell | bool) -> str:
    """A value of the page's tables: – for none, yes/no, 4 significant digits for a float."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return format(value, ".4g") if isinstance(value, float) else str(value)


def _relative(path: Path, start: Path) -> str:
    """``path`` relative to ``start`` when it lies inside it."""
    return Path(path).relative_to(start).as_posix() if Path(path).is_relative_to(start) else str(path)


@cache
def environment() -> Environment:
    """The templates' environment: HTML autoescaped, text and Markdown as written, an undefined name an error."""
    env = Environment(
        loader=PackageLoader("mlip_autopipec.report", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), disabled_extensions=("md.j2", "txt.j2")),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        fmt=_fmt, show=_show, cell=_cell, property_rows=property_rows, json=json.dumps, relative=_relative
    )
    return env


def render_html(summary: RunSummary, config_yaml: str, report_dir: Path) -> str:
    """The page of ``summary``, with ``config_yaml`` (the config used) and every PNG of ``report_dir`` embedded."""
    images = [EmbeddedImage.of(path) for path in sorted(report_dir.glob("*.png"))]
    return environment().get_template("index.html.j2").render(summary=summary, config_yaml=config_yaml, images=images)


def render_markdown(summary: RunSummary) -> str:
    """``summary.md``: the figures, the structures, pacemaker's figures and the timings."""
    return environment().get_template("summary.md.j2").render(summary=summary)


def last_lines(summary: RunSummary) -> list[str]:
    """The figures a run prints at its end, and the potential."""
    return environment().get_template("console.txt.j2").render(summary=summary).splitlines()


def property_lines(name: str, props: PropertiesFigures) -> list[str]:
    """One line per property of a bulk seed: oracle, potential, error."""
    return environment().get_template("property_lines.txt.j2").render(name=name, props=props).splitlines()


def write_pages(summary: RunSummary, config_yaml: str, report_dir: Path) -> tuple[Path, Path]:
    """Write ``report_dir/summary.md`` and ``report_dir/index.html`` (each atomically); return their paths."""
    pages = (
        (report_dir / MARKDOWN_FILE, render_markdown(summary)),
        (report_dir / HTML_FILE, render_html(summary, config_yaml, report_dir)),
    )
    for path, text in pages:
        with atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
    return pages[0][0], pages[1][0]


__all__ = [
    "EmbeddedImage",
    "PropertyRow",
    "last_lines",
    "property_lines",
    "property_rows",
    "render_html",
    "render_markdown",
    "write_pages",
]
