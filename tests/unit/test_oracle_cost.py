"""The oracle's cost in sight (issue 20): cores per call, the cost record from the rows' label_info, the time
left while labelling, the property defaults by the oracle's cost, the property step's plan and its bound."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from pydantic import ValidationError

from mlip_autopipec.config.schemas.oracle import EMTOracleConfig, EspressoOracleConfig, FoundationModelOracleConfig
from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.config.schemas.report_properties import ReportPropertiesConfig
from mlip_autopipec.database import DatabaseManager, StructureMetadata
from mlip_autopipec.oracle.labelling import LabellingSession
from mlip_autopipec.pipeline.status import oracle_cost_lines
from mlip_autopipec.progress import format_duration, time_left_s
from mlip_autopipec.records import OracleCost, RunSummary, run_oracle_costs
from mlip_autopipec.records.cost import LabelCall, cores_per_call, mpi_ranks, oracle_costs
from mlip_autopipec.records.figures import PropertiesFigures
from mlip_autopipec.report.properties import CachedCalculator, MemoryStore, compute_properties, properties_summary
from mlip_autopipec.report.properties.phonons import phonon_structures
from mlip_autopipec.report.properties.plan import (
    DEFECT_RELAX_CALLS,
    RELAX_CALLS,
    BudgetedCalculator,
    OracleBudget,
    plan_lines,
    property_plan,
)
from mlip_autopipec.report.render import render_html, render_markdown

SI = {"structure": {"element": "Si", "lattice": "diamond", "a": 5.43}}
PW = {"type": "espresso", "pseudopotentials": {"Si": "Si.pbe-rrkj.UPF"}}


# --- cores per call and the cost record ----------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "ranks"),
    [
        ("pw.x", 1),
        ("mpirun -np 4 pw.x -nk 2", 4),
        ("/usr/bin/mpiexec -n 3 pw.x", 3),
        ("srun --ntasks=8 pw.x", 8),
        ("srun -n8 pw.x", 8),
        ("mpirun --bind-to core pw.x", 1),
        ("pw.x -np 4", 1),  # not a launcher: pw.x's own options are not ranks
    ],
)
def test_mpi_ranks_of_a_command(command, ranks):
    assert mpi_ranks(command) == ranks


def test_cores_per_call_from_the_oracle_settings():
    pw = EspressoOracleConfig(**{**PW, "command": "mpirun -np 4 pw.x"})
    assert cores_per_call(pw) == 4  # OMP_NUM_THREADS=1 by default
    assert cores_per_call(pw.model_copy(update={"env": {"OMP_NUM_THREADS": "2"}})) == 8
    assert cores_per_call(pw.model_copy(update={"env": {}})) == 4
    assert cores_per_call(FoundationModelOracleConfig(name="chgnet", threads=3)) == 3
    assert cores_per_call(EMTOracleConfig()) == 1


def test_oracle_costs_add_up_the_calls_per_oracle():
    calls = [LabelCall("espresso", t, n) for t, n in ((10.0, 2), (30.0, 2), (20.0, 8), (1000.0, 8))]
    calls.append(LabelCall("foundation_model", 0.5, 4))
    mine, other = oracle_costs(calls, 3, "espresso", {"espresso": 4})
    assert (mine.oracle, mine.calls, mine.failed, mine.cores_per_call) == ("espresso", 4, 3, 4)
    assert mine.median_s == 25.0 and mine.total_s == 1060.0  # the median: one slow call does not swing it
    assert mine.median_s_per_atom == pytest.approx((5.0 + 15.0) / 2)  # 5, 15, 2.5, 125 s/atom
    assert mine.core_hours == pytest.approx(1060.0 * 4 / 3600)
    assert (other.oracle, other.calls, other.failed, other.cores_per_call, other.total_s) == (
        "foundation_model",
        1,
        0,
        1,
        0.5,
    )
    (empty,) = oracle_costs([], 0, "emt", {})
    assert (empty.calls, empty.median_s, empty.total_s, empty.core_hours) == (0, None, 0.0, 0.0)


def test_run_oracle_costs_read_the_rows_label_info(tmp_path):
    cfg = PipelineConfig.model_validate({**SI, "oracle": {**PW, "command": "mpirun -np 2 pw.x"}})
    db = DatabaseManager(str(tmp_path / "s.db"))
    ids = [db.add_structure(bulk("Si", "diamond", a=5.43 + 0.01 * i), StructureMetadata(source="t")) for i in range(4)]
    for sid, seconds in zip(ids[:2], (12.0, 18.0), strict=True):
        atoms, _ = db.get(sid)
        info = {"oracle": "espresso", "oracle_wall_time_s": seconds, "oracle_command": "pw.x"}
        db.set_labels(sid, -10.0, np.zeros((len(atoms), 3)), stress=np.zeros(6), info=info)
    db.mark_failed(ids[2], "no SCF convergence")  # ids[3] stays pending: no cost yet
    (cost,) = run_oracle_costs(cfg, db.select())
    assert (cost.calls, cost.failed, cost.median_s, cost.total_s, cost.cores_per_call) == (2, 1, 15.0, 30.0, 2)
    assert cost.core_hours == pytest.approx(60.0 / 3600)
    assert cost.median_s_per_atom == pytest.approx(7.5)
    assert oracle_cost_lines([cost]) == [
        "oracle cost (labels done):",
        "  espresso: 2 calls, 1 failed; median 15 s per call, total 30 s; 2 core(s) per call: 0.0167 core-hours",
    ]
    assert oracle_cost_lines(oracle_costs([], 0, "emt", {})) == []  # nothing labelled yet: no line


# --- the time left while labelling --------------------------------------------------------------


def test_time_left_from_the_calls_finished_so_far():
    assert time_left_s(10, [], 4) is None  # nothing finished: nothing to estimate from
    assert time_left_s(0, [5.0], 4) == 0.0
    assert time_left_s(8, [60.0, 60.0, 600.0], 4) == 8 * 60.0 / 4  # median, over the worker slots
    assert time_left_s(2, [60.0], 4) == 60.0  # 2 calls left run at once on 4 slots: one call's time
    assert time_left_s(3, [30.0], 0) == 90.0  # no worker yet: one at a time
    assert [format_duration(s) for s in (42, 210, 7560, 129600)] == ["42 s", "3.5 min", "2.1 h", "1.5 d"]


def test_the_labelling_progress_line_shows_the_time_left():
    pending = [(i, bulk("Cu")) for i in range(1, 11)]
    session = LabellingSession(None, None, Path("."), pending, 1, lambda *a, **k: None, slots=lambda: 2)  # type: ignore[arg-type]
    assert session.progress_text() == "failed 0, remaining 10"
    session.summary.labelled.extend([1, 2])
    session.call_times_s.extend([120.0, 150.0])
    assert session.progress_text() == "failed 0, remaining 8, about 9.0 min left"  # 8 × 135 s / 2


# --- the property defaults by the oracle's cost -------------------------------------------------


def test_a_dft_oracle_switches_the_costly_properties_off_unless_asked():
    props = PipelineConfig.model_validate({**SI, "oracle": PW}).report.properties
    assert (props.elastic, props.vacancy, props.surfaces, props.phonons) == (True, False, [], False)
    assert props.md_stability is not None and props.max_oracle_calls is None
    asked = {"report": {"properties": {"phonons": True, "surfaces": ["111"], "max_oracle_calls": 40}}}
    props = PipelineConfig.model_validate({**SI, "oracle": PW, **asked}).report.properties
    assert (props.vacancy, props.surfaces, props.phonons, props.max_oracle_calls) == (False, ["111"], True, 40)
    for cheap in ({}, {"type": "emt"}, {"type": "foundation_model", "name": "chgnet"}):
        props = PipelineConfig.model_validate({**SI, "oracle": cheap}).report.properties
        assert props == ReportPropertiesConfig()  # today's defaults: everything on
    cfg = PipelineConfig.model_validate({**SI, "oracle": PW})
    assert PipelineConfig.model_validate(cfg.model_dump(mode="json")) == cfg  # state.json reads back the same
    with pytest.raises(ValidationError, match="max_oracle_calls"):
        ReportPropertiesConfig(max_oracle_calls=-1)


# --- the property step's plan and its bound -----------------------------------------------------

CU_ALL = ReportPropertiesConfig(
    relax_fmax_ev_per_angstrom=0.05,
    vacancy_min_atoms=8,
    surfaces=["111"],
    slab_min_thickness_angstrom=4.0,
    phonon_supercell_min_length_angstrom=5.0,
    md_stability=None,
)


def test_the_plan_counts_the_calls_and_their_cells():
    cu = bulk("Cu", "fcc", a=3.6)
    parts = {p.name: p for p in property_plan("Cu", cu, CU_ALL)}
    assert list(parts) == ["relax", "elastic", "vacancy", "surface 111", "phonons"]
    assert parts["relax"].calls == ((RELAX_CALLS, 1),)  # the primitive cell
    assert parts["elastic"].calls == ((8, 1),)  # ±ε, ±ε/2 on two components; no internal relaxation in fcc
    assert parts["vacancy"].calls == ((1, 8), (DEFECT_RELAX_CALLS, 7))
    n_displaced = len(phonon_structures(cu, None, 5.0, 0.01).structures)
    assert parts["phonons"].n_calls == n_displaced
    cost = OracleCost(
        oracle="espresso",
        calls=40,
        failed=0,
        median_s=2.0,
        median_s_per_atom=0.5,
        total_s=80.0,
        cores_per_call=1,
        core_hours=0.02,
    )
    lines = plan_lines(list(parts.values()), cost, 30)
    total = sum(p.n_calls for p in parts.values())
    seconds = 0.5 * sum(p.atom_calls for p in parts.values())
    assert lines[0].startswith(f"report: property plan: about {total} oracle calls (max_oracle_calls 30;")
    assert f"about {format_duration(seconds)} from the 40 espresso calls measured so far" in lines[0]
    assert lines[3] == f"  Cu: vacancy: ~1 on 8 atoms, {DEFECT_RELAX_CALLS} on 7 atoms"
    # diamond: the strains of C11/C12 leave nothing to relax (one call each), those of C44 relax the atoms
    si_elastic = property_plan("Si", bulk("Si", "diamond", a=5.43), CU_ALL)[1]
    assert si_elastic.name == "elastic" and si_elastic.calls == ((4 * 1 + 4 * RELAX_CALLS, 2),)
    assert "no time estimate yet" in plan_lines(list(parts.values()), None, None)[0]
    # a compound has no vacancy: left out of the plan (it fails at once, with no call)
    assert "vacancy" not in [p.name for p in property_plan("CuAu", bulk("CuAu", "rocksalt", a=4.2), CU_ALL)]


def _oracle(budget: OracleBudget) -> CachedCalculator:
    return CachedCalculator(BudgetedCalculator(EMT(), budget), MemoryStore())


def test_max_oracle_calls_skips_the_remaining_properties(caplog):
    cu = bulk("Cu", "fcc", a=3.59)  # near EMT's minimum: a short relaxation
    elastic = OracleBudget()  # no bound
    only_elastic = CU_ALL.model_copy(update={"vacancy": False, "surfaces": [], "phonons": False})
    calc = _oracle(elastic)
    assert not compute_properties(cu, calc, only_elastic).skipped
    elastic_calls = elastic.spent  # the relaxation and the elastic constants
    assert elastic_calls == calc.n_computed > 0  # cached results are free

    budget = OracleBudget(elastic_calls + 2)  # the vacancy starts, then runs out
    calc = _oracle(budget)
    with caplog.at_level(logging.WARNING, logger="mlip_autopipec"):
        part = compute_properties(cu, calc, CU_ALL)
    assert part.elastic is not None and part.vacancy is None and part.phonons is None and not part.failures
    assert part.skipped == ["vacancy", "surface 111", "phonons"]
    assert budget.spent == calc.n_computed == elastic_calls + 2
    assert (
        "report.properties.max_oracle_calls=" in caplog.text and "skipped vacancy, surface 111, phonons" in caplog.text
    )
    # the potential skips the same; the summary and the report say so
    potential = compute_properties(cu, CachedCalculator(EMT(), MemoryStore()), CU_ALL, skip=part.skipped)
    assert potential.skipped == part.skipped and potential.elastic is not None
    figures = PropertiesFigures.of("Cu", "Cu4", properties_summary(part, potential))
    assert (
        figures.skipped == ["vacancy", "surface 111", "phonons"]
        and "vacancy_formation_ev" not in figures.model_fields_set
    )

    nothing = compute_properties(cu, _oracle(OracleBudget(0)), CU_ALL)
    assert nothing.skipped == ["relax", "elastic", "vacancy", "surface 111", "phonons"]


def test_the_report_shows_the_cost_and_the_skipped_properties():
    from test_report_render import _summary

    base = _summary()
    props = base.properties_by_seed["Cu_fcc"].model_copy(update={"skipped": ["phonons"]})
    cost = OracleCost(
        oracle="espresso",
        calls=40,
        failed=2,
        median_s=12.5,
        median_s_per_atom=6.25,
        total_s=530.0,
        cores_per_call=4,
        core_hours=530.0 * 4 / 3600,
    )
    summary = RunSummary.model_validate({**dict(base), "properties_by_seed": {"Cu_fcc": props}, "oracle_cost": cost})
    text = render_markdown(summary)
    assert (
        "- oracle cost (espresso, labels done): 40 calls, 2 failed; median 12.5 s per call, total 530 s; "
        "4 core(s) per call: 0.589 core-hours\n" in text
    )
    assert "- skipped (report.properties.max_oracle_calls reached): phonons\n" in text
    page = render_html(summary, "", Path("/nonexistent"))
    assert "<h2>Oracle cost</h2>" in page and "<td>espresso</td><td>40</td><td>2</td><td>12.5</td>" in page
    assert "skipped (report.properties.max_oracle_calls reached): phonons" in page
    assert "No oracle call recorded." in render_html(base, "", Path("/nonexistent"))
