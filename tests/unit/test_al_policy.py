"""Active learning's policy: the oracle budget, the refit schedule, the closing fit and the stop rules.

Pure functions of the settings, the record and the calls used: no context, no database, no files.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mlip_autopipec.config import PipelineConfig, validate_config
from mlip_autopipec.config.schemas.active_learning import ActiveLearningConfig
from mlip_autopipec.config.schemas.training import TrainingConfig
from mlip_autopipec.exceptions import ConfigurationError
from mlip_autopipec.explore.convergence import Verdict, convergence_verdict
from mlip_autopipec.pipeline.active_learning import policy
from mlip_autopipec.records import ActiveLearningRecord, GenerationRecord, ValidationErrors
from mlip_autopipec.trainer.parsing import TrainingMetrics

BASE = {
    "structure": {"element": "Cu", "lattice": "fcc", "a": 3.61},
    "oracle": {"type": "emt"},
    "training": {"max_num_epochs": 150},
}


def _settings(**al: object) -> tuple[ActiveLearningConfig, TrainingConfig]:
    cfg = validate_config(PipelineConfig, {**BASE, "active_learning": {"max_generations": 5, **al}})
    assert cfg.active_learning is not None
    return cfg.active_learning, cfg.training


def _gen(g: int, **fields: object) -> GenerationRecord:
    return GenerationRecord(generation=g, training="t", **fields)


QUIET_ADEQUATE = Verdict(converged=False, fit_adequate=True, quiet=False, reason="not converged: fit adequate (…)")
QUIET_INADEQUATE = Verdict(converged=False, fit_adequate=False, quiet=True, reason="not converged: fit not adequate")


# --------------------------------------------------------------------------- the oracle budget
def test_the_budget_left_is_never_negative_and_none_without_a_budget():
    settings, _ = _settings(max_oracle_calls=40)
    assert [policy.calls_left(settings, used) for used in (0, 39, 40, 55)] == [40, 1, 0, 0]
    assert policy.calls_left(_settings()[0], 10_000) is None


def test_a_selection_takes_no_more_than_the_budget_left():
    settings, _ = _settings(max_new_per_generation=20, max_oracle_calls=50)
    assert [policy.selection_size(settings, used) for used in (0, 35, 50, 60)] == [20, 15, 0, 0]
    assert policy.selection_size(_settings(max_new_per_generation=20)[0], 10_000) == 20


# --------------------------------------------------------------------------- epochs and refits
def test_refits_are_short_until_the_last_generation():
    settings, training = _settings(refit_max_epochs=40)
    assert [policy.refit_epochs(settings, training, g, 0) for g in range(1, 6)] == [40, 40, 40, 40, 150]
    assert policy.final_epochs(settings, training) == 150
    settings, training = _settings(refit_max_epochs=40, final_max_epochs=400)
    assert [policy.refit_epochs(settings, training, g, 0) for g in range(1, 6)] == [40, 40, 40, 40, 400]
    assert policy.final_epochs(settings, training) == 400


def test_a_spent_budget_makes_the_refit_the_last_one():
    settings, training = _settings(refit_max_epochs=40, max_oracle_calls=40)
    assert policy.refit_epochs(settings, training, 2, calls_used=39) == 40
    assert policy.refit_epochs(settings, training, 2, calls_used=40) == 150


def test_unset_schedule_uses_training_max_num_epochs_for_every_refit():
    settings, training = _settings()
    assert [policy.refit_epochs(settings, training, g, 0) for g in range(1, 6)] == [150] * 5
    assert policy.final_epochs(settings, training) == 150
    settings, training = _settings(final_max_epochs=300)
    assert [policy.refit_epochs(settings, training, g, 0) for g in range(1, 6)] == [150, 150, 150, 150, 300]


def test_training_with_changes_only_the_iterations():
    _, training = _settings()
    assert policy.training_with(training, 150) is training
    short = policy.training_with(training, 25)
    assert short.max_num_epochs == 25 and training.max_num_epochs == 150
    assert short.model_dump(exclude={"max_num_epochs"}) == training.model_dump(exclude={"max_num_epochs"})


def test_short_refits_from_scratch_are_refused_naming_the_fields():
    with pytest.raises(ConfigurationError, match="refit_max_epochs needs continue_from_previous"):
        _settings(refit_max_epochs=40, continue_from_previous=False)


def test_the_final_fit_decision_finds_the_refit_that_made_the_potential(tmp_path: Path):
    """A quiet generation that carried the fit on names the same folder without refitting: it must not hide the
    short refit that made the potential (the closing fit would be skipped; commit 31c05d8)."""
    settings, training = _settings(refit_max_epochs=25, final_max_epochs=400)
    gen3, gen4 = tmp_path / "fits" / "gen3-a", tmp_path / "fits" / "gen4-b"
    rows = [
        _gen(3, step="fitted", fit_dir=gen3, fit_max_epochs=25),
        _gen(4, step="fitted", fit_dir=gen3),  # carried: nothing labelled
    ]
    record = ActiveLearningRecord(generations=rows)
    assert policy.refit_iterations(record, gen3) == 25
    assert policy.final_fit_due(settings, training, record, gen3)
    initial = tmp_path / "fits" / "fit-initial"
    assert policy.refit_iterations(record, initial) is None
    assert not policy.final_fit_due(settings, training, record, initial)  # no refit made it: handed on as it is
    record.generations = [*rows, _gen(5, step="fitted", fit_dir=gen4, fit_max_epochs=400)]
    assert policy.refit_iterations(record, gen4) == 400
    assert not policy.final_fit_due(settings, training, record, gen4)  # the last refit ran the final iterations


def test_no_final_fit_when_refits_already_run_the_final_iterations(tmp_path: Path):
    settings, training = _settings()  # both default to training.max_num_epochs
    record = ActiveLearningRecord(generations=[_gen(1, step="fitted", fit_dir=tmp_path / "g1", fit_max_epochs=150)])
    assert not policy.final_fit_due(settings, training, record, tmp_path / "g1")


# --------------------------------------------------------------------------- errors and halts
def test_fit_errors_take_training_from_pacemaker_and_validation_from_the_split():
    metrics = TrainingMetrics(train_energy_rmse_mev_per_atom=2.0, train_force_rmse_mev_per_a=30.0)
    errors = policy.fit_errors(metrics, ValidationErrors(n_validation=4, validation_force_rmse_mev_per_angstrom=35.0))
    assert errors.train_force_rmse_mev_per_angstrom == 30.0 and errors.train_energy_rmse_mev_per_atom == 2.0
    assert errors.validation_force_rmse_mev_per_angstrom == 35.0 and errors.validation_energy_rmse_mev_per_atom is None


def test_halts_through_a_generation_in_order():
    record = ActiveLearningRecord(generations=[_gen(1, halts=3), _gen(2, halts=0), _gen(3)])
    assert policy.halts_through(record, 0) == []
    assert policy.halts_through(record, 2) == [3, 0]
    assert policy.halts_through(record, 3) == [3, 0, None]


def test_none_started_only_when_every_planned_trajectory_failed_to_start():
    assert policy.none_started(_gen(1, trajectories=4, not_started=4))
    assert not policy.none_started(_gen(1, trajectories=4, not_started=3))
    assert not policy.none_started(_gen(1, trajectories=0, not_started=0))
    assert not policy.none_started(_gen(1))


# --------------------------------------------------------------------------- stop rules
def test_stop_before_a_generation_names_the_limit():
    settings, _ = _settings(max_generations=3, max_oracle_calls=40)
    assert policy.stop_before(settings, 3, calls_used=39) is None
    assert policy.stop_before(settings, 4, calls_used=0) == "max_generations (3) reached"
    assert (
        policy.stop_before(settings, 2, calls_used=41)
        == "max_oracle_calls (40) spent: 41 oracle calls by active learning"
    )
    assert policy.stop_before(_settings(max_generations=3)[0], 3, calls_used=10_000) is None


def test_the_limit_stop_reason_carries_the_convergence_verdict():
    settings, _ = _settings(quiet_generations=2)
    verdict = convergence_verdict(
        [2, 0],
        policy.fit_errors(
            TrainingMetrics(train_energy_rmse_mev_per_atom=1.0, train_force_rmse_mev_per_a=10.0), ValidationErrors()
        ),
        settings,
    )
    text = policy.stopped_at_limit("max_generations (5) reached", verdict)
    assert text == f"max_generations (5) reached; {verdict.reason}"
    assert "exploration quiet for 1 generation(s) in a row (needs 2)" in text


def test_a_quiet_generation_converges_when_the_verdict_says_so():
    settings, _ = _settings(n_steps=30)
    converged = Verdict(converged=True, fit_adequate=True, quiet=True, reason="converged: fit targets not set; q")
    gen = _gen(4, trajectories=4, not_started=1, halts=0)
    assert policy.stop_when_converged(settings, gen, converged) == (
        "converged: fit targets not set; q; "
        "all 3 trajectories of generation 4 ran their full 30 steps (1 could not start)"
    )
    gen = _gen(4, trajectories=4, not_started=0, halts=0)
    assert policy.stop_when_converged(settings, gen, converged).endswith("generation 4 ran their full 30 steps")
    assert policy.stop_when_converged(settings, gen, QUIET_ADEQUATE) is None
    assert policy.stop_when_converged(settings, _gen(4, halts=2), None) is None  # not quiet: no verdict


def test_after_a_selection_something_new_goes_on():
    settings, _ = _settings()
    assert policy.stop_when_nothing_new(settings, _gen(2, selected=3), None, calls_used=3) is None
    assert not policy.carries_fit(_gen(2, selected=3))


def test_a_quiet_generation_with_an_adequate_fit_and_nothing_new_carries_the_fit_on():
    settings, _ = _settings(max_generations=5, max_oracle_calls=50)
    gen = _gen(2, selected=0, candidates=6, excluded=6)
    assert policy.stop_when_nothing_new(settings, gen, QUIET_ADEQUATE, calls_used=10) is None
    assert policy.carries_fit(gen)


def test_nothing_new_stops_when_the_next_generation_may_not_start_or_the_fit_is_not_adequate():
    settings, _ = _settings(max_generations=5, max_oracle_calls=50)
    gen = _gen(5, selected=0, candidates=6, excluded=2)
    assert policy.stop_when_nothing_new(settings, gen, QUIET_ADEQUATE, calls_used=10) == (
        f"nothing new to label in generation 5: 6 candidates, 2 already in the database; {QUIET_ADEQUATE.reason}"
    )
    gen = _gen(2, selected=0, candidates=6, excluded=2)
    assert policy.stop_when_nothing_new(settings, gen, QUIET_ADEQUATE, calls_used=50).startswith("nothing new")
    assert policy.stop_when_nothing_new(settings, gen, QUIET_INADEQUATE, calls_used=10) == (
        f"nothing new to label in generation 2: 6 candidates, 2 already in the database; {QUIET_INADEQUATE.reason}"
    )
    # halted (not quiet): no verdict; nothing selected
    assert policy.stop_when_nothing_new(settings, _gen(2, selected=0), None, calls_used=10) == (
        "nothing new to label in generation 2: 0 candidates, 0 already in the database"
    )
