"""Every typed record a run writes in its work directory, with their read, write and migrate.

==========================  ===========================================================================
module                      one job
==========================  ===========================================================================
``records.base``            base model, paths relative to the work directory, dump / load / read a file
``records.migrate``         the layout before versions (version 0) turned into today's
``records.fit``             ``fits/<fit>/result.json`` (a ``TrainingResult``) and ``fits/latest.json``
``records.run``             ``state.json`` (run state, active-learning generations), trajectories
``records.figures``         the report's figures (counts, validation, EOS, properties, quality bar)
``records.summary``         ``report/summary.json``: the run's summary the report renders
``records.foundation``      ``oracle_calls`` and ``foundation_model`` of ``summary.json`` (a foundation model alone)
``records.cost``            the oracle's cost: calls, failures, wall time, core-hours (pure, from ``label_info``)
``records.teacher_ace``     ``guided/teacher_ace/exploration.json``: the teacher ACE's fit, MD and labels
==========================  ===========================================================================

Layer: below ``report`` (which renders these models) and above ``trainer`` (``FitRecord`` is a
``TrainingResult``).
"""

from mlip_autopipec.records.base import SCHEMA_VERSION, Record, WorkPath, dump_record, load_record, read_record
from mlip_autopipec.records.cost import LabelCall, OracleCost, cores_per_call, oracle_costs, run_oracle_costs
from mlip_autopipec.records.figures import (
    DatabaseCounts,
    ElasticFigures,
    EOSFigures,
    EOSFit,
    FormationFigures,
    FormationPoint,
    MDStabilityFigures,
    PhononFigures,
    PropertiesFigures,
    PropertyPair,
    QualityBar,
    QualityCheck,
    ReportFigures,
    ValidationFigures,
)
from mlip_autopipec.records.fit import FitRecord, LatestFit
from mlip_autopipec.records.foundation import FoundationModelSeed, FoundationModelSummary, OracleCalls, ThreeWay
from mlip_autopipec.records.run import (
    STEPS,
    ActiveLearningRecord,
    FinalFit,
    GenerationRecord,
    InitialFit,
    RunState,
    Step,
    TrajectoryRecord,
    TrajectoryRecords,
    ValidationErrors,
)
from mlip_autopipec.records.summary import PotentialFiles, RunSummary, Timings

__all__ = [
    "SCHEMA_VERSION",
    "STEPS",
    "ActiveLearningRecord",
    "DatabaseCounts",
    "EOSFigures",
    "EOSFit",
    "ElasticFigures",
    "FinalFit",
    "FitRecord",
    "FormationFigures",
    "FormationPoint",
    "FoundationModelSeed",
    "FoundationModelSummary",
    "GenerationRecord",
    "InitialFit",
    "LabelCall",
    "LatestFit",
    "MDStabilityFigures",
    "OracleCalls",
    "OracleCost",
    "PhononFigures",
    "PotentialFiles",
    "PropertiesFigures",
    "PropertyPair",
    "QualityBar",
    "QualityCheck",
    "Record",
    "ReportFigures",
    "RunState",
    "RunSummary",
    "Step",
    "ThreeWay",
    "Timings",
    "TrajectoryRecord",
    "TrajectoryRecords",
    "ValidationErrors",
    "ValidationFigures",
    "WorkPath",
    "cores_per_call",
    "dump_record",
    "load_record",
    "oracle_costs",
    "read_record",
    "run_oracle_costs",
]
