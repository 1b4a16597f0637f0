"""The espresso oracle with the real pw.x: agreement with a direct ASE call, healing, a hopeless case."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.espresso import Espresso, EspressoProfile

from conftest import require_executable
from mlip_autopipec.config import OracleConfig, validate_config
from mlip_autopipec.config.schemas.oracle import DEFAULT_PSEUDO_DIR
from mlip_autopipec.oracle import LabelFailed, kpoint_mesh, label_one, make_oracle

pytestmark = [pytest.mark.qe, pytest.mark.slow]

PSEUDO = "Si.pbe-rrkj.UPF"
BASE = {
    "type": "espresso",
    "pseudopotentials": {"Si": PSEUDO},
    "ecutwfc": 12.0,
    "kspacing": 1.2,
    "degauss": 0.01,
    "conv_thr": 1e-8,
}


def oracle_from(data):
    return make_oracle(validate_config(OracleConfig, data, "oracle"))


@pytest.fixture(scope="module")
def pw():
    require_executable("pw.x")
    if not (DEFAULT_PSEUDO_DIR / PSEUDO).is_file():
        pytest.fail(f"pw.x is installed but {DEFAULT_PSEUDO_DIR / PSEUDO} is missing: install quantum-espresso-data")
    return "pw.x"


@pytest.fixture
def si2():
    atoms = bulk("Si", "diamond", a=5.43)
    atoms.rattle(0.05, seed=1)
    return atoms


@pytest.fixture(scope="module")
def direct(pw, tmp_path_factory):
    """The same SCF through ASE's Espresso calculator directly, without the oracle."""
    atoms = bulk("Si", "diamond", a=5.43)
    atoms.rattle(0.05, seed=1)
    mesh = kpoint_mesh(atoms, BASE["kspacing"])
    assert mesh == (2, 2, 2)
    atoms.calc = Espresso(
        profile=EspressoProfile(command="pw.x", pseudo_dir=str(DEFAULT_PSEUDO_DIR)),
        directory=str(tmp_path_factory.mktemp("direct")),
        pseudopotentials={"Si": PSEUDO},
        kpts=mesh,
        input_data={
            "control": {"calculation": "scf", "tprnfor": True, "tstress": True},
            "system": {"ecutwfc": 12.0, "occupations": "smearing", "smearing": "mv", "degauss": 0.01},
            "electrons": {"conv_thr": 1e-8},
        },
    )
    return atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()


def test_pw_labels_agree_with_a_direct_ase_espresso_call(pw, direct, si2, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    result = oracle_from(BASE).label(si2, tmp_path / "structure_1")
    energy, forces, stress = direct
    assert result.energy == pytest.approx(energy, abs=1e-6)  # eV
    assert np.abs(result.forces - forces).max() < 1e-5  # eV/Å
    assert np.abs(result.stress - stress).max() < 1e-6  # eV/Å³
    assert np.abs(result.forces).max() > 0.1  # a rattled cell: real forces, not zeros
    assert result.forces.shape == (2, 3) and result.stress.shape == (6,)
    assert len(result.attempts) == 1 and result.attempts[0].outcome.startswith("converged")
    assert (tmp_path / "structure_1" / "attempt_1" / "espresso.pwo").is_file()


def test_forced_non_convergence_is_healed_by_the_ladder(pw, direct, si2, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    result = oracle_from({**BASE, "electron_maxstep": 1, "max_attempts": 3}).label(si2, tmp_path / "s")
    assert [a.number for a in result.attempts] == [1, 2]
    assert result.attempts[0].outcome == "SCF not converged after 1 iterations"
    assert result.attempts[1].outcome.startswith("converged")
    assert result.attempts[1].settings["electrons.electron_maxstep"] == 300
    assert all(a.wall_time_s > 0 for a in result.attempts)
    # the healed SCF reaches the same ground state (different mixing, same threshold)
    assert result.energy == pytest.approx(direct[0], abs=1e-4)
    assert np.abs(result.forces - direct[1]).max() < 1e-3


def test_hopeless_case_ends_failed_with_its_reason(pw, si2, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    outcome = label_one(oracle_from({**BASE, "electron_maxstep": 1, "max_attempts": 1}), si2, str(tmp_path / "s"), 5)
    assert not outcome.ok and outcome.structure_id == 5
    assert outcome.reason.startswith("SCF did not converge in 1 attempt(s)")
    assert "convergence NOT achieved after   1 iterations" in outcome.output_tail
    assert [a.outcome for a in outcome.attempts] == ["SCF not converged after 1 iterations"]


def test_a_pw_error_is_not_retried_and_names_the_message(pw, si2, tmp_path):
    with pytest.raises(
        LabelFailed, match=r"pw.x failed on attempt 1: pw.x error: Error in routine setup \(1\): too few bands"
    ) as err:
        oracle_from({**BASE, "input_data": {"system": {"nbnd": 1}}}).label(si2, tmp_path / "s")
    assert len(err.value.attempts) == 1 and "too few bands" in err.value.output_tail


def test_a_run_past_its_time_limit_is_killed(pw, si2, tmp_path):
    with pytest.raises(LabelFailed, match=r"ran past timeout_s=0.05 s"):
        oracle_from({**BASE, "timeout_s": 0.05}).label(si2, tmp_path / "s")
