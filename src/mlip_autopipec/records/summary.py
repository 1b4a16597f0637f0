"""``report/summary.json``: the run's summary, the one model ``summary.md`` and ``index.html`` are rendered from."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from mlip_autopipec.records.base import Record, WorkPath
from mlip_autopipec.records.cost import OracleCost
from mlip_autopipec.records.figures import ReportFigures
from mlip_autopipec.records.foundation import FoundationModelSummary, OracleCalls
from mlip_autopipec.records.run import ActiveLearningRecord
from mlip_autopipec.trainer.parsing import TrainingMetrics


class PotentialFiles(BaseModel):
    """The final potential's files."""

    model_config = ConfigDict(extra="forbid")

    yace: WorkPath = Field(description="The final potential (.yace).")
    yaml: WorkPath = Field(description="The final potential in B-basis format (.yaml).")


class Timings(BaseModel):
    """Where the run's wall time went (s)."""

    model_config = ConfigDict(extra="forbid")

    steps_s: dict[str, float] = Field(description="Wall time of each pipeline step (s).")
    total_s: float = Field(description="Wall time before the report (s).")
    oracle_s: float = Field(description="The labelling step (s).")
    pacemaker_s: float = Field(description="pacemaker runs of this run (s; 0 when every fit was reused).")
    other_s: float = Field(description="Everything else (s).")


class RunSummary(Record, ReportFigures):
    """``report/summary.json``: the run's figures, its final potential and, with active learning, its record."""

    workdir: WorkPath = Field(description="The work directory.")
    potential: PotentialFiles = Field(description="The final potential's files.")
    fit: TrainingMetrics = Field(description="pacemaker's own figures of the final fit.")
    timings: Timings = Field(description="Where the time went.")
    active_learning: ActiveLearningRecord | None = Field(None, description="Active learning's record; null: not run.")
    oracle_calls: OracleCalls | None = Field(
        None, description="Oracle calls spent: on training and validation structures, on the report's properties."
    )
    foundation_model: FoundationModelSummary | None = Field(
        None,
        description="The run's foundation model (the foundation_model section, or the oracle of kind "
        "foundation_model): its calls and how it alone compares with the oracle; null: none.",
    )
    oracle_cost: OracleCost | None = Field(
        None, description="The run's oracle: labels done, failures, wall time and core-hours; null: none recorded."
    )
    other_oracle_costs: list[OracleCost] = Field(
        default_factory=list, description="Any other oracle whose labels the database holds (e.g. a foundation model)."
    )
