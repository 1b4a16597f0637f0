"""Oracle configuration, k-point meshes, the healing ladder, pw.x output parsing, EMT / ASE / GPAW oracles."""

from __future__ import annotations

import math
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones
from hypothesis import given, settings
from hypothesis import strategies as st

from mlip_autopipec.compute.models import LocalComputeConfig, SlurmComputeConfig
from mlip_autopipec.config import ComputeConfig, OracleConfig, validate_config
from mlip_autopipec.config.schemas.oracle import (
    ASEOracleConfig,
    EMTOracleConfig,
    EspressoOracleConfig,
    GPAWOracleConfig,
)
from mlip_autopipec.exceptions import ConfigurationError, OracleError
from mlip_autopipec.oracle import LabelFailed, LabelResult, kpoint_mesh, label_one, make_oracle
from mlip_autopipec.oracle.base import check_plausible, output_tail
from mlip_autopipec.oracle.emt import EMTOracle
from mlip_autopipec.oracle.espresso import EspressoOracle, base_input_data, scf_settings
from mlip_autopipec.oracle.generic import ASEOracle
from mlip_autopipec.oracle.gpaw import GPAWOracle, gpaw_parameters
from mlip_autopipec.oracle.healing import ScfSettings, healing_overrides, merge_namelists
from mlip_autopipec.oracle.qe_output import parse_duration, parse_pw_output, pw_output_tail

DATA = Path(__file__).resolve().parents[1] / "data"
SI_QE = {"type": "espresso", "pseudopotentials": {"Si": "Si.pbe-rrkj.UPF"}, "ecutwfc": 30, "kspacing": 0.3}


def validate_oracle_config(data):
    return validate_config(OracleConfig, data, "oracle")


def validate_compute_config(data):
    return validate_config(ComputeConfig, data, "compute")


def oracle_from(data):
    return make_oracle(validate_oracle_config(data))


# --- configuration ---------------------------------------------------------


def test_oracle_config_union_dispatches_on_type():
    assert isinstance(validate_oracle_config({}), EMTOracleConfig)  # the embedded default
    assert isinstance(validate_oracle_config({"type": "emt"}), EMTOracleConfig)
    assert isinstance(validate_oracle_config(SI_QE), EspressoOracleConfig)
    assert isinstance(validate_oracle_config({"type": "gpaw"}), GPAWOracleConfig)
    assert isinstance(
        validate_oracle_config({"type": "ase", "calculator": "ase.calculators.lj.LennardJones"}), ASEOracleConfig
    )
    # also usable as a pydantic field type
    from pydantic import TypeAdapter

    assert TypeAdapter(OracleConfig).validate_python({"type": "emt"}).type == "emt"
    assert TypeAdapter(ComputeConfig).validate_python({"type": "local", "n_workers": 2}).n_workers == 2


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"type": "vasp"}, "unknown oracle type"),
        ({"type": "espresso"}, "espresso.pseudopotentials: Field required"),
        ({**SI_QE, "ecutwfc": -1}, "espresso.ecutwfc"),
        ({**SI_QE, "kspacing": 0}, "espresso.kspacing"),
        ({**SI_QE, "pseudopotentials": {"Xx": "a.UPF"}}, "not chemical symbols"),
        ({**SI_QE, "input_data": {"control": {"tprnfor": False}}}, "set by the oracle"),
        ({**SI_QE, "input_data": {"sistem": {"nspin": 2}}}, "unknown pw.x namelist"),
        ({**SI_QE, "command": "pw.x 'unbalanced"}, "cannot split"),
        ({**SI_QE, "ecut_wfc": 30}, "espresso.ecut_wfc: unknown field"),
        ({"type": "emt", "max_force": 0}, "emt.max_force"),
        ({"type": "ase", "calculator": "LennardJones"}, "not an import path"),
    ],
)
def test_bad_oracle_configs_name_the_field(data, fragment):
    with pytest.raises(ConfigurationError, match="oracle") as err:
        validate_oracle_config(data)
    assert fragment in str(err.value)


def test_compute_config_union_and_errors():
    assert validate_compute_config({}) == LocalComputeConfig()
    assert validate_compute_config({"type": "dask", "address": "tcp://h:8786"}).address == "tcp://h:8786"
    slurm = validate_compute_config({"type": "slurm", "cores": 8, "memory": "16GiB", "queue": "short", "jobs": 3})
    assert isinstance(slurm, SlurmComputeConfig)
    # the jobs' logs open in append mode, so a requeued job keeps its first run's log; a directive of the user's wins
    assert slurm.cluster_kwargs() == {
        "cores": 8,
        "memory": "16GiB",
        "queue": "short",
        "job_script_prologue": [],
        "job_extra_directives": ["--open-mode=append"],
    }
    own = validate_compute_config(
        {"type": "slurm", "cores": 8, "memory": "16GiB", "job_extra_directives": ["--open-mode=truncate"]}
    )
    assert own.cluster_kwargs()["job_extra_directives"] == ["--open-mode=truncate"]
    pbs = validate_compute_config({"type": "pbs", "cores": 8, "memory": "16GiB"})
    assert pbs.cluster_kwargs()["job_extra_directives"] == []
    for bad, frag in [
        ({"type": "k8s"}, "unknown compute type"),
        ({"type": "slurm"}, "slurm.cores"),
        ({"n_workers": 0}, "local.n_workers"),
    ]:
        with pytest.raises(ConfigurationError) as err:
            validate_compute_config(bad)
        assert frag in str(err.value)


def test_pseudo_dir_defaults_to_the_debian_folder_where_it_exists(tmp_path):
    cfg = validate_oracle_config(SI_QE)
    expected = Path("/usr/share/espresso/pseudo") if Path("/usr/share/espresso/pseudo").is_dir() else None
    assert cfg.resolved_pseudo_dir() == expected
    assert validate_oracle_config({**SI_QE, "pseudo_dir": str(tmp_path)}).resolved_pseudo_dir() == tmp_path


# --- k-point meshes --------------------------------------------------------


def test_kpoint_mesh_follows_vasps_convention():
    si = bulk("Si", "diamond", a=5.43, cubic=True)  # |b_i| = 1/5.43 Å⁻¹
    # n = ceil(2π / (5.43 · 0.3)) = ceil(3.857) = 4
    assert kpoint_mesh(si, 0.3) == (4, 4, 4)
    assert kpoint_mesh(si, 2 * math.pi / 5.43 + 1e-6) == (1, 1, 1)
    assert kpoint_mesh(si, 100.0) == (1, 1, 1)
    # a strained cell gets the mesh of its own reciprocal lengths
    long = si.copy()
    long.set_cell(si.cell * [1.0, 1.0, 2.0], scale_atoms=True)
    assert kpoint_mesh(long, 0.3) == (4, 4, 2)


def test_kpoint_mesh_is_one_along_non_periodic_axes():
    slab = bulk("Cu", "fcc", a=3.6, cubic=True)
    slab.pbc = (True, True, False)
    assert kpoint_mesh(slab, 0.2)[2] == 1
    mol = molecule("H2O")
    mol.center(vacuum=5.0)
    assert kpoint_mesh(mol, 0.01) == (1, 1, 1)
    with pytest.raises(OracleError, match="kspacing"):
        kpoint_mesh(slab, 0.0)


@settings(max_examples=40, deadline=None)
@given(
    a=st.floats(2.0, 20.0),
    stretch=st.tuples(st.floats(0.7, 1.5), st.floats(0.7, 1.5), st.floats(0.7, 1.5)),
    kspacing=st.floats(0.05, 2.0),
)
def test_kpoint_mesh_spacing_never_exceeds_kspacing(a, stretch, kspacing):
    atoms = bulk("Cu", "fcc", a=a)
    atoms.set_cell(atoms.cell * np.array(stretch)[:, None], scale_atoms=True)
    mesh = kpoint_mesh(atoms, kspacing)
    lengths = 2 * math.pi * np.linalg.norm(atoms.cell.reciprocal(), axis=1)
    for n, length in zip(mesh, lengths, strict=True):
        assert n >= 1
        assert length / n <= kspacing + 1e-9  # fine enough
        assert n == 1 or length / (n - 1) > kspacing - 1e-9  # and the coarsest mesh that is


# --- healing ladder --------------------------------------------------------


def test_healing_ladder_rungs():
    base = ScfSettings(mixing_beta=0.7, electron_maxstep=100, degauss=0.01)
    assert healing_overrides(1, base) == {}
    assert healing_overrides(2, base) == {"electrons": {"mixing_beta": 0.3, "electron_maxstep": 300}}
    assert healing_overrides(3, base) == {
        "electrons": {"mixing_beta": 0.1, "electron_maxstep": 300, "mixing_mode": "local-TF"}
    }
    four = healing_overrides(4, base)
    assert four["electrons"]["diagonalization"] == "cg"
    assert four["system"] == {"degauss": pytest.approx(0.02)}
    assert healing_overrides(5, base)["system"] == {"degauss": pytest.approx(0.04)}
    with pytest.raises(ValueError):
        healing_overrides(0, base)


def test_healing_ladder_only_makes_settings_safer():
    careful = ScfSettings(mixing_beta=0.05, electron_maxstep=500, degauss=None)
    for attempt in range(2, 7):
        over = healing_overrides(attempt, careful)
        assert over["electrons"]["mixing_beta"] == 0.05
        assert over["electrons"]["electron_maxstep"] == 500
        assert "system" not in over  # fixed occupations: no smearing to widen


def test_ladder_starts_from_the_configured_settings_including_input_data():
    cfg = validate_oracle_config(
        {**SI_QE, "electron_maxstep": 1, "input_data": {"ELECTRONS": {"mixing_beta": 0.2}, "system": {"nspin": 2}}}
    )
    data = base_input_data(cfg)
    assert data["control"]["tprnfor"] is True and data["control"]["tstress"] is True
    assert data["electrons"]["mixing_beta"] == 0.2 and data["system"]["nspin"] == 2
    base = scf_settings(data)
    assert base == ScfSettings(
        mixing_beta=0.2, electron_maxstep=1, mixing_mode="plain", diagonalization="david", degauss=0.01
    )
    merged = merge_namelists(data, healing_overrides(2, base))
    assert merged["electrons"]["electron_maxstep"] == 300 and merged["electrons"]["mixing_beta"] == 0.2
    fixed = validate_oracle_config({**SI_QE, "occupations": "fixed"})
    assert "degauss" not in base_input_data(fixed)["system"] and scf_settings(base_input_data(fixed)).degauss is None


# --- pw.x output parsing (canned outputs of real pw.x 6.7 runs) -------------


def test_parse_converged_output():
    status = parse_pw_output((DATA / "qe_si2_converged.pwo").read_text())
    assert status.converged is True and status.n_iterations == 7 and status.job_done
    assert status.version == "6.7MaX" and status.errors == []
    assert status.cpu_s == pytest.approx(1.26) and status.wall_s == pytest.approx(1.36)


@pytest.mark.parametrize(
    "text, seconds", [("2.29s", 2.29), ("1m 5.43s", 65.43), ("2h 3m", 7380.0), ("1h 0m 1.50s", 3601.5), ("", None)]
)
def test_parse_pw_durations(text, seconds):
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_parse_not_converged_output():
    text = (DATA / "qe_si2_not_converged.pwo").read_text()
    status = parse_pw_output(text)
    assert status.converged is False and status.n_iterations == 1
    assert "convergence NOT achieved after 1 iterations" in status.describe().replace("SCF convergence", "convergence")
    tail = pw_output_tail(text)
    assert "convergence NOT achieved" in tail and "init_run" not in tail  # the tail stops before the timing report


def test_parse_error_output():
    text = (DATA / "qe_missing_pseudo.pwo").read_text()
    status = parse_pw_output(text)
    assert status.converged is None and not status.job_done
    assert status.errors == ["Error in routine readpp (1): file /usr/share/espresso/pseudo/Missing.UPF not found"]
    assert "Missing.UPF not found" in status.describe()
    tail = pw_output_tail(text)
    assert "Missing.UPF not found" in tail and set(tail.splitlines()[-1].strip()) == {"%"}  # ends with the error block


def test_parse_truncated_and_empty_output():
    text = (DATA / "qe_si2_converged.pwo").read_text()
    cut = "\n".join(text.splitlines()[:150])  # killed in the middle of the SCF
    status = parse_pw_output(cut)
    assert status.converged is None and not status.job_done
    assert "stopped before the end" in status.describe()
    assert parse_pw_output("") == parse_pw_output("\n\n")
    assert output_tail("a\n\n b\nc\n", 2) == " b\nc"


# --- EMT -------------------------------------------------------------------


def test_emt_labels_equal_a_direct_emt_call(cu_fcc):
    atoms = cu_fcc.repeat(2)
    atoms.rattle(0.05, seed=3)
    before = atoms.positions.copy()
    result = oracle_from({"type": "emt"}).label(atoms, None)
    ref = atoms.copy()
    ref.calc = EMT()
    assert abs(result.energy - ref.get_potential_energy()) < 1e-10
    assert np.abs(result.forces - ref.get_forces()).max() < 1e-10
    assert np.abs(result.stress - ref.get_stress(voigt=True)).max() < 1e-10
    assert result.forces.shape == (len(atoms), 3) and result.stress.shape == (6,)
    assert atoms.calc is None and np.array_equal(atoms.positions, before)  # the input is not touched
    assert result.wall_time_s > 0 and "EMT" in result.command


def test_emt_on_a_non_periodic_cluster_has_no_stress():
    cluster = Atoms("Cu3", positions=[[0, 0, 0], [2.5, 0, 0], [0, 2.5, 0]])
    result = make_oracle(None).label(cluster)
    assert result.stress is None and result.forces.shape == (3, 3)


def test_emt_names_elements_it_does_not_cover(si_diamond):
    with pytest.raises(LabelFailed, match="EMT has no parameters for Si"):
        oracle_from({"type": "emt"}).label(si_diamond)


def test_oracles_pickle_with_their_config():
    for cfg in (
        {"type": "emt"},
        SI_QE,
        {"type": "gpaw"},
        {"type": "ase", "calculator": "ase.calculators.lj.LennardJones"},
    ):
        oracle = oracle_from(cfg)
        again = pickle.loads(pickle.dumps(oracle))
        assert type(again) is type(oracle) and again.config == oracle.config
    assert isinstance(oracle_from({"type": "emt"}), EMTOracle) and isinstance(oracle_from(SI_QE), EspressoOracle)
    oracle = make_oracle(None)
    assert make_oracle(oracle) is oracle
    with pytest.raises(
        ConfigurationError, match=r"make_oracle takes a configuration model .*not a dict.*validate_config"
    ):
        make_oracle({"type": "emt"})  # mappings are validated at the door, not inside


# --- plausibility ----------------------------------------------------------


def _result(energy=-1.0, forces=None, stress=None):
    return LabelResult(energy=energy, forces=np.zeros((2, 3)) if forces is None else forces, stress=stress, command="x")


@pytest.mark.parametrize(
    "result, fragment",
    [
        (_result(energy=float("nan")), "energy is nan"),
        (_result(forces=np.full((2, 3), np.inf)), "non-finite forces"),
        (_result(forces=np.zeros((3, 3))), "shape"),
        (_result(forces=np.array([[0, 0, 150.0], [0, 0, -150.0]])), "exceeds max_force=100"),
        (_result(energy=-1e6), "eV/atom exceeds"),
        (_result(stress=np.array([0, 0, 0, 0, 0, np.nan])), "stress"),
    ],
)
def test_implausible_results_are_refused(result, fragment):
    with pytest.raises(LabelFailed, match="implausible") as err:
        check_plausible(result, 2, max_force=100.0, max_abs_energy_per_atom=1e5)
    assert fragment in str(err.value)


def test_plausible_result_passes():
    check_plausible(_result(stress=np.zeros(6)), 2, max_force=100.0, max_abs_energy_per_atom=1e5)


def test_label_one_turns_an_implausible_result_into_a_failure_record(cu_fcc):
    squeezed = cu_fcc.copy()
    squeezed.positions[1] = squeezed.positions[0] + [0.3, 0, 0]  # atoms 0.3 Å apart: huge EMT forces
    outcome = label_one(oracle_from({"type": "emt", "max_force": 50.0}), squeezed, None, 7)
    assert not outcome.ok and outcome.structure_id == 7
    assert "exceeds max_force=50" in outcome.reason


def test_label_one_never_raises(tmp_path, si_diamond):
    oracle = oracle_from({"type": "ase", "calculator": "ase.calculators.emt.EMT"})  # EMT itself fails on Si
    outcome = label_one(oracle, si_diamond, str(tmp_path), 4)
    assert not outcome.ok and outcome.structure_id == 4
    assert outcome.reason == f"NotImplementedError: No EMT-potential for Si (in {tmp_path})"
    assert outcome.output_tail.splitlines()[-1] == "NotImplementedError: No EMT-potential for Si"  # the traceback's end


# --- generic ASE calculator ------------------------------------------------


def test_ase_oracle_matches_the_calculator_it_names(tmp_path):
    atoms = bulk("Ar", "fcc", a=5.26, cubic=True)
    atoms.rattle(0.02, seed=1)
    kwargs = {"sigma": 3.4, "epsilon": 0.0104, "rc": 8.0}
    oracle = oracle_from({"type": "ase", "calculator": "ase.calculators.lj:LennardJones", "kwargs": kwargs})
    assert isinstance(oracle, ASEOracle)
    result = oracle.label(atoms, tmp_path / "s1")
    ref = atoms.copy()
    ref.calc = LennardJones(**kwargs)
    assert abs(result.energy - ref.get_potential_energy()) < 1e-10
    assert np.abs(result.forces - ref.get_forces()).max() < 1e-10
    assert np.abs(result.stress - ref.get_stress()).max() < 1e-10
    assert result.command.startswith("ase.calculators.lj:LennardJones(sigma=3.4")


def test_ase_oracle_import_errors_name_the_path():
    for path, fragment in [
        ("no_such_pkg.Calc", "cannot import the calculator module 'no_such_pkg'"),
        ("ase.calculators.lj.NoSuch", "has no 'NoSuch'"),
    ]:
        with pytest.raises(OracleError, match=fragment):
            oracle_from({"type": "ase", "calculator": path}).label(bulk("Cu"))


def test_ase_oracle_points_file_calculators_at_the_structure_folder(tmp_path):
    log = tmp_path / "calls.log"
    oracle = oracle_from(
        {
            "type": "ase",
            "calculator": "mlip_autopipec.oracle.testing.SlowEMT",
            "kwargs": {"delay_s": 0.0, "log_file": str(log)},
        }
    )
    oracle.label(bulk("Cu", cubic=True), tmp_path / "structure_9")
    start, done = log.read_text().splitlines()
    assert start.split()[0] == "start" and done.split()[0] == "done"
    assert done.split()[2] == str(tmp_path / "structure_9") and (tmp_path / "structure_9").is_dir()


# --- GPAW: its parameters and a missing install (real runs: tests/integration/test_oracle_gpaw.py) ---


def test_gpaw_parameters_use_plane_waves_and_the_shared_kpoint_density(tmp_path):
    cfg = validate_oracle_config(
        {"type": "gpaw", "ecut": 350, "kspacing": 0.3, "xc": "PBE", "parameters": {"spinpol": True}}
    )
    si = bulk("Si", "diamond", a=5.43, cubic=True)
    params = gpaw_parameters(cfg, si, tmp_path)
    assert params["mode"] == {"name": "pw", "ecut": 350.0}
    assert params["kpts"] == {"size": (4, 4, 4), "gamma": True}
    assert params["kpts"]["size"] == kpoint_mesh(si, 0.3)
    assert params["xc"] == "PBE" and params["spinpol"] is True
    assert params["occupations"] == {"name": "fermi-dirac", "width": 0.1}
    assert params["txt"] == str(tmp_path / "gpaw.txt")


def test_gpaw_missing_is_an_oracle_error_with_install_advice(si_diamond, monkeypatch):
    monkeypatch.setitem(sys.modules, "gpaw", None)  # GPAW is installed here: make its import fail as without it
    oracle = oracle_from({"type": "gpaw"})
    assert isinstance(oracle, GPAWOracle)
    with pytest.raises(OracleError, match=r"GPAW is not installed.*scripts/setup.sh.*\.\[gpaw\]"):
        oracle.label(si_diamond)


def test_an_oracle_labels_the_raw_forces_and_leaves_the_callers_constraints_alone():
    """A relaxation on the driver hands the oracle Atoms with FixAtoms/FixSymmetry: the label is the raw forces
    (the caller's Atoms applies its constraints), and the caller's constraints stay as they were."""
    from ase.constraints import FixAtoms

    free = bulk("Cu", "fcc", a=3.6, cubic=True)
    free.rattle(0.1, seed=1)
    fixed = free.copy()
    fixed.set_constraint(FixAtoms([0]))
    result = EMTOracle(EMTOracleConfig()).label(fixed)
    assert np.abs(result.forces[0]).max() > 0.1
    np.testing.assert_allclose(result.forces, EMTOracle(EMTOracleConfig()).label(free).forces)
    assert len(fixed.constraints) == 1
