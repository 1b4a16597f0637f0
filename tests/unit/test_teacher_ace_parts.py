"""The teacher ACE's exploration without a fit: its config field and refusals, the section's fingerprint, and the
pure decisions (iterations, jobs, how a flagged frame's teacher label is stored)."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from pydantic import ValidationError

from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.explore.teacher import CHUNK, TeacherLabel
from mlip_autopipec.pipeline.state import section_fingerprints
from mlip_autopipec.pipeline.teacher_ace import fit_epochs, frame_jobs, frame_label, own_frame, wanted


def config(fm: dict, **over) -> PipelineConfig:
    data = {
        "structure": {"element": "Cu", "lattice": "fcc", "a": 3.61, "cubic": True},
        "foundation_model": {"name": "chgnet", **fm},
        "training": {"max_num_epochs": 50},
    }
    data.update(over)
    return PipelineConfig.model_validate(data)


def test_the_field_is_refused_without_explore_or_active_learning():
    with pytest.raises(ValidationError, match=r"explore_with_teacher_ace needs explore: true"):
        config({"explore_with_teacher_ace": True}, active_learning={})
    with pytest.raises(ValidationError, match=r"foundation_model.explore_with_teacher_ace needs an active_learning"):
        config({"explore": True, "explore_with_teacher_ace": True})
    on = config({"explore": True, "explore_with_teacher_ace": True}, active_learning={"refit_max_epochs": 7})
    assert wanted(on) and fit_epochs(on) == 7
    assert fit_epochs(config({"explore": True, "explore_with_teacher_ace": True}, active_learning={})) == 50
    assert not wanted(config({"explore": True}, active_learning={}))


def test_the_field_left_off_keeps_the_sections_fingerprint():
    plain = config({"explore": True})
    off = config({"explore": True, "explore_with_teacher_ace": False})
    on = config({"explore": True, "explore_with_teacher_ace": True}, active_learning={})
    assert "explore_with_teacher_ace" not in plain.model_dump()["foundation_model"]
    assert section_fingerprints(plain)["foundation_model"] == section_fingerprints(off)["foundation_model"]
    assert section_fingerprints(on)["foundation_model"] != section_fingerprints(plain)["foundation_model"]


def test_flagged_frames_are_labelled_in_chunks_and_stored_as_the_teacher_aces():
    frames = [bulk("Cu", cubic=True) for _ in range(CHUNK + 3)]
    jobs = frame_jobs(frames)
    assert [j.key for j in jobs] == ["teacher_ace:0", f"teacher_ace:{CHUNK}"]
    assert [len(j.structures) for j in jobs] == [CHUNK, 3] and {j.kind for j in jobs} == {"single_points"}
    label = TeacherLabel(
        frames[0],
        {"source": "md_halt", "md_condition": "nvt_900K", "candidate": "generator", "teacher_task": "teacher_ace:0"},
        0.5,
    )
    stored = frame_label(label, 2.0, "teacher-ace-abc")
    assert stored.provenance == {
        "md_source": "md_halt",
        "md_condition": "nvt_900K",
        "candidate": "teacher_ace",
        "teacher_task": "teacher_ace:0",
        "teacher_ace_fit": "teacher-ace-abc",
    }
    assert np.isclose(stored.wall_time_s, 2.5) and own_frame(stored.provenance) and not own_frame(label.provenance)
