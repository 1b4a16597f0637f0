"""Active-learning building blocks: the active set, MD exploration watching γ (slabs keep their vacuum axis,
blow-ups hand over the frames leading into them), D-optimal selection, the convergence verdict."""

from mlip_autopipec.explore.activeset import ActiveSetSummary, asi_path_for, build_active_set, parse_activeset_log
from mlip_autopipec.explore.convergence import FitErrors, Verdict, convergence_verdict
from mlip_autopipec.explore.md import (
    MDCondition,
    TrajectoryResult,
    blowup_candidates,
    md_conditions,
    run_trajectory,
    vacuum_axes,
)
from mlip_autopipec.explore.select import SelectionResult, select_candidates

__all__ = [
    "ActiveSetSummary",
    "FitErrors",
    "MDCondition",
    "SelectionResult",
    "TrajectoryResult",
    "Verdict",
    "asi_path_for",
    "blowup_candidates",
    "build_active_set",
    "convergence_verdict",
    "md_conditions",
    "parse_activeset_log",
    "run_trajectory",
    "select_candidates",
    "vacuum_axes",
]
