"""Active learning's training key: what decides whether a recorded fit (initial or a generation's) is taken up again.

A new train/validation split re-splits the labelled rows in place (the database's fingerprint ignores it), so the
key must tell the splits apart, or a fit trained with today's validation rows would be handed on.  The behaviour
end to end (a new split refits, with no oracle call) is tests/integration/test_active_learning.py's
``test_a_new_split_refits_on_it_without_oracle_calls``.
"""

from __future__ import annotations

import pytest

from mlip_autopipec.config import PipelineConfig, validate_config
from mlip_autopipec.pipeline.active_learning.loop import training_key

BASE = {
    "structure": {"element": "Cu", "lattice": "fcc", "a": 3.61},
    "oracle": {"type": "emt"},
    "training": {"max_num_epochs": 150},
    "database": {"validation_fraction": 0.1, "split_seed": 0},
    "active_learning": {"max_generations": 2},
}


def _key(**sections: dict) -> str:
    data = {name: {**BASE.get(name, {}), **sections.get(name, {})} for name in {*BASE, *sections}}
    return training_key(validate_config(PipelineConfig, data))


@pytest.mark.parametrize("split", [{"split_seed": 1}, {"validation_fraction": 0.2}])
def test_a_new_split_is_a_new_training_key(split):
    assert _key(database=split) != _key()


def test_the_key_follows_the_training_settings_but_not_how_the_fit_is_run():
    assert _key(training={"max_num_epochs": 200}) != _key()
    assert _key(training={"timeout_s": 60}) == _key()  # how long a fit may take: not what it is
    assert _key(active_learning={"max_generations": 3}) == _key()
