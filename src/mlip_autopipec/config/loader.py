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
from collections.abc import Hashable
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
        f"{where} takes a configuration model ({', '.join(c.__name__ for c in classes)}), "
        f"not a {type(value).__name__}: "
        "validate a mapping first with mlip_autopipec.config.validate_config(schema, data)"
    )


class StrictSafeLoader(yaml.SafeLoader):
    """PyYAML's ``SafeLoader`` that refuses a key given twice in one mapping.

    Plain YAML keeps the last of two equal keys and says nothing, so a second
    ``training:`` block would silently replace the first.  Keys brought in by a
    merge (``<<: *anchor``) may be overridden, as YAML intends; keys written
    out twice may not.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, yaml.Mark] = {}
            for key_node, _value in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=False)
                try:
                    earlier = seen.setdefault(key, key_node.start_mark)
                except TypeError:  # an unhashable key: SafeLoader's own error says so
                    continue
                if earlier is not key_node.start_mark:
                    raise DuplicateKeyError(key, earlier, key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


class DuplicateKeyError(yaml.YAMLError):
    """A key written twice in one YAML mapping (raised by :class:`StrictSafeLoader`); marks are 0-based."""

    def __init__(self, key: Any, first: yaml.Mark, second: yaml.Mark):
        super().__init__(f"duplicate key {key!r} at lines {first.line + 1} and {second.line + 1}")
        self.key, self.first, self.second = key, first, second


def _key_path(node: yaml.Node | None, mark: yaml.Mark) -> list[str]:
    """The path (``["report", "properties"]``) to the mapping key written at ``mark``, or []."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if (key_node.start_mark.line, key_node.start_mark.column) == (mark.line, mark.column):
                return [str(key_node.value)]
            inner = _key_path(value_node, mark)
            if inner:
                return [str(key_node.value), *inner]
    elif isinstance(node, yaml.SequenceNode):
        for n, item in enumerate(node.value):
            inner = _key_path(item, mark)
            if inner:
                return [f"[{n}]", *inner]
    return []


def _yaml_error_sentence(path: Path, text: str, err: yaml.YAMLError) -> str:
    """One line for a YAML error: ``file:line:column: what was wrong (what it was parsing)``."""
    if isinstance(err, DuplicateKeyError):
        where = ".".join(_key_path(yaml.compose(text, Loader=yaml.SafeLoader), err.second) or [str(err.key)])
        where = where.replace(".[", "[")
        first, second = err.first.line + 1, err.second.line + 1
        lines = f"on line {first}" if first == second else f"at lines {first} and {second}"
        return (
            f"{path}: the key {where!r} is given twice in one mapping, {lines} "
            "(YAML would silently keep only the last): remove or merge one of them"
        )
    if isinstance(err, yaml.reader.ReaderError):
        line = text.count("\n", 0, err.position) + 1
        column = err.position - (text.rfind("\n", 0, err.position) + 1) + 1
        return f"{path}:{line}:{column}: not valid YAML: character #x{err.character:04x} is not allowed in YAML text"
    if isinstance(err, yaml.MarkedYAMLError) and err.problem_mark is not None:
        mark = err.problem_mark
        context = ""
        if err.context:
            started = f" that started at line {err.context_mark.line + 1}" if err.context_mark is not None else ""
            context = f" ({err.context}{started})"
        return f"{path}:{mark.line + 1}:{mark.column + 1}: not valid YAML: {err.problem}{context}"
    return f"{path}: not valid YAML: {' '.join(str(err).split())}"


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping from ``path``; every way it can fail is one :class:`ConfigurationError` sentence.

    The file must be UTF-8 text, valid YAML (the error names ``file:line:column``),
    with no key given twice in one mapping (both lines named) and a mapping at the top.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigurationError(f"configuration file not found: {path}")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ConfigurationError(
            f"{path} is not a text file in UTF-8 (byte {raw[err.start]:#04x} at offset {err.start}): "
            "a configuration must be a YAML text file"
        ) from None
    try:
        data = yaml.load(text, Loader=StrictSafeLoader)  # a SafeLoader: no arbitrary objects
    except yaml.YAMLError as err:
        raise ConfigurationError(_yaml_error_sentence(path, text, err)) from None
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
