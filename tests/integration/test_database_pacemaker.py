"""The exported .pckl.gzip is what the real pacemaker trains from (pyace backend, a handful of iterations)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from conftest import require_executable
from mlip_autopipec.database import DatabaseManager, StructureMetadata

pytestmark = pytest.mark.slow

INPUT_YAML = textwrap.dedent(
    """
    seed: 1
    potential:
      deltaSplineBins: 0.001
      elements: [Cu]
      embeddings:
        ALL: {npot: 'FinnisSinclairShiftedScaled', fs_parameters: [1, 1], ndensity: 1}
      bonds:
        ALL: {radbase: SBessel, radparameters: [5.25], rcut: 4.0, dcut: 0.01, NameOfCutoffFunction: cos}
      functions:
        number_of_functions_per_element: 6
        ALL: {nradmax_by_orders: [4, 2], lmax_by_orders: [0, 1]}
    data:
      filename: train.pckl.gzip
    fit:
      loss: {kappa: 0.3, L1_coeffs: 1.0e-8, L2_coeffs: 1.0e-8}
      optimizer: BFGS
      maxiter: 5
    backend:
      evaluator: pyace
      batch_size: 10
      display_step: 1
    """
)


def test_real_pacemaker_trains_from_the_exported_dataset(tmp_path, monkeypatch):
    # pacemaker is installed with this Python (python-ace): look beside the interpreter too
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    pacemaker = require_executable("pacemaker")
    structures = []
    for i in range(8):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
        atoms.set_cell(atoms.cell * (0.97 + 0.01 * i), scale_atoms=True)
        atoms.rattle(0.1, seed=i)
        atoms.calc = EMT()
        atoms.get_potential_energy()
        atoms.get_stress()
        structures.append(atoms)
    with DatabaseManager(tmp_path / "cu.db", reference_energies={"Cu": -0.1}) as db:
        db.add_structures(structures, StructureMetadata(source="initial_random"))
        db.add_structure(bulk("Cu", "fcc", a=3.7, cubic=True), StructureMetadata(source="pending_one"))  # not exported
        assert db.save_dataset(tmp_path / "train.pckl.gzip") == 8
    (tmp_path / "input.yaml").write_text(INPUT_YAML)
    env = dict(os.environ, OMP_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([pacemaker, "input.yaml"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert "8 structures found" in log
    assert (tmp_path / "output_potential.yaml").is_file()
    # pacemaker fitted energy_corrected: E minus 4 atoms x (-0.1 eV)
    fitted = pd.read_pickle(tmp_path / "fitting_data_info.pckl.gzip", compression="gzip")
    expected = np.array([(a.get_potential_energy() + 0.4) / 4 for a in structures])
    np.testing.assert_allclose(np.sort(fitted["energy_corrected_per_atom"].to_numpy()), np.sort(expected), rtol=1e-10)
