"""The work directory's records: typed, written with paths relative to the work directory, old layouts migrated."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.database import DatabaseManager, StructureMetadata
from mlip_autopipec.exceptions import ConfigurationError
from mlip_autopipec.explore.plan import candidate_metadata
from mlip_autopipec.pipeline.active_learning.md_runs import read_candidates, read_trajectories, write_candidates
from mlip_autopipec.pipeline.active_learning.steps import stored_already
from mlip_autopipec.pipeline.fits import latest_fit, load_fit, mark_latest, save_fit
from mlip_autopipec.pipeline.state import read_state, section_fingerprints, write_state
from mlip_autopipec.pipeline.summary import active_learning_plot
from mlip_autopipec.records import (
    ActiveLearningRecord,
    FitRecord,
    GenerationRecord,
    InitialFit,
    TrajectoryRecord,
    TrajectoryRecords,
    dump_record,
    load_record,
)
from mlip_autopipec.trainer.pace import TrainingResult
from mlip_autopipec.trainer.parsing import TrainingMetrics

CONFIG = PipelineConfig.model_validate({"workdir": "/somewhere/run", "structure": {"element": "Cu", "a": 3.61}})


def _training_result(fit_dir: Path) -> TrainingResult:
    return TrainingResult(
        potential_yace=fit_dir / "output_potential.yace",
        potential_yaml=fit_dir / "output_potential.yaml",
        metrics=TrainingMetrics(train_energy_rmse_mev_per_atom=1.0, train_force_rmse_mev_per_a=20.0),
        log_path=fit_dir / "pacemaker.log",
        input_yaml=fit_dir / "input.yaml",
        output_dir=fit_dir,
        evaluator="pyace",
        reference_energy={"Cu": -0.1},
        wall_time_s=3.0,
    )


def _old_state(old: Path) -> dict:
    """state.json as the version before typed records wrote it, in the work directory ``old``."""
    row = {
        "generation": 1,
        "step": "fitted",
        "training": "t",
        "active_set": f"{old}/fits/fit-aaa/output_potential.asi",
        "active_set_s": 1.0,
        "explore_s": 2.0,
        "trajectories": 4,
        "completed": 0,
        "not_started": 0,
        "candidates": 30,
        "halts": 4,
        "gamma_halts": 3,
        "blowups": 1,
        "max_gamma": 9.5,
        "select_s": 0.5,
        "selected": 4,
        "selected_md_halt": 3,
        "excluded": 1,
        "label_s": 1.5,
        "labelled": 4,
        "failed": 0,
        "oracle_calls_total": 4,
        "fit_s": 9.0,
        "fit_dir": f"{old}/fits/gen1-bbb",
        "n_labelled_total": 20,
        "n_validation": 3,
        "validation_energy_rmse_mev_per_atom": 2.0,
        "validation_force_rmse_mev_per_angstrom": 50.0,
    }
    return {
        "fingerprints": section_fingerprints(CONFIG),
        "config": CONFIG.model_dump(mode="json"),
        "updated": "2026-11-01T10:00:00",
        "active_learning": {
            "generations": [
                row,
                {
                    "generation": 2,
                    "step": "active_set",
                    "training": "t",
                    "active_set": f"{old}/fits/gen1-bbb/output_potential.asi",
                },
            ],
            "initial": {
                "fit_dir": f"{old}/fits/fit-aaa",
                "training": "t",
                "n_labelled_total": 16,
                "n_validation": 3,
                "validation_energy_rmse_mev_per_atom": 3.0,
                "validation_force_rmse_mev_per_angstrom": 80.0,
            },
        },
    }


@pytest.mark.parametrize("old_is_here", [True, False])
def test_old_state_json_is_migrated_with_paths_inside_the_work_directory(tmp_path, old_is_here):
    workdir = tmp_path / "run"
    workdir.mkdir()
    old = workdir if old_is_here else Path("/gone/elsewhere/run")
    (workdir / "state.json").write_text(json.dumps(_old_state(old)))
    state = read_state(workdir)
    al = state.active_learning
    assert state.fingerprints == section_fingerprints(CONFIG)
    assert al.initial.fit_dir == workdir / "fits" / "fit-aaa"
    g1, g2 = al.generations
    assert (
        g1.fit_dir == workdir / "fits" / "gen1-bbb"
        and g1.active_set == workdir / "fits" / "fit-aaa" / "output_potential.asi"
    )
    assert (g1.step, g1.gamma_halts, g1.validation_force_rmse_mev_per_angstrom, g1.label_s) == ("fitted", 3, 50.0, 1.5)
    assert g2.done("active_set") and not g2.done("explored") and g2.trajectories is None
    # written back in today's layout: versioned, relative
    write_state(workdir, CONFIG)
    data = json.loads((workdir / "state.json").read_text())
    assert data["schema_version"] == 1 and data["config"]["workdir"] == "."
    assert data["active_learning"]["initial"]["fit_dir"] == "fits/fit-aaa"
    assert data["active_learning"]["generations"][0]["fit_dir"] == "fits/gen1-bbb"
    assert read_state(workdir).active_learning == state.active_learning


def test_an_unreadable_state_is_refused_in_one_sentence(tmp_path):
    state = _old_state(tmp_path)
    state["active_learning"]["generations"][0]["step"] = "polished"
    (tmp_path / "state.json").write_text(json.dumps(state))
    with pytest.raises(ConfigurationError) as err:
        read_state(tmp_path)
    message = str(err.value)
    assert "state.json cannot be read by this version" in message and "generations.0.step" in message
    assert "\n" not in message and err.value.__cause__ is None
    (tmp_path / "state.json").write_text(json.dumps({**_old_state(tmp_path), "schema_version": 99}))
    with pytest.raises(ConfigurationError, match="schema_version 99"):
        read_state(tmp_path)


def test_records_move_with_the_work_directory(tmp_path):
    first, moved = tmp_path / "first", tmp_path / "moved"
    record = ActiveLearningRecord(
        initial=InitialFit(fit_dir=first / "fits" / "fit-a", training="t", n_labelled_total=10),
        generations=[GenerationRecord(generation=1, training="t", step="fitted", fit_dir=first / "fits" / "gen1-b")],
    )
    write_state(first, CONFIG, active_learning=record)
    text = (first / "state.json").read_text()
    assert str(first) not in text
    first.rename(moved)
    al = read_state(moved).active_learning
    assert al.initial.fit_dir == moved / "fits" / "fit-a" and al.generations[0].fit_dir == moved / "fits" / "gen1-b"


def test_fit_records_are_relative_and_old_absolute_ones_are_rebased(tmp_path):
    workdir = tmp_path / "run"
    fit_dir = workdir / "fits" / "fit-abc"
    fit_dir.mkdir(parents=True)
    result = _training_result(fit_dir)
    save_fit(workdir, result)
    mark_latest(workdir, result)
    assert str(tmp_path) not in (fit_dir / "result.json").read_text() + (workdir / "fits" / "latest.json").read_text()
    assert load_fit(workdir, fit_dir) == result and latest_fit(workdir) == result
    # the layout of the version before: TrainingResult with absolute paths of another place, latest.json by name
    old = _training_result(Path("/old/place/fits/fit-abc"))
    (fit_dir / "result.json").write_text(old.model_dump_json())
    (workdir / "fits" / "latest.json").write_text(json.dumps({"fit": "fit-abc"}))
    assert load_fit(workdir, fit_dir) == result and latest_fit(workdir) == result
    assert load_fit(workdir, workdir / "fits" / "none") is None


def test_a_fit_record_is_a_training_result_with_a_version():
    assert issubclass(FitRecord, TrainingResult)
    assert set(FitRecord.model_fields) == set(TrainingResult.model_fields) | {"schema_version"}


def test_fit_record_written_by_the_version_before_loads(tmp_path):
    """result.json as the version with its own FitRecord fields wrote it (schema 1, paths relative)."""
    workdir = tmp_path / "run"
    fit_dir = workdir / "fits" / "fit-abc"
    fit_dir.mkdir(parents=True)
    written = {
        "schema_version": 1,
        "potential_yace": "fits/fit-abc/output_potential.yace",
        "potential_yaml": "fits/fit-abc/output_potential.yaml",
        "metrics": {"train_energy_rmse_mev_per_atom": 1.0, "train_force_rmse_mev_per_a": 20.0},
        "log_path": "fits/fit-abc/pacemaker.log",
        "input_yaml": "fits/fit-abc/input.yaml",
        "output_dir": "fits/fit-abc",
        "evaluator": "pyace",
        "reference_energy": {"Cu": -0.1},
        "wall_time_s": 3.0,
    }
    (fit_dir / "result.json").write_text(json.dumps(written))
    fit = load_fit(workdir, fit_dir)
    assert type(fit) is TrainingResult and fit == _training_result(fit_dir)
    save_fit(workdir, fit)  # written back the same
    assert json.loads((fit_dir / "result.json").read_text()) == {
        **written,
        "metrics": {**TrainingMetrics(**written["metrics"]).model_dump()},
    }


def test_fit_record_paths_outside_the_work_directory_stay_absolute(tmp_path):
    elsewhere = Path("/elsewhere/fit")
    record = FitRecord.of(_training_result(elsewhere))
    data = json.loads(record.model_dump_json(context={"workdir": tmp_path}))
    assert data["output_dir"] == "/elsewhere/fit" and data["log_path"] == "/elsewhere/fit/pacemaker.log"
    back = load_record(FitRecord, data, tmp_path)
    assert back.result() == _training_result(elsewhere)


def test_trajectory_records_round_trip_and_old_list(tmp_path):
    records = TrajectoryRecords(
        generation=2,
        trajectories=[
            TrajectoryRecord(
                condition="nvt_300K",
                start="seed",
                stop="gamma",
                reason="γ 6 ≥ 5",
                n_candidates=3,
                seed=1,
                n_atoms=32,
                n_steps=100,
                n_steps_done=40,
                max_gamma=6.0,
                ensemble_used="nvt",
                wall_time_s=1.0,
            ),
            TrajectoryRecord(condition="nvt_300K", start="12", stop="error", reason="cannot evaluate"),
        ],
    )
    path = tmp_path / "al" / "gen_2" / "trajectories.json"
    dump_record(path, records, tmp_path)
    assert read_trajectories(tmp_path, 2) == records
    path.write_text(json.dumps([r.model_dump(exclude_none=True) for r in records.trajectories]))
    assert read_trajectories(tmp_path, 2) == records
    assert read_trajectories(tmp_path, 3) is None


def test_candidates_file_round_trip(tmp_path):
    a = bulk("Cu", cubic=True)
    a.info.update(source="md_halt", md_start="12", max_gamma=3.5, rattled=True, md_condition="npt_900K_0GPa")
    path = tmp_path / "candidates.xyz"
    write_candidates(path, [a, a.copy()])
    back = read_candidates(path)
    assert len(back) == 2 and np.allclose(back[0].positions, a.positions)
    assert back[0].info["source"] == "md_halt" and back[0].info["max_gamma"] == pytest.approx(3.5)
    assert candidate_metadata(back[0], 1).parent_id == 12
    write_candidates(path, [])
    assert read_candidates(path) == []


def test_stored_already_finds_exact_copies_only(tmp_path):
    with DatabaseManager(tmp_path / "s.db") as db:
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
        atoms.positions[0] += 0.1
        db.add_structure(atoms, StructureMetadata(source="initial_random"))
        known = stored_already(db)
        assert known(atoms.copy())
        moved = atoms.copy()
        moved.positions[1] += 0.01
        assert not known(moved)
        broken = moved.copy()
        broken.positions[2, 0] = np.nan
        assert known(broken)  # the database would refuse it: never selected


def test_active_learning_plot(tmp_path):
    al = ActiveLearningRecord(
        initial=InitialFit(
            fit_dir=tmp_path, training="t", n_labelled_total=20, validation_force_rmse_mev_per_angstrom=80.0
        ),
        generations=[
            GenerationRecord(
                generation=1,
                training="t",
                trajectories=4,
                halts=3,
                gamma_halts=2,
                blowups=1,
                n_labelled_total=24,
                validation_force_rmse_mev_per_angstrom=50.0,
            ),
            GenerationRecord(generation=2, training="t", trajectories=4, halts=0, gamma_halts=0, blowups=0),
        ],
    )
    path = active_learning_plot(al, tmp_path)
    assert path == tmp_path / "active_learning.png" and path.read_bytes()[:4] == b"\x89PNG"
    assert active_learning_plot(ActiveLearningRecord(), tmp_path / "none") is None


def test_old_summary_json_is_read_for_status(tmp_path):
    from mlip_autopipec.pipeline.summary import read_summary

    old = Path("/gone/run")
    summary = {
        "workdir": str(old),
        "potential": {
            "yace": f"{old}/fits/gen2-c/output_potential.yace",
            "yaml": f"{old}/fits/gen2-c/output_potential.yaml",
        },
        "fit": {"train_energy_rmse_mev_per_atom": 1.0, "train_force_rmse_mev_per_a": 20.0},
        "counts": {
            "total": 3,
            "by_status": {"labelled": 3},
            "by_source": {"initial_random (generation 0)": 3},
            "labelled_by_split": {"train": 2, "validation": 1},
        },
        "validation": {
            "n_structures": 1,
            "energy_rmse_mev_per_atom": 1.0,
            "energy_mae_mev_per_atom": 1.0,
            "force_rmse_mev_per_angstrom": 9.0,
            "force_mae_mev_per_angstrom": 7.0,
        },
        "quality_bar": {
            "passed": True,
            "checks": [
                {"figure": "validation force RMSE", "value": 9.0, "target": 15.0, "unit": "meV/Å", "passed": True}
            ],
        },
        "timings": {"steps_s": {"label": 1.0}, "total_s": 2.0, "oracle_s": 1.0, "pacemaker_s": 0.5, "other_s": 0.5},
        "active_learning": _old_state(old)["active_learning"],
    }
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "summary.json").write_text(json.dumps(summary))
    back = read_summary(tmp_path)
    assert back.workdir == tmp_path and back.potential.yace == tmp_path / "fits" / "gen2-c" / "output_potential.yace"
    assert back.eos is None and back.validation.force_rmse_mev_per_angstrom == 9.0
    assert back.active_learning.generations[0].fit_dir == tmp_path / "fits" / "gen1-bbb"
