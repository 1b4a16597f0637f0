"""The cold start guided by the real CHGNet 0.3.0 end to end on a tiny Cu cell, the oracle EMT: teacher labels of
the generator's structures and of MD frames, screening, selection, the oracle's labels of the chosen ones, the
fit; a rerun does nothing twice; status counts the teacher apart; the export holds the oracle's rows only."""

from __future__ import annotations

import pytest

from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.database import DatabaseManager
from mlip_autopipec.pipeline import run_pipeline
from mlip_autopipec.pipeline.status import export_dataset, status_lines

pytestmark = pytest.mark.slow

TINY_TRAINING = {
    "cutoff": 4.5,
    "number_of_functions_per_element": 10,
    "nradmax_by_orders": [6, 3],
    "lmax_by_orders": [0, 2],
    "max_num_epochs": 5,
    "batch_size": 100,
    "test_size": 0,
    "seed": 1,
    "evaluator": "pyace",
}


def test_the_guided_cold_start_runs_end_to_end_with_chgnet_and_emt(tmp_path):
    workdir = tmp_path / "run"
    cfg = PipelineConfig.model_validate(
        {
            "workdir": str(workdir),
            "structure": {"element": "Cu", "lattice": "fcc", "a": 3.61, "cubic": True},
            "generator": {"pool_size": 8, "seed": 5, "rattle_stdev": 0.05, "eos_fraction": 0.25},
            "foundation_model": {
                "name": "chgnet",
                "explore": True,
                "generator_candidates": 10,
                "md_steps": 6,
                "md_frames": 2,
            },
            "oracle": {"type": "emt"},
            "compute": {"type": "local", "n_workers": 1},
            "database": {"validation_fraction": 0.25, "split_seed": 2},
            "training": dict(TINY_TRAINING),
            "report": {
                "eos": False,
                "properties": {
                    "elastic": False,
                    "vacancy": False,
                    "surfaces": [],
                    "phonons": False,
                    "md_stability": None,
                },
            },
        }
    )
    summary = run_pipeline(cfg, progress=False)
    db = DatabaseManager(workdir / "structures.db", read_only=True)
    # 10 generator candidates + 4 conditions (NVT, NPT at 300 and 900 K) x 2 frames, all labelled by the teacher
    assert db.count(status="teacher") == 18 and db.count(source="teacher") == 18
    md = [r for r in db.select(status="teacher") if r.metadata.provenance["candidate"] == "md"]
    assert sorted({r.metadata.provenance["md_condition"] for r in md}) == [
        "npt_300K_0GPa",
        "npt_900K_0GPa",
        "nvt_300K",
        "nvt_900K",
    ]
    assert {r.metadata.provenance["md_step"] for r in md} == {3, 6}
    # the oracle labelled the 8 chosen ones, each a row of its own beside its teacher row
    chosen = list(db.select(source="fm_selected"))
    assert len(chosen) == 8 and {r.status for r in chosen} == {"labelled"}
    assert all(db.record(r.metadata.parent_id).status == "teacher" for r in chosen)
    assert {r.label_info["oracle"] for r in chosen} == {"emt"} and db.count(
        status="labelled", source="fm_selected"
    ) == 8
    assert db.count(label="train") + db.count(label="validation") == 8
    assert summary.validation.n_structures == db.count(label="validation") >= 1
    assert "foundation_model" in summary.timings.steps_s
    # a rerun: nothing is labelled, chosen or fitted again
    before = (db.count(), sorted(r.id for r in chosen))
    db.close()
    run_pipeline(cfg, progress=False)
    db = DatabaseManager(workdir / "structures.db", read_only=True)
    assert (db.count(), sorted(r.id for r in db.select(source="fm_selected"))) == before
    lines = status_lines(workdir)
    assert any(line.startswith("foundation model: 18 teacher labels, ") and "(chgnet 0.3.0)" in line for line in lines)
    out, n = export_dataset(workdir, None, tmp_path / "all.xyz")
    assert n == 8 and {a.info["source"] for a in db.load_dataset(out)} == {"fm_selected"}
