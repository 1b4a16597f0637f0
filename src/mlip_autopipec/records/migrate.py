"""The layout written before records had versions (version 0) turned into today's, one function per file.

Version 0 (``mlip-autopipec`` before typed records) wrote absolute paths.  A
path of an old work directory is taken relative to the work directory when it
lies inside it; when the directory was moved since, the part from its ``fits/``
or ``al/`` folder on is kept (everything such a record points at lives there).
Each function takes the file's parsed JSON and returns what today's model reads;
:func:`~mlip_autopipec.records.base.read_record` calls it for a file without
``schema_version``.
"""

from __future__ import annotations

from pathlib import Path, PurePath
from typing import Any

_ANCHORS = ("fits", "al")
_FIT_PATHS = ("potential_yace", "potential_yaml", "log_path", "input_yaml", "output_dir")


def legacy_path(value: str | None, workdir: Path) -> str | None:
    """A version-0 absolute path as a path relative to ``workdir`` (see the module's docstring)."""
    if value is None:
        return None
    path = PurePath(value)
    if not path.is_absolute():
        return str(path)
    try:
        return Path(path).relative_to(workdir).as_posix()
    except ValueError:
        pass
    parts = path.parts
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] in _ANCHORS:
            return PurePath(*parts[i:]).as_posix()
    raise ValueError(f"the path {value} lies outside the work directory")


def state_v0(data: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """``state.json`` of version 0: ``fingerprints``, ``config``, ``updated`` and an untyped ``active_learning``."""
    out: dict[str, Any] = {k: data[k] for k in ("fingerprints", "config", "updated") if k in data}
    out["config"] = {**out.get("config", {}), "workdir": "."}
    if data.get("active_learning"):
        out["active_learning"] = _active_learning_v0(data["active_learning"], workdir)
    return out


def _active_learning_v0(al: dict[str, Any], workdir: Path) -> dict[str, Any]:
    al = dict(al)
    if al.get("initial"):
        al["initial"] = {**al["initial"], "fit_dir": legacy_path(al["initial"].get("fit_dir"), workdir)}
    al["generations"] = [
        {**row, **{k: legacy_path(row.get(k), workdir) for k in ("active_set", "fit_dir") if k in row}}
        for row in al.get("generations", [])
    ]
    return al


def summary_v0(data: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """``report/summary.json`` of version 0: absolute paths, an untyped ``active_learning``."""
    out = dict(data)
    out["workdir"] = "."
    out["potential"] = {k: legacy_path(v, workdir) for k, v in data.get("potential", {}).items()}
    if data.get("active_learning"):
        out["active_learning"] = _active_learning_v0(data["active_learning"], workdir)
    return out


def fit_result_v0(data: dict[str, Any], fit_dir: Path) -> dict[str, Any]:
    """A version-0 ``fits/<fit>/result.json`` (``TrainingResult`` with absolute paths): rebased into ``fit_dir``
    when its recorded fit directory has the same name; otherwise kept as recorded."""
    old = PurePath(data.get("output_dir", ""))
    if old.name != fit_dir.name:
        return data
    out = dict(data)
    for key in _FIT_PATHS:
        if key in data:
            try:
                out[key] = str(fit_dir / PurePath(data[key]).relative_to(old))
            except ValueError:
                pass
    return out


def latest_v0(data: dict[str, Any], fits_dir: str) -> dict[str, Any]:
    """``fits/latest.json`` of version 0: ``{"fit": <name>}``, the fit's folder by name under ``fits_dir``."""
    return {"fit_dir": f"{fits_dir}/{data['fit']}"}


def trajectories_v0(data: list[dict[str, Any]], generation: int) -> dict[str, Any]:
    """``al/gen_<g>/trajectories.json`` of version 0: a bare list of trajectory records."""
    return {"generation": generation, "trajectories": data}
