"""The database's invariants: each bad structure or label is refused with a message naming it and the rule,
and nothing of the call is stored."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from mlip_autopipec.database import DatabaseManager
from mlip_autopipec.database.validation import attached_results, check_results, check_structure
from mlip_autopipec.exceptions import DatabaseError, StructureError

META = {"source": "initial_random", "generation": 0}


@pytest.fixture
def db(tmp_path):
    with DatabaseManager(tmp_path / "v.db") as manager:
        yield manager


def good(seed: int = 0) -> Atoms:
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.rattle(0.05, seed=seed)
    return atoms


def nan_position():
    a = good()
    a.positions[2, 1] = np.nan
    return a


def inf_position():
    a = good()
    a.positions[0, 0] = np.inf
    return a


def nan_cell():
    a = good()
    a.cell[1, 1] = np.nan
    return a


def flat_cell():
    a = good()
    a.cell[2] = a.cell[0]  # c parallel to a: zero volume
    return a


def zero_cell_periodic():
    return Atoms("Cu2", positions=[[0, 0, 0], [1.5, 1.5, 1.5]], pbc=True)


def dummy_atom():
    a = good()
    a.numbers[1] = 0
    return a


def too_heavy():
    a = good()
    a.numbers[1] = 119
    return a


def no_atoms():
    return Atoms(cell=np.eye(3) * 4, pbc=True)


@pytest.mark.parametrize(
    "make, words",
    [
        (nan_position, "non-finite positions"),
        (inf_position, "non-finite positions"),
        (nan_cell, "cell has non-finite"),
        (flat_cell, "span zero volume"),
        (zero_cell_periodic, "span zero volume"),
        (dummy_atom, "invalid atomic numbers [0]"),
        (too_heavy, "invalid atomic numbers [119]"),
        (no_atoms, "no atoms"),
    ],
)
def test_invalid_structure_rejected_and_nothing_stored(db, make, words):
    bad = make()
    with pytest.raises(StructureError) as err:
        db.add_structures([good(1), bad, good(2)], META)
    msg = str(err.value)
    assert words in msg
    assert "structure 1 of the batch" in msg  # names which structure
    assert db.count() == 0  # all or nothing: the good ones were not stored either
    with pytest.raises(StructureError):
        db.add_structure(bad, META)
    assert db.count() == 0


def test_not_an_atoms_object(db):
    with pytest.raises(StructureError, match="expected an ase.Atoms, got str"):
        db.add_structure("Cu", META)


def test_slab_with_zero_vacuum_vector_is_fine(db):
    """Only periodic axes need a cell: a slab periodic in a and b with c = 0 is valid."""
    slab = Atoms(
        "Cu2",
        positions=[[0, 0, 0], [1.8, 1.8, 1.0]],
        cell=[[3.6, 0, 0], [0, 3.6, 0], [0, 0, 0]],
        pbc=[True, True, False],
    )
    check_structure(slab, "slab")
    molecule = Atoms("CO", positions=[[0, 0, 0], [0, 0, 1.13]])  # no periodic axis, no cell
    check_structure(molecule, "molecule")
    assert db.add_structures([slab, molecule], META) == [1, 2]


def test_slab_with_degenerate_periodic_vectors_rejected():
    slab = Atoms("Cu", cell=[[3.6, 0, 0], [7.2, 0, 0], [0, 0, 10]], pbc=[True, True, False])
    with pytest.raises(StructureError, match=r"periodic cell vectors \(ab\) span zero area"):
        check_structure(slab, "slab")


def labelled(energy=-1.0, forces=None, stress=None, n=4):
    a = good()
    a.calc = SinglePointCalculator(
        a, energy=energy, forces=np.zeros((n, 3)) if forces is None else forces, stress=stress
    )
    return a


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(energy=np.nan), "energy is not finite"),
        (dict(energy=np.inf), "energy is not finite"),
        (dict(forces=np.full((4, 3), np.nan)), "non-finite forces"),
        (dict(forces=np.zeros((3, 3))), r"forces must have shape \(4, 3\), got \(3, 3\)"),
        (dict(forces=np.zeros((4, 2))), r"forces must have shape \(4, 3\)"),
        (dict(stress=np.zeros(5)), "6 \\(Voigt\\) or 3x3"),
        (dict(stress=np.array([0, 0, np.nan, 0, 0, 0])), "stress is not finite"),
    ],
)
def test_invalid_attached_results_rejected(db, kwargs, words):
    with pytest.raises(StructureError, match=words):
        db.add_structure(labelled(**kwargs), META)
    assert db.count() == 0


@pytest.mark.parametrize(
    "args, words",
    [
        ((np.nan, np.zeros((4, 3))), "energy is not finite"),
        ((1.0, np.zeros((5, 3))), r"shape \(4, 3\)"),
        ((1.0, np.ones((4, 3)) * np.inf), "non-finite forces"),
        ((1.0, np.zeros((4, 3)), np.zeros((2, 3))), "6 \\(Voigt\\) or 3x3"),
        ((1.0, np.zeros((4, 3)), np.eye(3) * np.nan), "stress is not finite"),
        (("one", np.zeros((4, 3))), "energy must be a real number"),
        ((np.array([1.0, 2.0]), np.zeros((4, 3))), "energy must be one number"),
        ((1.0, [["a", "b", "c"]] * 4), "forces are not a numeric array"),
    ],
)
def test_set_labels_rejects_invalid_labels_and_keeps_row_pending(db, args, words):
    sid = db.add_structure(good(), META)
    with pytest.raises(StructureError, match=f"structure id {sid}: .*{words}"):
        db.set_labels(sid, *args)
    assert db.status(sid) == "pending"
    atoms, _ = db.get(sid)
    assert atoms.calc is None


def test_stress_3x3_is_stored_as_voigt(db):
    sid = db.add_structure(good(), META)
    full = np.array([[1.0, 6.0, 5.0], [6.0, 2.0, 4.0], [5.0, 4.0, 3.0]])
    db.set_labels(sid, -3.0, np.zeros((4, 3)), stress=full)
    atoms, _ = db.get(sid)
    np.testing.assert_allclose(atoms.get_stress(), [1, 2, 3, 4, 5, 6])


def test_check_results_voigt_order_matches_ase():
    from ase.stress import full_3x3_to_voigt_6_stress

    rng = np.random.default_rng(3)
    m = rng.normal(size=(3, 3))
    m = m + m.T
    _, _, s = check_results(0.0, np.zeros((1, 3)), m, 1, "x")
    np.testing.assert_allclose(s, full_3x3_to_voigt_6_stress(m))


def test_energy_without_forces_refused(db):
    a = good()
    a.calc = SinglePointCalculator(a, energy=-1.0)
    with pytest.raises(StructureError, match="results but no forces"):
        db.add_structure(a, META)


def test_stale_results_are_ignored_structure_is_pending(db):
    """Results computed before the atoms moved do not belong to the stored positions."""
    a = good()
    a.calc = EMT()
    a.get_forces()
    a.positions[0] += 0.1
    assert attached_results(a, "x") is None
    sid = db.add_structure(a, META)
    assert db.status(sid) == "pending"


def test_real_calculator_results_are_taken(db):
    a = good()
    a.calc = EMT()
    e, f, s = a.get_potential_energy(), a.get_forces(), a.get_stress()
    sid = db.add_structure(a, META)
    assert db.status(sid) == "labelled"
    back, _ = db.get(sid)
    assert back.get_potential_energy() == pytest.approx(e, abs=0)
    np.testing.assert_array_equal(back.get_forces(), f)
    np.testing.assert_array_equal(back.get_stress(), s)


def test_unknown_id_and_bad_ids(db):
    with pytest.raises(DatabaseError, match="no structure with id 7"):
        db.set_labels(7, 0.0, np.zeros((4, 3)))
    with pytest.raises(DatabaseError, match="no structure with id 7"):
        db.mark_failed(7, "boom")
    with pytest.raises(DatabaseError, match="positive integer"):
        db.get(0)
    with pytest.raises(DatabaseError, match="positive integer"):
        db.status(True)
