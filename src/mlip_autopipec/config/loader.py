"""Read YAML configuration files into validated pydantic models: the one door of validation.

Validation happens once, here, at the edge: everything inside the package takes
typed models (``PipelineConfig`` and its sections).  A failure becomes a
:class:`ConfigurationError` that names the file, the path of the offending field
and what was expected.

Library users who hold a mapping (not a file) pass it through the same door::

    from mlip_autopipec.config import OracleConfig, validate_config
    oracle = validate_config(OracleConfig, {"type": "emt"}, "my oracle")

This module sits above ``config.schemas``: the schemas never import it.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin, overload

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError

from mlip_autopipec.config.schemas.base import StrictModel
from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.exceptions import ConfigurationError

M = TypeVar("M", bound=BaseModel)
S = TypeVar("S", bound=StrictModel)


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


@functools.cache
def _adapter(schema: Any) -> TypeAdapter[Any]:
    return TypeAdapter(schema)


@overload
def validate_config(schema: type[M], data: Any, source: str = ...) -> M: ...
@overload
def validate_config(schema: Any, data: Any, source: str = ...) -> Any: ...
def validate_config(schema: Any, data: Any, source: str = "<config>") -> Any:
    """Validate ``data`` (a mapping, or already a model) as ``schema``; errors name ``source``.

    ``schema`` is a model class (``TrainingConfig``, ``PipelineConfig``, ...) or one of
    the discriminated unions (``OracleConfig``, ``ComputeConfig``); a model that already
    is of the schema is returned as it is.
    """
    if isinstance(schema, type) and isinstance(data, schema):
        return data
    try:
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            return schema.model_validate(data)
        return _adapter(schema).validate_python(data)
    except ValidationError as err:
        raise ConfigurationError(format_validation_error(err, source)) from None


def _model_classes(schema: Any) -> tuple[type, ...]:
    """The model classes a schema admits: the class itself, or the members of a (discriminated) union."""
    if isinstance(schema, type):
        return (schema,)
    if get_origin(schema) is Annotated or get_origin(schema) is Union:
        return tuple(cls for arg in get_args(schema) for cls in _model_classes(arg))
    return ()


def require_config(value: Any, schema: Any, where: str) -> Any:
    """``value`` itself when it is a model ``schema`` admits, else a :class:`ConfigurationError`.

    The guard of functions inside the package, which take typed models only: a raw
    mapping is refused with the sentence that says how to validate it (here, once).
    """
    classes = _model_classes(schema)
    if isinstance(value, classes):
        return value
    raise ConfigurationError(
        f"{where} takes a configuration model ({', '.join(c.__name__ for c in classes)}), not a {type(value).__name__}: "
        "validate a mapping first with mlip_autopipec.config.validate_config(schema, data)"
    )


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


@overload
def load_config(path: str | Path) -> PipelineConfig: ...
@overload
def load_config(path: str | Path, model: type[S]) -> S: ...
def load_config(path: str | Path, model: Any = PipelineConfig) -> Any:
    """Load and validate the YAML file at ``path`` as ``model`` (default: the whole run, :class:`PipelineConfig`).

    Relative file paths inside the config are taken relative to the config file's folder
    (each section's ``resolve_paths``); a symlinked config counts from the link's folder.
    """
    cfg = validate_config(model, read_yaml(path), str(path))
    return cfg.resolve_paths(Path(path).absolute().parent)
