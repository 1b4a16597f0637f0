"""The seed structure: from a file ASE can read, or from ase.build.bulk."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.io import write

from mlip_autopipec.config import StructureConfig
from mlip_autopipec.exceptions import StructureError
from mlip_autopipec.generator import build_seed


def test_bulk_with_repeat():
    atoms = build_seed(StructureConfig(element="Cu", lattice="fcc", a=3.6, cubic=True, repeat=(2, 1, 1)))
    assert len(atoms) == 8 and atoms.cell[0][0] == pytest.approx(7.2)


def test_hcp_with_c():
    atoms = build_seed(StructureConfig(element="Mg", lattice="hcp", a=3.2, c=5.2))
    assert atoms.cell.cellpar()[2] == pytest.approx(5.2)


def test_from_a_file(tmp_path):
    ref = bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    write(tmp_path / "nacl.cif", ref)
    atoms = build_seed(StructureConfig(file=tmp_path / "nacl.cif"))
    assert sorted(atoms.get_chemical_symbols()) == sorted(ref.get_chemical_symbols())
    assert np.allclose(atoms.cell.cellpar(), ref.cell.cellpar())


def test_missing_or_unreadable_file(tmp_path):
    with pytest.raises(StructureError, match="not found"):
        build_seed(StructureConfig(file=tmp_path / "nope.cif"))
    bad = tmp_path / "bad.cif"
    bad.write_text("this is not a crystal\n")
    with pytest.raises(StructureError, match="cannot read"):
        build_seed(StructureConfig(file=bad))


def test_bad_bulk_spec_and_both_sources(tmp_path):
    with pytest.raises(StructureError, match="ase.build.bulk"):
        build_seed(StructureConfig(element="Xx"))
    with pytest.raises(ValueError, match="exactly one"):
        StructureConfig(element="Cu", file=tmp_path / "a.cif")
