"""A reduced version of examples/si_qe.yaml with real pw.x: DFT labels through the whole pipeline."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from conftest import require_executable
from mlip_autopipec.config import load_config
from mlip_autopipec.database import DatabaseManager
from mlip_autopipec.pipeline import run_pipeline
from mlip_autopipec.pipeline.status import status_lines

pytestmark = [pytest.mark.slow, pytest.mark.qe]
ROOT = Path(__file__).resolve().parents[2]


def test_si_qe_example_reduced(tmp_path):
    require_executable("pw.x")
    cfg = load_config(ROOT / "examples" / "si_qe.yaml")
    cfg = cfg.model_copy(
        update={
            "generator": cfg.generator.model_copy(update={"pool_size": 10, "eos_fraction": 0.6}),
            "oracle": cfg.oracle.model_copy(update={"ecutwfc": 15.0, "kspacing": 0.4}),
            "training": cfg.training.model_copy(
                update={"number_of_functions_per_element": 8, "max_num_epochs": 6, "evaluator": "pyace"}
            ),
        }
    )
    summary = run_pipeline(cfg, workdir=tmp_path / "si", progress=False)
    db = DatabaseManager(str(tmp_path / "si" / "structures.db"))
    assert db.count(status="labelled") - db.count(label="property") == 10
    # the example's properties with pw.x: elastic constants of the primitive cell, each pw.x run in its folder
    props = summary.properties
    assert props.oracle_calls == db.count(label="property") > 0 and not props.failures
    assert (
        100 < props.elastic_gpa.C11.oracle < 200 and 30 < props.elastic_gpa.C12.oracle < 100
    )  # PBE Si, small basis: 148, 60 GPa
    assert len(list((tmp_path / "si" / "properties" / props.seed).glob("property_*"))) == props.oracle_calls
    rec = next(iter(db.select(status="labelled")))
    assert rec.label_info and "pw.x" in str(rec.label_info)
    assert math.isfinite(summary.validation.force_rmse_mev_per_angstrom)
    assert math.isfinite(summary.eos.oracle.bulk_modulus_gpa)
    # PBE silicon with this small basis: B of order 80-100 GPa
    assert 20 < summary.eos.oracle.bulk_modulus_gpa < 200
    # the cost in sight: summary.json's oracle_cost, and `status` prints it (one pw.x rank: core-hours = hours)
    cost = summary.oracle_cost
    assert (cost.oracle, cost.calls, cost.cores_per_call) == ("espresso", 10, 1) and cost.median_s > 0
    assert cost.core_hours == pytest.approx(cost.total_s / 3600)
    lines = status_lines(tmp_path / "si")
    assert f"  espresso: 10 calls, {cost.failed} failed; median {cost.median_s:.3g} s per call" in "\n".join(lines)
