"""The records of pacemaker fits: ``fits/<fit>/result.json`` and ``fits/latest.json``."""

from __future__ import annotations

from pydantic import Field

from mlip_autopipec.records.base import PathsInWorkdir, Record, WorkPath
from mlip_autopipec.trainer.pace import TrainingResult


class FitRecord(Record, PathsInWorkdir, TrainingResult):
    """``fits/<fit>/result.json``: a :class:`TrainingResult` with ``schema_version``, its paths relative to the work
    directory on disk."""

    @classmethod
    def of(cls, result: TrainingResult) -> FitRecord:
        return cls.model_validate(dict(result))

    def result(self) -> TrainingResult:
        """The plain :class:`TrainingResult` (no ``schema_version``) the rest of the run works with."""
        return TrainingResult.model_validate({k: v for k, v in self if k != "schema_version"})


class LatestFit(Record):
    """``fits/latest.json``: which fit is the work directory's most recent one."""

    fit_dir: WorkPath = Field(description="The latest finished fit's directory.")
