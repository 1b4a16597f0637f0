"""Read YAML configuration files into validated pydantic models.

Validation happens once, here, at the edge: everything inside the package takes
typed models.  A failure becomes a :class:`ConfigurationError` that names the
file, the path of the offending field and what was expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from mlip_autopipec.exceptions import ConfigurationError

M = TypeVar("M", bound=BaseModel)


def format_validation_error(err: ValidationError, source: str) -> str:
    """Turn pydantic's error into lines of ``source: field.path: message (got value)``."""
    lines = [f"invalid configuration in {source}:"]
    for item in err.errors():
        loc = ".".join(str(p) for p in item.get("loc", ())) or "<top level>"
        msg = item.get("msg", "invalid value")
        if item.get("type") == "extra_forbidden":
            msg = "unknown field (check the spelling; see `mlip-autopipec init` for an example)"
        got = item.get("input")
        shown = ""
        if item.get("type") != "extra_forbidden" and not isinstance(got, dict):
            shown = f" (got {got!r})"
        lines.append(f"  {source}: {loc}: {msg}{shown}")
    return "\n".join(lines)


def validate_config(model: type[M], data: Any, source: str = "<config>") -> M:
    """Validate ``data`` (a dict, or already a model) as ``model``; errors name ``source``."""
    if isinstance(data, model):
        return data
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigurationError(format_validation_error(err, source)) from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping from ``path`` with clear errors for missing files and bad syntax."""
    path = Path(path)
    if not path.is_file():
        raise ConfigurationError(f"configuration file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigurationError(f"{path}: not valid YAML: {err}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path}: the top level must be a mapping of sections, got {type(data).__name__}")
    return data


def load_config(path: str | Path, model: type[M] | None = None) -> M:
    """Load and validate the YAML file at ``path``.

    ``model`` defaults to :class:`~mlip_autopipec.config.schemas.pipeline.PipelineConfig`
    (the whole run).  Relative file paths inside the config stay relative to the
    config file's folder (see ``PipelineConfig.resolve_paths``).
    """
    if model is None:
        from mlip_autopipec.config.schemas.pipeline import PipelineConfig

        model = PipelineConfig  # type: ignore[assignment]
    data = read_yaml(path)
    cfg = validate_config(model, data, str(path))
    resolve = getattr(cfg, "resolve_paths", None)
    if callable(resolve):
        cfg = resolve(Path(path).resolve().parent)
    return cfg
