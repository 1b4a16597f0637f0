"""Active-learning building blocks: the active set, MD exploration watching γ, D-optimal selection."""

from mlip_autopipec.explore.activeset import ActiveSetSummary, asi_path_for, build_active_set, parse_activeset_log
from mlip_autopipec.explore.md import MDCondition, TrajectoryResult, md_conditions, run_trajectory
from mlip_autopipec.explore.select import SelectionResult, select_candidates

__all__ = [
    "ActiveSetSummary",
    "MDCondition",
    "SelectionResult",
    "TrajectoryResult",
    "asi_path_for",
    "build_active_set",
    "md_conditions",
    "parse_activeset_log",
    "run_trajectory",
    "select_candidates",
]
