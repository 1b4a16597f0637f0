"""Distillation with no DFT (issue 19, item 4): the real CHGNet 0.3.0 is the oracle of a whole tiny run (generate,
label on Dask, fit with pacemaker, report with properties), and the report is measured against it."""

from __future__ import annotations

import json

import pytest
from test_pipeline import tiny_config

from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.database import DatabaseManager
from mlip_autopipec.pipeline import run_pipeline

pytestmark = pytest.mark.slow


def test_chgnet_as_the_oracle_distils_an_ace_with_the_whole_report(tmp_path):
    workdir = tmp_path / "run"
    cfg = tiny_config(
        workdir,
        oracle={"type": "foundation_model", "name": "chgnet"},
        compute={"type": "local", "n_workers": 1},  # one worker loads the model once
        report={
            "properties": {"elastic": True, "vacancy": False, "surfaces": [], "phonons": False, "md_stability": None}
        },
    )
    cfg["generator"] = {**cfg["generator"], "pool_size": 10}
    cfg["training"] = {**cfg["training"], "max_num_epochs": 6}
    run_pipeline(PipelineConfig.model_validate(cfg), progress=False)

    report = workdir / "report"
    data = json.loads((report / "summary.json").read_text())
    db = DatabaseManager(str(workdir / "structures.db"))
    labelled = list(db.select(status="labelled"))
    training = [rec for rec in labelled if "property" not in rec.metadata.labels]
    assert len(training) == 10 and all(rec.label_info["oracle_model"] == "chgnet" for rec in training)
    assert data["validation"]["n_structures"] >= 1
    # the report's oracle is CHGNet: its copper (a0 3.62 Å, C11 ~206 GPa) is not EMT's (3.59 Å, 173 GPa)
    assert 3.60 < data["eos"]["oracle"]["lattice_constant"] < 3.64
    assert data["properties"]["elastic_gpa"]["C11"]["oracle"] > 190
    # summary.json: the oracle calls and the foundation model, which is the reference
    calls = data["oracle_calls"]
    assert calls["training"] == 10 and calls["properties"] == db.count(label="property") > 0
    assert calls["total"] == calls["training"] + calls["properties"]
    fm = data["foundation_model"]
    assert (fm["name"], fm["version"], fm["role"], fm["calls"]) == ("chgnet", "0.3.0", "oracle", 10)
    assert fm["wall_time_s"] > 0 and fm["validation"] is None
    html = (report / "index.html").read_text()
    assert "The reference of this report is the foundation model chgnet 0.3.0" in html
    assert "is the oracle: every figure is measured against it (no DFT)" in (report / "summary.md").read_text()
