"""Pure helpers of the MD exploration: supercells, the distance guard, rattled copies."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, fcc111, molecule
from ase.calculators.emt import EMT

from mlip_autopipec.explore.md import bare_copy, closest_pair, rattled_copies, supercell_for_md


def test_supercell_grows_along_shortest_vectors(cu_fcc):
    big = supercell_for_md(cu_fcc, 32)
    assert len(big) == 32
    np.testing.assert_allclose(big.cell.lengths(), 2 * cu_fcc.cell.lengths())
    prim = bulk("Cu", "fcc", a=3.61)  # one atom
    assert len(supercell_for_md(prim, 27)) == 27
    assert len(supercell_for_md(prim, 28)) >= 28


def test_supercell_leaves_large_and_nonperiodic_directions(cu_fcc):
    big = cu_fcc.repeat(3)
    assert len(supercell_for_md(big, 32)) == len(big)
    slab = fcc111("Cu", size=(1, 1, 3), vacuum=6.0)
    grown = supercell_for_md(slab, 30)
    assert len(grown) >= 30
    assert grown.cell.lengths()[2] == pytest.approx(slab.cell.lengths()[2])
    mol = molecule("H2O")
    assert len(supercell_for_md(mol, 30)) == 3


def test_closest_pair_finds_close_atoms_across_the_boundary(cu_fcc):
    assert closest_pair(cu_fcc, 0.5) is None
    atoms = Atoms(
        "Cu2", positions=[[0.1, 0, 0], [3.3, 0, 0]], cell=[3.5, 10, 10], pbc=True
    )  # 0.3 Å through the boundary
    pair = closest_pair(atoms, 0.5)
    assert pair is not None
    assert pair[2] == pytest.approx(0.3)
    atoms.pbc = False  # 3.2 Å apart without the periodic image
    assert closest_pair(atoms, 0.5) is None


def test_rattled_copies_are_seeded_bare_and_rattled(cu_fcc):
    atoms = cu_fcc.repeat(3)
    atoms.calc = EMT()
    atoms.info["x"] = 1
    a = rattled_copies(atoms, 3, 0.05, np.random.default_rng(7), 0.5)
    b = rattled_copies(atoms, 3, 0.05, np.random.default_rng(7), 0.5)
    assert len(a) == 3
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.positions, y.positions)
        assert x.calc is None and x.info == {}
        disp = x.positions - atoms.positions
        assert 0.03 < disp.std() < 0.07
    assert not np.allclose(a[0].positions, a[1].positions)


def test_rattled_copies_respect_the_distance_guard():
    crowded = Atoms("Cu2", positions=[[0, 0, 0], [0.5, 0, 0]], cell=[10, 10, 10], pbc=True)
    assert rattled_copies(crowded, 2, 0.01, np.random.default_rng(0), 0.5, max_draws=5) == []


def test_bare_copy_drops_calculator_momenta_and_info(cu_fcc):
    cu_fcc.calc = EMT()
    cu_fcc.set_momenta(np.ones((len(cu_fcc), 3)))
    cu_fcc.info["source"] = "x"
    out = bare_copy(cu_fcc)
    assert out.calc is None and out.info == {}
    assert not out.has("momenta")
    np.testing.assert_array_equal(out.positions, cu_fcc.positions)
    out.positions[0, 0] += 1.0
    assert out.positions[0, 0] != cu_fcc.positions[0, 0]
