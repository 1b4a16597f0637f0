"""Point defects and the supercell that keeps them apart from their images."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from mlip_autopipec.exceptions import StructureError
from mlip_autopipec.generator.defects import (
    antisites,
    defect_supercell,
    interstitials,
    perpendicular_widths,
    vacancies,
)


def test_supercell_is_wide_enough():
    prim = bulk("Cu", "fcc", a=3.61)  # primitive, non-orthogonal
    sc = defect_supercell(prim, min_width=9.0)
    assert perpendicular_widths(sc).min() >= 9.0
    assert len(sc) == len(prim) * np.prod(sc.info["supercell"])
    # not needlessly large: one repetition fewer along any axis would be too narrow
    for axis in range(3):
        reps = sc.info["supercell"].copy()
        reps[axis] -= 1
        if reps[axis] >= 1:
            assert perpendicular_widths(prim.repeat(reps))[axis] < 9.0


def test_vacancy(cu_fcc):
    sc = cu_fcc.repeat(2)
    out = vacancies(sc, n=2, seed=4)
    assert len(out) == len(sc) - 2
    removed = out.info["defect_indices"]
    kept = np.delete(np.arange(len(sc)), removed)
    assert np.allclose(out.positions, sc.positions[kept])
    assert out.info["defect"] == "vacancy" and out.info["n_defects"] == 2
    assert len(sc) == 32  # input untouched


def test_vacancy_cannot_empty_the_structure(cu_fcc):
    with pytest.raises(StructureError, match="at least one atom"):
        vacancies(cu_fcc, n=4)


def test_interstitial_lands_in_a_void(cu_fcc):
    sc = cu_fcc.repeat(2)
    out = interstitials(sc, "Cu", n=1, seed=0)
    assert len(out) == len(sc) + 1
    assert out.get_chemical_symbols()[-1] == "Cu"
    d = out.get_distances(len(out) - 1, range(len(sc)), mic=True)
    # fcc octahedral void: a/2 = 1.805 Å from its neighbours; the best of 256 random points comes close
    assert d.min() > 1.5
    assert np.allclose(out.positions[:-1], sc.positions)


def test_interstitial_unknown_element(cu_fcc):
    with pytest.raises(StructureError, match="Xx"):
        interstitials(cu_fcc, "Xx")


def test_antisite_keeps_composition():
    nacl = bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    out = antisites(nacl, n=2, seed=1)
    assert sorted(out.numbers) == sorted(nacl.numbers)
    swapped = out.info["defect_indices"].reshape(-1, 2)
    for i, j in swapped:
        assert out.numbers[i] == nacl.numbers[j] and out.numbers[j] == nacl.numbers[i]
        assert nacl.numbers[i] != nacl.numbers[j]
    assert np.allclose(out.positions, nacl.positions)
    assert (out.numbers != nacl.numbers).sum() == 4


def test_antisite_on_one_species_says_why(cu_fcc):
    with pytest.raises(StructureError, match="different species"):
        antisites(cu_fcc)


def test_defects_are_seeded(cu_fcc):
    sc = cu_fcc.repeat(2)
    assert (
        vacancies(sc, seed=5).info["defect_indices"].tolist() == vacancies(sc, seed=5).info["defect_indices"].tolist()
    )
    assert np.array_equal(interstitials(sc, "Cu", seed=5).positions, interstitials(sc, "Cu", seed=5).positions)


def test_interstitial_search_in_chunks_finds_the_same_void(monkeypatch):
    """The search holds at most _PAIRS_PER_CHUNK point-atom pairs at once (it held 15 GB for 32,000 atoms)."""
    import mlip_autopipec.generator.defects as defects

    sc = defect_supercell(bulk("Cu", "fcc", a=3.61, cubic=True), min_width=8.0)
    monkeypatch.setattr(defects, "_PAIRS_PER_CHUNK", 10**9)  # all 256 points at once
    whole = interstitials(sc, "Cu", n=2, seed=9)
    monkeypatch.setattr(defects, "_PAIRS_PER_CHUNK", len(sc) * 3 + 1)  # 3 points per chunk, the last one shorter
    chunked = interstitials(sc, "Cu", n=2, seed=9)
    assert np.array_equal(whole.positions, chunked.positions) and len(chunked) == len(sc) + 2
