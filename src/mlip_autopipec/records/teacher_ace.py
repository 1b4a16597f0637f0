"""``guided/teacher_ace/exploration.json``: generation 0 of the guided cold start, the teacher ACE's exploration
(``foundation_model.explore_with_teacher_ace``).

The record says how far the step got (``step``: fitted, active set, explored, labelled), where its fit lies and
what each part took, so a rerun skips what is done and the teacher's cost counts the whole of it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mlip_autopipec.records.base import Record, WorkPath
from mlip_autopipec.records.run import TrajectoryRecord

#: the steps of the teacher ACE's exploration, in order
TEACHER_ACE_STEPS = ("fitted", "active_set", "explored", "labelled")


class TeacherAceRecord(Record):
    """The teacher ACE's exploration before any oracle call: its fit, MD with γ and the teacher's labels."""

    step: Literal["none", "fitted", "active_set", "explored", "labelled"] = Field(
        "none", description="The last step done: fitted, active_set, explored (candidates saved), labelled."
    )
    fit_dir: WorkPath | None = Field(None, description="The teacher ACE's fit (guided/teacher_ace/teacher-ace-*).")
    n_teacher_rows: int = Field(0, description="Screened teacher labels it was fitted to.")
    max_epochs: int = Field(0, description="Minimiser iterations of its fit.")
    fit_s: float = Field(0.0, description="Wall time of the export and the fit (s; a reused fit: the first time's).")
    active_set_s: float = Field(0.0, description="Wall time of pace_activeset (s).")
    md_s: float = Field(0.0, description="Wall time of the MD exploration with γ (s).")
    trajectories: list[TrajectoryRecord] = Field(default_factory=list, description="One record per trajectory.")
    candidates: int = Field(0, description="Frames γ flagged (samples, halts and their rattled copies, blow-up paths).")
    teacher_labels: int = Field(0, description="Of those, frames the teacher labelled (teacher rows added).")
    kept: int = Field(0, description="Of those, labels that passed the screening (candidates for the selection).")

    def done(self, step: str) -> bool:
        """Whether ``step`` (one of :data:`TEACHER_ACE_STEPS`) is done."""
        return self.step != "none" and TEACHER_ACE_STEPS.index(self.step) >= TEACHER_ACE_STEPS.index(step)

    @property
    def wall_time_s(self) -> float:
        """Its fit, active set and MD (s): the part of the teacher's cost that is not the model's own labels."""
        return self.fit_s + self.active_set_s + self.md_s


__all__ = ["TEACHER_ACE_STEPS", "TeacherAceRecord"]
