"""Reading a record file, and turning the layout written before records had versions (version 0) into today's.

Version 0 (``mlip-autopipec`` before typed records) wrote absolute paths.  A
path of an old work directory is taken relative to the work directory when it
lies inside it; when the directory was moved since, the part from its ``fits/``
or ``al/`` folder on is kept (everything such a record points at lives there).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path, PurePath
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from mlip_autopipec.exceptions import ConfigurationError
from mlip_autopipec.pipeline.records import SCHEMA_VERSION, load_record

R = TypeVar("R", bound=BaseModel)
_ANCHORS = ("fits", "al")


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
    out = {k: data[k] for k in ("fingerprints", "config", "updated") if k in data}
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


def fit_result_v0(data: dict[str, Any], fit_dir: Path, workdir: Path) -> dict[str, Any]:
    """A version-0 ``result.json`` (``TrainingResult`` with absolute paths): rebased into ``fit_dir`` when its
    recorded fit directory has the same name; otherwise kept as recorded."""
    old = PurePath(data.get("output_dir", ""))
    if old.name != fit_dir.name:
        return data
    out = dict(data)
    for key in ("potential_yace", "potential_yaml", "log_path", "input_yaml", "output_dir"):
        if key in data:
            path = PurePath(data[key])
            try:
                out[key] = str(fit_dir / path.relative_to(old))
            except ValueError:
                pass
    return out


def read_record(path: Path, model: type[R], workdir: Path, migrate_v0: Callable[[Any], Any] | None = None) -> R | None:
    """``path`` read as ``model`` (None: no such file), a version-0 layout migrated by ``migrate_v0``.

    A file that cannot be read raises :class:`ConfigurationError` saying so in one sentence.
    """
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        version = data.get("schema_version", 0) if isinstance(data, dict) else 0
        if version == 0 and migrate_v0 is not None:
            data = migrate_v0(data)
            if isinstance(data, dict):
                data["schema_version"] = SCHEMA_VERSION
        elif version != SCHEMA_VERSION:
            raise ValueError(f"schema_version {version} is not {SCHEMA_VERSION}")
        return load_record(model, data, workdir)
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        reason = _first_error(err)
        raise ConfigurationError(
            f"{path} cannot be read by this version of mlip-autopipec ({reason}); move the work directory aside or "
            "give a new --workdir to start afresh."
        ) from None


def _first_error(err: Exception) -> str:
    if isinstance(err, ValidationError):
        e = err.errors()[0]
        loc = ".".join(str(p) for p in e.get("loc", ())) or "<top level>"
        return f"{loc}: {e.get('msg')}"
    return str(err)
