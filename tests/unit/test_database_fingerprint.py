"""The duplicate index finds every structure within the tolerance; the split hash is stable."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlip_autopipec.database.fingerprint import content_hash, fingerprint, fingerprint_window, same_structure
from mlip_autopipec.database.metadata import StructureMetadata, normalize_provenance
from mlip_autopipec.exceptions import StructureError


@settings(max_examples=200, deadline=None)
@given(
    natoms=st.integers(1, 64),
    seed=st.integers(0, 2**32 - 1),
    tol=st.sampled_from([1e-8, 1e-6, 1e-3]),
    scale=st.floats(0.1, 100.0),
)
def test_structures_within_tolerance_fall_in_the_window(natoms, seed, tol, scale):
    rng = np.random.default_rng(seed)
    numbers = rng.integers(1, 90, natoms)
    positions = rng.uniform(-scale, scale, (natoms, 3))
    cell = rng.uniform(-scale, scale, (3, 3))
    # the worst case: every coordinate moved by the full tolerance in the same direction
    sign = rng.choice([-1.0, 1.0])
    s1 = fingerprint(numbers, positions, cell)
    s2 = fingerprint(numbers, positions + sign * tol, cell + sign * tol)
    assert abs(s1 - s2) <= fingerprint_window(natoms, s1, tol)
    assert same_structure(
        numbers, positions, cell, [1, 1, 1], numbers, positions + sign * tol * 0.999, cell, [1, 1, 1], tol
    )


def test_same_structure_rules():
    z = np.array([29, 29])
    pos = np.array([[0.0, 0, 0], [1.8, 1.8, 0]])
    cell = np.eye(3) * 3.6
    pbc = [True] * 3
    assert same_structure(z, pos, cell, pbc, z, pos.copy(), cell, pbc, 1e-6)
    assert not same_structure(z, pos, cell, pbc, np.array([29, 28]), pos, cell, pbc, 1e-6)
    assert not same_structure(z, pos, cell, pbc, z, pos, cell * 1.001, pbc, 1e-6)
    assert not same_structure(z, pos, cell, pbc, z, pos, cell, [True, True, False], 1e-6)
    assert not same_structure(z, pos, cell, pbc, z[:1], pos[:1], cell, pbc, 1e-6)


def test_content_hash_is_stable_and_seeded():
    z = np.array([29, 29])
    pos = np.array([[0.0, 0, 0], [1.8, 1.8, 0]])
    cell = np.eye(3) * 3.6
    u = content_hash(z, pos, cell, [1, 1, 1], seed=3)
    assert 0.0 <= u < 1.0
    assert content_hash(z, pos.copy(), cell.copy(), np.array([True] * 3), seed=3) == u
    assert content_hash(z, pos + 1e-9, cell, [1, 1, 1], seed=3) == u  # below the 1e-6 Å rounding
    assert content_hash(z, pos, cell, [1, 1, 1], seed=4) != u
    # A fixed value: the split of a structure must not change between versions of the package.
    assert u == 0.41591359801482913


def test_metadata_validation():
    m = StructureMetadata(source="active_learning_iter_3", generation=3, labels=["train", "hard", "train"])
    assert m.labels == ["train", "hard"]
    for bad in [
        dict(source=""),
        dict(source="12"),
        dict(source="True"),
        dict(source=" x"),
        dict(source="x", labels=["a b"]),
        dict(source="x", labels=["3d"]),
        dict(source="x", parent_id=0),
        dict(source="x", provenance=[1]),
    ]:
        with pytest.raises(ValueError):
            StructureMetadata(**bad)


def test_normalize_provenance():
    out = normalize_provenance(
        {
            "a": np.float32(1.5),
            "b": (1, np.int64(2)),
            "c": {"d": np.array([1, 2])},
            "e": None,
            "f": np.array(["x", "y"]),
            "g": np.str_("s"),
        }
    )
    assert out["a"] == 1.5 and type(out["a"]) is float
    assert out["b"] == [1, 2] and type(out["b"][1]) is int
    np.testing.assert_array_equal(out["c"]["d"], [1, 2])
    assert out["e"] is None and out["f"] == ["x", "y"] and out["g"] == "s"
    with pytest.raises(StructureError, match=r"provenance\['k'\]\[1\]: a value of type object"):
        normalize_provenance({"k": [1, object()]})
    with pytest.raises(StructureError, match="key 3 is not a string"):
        normalize_provenance({3: 1})
    with pytest.raises(StructureError, match="complex"):
        normalize_provenance({"z": np.array([1j])})
