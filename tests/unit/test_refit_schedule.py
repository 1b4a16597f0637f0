"""Short refits while exploring, full ones for the potential handed on (active_learning.refit_max_epochs, final_max_epochs)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from mlip_autopipec.config import PipelineConfig, validate_config
from mlip_autopipec.exceptions import ConfigurationError
from mlip_autopipec.pipeline.generation import final_epochs, refit_epochs

BASE = {
    "structure": {"element": "Cu", "lattice": "fcc", "a": 3.61},
    "oracle": {"type": "emt"},
    "training": {"max_num_epochs": 150},
}


class _Db:
    """Counts as DatabaseManager.count gives them: ``pool`` structures of generation 0, ``added`` by active learning."""

    def __init__(self, pool: int, added: int):
        self.pool, self.added = pool, added

    def count(self, generation: int | None = None) -> int:
        return self.pool if generation == 0 else self.pool + self.added


def _ctx(added: int = 0, **al) -> SimpleNamespace:
    cfg = validate_config(PipelineConfig, {**BASE, "active_learning": {"max_generations": 5, **al}})
    return SimpleNamespace(config=cfg, db=_Db(pool=200, added=added))


def test_refits_are_short_until_the_last_generation():
    ctx = _ctx(refit_max_epochs=40)
    assert [refit_epochs(ctx, g) for g in range(1, 6)] == [40, 40, 40, 40, 150]
    ctx = _ctx(refit_max_epochs=40, final_max_epochs=400)
    assert [refit_epochs(ctx, g) for g in range(1, 6)] == [40, 40, 40, 40, 400]
    assert final_epochs(ctx) == 400 and final_epochs(_ctx(refit_max_epochs=40)) == 150


def test_a_spent_budget_makes_the_refit_the_last_one():
    assert refit_epochs(_ctx(added=39, refit_max_epochs=40, max_oracle_calls=40), 2) == 40
    assert refit_epochs(_ctx(added=40, refit_max_epochs=40, max_oracle_calls=40), 2) == 150


def test_unset_schedule_uses_training_max_num_epochs_for_every_refit():
    ctx = _ctx()
    assert [refit_epochs(ctx, g) for g in range(1, 6)] == [150] * 5 and final_epochs(ctx) == 150
    ctx = _ctx(final_max_epochs=300)
    assert [refit_epochs(ctx, g) for g in range(1, 6)] == [150, 150, 150, 150, 300]


def test_short_refits_from_scratch_are_refused_naming_the_fields():
    with pytest.raises(ConfigurationError, match="refit_max_epochs needs continue_from_previous"):
        _ctx(refit_max_epochs=40, continue_from_previous=False)


def test_the_final_fit_decision_finds_the_refit_that_made_the_potential(tmp_path):
    """A quiet generation that carried the fit on names the same folder without refitting: it must not hide the
    short refit that made the potential (the closing fit would be skipped)."""
    from mlip_autopipec.pipeline.active_learning import refit_iterations
    from mlip_autopipec.pipeline.records import ActiveLearningRecord, GenerationRecord

    gen3, gen4 = tmp_path / "fits" / "gen3-a", tmp_path / "fits" / "gen4-b"
    rows = [
        GenerationRecord(generation=3, training="t", step="fitted", fit_dir=gen3, fit_max_epochs=25),
        GenerationRecord(generation=4, training="t", step="fitted", fit_dir=gen3),  # carried: nothing labelled
    ]
    record = ActiveLearningRecord(generations=rows)
    assert refit_iterations(record, gen3) == 25
    assert refit_iterations(record, tmp_path / "fits" / "fit-initial") is None
    record.generations = [
        *rows,
        GenerationRecord(generation=5, training="t", step="fitted", fit_dir=gen4, fit_max_epochs=400),
    ]
    assert refit_iterations(record, gen4) == 400
