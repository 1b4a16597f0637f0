"""magnetic_moments of the pw.x and GPAW oracles: the config's checks, pw.x's units and output, the stored moments."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase.build import bulk
from ase.io import read

from mlip_autopipec.config import OracleConfig, validate_config
from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.database import DatabaseManager, StructureMetadata
from mlip_autopipec.exceptions import ConfigurationError, OracleError, StructureError
from mlip_autopipec.oracle import LabelFailed, make_oracle
from mlip_autopipec.oracle.gpaw import initial_moments
from mlip_autopipec.oracle.qe_magnetism import parse_magnetic_moments, upf_valence
from mlip_autopipec.pipeline.checks import check_oracle

ROOT = Path(__file__).resolve().parents[2]

UPF2 = '<UPF version="2.0.1">\n  <PP_HEADER\n    element="Ni"\n    z_valence="1.000000000000e1"\n  />\n'
UPF1 = "<PP_HEADER>\n   0        Version Number\n  Fe        Element\n    16.00000000000      Z valence\n"

# pw.x 6.7 (Debian 12) writes a constraint column last; ASE reads that column as the moment
PW6 = """
     Magnetic moment per site:
     atom:    1    charge:    8.7394    magn:    0.7071    constr:    0.0000
     atom:    2    charge:    8.7394    magn:   -0.7000    constr:    0.0000

     total magnetization       =     0.65 Bohr mag/cell
     absolute magnetization    =     0.79 Bohr mag/cell
"""
PW7 = """
     Magnetic moment per site  (integrated on atomic sphere of radius R)
     atom    1 (R=0.190)  charge= 14.4370  magn=  2.2866
     atom    2 (R=0.190)  charge= 14.4370  magn= -2.2866

     total magnetization       =     0.00 Bohr mag/cell
"""


def espresso(pseudo_dir: Path, **over) -> OracleConfig:
    data = {"type": "espresso", "pseudopotentials": {"Ni": "Ni.UPF", "Fe": "Fe.UPF"}, "pseudo_dir": str(pseudo_dir)}
    return validate_config(OracleConfig, {**data, **over})


@pytest.fixture
def pseudo_dir(tmp_path):
    (tmp_path / "Ni.UPF").write_text(UPF2)
    (tmp_path / "Fe.UPF").write_text(UPF1)
    return tmp_path


def test_pw_output_moments_are_read_per_site_and_for_the_cell_in_both_formats():
    six = parse_magnetic_moments("SCF\n" + PW6 + PW6.replace("0.7071", "0.7100"), 2)  # the last block counts
    assert six.magmoms.tolist() == [0.71, -0.7] and six.magmom == 0.65
    seven = parse_magnetic_moments(PW7, 2)
    assert seven.magmoms.tolist() == [2.2866, -2.2866] and seven.magmom == 0.0
    unpolarised = parse_magnetic_moments("     !    total energy = -10.0 Ry\n", 2)
    assert unpolarised.magmoms is None and unpolarised.magmom is None
    assert parse_magnetic_moments(PW6, 3).magmoms is None  # a block that does not cover every atom


def test_upf_valence_from_either_header_format(pseudo_dir, tmp_path):
    assert upf_valence(pseudo_dir / "Ni.UPF") == 10.0 and upf_valence(pseudo_dir / "Fe.UPF") == 16.0
    (tmp_path / "bad.UPF").write_text("<PP_HEADER>\n</PP_HEADER>\n")
    with pytest.raises(OracleError, match="no valence charge"):
        upf_valence(tmp_path / "bad.UPF")
    with pytest.raises(OracleError, match="cannot read"):
        upf_valence(tmp_path / "absent.UPF")


def test_pw_starting_magnetization_is_the_moment_over_each_species_valence(pseudo_dir):
    oracle = make_oracle(espresso(pseudo_dir, magnetic_moments={"Ni": 0.6, "Fe": -2.4}))
    atoms = bulk("Ni", "fcc", a=3.52, cubic=True)
    atoms.symbols[1] = "Fe"
    assert oracle.initial_moments(atoms).tolist() == pytest.approx([0.06, -0.15, 0.06, 0.06])
    assert make_oracle(espresso(pseudo_dir)).initial_moments(atoms) is None  # no moments: unpolarised, as before
    # ASE's writer then makes the species and pw.x's namelist entries
    atoms.set_initial_magnetic_moments(oracle.initial_moments(atoms))
    (pseudo_dir / "run").mkdir()
    calc = oracle.calculator(atoms, pseudo_dir / "run", {})
    calc.template.write_input(calc.profile, pseudo_dir / "run", atoms, calc.parameters, ["energy"])
    pwi = (pseudo_dir / "run" / "espresso.pwi").read_text()
    assert re.search(r"nspin\s*=\s*2", pwi)
    written = sorted(float(v) for v in re.findall(r"starting_magnetization\(\d\)\s*=\s*(\S+)", pwi))
    assert written == pytest.approx([-0.15, 0.06])


def test_a_moment_beyond_the_valence_electrons_is_refused(pseudo_dir):
    oracle = make_oracle(espresso(pseudo_dir, magnetic_moments={"Ni": 12.0}))
    with pytest.raises(LabelFailed, match=r"magnetic_moments.Ni = 12.0 μB exceeds the 10 valence electrons of Ni.UPF"):
        oracle.initial_moments(bulk("Ni", "fcc", a=3.52))


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"magnetic_moments": {"Xx": 1.0}}, r"not chemical symbols: \['Xx'\]"),
        ({"magnetic_moments": {"Co": 1.0}}, r"magnetic_moments: \['Co'\] have no pseudopotential"),
        ({"magnetic_moments": {"Ni": float("nan")}}, r"not finite"),
        (
            {"magnetic_moments": {"Ni": 0.6}, "input_data": {"system": {"starting_magnetization(1)": 0.5}}},
            r"give starting magnetisations as magnetic_moments",
        ),
        ({"magnetic_moments": {"Ni": 0.6}, "input_data": {"SYSTEM": {"nspin": 1}}}, r"nspin is 1"),
    ],
)
def test_espresso_magnetic_moments_are_checked(pseudo_dir, over, message):
    with pytest.raises(ConfigurationError, match=message):
        espresso(pseudo_dir, **over)


def test_gpaw_moments_are_the_atoms_initial_moments_in_bohr_magnetons():
    cfg = validate_config(OracleConfig, {"type": "gpaw", "magnetic_moments": {"Ni": 0.6}})
    atoms = bulk("NiO", "rocksalt", a=4.17)
    assert initial_moments(cfg, atoms).tolist() == [0.6, 0.0]
    assert initial_moments(validate_config(OracleConfig, {"type": "gpaw"}), atoms) is None
    with pytest.raises(ConfigurationError, match=r"not chemical symbols"):
        validate_config(OracleConfig, {"type": "gpaw", "magnetic_moments": {"nickel": 0.6}})


@pytest.mark.parametrize("oracle", [{"type": "gpaw"}, {"type": "espresso", "pseudopotentials": {"Si": "Si.UPF"}}])
def test_no_moments_leave_the_dumped_oracle_section_as_before_the_field(oracle):
    """A database records the fingerprint of the dumped oracle section (its origin): without moments the dump
    has no magnetic_moments key, so a pw.x or GPAW run made before the field is not refused as another config."""
    plain = validate_config(OracleConfig, oracle)
    assert "magnetic_moments" not in plain.model_dump(mode="json")
    magnetic = validate_config(OracleConfig, {**oracle, "magnetic_moments": {"Si": 0.5}})
    assert magnetic.model_dump(mode="json")["magnetic_moments"] == {"Si": 0.5}
    assert validate_config(OracleConfig, magnetic.model_dump(mode="json")) == magnetic  # state.json reads back


@pytest.mark.parametrize(
    ("oracle", "message"),
    [
        ({"type": "gpaw", "magnetic_moments": {"Ni": 0.6}}, r"^oracle.magnetic_moments: Ni is not an element"),
        (
            {"type": "gpaw", "magnetic_moments": {"Si": 0.0, "Fe": 2.2, "Ni": 0.6}},
            r"^oracle.magnetic_moments: Fe, Ni are not elements of the campaign \(its elements: Si\)$",
        ),
    ],
)
def test_moments_of_elements_outside_the_campaign_are_refused_before_any_work(oracle, message):
    data = yaml.safe_load((ROOT / "examples" / "si_qe.yaml").read_text())
    data["oracle"] = oracle
    cfg = validate_config(PipelineConfig, data)
    with pytest.raises(ConfigurationError, match=message):
        check_oracle(cfg, ["Si"])


def test_stored_moments_come_back_with_the_row_and_in_the_extxyz_export(tmp_path):
    db = DatabaseManager(tmp_path / "m.db")
    ni = bulk("Ni", "fcc", a=3.52).repeat((2, 1, 1))
    (sid,) = db.add_structures([ni], StructureMetadata(source="test"))
    forces = np.zeros((2, 3))
    db.set_labels(sid, -10.0, forces, magmoms=[0.7, 0.6], magmom=1.3)
    atoms = db.record(sid).atoms
    assert atoms.get_magnetic_moments().tolist() == [0.7, 0.6] and atoms.get_magnetic_moment() == 1.3
    assert db.save_dataset(tmp_path / "all.xyz") == 1
    (exported,) = read(tmp_path / "all.xyz", ":")
    assert exported.get_magnetic_moments().tolist() == [0.7, 0.6]

    db.set_labels(sid, -10.1, forces)  # relabelled without moments: the old ones go
    assert "magmoms" not in db.record(sid).atoms.calc.results and "magmom" not in db.record(sid).atoms.calc.results
    with pytest.raises(StructureError, match=r"magnetic moments must be 2 finite numbers"):
        db.set_labels(sid, -10.0, forces, magmoms=[0.7])
    with pytest.raises(StructureError, match=r"the cell's magnetic moment must be a finite number"):
        db.set_labels(sid, -10.0, forces, magmom=float("inf"))
