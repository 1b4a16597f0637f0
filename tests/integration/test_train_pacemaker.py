"""Real pacemaker fits on a tiny EMT copper dataset: the session's shared fit (tests/conftest.py::cu_fit), a
continued fit and a failing one."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import CU_FIT, pacemaker_profile, write_dataset
from mlip_autopipec.config import TrainingConfig
from mlip_autopipec.exceptions import TrainerError
from mlip_autopipec.trainer import PacemakerProfile, PacemakerRunner

pytestmark = pytest.mark.slow

TINY = CU_FIT  # the session's shared fit (tests/conftest.py::cu_fit) has these settings


@pytest.fixture
def fit(cu_fit):
    return cu_fit.result, cu_fit.reports, cu_fit.dataset


def test_real_fit_gives_a_working_yace(fit, cu_structures):
    from pyace import PyACECalculator

    result, reports, _ = fit
    assert result.potential_yace.is_file() and result.potential_yace.suffix == ".yace"
    assert result.potential_yaml.is_file()
    assert result.evaluator == ("tensorpot" if PacemakerProfile().has_tensorpotential() else "pyace")
    calc = PyACECalculator(str(result.potential_yace))
    de, df = [], []
    for ref in cu_structures:
        atoms = ref.copy()
        atoms.calc = calc
        de.append((atoms.get_potential_energy() - ref.get_potential_energy()) / len(atoms))
        df.append(atoms.get_forces() - ref.get_forces())
    rmse_e = 1e3 * float(np.sqrt(np.mean(np.square(de))))
    rmse_f = 1e3 * float(np.sqrt(np.mean(np.square(np.vstack(df)))))
    spread = 1e3 * float(np.std([a.get_potential_energy() / len(a) for a in cu_structures]))
    # a working fit reaches ~2 meV/atom here; predicting the mean gives the spread (~23), the untrained start ~60
    assert rmse_e < 10.0 and rmse_e < 0.25 * spread, (rmse_e, spread)
    assert rmse_f < 60.0, rmse_f  # untrained: ~500 meV/Å
    # pacemaker's own report agrees with what the .yace does
    m = result.metrics
    assert m.train_energy_rmse_mev_per_atom < 10.0 and m.train_force_rmse_mev_per_a < 60.0
    assert m.test_energy_rmse_mev_per_atom is not None and m.test_force_rmse_mev_per_a is not None
    assert m.n_functions == 10


def test_real_fit_reports_progress_and_keeps_its_log(fit):
    result, reports, dataset = fit
    train = [r for r in reports if r.phase == "train"]
    assert train[0].iteration == 0 and train[-1].iteration >= 50
    assert train[-1].loss < train[0].loss / 10
    assert any(r.phase == "test" for r in reports)
    log = result.log_path.read_text()
    assert "Fitting done" in log and str(dataset) in log
    assert "converted to output_potential.yace" in log or "Saving Ctilde-basis" in log
    assert "cutoff" not in (result.output_dir / "input.yaml").read_text().split("potential:")[0]


def test_broken_dataset_raises_with_pacemakers_message(cu_structures, tmp_path):
    profile = pacemaker_profile()
    dataset = write_dataset(tmp_path / "broken.pckl.gzip", cu_structures[:4], drop=("forces",))
    with pytest.raises(TrainerError) as err:
        PacemakerRunner(TrainingConfig(**TINY), profile).train(dataset, tmp_path / "fit")
    first_line = str(err.value).splitlines()[0]
    assert "Column `forces` not found in dataset" in first_line
    assert str((tmp_path / "fit").absolute()) in first_line


def test_continue_from_an_earlier_fit(fit, tmp_path):
    """Starting from gen0's potential, the loss starts where gen0 ended, not where a fresh fit starts."""
    result0, reports0, dataset = fit
    reports = []
    config = {**TINY, "initial_potential": result0.potential_yaml, "max_num_epochs": 3, "evaluator": "pyace"}
    result = PacemakerRunner(TrainingConfig(**config), pacemaker_profile(), on_progress=reports.append).train(
        dataset, tmp_path / "gen1"
    )
    start = next(r for r in reports if r.phase == "train" and r.iteration == 0)
    fresh_start = reports0[0].loss
    assert start.loss == pytest.approx(result0.metrics.train_loss, rel=0.05)
    assert start.loss < fresh_start / 100
    assert result.potential_yace.is_file()
    assert result.evaluator == "pyace"
    # the pyace backend prints no test errors: they come from pacemaker's test predictions
    assert result.metrics.test_energy_rmse_mev_per_atom is not None
    assert result.metrics.test_energy_rmse_mev_per_atom < 20.0
