"""Seeds from structure files: storable, and refused with a sentence naming the file when they are not ordered
crystals (partial occupancies, duplicated sites whatever the format, too many atoms)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.io import write

from mlip_autopipec.config import GeneratorConfig, StructureConfig
from mlip_autopipec.database import DatabaseManager, StructureMetadata
from mlip_autopipec.exceptions import StructureError
from mlip_autopipec.generator import InitialExplorer
from mlip_autopipec.generator.seed import build_seed, check_seed, read_structure_file

EXAMPLE_CIF = Path(__file__).resolve().parents[2] / "examples" / "cuau" / "Cu3Au_L12.cif"

CIF_HEAD = """data_test
_symmetry_space_group_name_H-M   'P m -3 m'
_symmetry_Int_Tables_number      221
_cell_length_a   3.75
_cell_length_b   3.75
_cell_length_c   3.75
_cell_angle_alpha   90
_cell_angle_beta    90
_cell_angle_gamma   90
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
"""


def cif(tmp_path: Path, sites: str, name: str = "s.cif") -> Path:
    path = tmp_path / name
    path.write_text(CIF_HEAD + sites)
    return path


def test_shipped_cu3au_cif_reads_as_l12():
    atoms = read_structure_file(EXAMPLE_CIF)
    assert len(atoms) == 4 and atoms.get_chemical_formula() == "AuCu3"
    assert atoms.cell.cellpar() == pytest.approx([3.75, 3.75, 3.75, 90, 90, 90])
    au = atoms.positions[atoms.numbers == 79]
    assert np.allclose(au, 0.0)  # Au on the corner, Cu on the face centres
    assert atoms.info["spacegroup_number"] == 221
    import spglib

    assert spglib.get_spacegroup((atoms.cell[:], atoms.get_scaled_positions(), atoms.numbers)) == "Pm-3m (221)"


def test_a_cif_seed_is_storable_in_the_database(tmp_path):
    """The bug of issue 12: atoms.info['spacegroup'] (a Spacegroup object) could not be stored at generate."""
    seed = build_seed(StructureConfig(file=EXAMPLE_CIF, repeat=(2, 2, 2)))
    assert len(seed) == 32 and set(seed.arrays) == {"numbers", "positions"}
    pool = InitialExplorer(GeneratorConfig(seed=3)).generate(seed, 5)
    with DatabaseManager(tmp_path / "db.db") as db:
        ids = db.add_structures(pool, StructureMetadata(source="initial_random"))
        _, meta = db.get(ids[0])
        assert meta.provenance["spacegroup_number"] == 221 and meta.provenance["seed_file"] == "Cu3Au_L12.cif"


def test_duplicated_cif_site_is_reported_not_merged(tmp_path):
    # Cu2 is a symmetry image of Cu1: ASE merges it silently
    path = cif(tmp_path, "Au1 Au 0 0 0 1\nCu1 Cu 0 0.5 0.5 1\nCu2 Cu 0.5 0 0.5 1\n", "dup.cif")
    with pytest.raises(StructureError, match=r"dup\.cif.*3 sites.*duplicated"):
        read_structure_file(path)
    path = cif(tmp_path, "Au1 Au 0 0 0 1\nCu1 Cu 0 0.5 0.5 1\nCu1b Cu 0 0.5 0.5 1\n", "dup2.cif")
    with pytest.raises(StructureError, match="dup2.cif"):
        read_structure_file(path)


def test_partial_occupancy_is_reported(tmp_path):
    path = cif(tmp_path, "Au1 Au 0 0 0 0.5\nCu3 Cu 0 0 0 0.5\nCu1 Cu 0 0.5 0.5 1.0\n", "mixed.cif")
    with pytest.raises(StructureError, match=r"mixed\.cif: partially occupied site\(s\) Au1 \(0\.5\), Cu3 \(0\.5\)"):
        read_structure_file(path)


def test_overlapping_atoms_are_reported(tmp_path):
    path = cif(tmp_path, "Au1 Au 0 0 0 1\nAu2 Au 0.01 0 0 1\nCu1 Cu 0 0.5 0.5 1\n", "close.cif")
    with pytest.raises(StructureError, match=r"close\.cif: atoms \d+ \(Au\) and \d+ \(Au\) are 0\.0\d+ Å apart"):
        read_structure_file(path)
    poscar = tmp_path / "POSCAR"
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms += Atoms("Cu", positions=[atoms.positions[1] + [0.2, 0, 0]])
    write(poscar, atoms, format="vasp")
    with pytest.raises(StructureError, match="POSCAR"):
        check_seed(StructureConfig(file=poscar))


def test_poscar_and_extxyz_seeds_drop_what_cannot_be_stored(tmp_path):
    ref = bulk("Ni", "fcc", a=3.52, cubic=True)
    ref.set_chemical_symbols(["Ni", "Pd", "Ni", "Pd"])
    write(tmp_path / "POSCAR", ref, format="vasp")
    atoms = read_structure_file(tmp_path / "POSCAR")
    assert atoms.get_chemical_formula() == ref.get_chemical_formula()
    ref.info["note"] = "from a paper"
    ref.info["weird"] = object()  # no file keeps this (ASE skips it), but a caller's Atoms may hold it
    ref.arrays["spin"] = np.zeros(4)
    write(tmp_path / "s.extxyz", ref, format="extxyz")
    atoms = read_structure_file(tmp_path / "s.extxyz")
    assert atoms.info["note"] == "from a paper" and "spin" not in atoms.arrays
    from mlip_autopipec.generator.seed import storable

    clean = storable(ref)
    assert "weird" not in clean.info and "spin" not in clean.arrays and clean.info["note"] == "from a paper"


def test_check_seed_describes_the_seed():
    line = check_seed(StructureConfig(file=EXAMPLE_CIF))
    assert "AuCu3" in line and "4 atoms" in line and "Cu3Au_L12.cif" in line


P1_HEAD = """data_p1
_symmetry_space_group_name_H-M   'P 1'
_symmetry_Int_Tables_number      1
_cell_length_a   3.61
_cell_length_b   3.61
_cell_length_c   3.61
_cell_angle_alpha   90
_cell_angle_beta    90
_cell_angle_gamma   90
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
Cu1 Cu 0 0 0
Cu2 Cu 0 0.5 0.5
Cu3 Cu 0.5 0 0.5
Cu4 Cu 0.5 0.5 0
"""


def test_a_p1_cif_listing_one_atom_twice_without_occupancies_is_refused(tmp_path):
    """ASE merges the fifth atom and sets no `occupancy` info without the column: the seed was silently Cu4."""
    path = tmp_path / "p1.cif"
    path.write_text(P1_HEAD + "Cu5 Cu 0.5 0.5 0\n")
    with pytest.raises(StructureError) as err:
        read_structure_file(path)
    message = str(err.value)
    assert message.startswith(f"seed file {path}: its _atom_site_ loop lists 5 sites that make 5 atoms")
    assert "sites Cu4 and Cu5 are 0.000 Å apart" in message and "it read only 4 atoms" in message
    path.write_text(P1_HEAD)
    assert len(read_structure_file(path)) == 4  # the same file without the duplicate


def test_a_symmetry_image_listed_as_a_site_without_occupancies_is_refused(tmp_path):
    """Pm-3m: (0.5, 0, 0.5) is an image of (0, 0.5, 0.5); no occupancy column."""
    head = CIF_HEAD.replace("_atom_site_occupancy\n", "")
    path = tmp_path / "image.cif"
    path.write_text(head + "Au1 Au 0 0 0\nCu1 Cu 0 0.5 0.5\nCu2 Cu 0.5 0 0.5\n")
    with pytest.raises(StructureError, match=r"lists 3 sites that make 7 atoms.*Cu1 and Cu2.*read only 4 atoms"):
        read_structure_file(path)


def test_cif_listed_atoms_expands_every_site_and_merges_nothing():
    from ase.io.cif import parse_cif

    from mlip_autopipec.generator.seed import cif_listed_atoms

    block = next(b for b in parse_cif(str(EXAMPLE_CIF)) if b.has_structure())
    listed, names = cif_listed_atoms(block)
    assert len(listed) == len(read_structure_file(EXAMPLE_CIF)) == 4
    assert names == ["Au1", "Cu1"] and [names[k] for k in listed.arrays["cif_site"]] == ["Au1", "Cu1", "Cu1", "Cu1"]


@pytest.mark.parametrize("fmt, name", [("vasp", "POSCAR"), ("extxyz", "dup.extxyz")])
def test_a_duplicated_atom_in_poscar_or_extxyz_is_refused_by_distance(tmp_path, fmt, name):
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    atoms += atoms[2:3]  # the same atom again, exactly on top of itself
    write(tmp_path / name, atoms, format=fmt)
    with pytest.raises(StructureError, match=rf"{name}: atoms 2 \(Cu\) and 4 \(Cu\) are 0\.000 Å apart"):
        read_structure_file(tmp_path / name)


def test_a_seed_name_keeps_its_unicode_letters(tmp_path):
    from mlip_autopipec.config.schemas.structure import SeedConfig

    assert SeedConfig(file=tmp_path / "séed ü.cif").name == "séed_ü"
    assert SeedConfig(file=tmp_path / "Ni–Pd (2).cif").name == "Ni_Pd__2_"  # an en dash and brackets are no letters
    assert SeedConfig(name="Kupfer_α", element="Cu").name == "Kupfer_α"
    with pytest.raises(ValueError, match="seed name 'a b'"):
        SeedConfig(name="a b", element="Cu")
