"""How a record is written and read: the base model, paths relative to the work directory, the version check.

Every path a record holds is absolute in memory, written relative to the work
directory and resolved against it when read, so a work directory can be moved
or copied.  A field typed :data:`WorkPath` does this by itself; a record that
inherits plain ``Path`` fields from a model of a lower layer (``FitRecord`` from
``TrainingResult``) gets the same through :class:`PathsInWorkdir`.  Reading and
writing go through :func:`dump_record` / :func:`load_record` (the work directory
travels as pydantic's validation/serialisation context); :func:`read_record`
reads a file, checks its ``schema_version`` and migrates the layout written
before versions existed (version 0, :mod:`mlip_autopipec.records.migrate`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_serializer,
    model_validator,
)

from mlip_autopipec.exceptions import ConfigurationError
from mlip_autopipec.fileio import atomic_path

SCHEMA_VERSION = 1


def _workdir(info: ValidationInfo | SerializationInfo) -> Path | None:
    context = info.context or {}
    workdir = context.get("workdir") if isinstance(context, dict) else None
    return None if workdir is None else Path(workdir)


def _resolve(value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Path:
    path = Path(handler(value))
    workdir = _workdir(info)
    return path if workdir is None or path.is_absolute() else workdir / path


def _relative(path: Path, info: SerializationInfo) -> str:
    workdir = _workdir(info)
    if workdir is not None:
        try:
            return Path(path).relative_to(workdir).as_posix() or "."
        except ValueError:
            pass
    return str(path)


#: A path inside the work directory: absolute in memory, relative to the work directory on disk.
WorkPath = Annotated[Path, WrapValidator(_resolve), PlainSerializer(_relative, return_type=str)]


class PathsInWorkdir(BaseModel):
    """Mixin: every top-level field typed ``Path`` (or ``Path | None``) behaves as a :data:`WorkPath`."""

    @classmethod
    def _path_fields(cls) -> list[str]:
        return [name for name, f in cls.model_fields.items() if f.annotation in (Path, Path | None)]

    @model_validator(mode="before")
    @classmethod
    def _resolve_paths(cls, data: Any, info: ValidationInfo) -> Any:
        workdir = _workdir(info)
        if workdir is None or not isinstance(data, dict):
            return data
        paths = cls._path_fields()
        return {
            k: str(workdir / v) if k in paths and isinstance(v, str | Path) and not Path(v).is_absolute() else v
            for k, v in data.items()
        }

    @model_serializer(mode="wrap")
    def _relative_paths(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        out = handler(self)
        for name in self._path_fields():
            if isinstance(out, dict) and out.get(name) is not None:
                out[name] = _relative(Path(out[name]), info)
        return out


class Record(BaseModel):
    """Base of every record file: unknown fields are refused, assignments validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    schema_version: int = Field(
        SCHEMA_VERSION, description="Layout version of this record (0: written before versions existed)."
    )


R = TypeVar("R", bound=BaseModel)


def dump_record(path: Path, record: BaseModel, workdir: Path) -> None:
    """Write ``record`` as JSON to ``path`` (atomically), its paths relative to ``workdir``."""
    with atomic_path(path) as tmp:
        tmp.write_text(record.model_dump_json(indent=2, context={"workdir": Path(workdir)}))


def load_record(model: type[R], data: Any, workdir: Path) -> R:
    """Validate ``data`` (JSON text or a mapping) as ``model``, resolving its paths against ``workdir``."""
    context = {"workdir": Path(workdir)}
    if isinstance(data, str | bytes):
        return model.model_validate_json(data, context=context)
    return model.model_validate(data, context=context)


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
