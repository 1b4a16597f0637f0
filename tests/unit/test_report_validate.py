"""report.validate: the energy shift back to the oracle's total energies, on a real pacemaker run's files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT

from mlip_autopipec.report.validate import energy_shift, error_metrics, predict
from mlip_autopipec.trainer.parsing import parse_reference_energy

DATA = Path(__file__).resolve().parents[1] / "data"


def test_shift_is_what_pacemaker_subtracted_per_structure():
    """energy - energy_corrected in pacemaker's own predictions file is exactly the shift, 'shift' included."""
    refs = parse_reference_energy((DATA / "pacemaker_output_potential_refenergy.yaml").read_text())
    assert refs["shift"] != 0.0
    df = pd.read_pickle(DATA / "pacemaker_test_pred.pckl.gzip", compression="gzip")
    shift = energy_shift(refs)
    ours = np.array([shift(Atoms("Cu" * int(n))) for n in df["NUMBER_OF_ATOMS"]])
    np.testing.assert_allclose(ours, df["energy"] - df["energy_corrected"], rtol=0, atol=1e-9)
    # per-element energies alone (the old helper) are off by the shift × atoms: 23 meV/atom here
    old = np.array([refs["Cu"] * n for n in df["NUMBER_OF_ATOMS"]])
    assert np.abs(old - (df["energy"] - df["energy_corrected"])).max() > 0.5


def test_shift_of_a_compound_counts_each_element_and_every_atom():
    shift = energy_shift({"Cu": -1.0, "Au": -3.0, "shift": 0.25})
    assert shift(Atoms("Cu3Au")) == pytest.approx(3 * -1.0 + -3.0 - 4 * 0.25)
    assert shift(Atoms("Ag2")) == pytest.approx(-2 * 0.25)  # an element not in the record counts 0, as in pacemaker


@pytest.mark.parametrize("refs", [None, {}, {"Cu": 0.0, "shift": 0.0}])
def test_nothing_subtracted_means_no_shift(refs):
    assert energy_shift(refs) is None


def test_predict_adds_the_shift():
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.calc = EMT()
    atoms.get_potential_energy()
    atoms.get_forces()
    p = predict([atoms], EMT(), energy_shift({"Cu": 0.5, "shift": 0.1}))
    assert p.energy_pred[0] - p.energy_ref[0] == pytest.approx(4 * 0.4)
    assert error_metrics(p).energy_rmse_mev_per_atom == pytest.approx(400.0)
