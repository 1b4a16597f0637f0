"""Generation 0 of the guided cold start with the real CHGNet 0.3.0 on a tiny Cu cell, the oracle EMT: the teacher
ACE is fitted to the screened teacher labels, its MD flags frames by γ, the model labels them as teacher rows that
say where they came from, nothing reaches the oracle before the selection, and a rerun fits nothing again."""

from __future__ import annotations

import pytest

from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.pipeline.cold_start import step_label
from mlip_autopipec.pipeline.context import RunContext, open_database
from mlip_autopipec.pipeline.guided_start import GUIDED_SOURCE, step_select, step_teacher
from mlip_autopipec.pipeline.status import teacher_lines
from mlip_autopipec.pipeline.teacher_ace import RECORD_FILE, ace_dir, step_teacher_ace
from mlip_autopipec.pipeline.teacher_labels import teacher_ace_frames
from mlip_autopipec.records import read_record
from mlip_autopipec.records.teacher_ace import TeacherAceRecord

pytestmark = pytest.mark.slow

TINY_TRAINING = {
    "cutoff": 4.5,
    "number_of_functions_per_element": 10,
    "nradmax_by_orders": [6, 3],
    "lmax_by_orders": [0, 2],
    "max_num_epochs": 40,
    "batch_size": 100,
    "test_size": 0,
    "seed": 1,
    "evaluator": "pyace",
}


def _config(workdir) -> PipelineConfig:
    return PipelineConfig.model_validate(
        {
            "workdir": str(workdir),
            "structure": {"element": "Cu", "lattice": "fcc", "a": 3.61, "cubic": True},
            "generator": {"pool_size": 4, "seed": 5, "rattle_stdev": 0.05, "eos_fraction": 0.25},
            "foundation_model": {
                "name": "chgnet",
                "explore": True,
                "explore_with_teacher_ace": True,
                "generator_candidates": 6,
                "md_steps": 4,
                "md_frames": 2,
            },
            "active_learning": {
                "temperatures": [900.0],
                "ensembles": ["nvt"],
                "n_steps": 30,
                "trajectories_per_condition": 1,
                "sample_interval": 3,
                "gamma_select": 1.0,
                "gamma_halt": 3.0,
                "md_min_atoms": 4,
                "n_rattled_copies": 1,
                "blowup_candidates": 0,
                "refit_max_epochs": 10,
            },
            "oracle": {"type": "emt"},
            "compute": {"type": "local", "n_workers": 1},
            "training": dict(TINY_TRAINING),
        }
    )


def _context(cfg: PipelineConfig, workdir) -> RunContext:
    workdir.mkdir(parents=True, exist_ok=True)
    return RunContext(cfg, workdir, open_database(cfg, workdir), progress=False)


def test_the_teacher_ace_explores_before_any_oracle_call(tmp_path):
    workdir = tmp_path / "run"
    cfg = _config(workdir)
    ctx = _context(cfg, workdir)
    step_teacher(ctx)
    candidates = ctx.db.count(status="teacher")  # 6 generator structures + 2 MD frames (one condition)
    assert candidates == 8
    step_teacher_ace(ctx)
    record = read_record(ace_dir(workdir) / RECORD_FILE, TeacherAceRecord, workdir)
    assert record is not None and record.step == "labelled"
    # fitted to the screened teacher labels, 10 iterations (refit_max_epochs), with its active set
    assert record.max_epochs == 10 and record.n_teacher_rows >= 1 and record.fit_dir is not None
    assert record.fit_dir.parent == ace_dir(workdir) and (record.fit_dir / "output_potential.asi").is_file()
    assert ctx.pacemaker_s > 0 and not (workdir / "fits").exists()  # not an oracle fit, not fits/latest.json
    # its MD flagged frames by γ; the model labelled them as teacher rows that say where they came from
    assert [t.condition for t in record.trajectories] == ["nvt_900K"] and record.candidates >= 1
    rows = [r for r in ctx.db.select(status="teacher") if r.metadata.provenance.get("candidate") == "teacher_ace"]
    assert len(rows) == record.teacher_labels == ctx.db.count(status="teacher") - candidates >= 1
    for row in rows:
        prov = row.metadata.provenance
        assert prov["teacher_model"] == "chgnet" and prov["teacher_ace_fit"] == record.fit_dir.name
        assert prov["md_source"] in ("md_sample", "md_halt") and str(prov["teacher_task"]).startswith("teacher_ace:")
        assert row.metadata.source == "teacher" and row.metadata.generation == 0
    # its fit and MD count as the teacher's cost, apart from the oracle's calls; no oracle call so far
    assert ctx.db.teacher_calls().wall_time_s >= record.wall_time_s > 0
    assert ctx.db.count(status="labelled") == ctx.db.count(status="failed") == ctx.db.count(status="pending") == 0
    assert not (workdir / "oracle").exists()
    assert teacher_ace_frames(ctx.db) == len(rows)
    line = f"foundation model: {ctx.db.count(status='teacher')} teacher labels, "
    assert any(
        x.startswith(line) and f"; {len(rows)} of them frames the teacher ACE" in x for x in teacher_lines(ctx.db)
    )
    # a rerun fits, explores and labels nothing again
    before = (ctx.db.count(), record.model_dump())
    ctx.db.close()
    ctx = _context(cfg, workdir)
    step_teacher_ace(ctx)
    again = read_record(ace_dir(workdir) / RECORD_FILE, TeacherAceRecord, workdir)
    assert again is not None and (ctx.db.count(), again.model_dump()) == before and ctx.pacemaker_s == 0
    # the selection chooses among all the candidates; only then does the oracle compute the chosen ones
    step_select(ctx)
    assert ctx.db.count(source=GUIDED_SOURCE, status="pending") == 4
    step_label(ctx)
    chosen = list(ctx.db.select(source=GUIDED_SOURCE))
    assert {r.status for r in chosen} == {"labelled"} and {r.label_info["oracle"] for r in chosen} == {"emt"}
    assert ctx.db.count(status="labelled") == 4
    ctx.db.close()
