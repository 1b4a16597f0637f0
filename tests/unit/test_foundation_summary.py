"""``oracle_calls`` and ``foundation_model`` of summary.json (issue 19): the records, their round trip through
the file, the counts from a real database, the per-element energy shift, the report's JSON cache, and the pages
rendered from them (the model as the reference, or the model alone beside the ACE)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from test_report_render import _summary, _Tables

from mlip_autopipec.config import FoundationModelOracleConfig
from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.database import DatabaseManager, StructureMetadata
from mlip_autopipec.database.metadata import PROPERTY
from mlip_autopipec.records import (
    FoundationModelSeed,
    FoundationModelSummary,
    OracleCalls,
    QualityBar,
    QualityCheck,
    RunSummary,
    ThreeWay,
    ValidationFigures,
    dump_record,
    read_record,
)
from mlip_autopipec.report.calls import oracle_calls
from mlip_autopipec.report.foundation import element_shift, foundation_model_summary
from mlip_autopipec.report.render import last_lines, render_html, render_markdown
from mlip_autopipec.report.result_file import JsonResultStore
from mlip_autopipec.report.validate import Predictions

CALLS = OracleCalls(training=40, properties=23, total=63)


def _teacher() -> FoundationModelSummary:
    seed = FoundationModelSeed(
        seed="Cu_fcc",
        lattice_constant_angstrom=ThreeWay.of(3.59, 3.58, 3.617),
        bulk_modulus_gpa=ThreeWay.of(134.3, 143.9, 146.8),
        c44_gpa=ThreeWay.of(90.0, None, 53.7),
        failures={"elastic": "relaxation <did not> converge"},
    )
    return FoundationModelSummary(
        name="chgnet",
        version="0.3.0",
        package="chgnet 0.4.2",
        role="teacher",
        calls=120,
        wall_time_s=61.5,
        validation=ValidationFigures(
            n_structures=3,
            energy_rmse_mev_per_atom=11.48,
            energy_mae_mev_per_atom=9.9,
            force_rmse_mev_per_angstrom=100.4,
            force_mae_mev_per_angstrom=65.0,
        ),
        energy_shift_ev_per_atom={"Cu": 4.068},
        quality_bar=QualityBar(
            passed=False,
            checks=[QualityCheck(figure="validation force RMSE", value=100.4, target=15.0, unit="meV/Å", passed=False)],
        ),
        seeds={"Cu_fcc": seed},
        report_calls=22,
        report_cached=1,
        report_seconds=4.9,
    )


def _oracle_role() -> FoundationModelSummary:
    return FoundationModelSummary(
        name="chgnet", version="0.3.0", package="chgnet 0.4.2", role="oracle", calls=40, wall_time_s=18.8
    )


# ------------------------------------------------------------------ records


def test_three_way_errors_are_against_the_oracle() -> None:
    v = ThreeWay.of(200.0, 190.0, 250.0)
    assert v.ace_error_percent == pytest.approx(-5.0) and v.foundation_model_error_percent == pytest.approx(25.0)
    missing = ThreeWay.of(None, 1.0, 2.0)
    assert missing.ace_error_percent is None and missing.foundation_model_error_percent is None
    assert ThreeWay.of(0.0, 1.0, 1.0).ace_error_percent is None  # no percentage of a zero


def test_seed_rows_keep_the_report_order_and_skip_what_is_missing() -> None:
    seed = _teacher().seeds["Cu_fcc"]
    assert [label for label, _ in seed.rows()] == ["a (Å)", "B (GPa)", "C44 (GPa)"]


def test_summary_json_round_trip_with_and_without_a_foundation_model(tmp_path: Path) -> None:
    for fm in (_teacher(), _oracle_role(), None):
        summary = _summary().model_copy(update={"oracle_calls": CALLS, "foundation_model": fm})
        path = tmp_path / "summary.json"
        dump_record(path, summary, Path("/runs/cu"))
        data = json.loads(path.read_text())
        assert data["oracle_calls"] == {"training": 40, "properties": 23, "total": 63}
        if fm is None:
            assert data["foundation_model"] is None
        else:
            got = data["foundation_model"]
            assert {k: got[k] for k in ("name", "version", "calls", "wall_time_s")} == {
                "name": "chgnet",
                "version": "0.3.0",
                "calls": fm.calls,
                "wall_time_s": fm.wall_time_s,
            }
            if fm.role == "teacher":
                assert got["validation"]["energy_rmse_mev_per_atom"] == 11.48
                assert got["validation"]["force_rmse_mev_per_angstrom"] == 100.4
            else:
                assert got["validation"] is None  # the model is the reference: nothing to compare
        back = read_record(path, RunSummary, Path("/runs/cu"))
        assert back is not None and back.foundation_model == fm and back.oracle_calls == CALLS


def test_a_summary_written_before_the_fields_reads_with_none(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    dump_record(path, _summary(), Path("/runs/cu"))
    data = json.loads(path.read_text())
    del data["oracle_calls"], data["foundation_model"]
    path.write_text(json.dumps(data))
    back = read_record(path, RunSummary, Path("/runs/cu"))
    assert back is not None and back.oracle_calls is None and back.foundation_model is None
    md = render_markdown(back)
    assert "chgnet" not in md and "oracle calls:" not in md


# ------------------------------------------------------------------ from a database


def _cu(i: int):
    atoms = bulk("Cu", "fcc", a=3.61 * (0.97 + 0.01 * i), cubic=True)
    atoms.rattle(0.02, seed=i)
    return atoms


def test_oracle_calls_count_labelled_and_failed_split_rows_and_property_rows(tmp_path: Path) -> None:
    db = DatabaseManager(tmp_path / "s.db")
    ids = db.add_structures([_cu(i) for i in range(6)], StructureMetadata(source="initial_random"))
    db.assign_split(0.5, seed=0)
    for sid in ids[:4]:
        atoms = db.record(sid).atoms
        atoms.calc = EMT()
        db.set_labels(sid, atoms.get_potential_energy(), atoms.get_forces())
    db.mark_failed(ids[4], "scf did not converge")  # a call spent; ids[5] stays pending: none spent
    prop = _cu(9)
    prop.calc = EMT()
    from ase.calculators.singlepoint import SinglePointCalculator

    prop.calc = SinglePointCalculator(prop, energy=prop.get_potential_energy(), forces=prop.get_forces())
    db.add_structures([prop], StructureMetadata(source="property_relax", labels=[PROPERTY]))
    assert oracle_calls(db) == OracleCalls(training=5, properties=1, total=6)


def test_a_foundation_model_oracle_is_the_reference_and_counts_its_training_labels(tmp_path: Path) -> None:
    db = DatabaseManager(tmp_path / "s.db")
    ids = db.add_structures([_cu(i) for i in range(3)], StructureMetadata(source="initial_random"))
    db.assign_split(0.0, seed=0)
    for sid in ids:
        atoms = db.record(sid).atoms
        atoms.calc = EMT()
        db.set_labels(sid, atoms.get_potential_energy(), atoms.get_forces(), info={"oracle_wall_time_s": 0.5})
    cfg = PipelineConfig.model_validate(
        {"structure": {"element": "Cu"}, "oracle": {"type": "foundation_model", "name": "chgnet"}}
    )
    calls = oracle_calls(db)
    fm = foundation_model_summary(cfg, db, _summary(), tmp_path, calls)
    assert fm is not None and fm.role == "oracle" and fm.validation is None and fm.seeds == {}
    assert (fm.name, fm.version, fm.calls, fm.wall_time_s) == ("chgnet", "0.3.0", 3, pytest.approx(1.5))
    assert "reference" in (fm.note or "")
    emt = PipelineConfig.model_validate({"structure": {"element": "Cu"}})
    assert foundation_model_summary(emt, db, _summary(), tmp_path, calls) is None  # no model, no section


def test_element_shift_recovers_a_per_element_offset() -> None:
    rng = np.random.default_rng(0)
    symbols = [["Cu"] * n + ["Au"] * m for n, m in ((4, 0), (2, 2), (1, 3), (0, 4), (3, 1))]
    natoms = np.array([len(s) for s in symbols])
    ref = rng.normal(-3.5, 0.1, len(symbols)) * natoms
    offset = {"Cu": 4.07, "Au": 3.21}  # eV/atom the model sits above the oracle
    pred = ref + np.array([sum(offset[x] for x in s) for s in symbols])
    forces = np.zeros((int(natoms.sum()), 3))
    shift = element_shift(Predictions(natoms, ref, pred, forces, forces), symbols)
    assert shift == pytest.approx({"Cu": -4.07, "Au": -3.21})


# ------------------------------------------------------------------ the report's cache of the model's results


def test_json_store_keeps_results_for_the_same_model_only(tmp_path: Path) -> None:
    path = tmp_path / "fm" / "chgnet-0.3.0.json"
    store = JsonResultStore(path, "chgnet 0.3.0")
    store.put("k1", _cu(0), {"energy": -16.3, "forces": np.ones((4, 3)), "stress": np.arange(6.0)})
    store.put("k2", _cu(1), {"energy": -16.1, "forces": np.zeros((4, 3))})
    store.flush()
    again = JsonResultStore(path, "chgnet 0.3.0")
    got = again.get("k1")
    assert len(again) == 2 and got is not None and got["energy"] == -16.3
    assert np.array_equal(got["forces"], np.ones((4, 3))) and np.array_equal(got["stress"], np.arange(6.0))
    k2 = again.get("k2")
    assert k2 is not None and "stress" not in k2 and again.get("missing") is None
    assert len(JsonResultStore(path, "sevenn 7net-0")) == 0  # another model's results are not its own
    path.write_text("{not json")
    assert len(JsonResultStore(path, "chgnet 0.3.0")) == 0  # a broken cache starts again


# ------------------------------------------------------------------ pages


def test_pages_say_plainly_that_a_foundation_model_oracle_is_the_reference(tmp_path: Path) -> None:
    summary = _summary().model_copy(update={"oracle_calls": CALLS, "foundation_model": _oracle_role()})
    html = render_html(summary, "workdir: x\n", tmp_path)
    assert "The reference of this report is the foundation model chgnet 0.3.0" in html
    assert "Reference: the foundation model chgnet 0.3.0" in html  # at the top of the page too
    text = "\n".join(last_lines(summary))
    assert "reference: the foundation model chgnet 0.3.0 (chgnet 0.4.2) is the oracle" in text
    assert "oracle calls: 63 (40 for training and validation, 23 for the report's properties)" in text
    assert "oracle calls: 63" in render_markdown(summary)


def test_pages_put_the_model_alone_beside_the_ace(tmp_path: Path) -> None:
    summary = _summary().model_copy(update={"oracle_calls": CALLS, "foundation_model": _teacher()})
    html = render_html(summary, "workdir: x\n", tmp_path)
    parser = _Tables()
    parser.feed(html)
    rows = [[cell for cell, _ in row] for table in parser.tables for row in table]
    assert ["ACE (this potential)", "3", "1.234", "1", "20", "15"] in rows
    assert ["chgnet 0.3.0 alone", "3", "11.48", "9.9", "100.4", "65"] in rows
    assert ["a (Å)", "3.59", "3.58", "3.617", "-0.2786", "0.7521"] in rows
    assert ["C44 (GPa)", "90", "–", "53.7", "–", "-40.33"] in rows
    assert "relaxation &lt;did not&gt; converge" in html and "<did not>" not in html  # escaped
    assert "Cu +4.0680 eV/atom" in html
    md = render_markdown(summary)
    assert "foundation model chgnet 0.3.0 alone against the oracle (3 validation structures): energy RMSE 11.48" in md
    assert "(ACE: 1.23 meV/atom, 20.0 meV/Å); quality bar not met by the model alone" in md
    assert "teacher labels: 120 (61.5 s); this report: 22 model evaluations, 1 cached, 4.9 s" in md


def test_model_config_of_a_section_is_the_same_model() -> None:
    from mlip_autopipec.config.schemas.foundation import FoundationModelConfig
    from mlip_autopipec.report.foundation import cache_path, model_config

    section = FoundationModelConfig(name="chgnet", threads=2)
    assert model_config(section) == FoundationModelOracleConfig(name="chgnet", model_version="0.3.0", threads=2)
    assert cache_path(Path("/w"), section) == Path("/w/properties/foundation_model/chgnet-0.3.0.json")
