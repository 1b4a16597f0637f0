"""Cheap identity of a structure: a duplicate index and a stable content hash.

Duplicates are "the same species, cell and positions within a tolerance".  A
rounded hash cannot express that (two values a hair apart can round to
different sides of a grid line), so the index is one continuous number per
structure::

    s = sum_k w_k x_k + sum_j c_j h_j + sum_i u_i Z_i

over the Cartesian coordinates ``x``, the cell entries ``h`` and the atomic
numbers ``Z``, with fixed positive weights.  Two structures within ``tol`` of
each other (every coordinate and cell entry) have ``|s1 - s2| <= tol * (sum w +
sum c)``, so a range query on ``s`` finds every duplicate; the few candidates
it returns are then compared exactly with :func:`same_structure`.

:func:`content_hash` is a 64-bit hash of the structure rounded to 1e-6 Å, used
to draw a structure's train/validation split: the same structure gets the same
split in any database, whatever its id or insertion order.
"""

from __future__ import annotations

import hashlib

import numpy as np

GOLDEN = 0.6180339887498949
_CELL_WEIGHTS = 1.0 + np.mod(np.arange(1, 10) * np.sqrt(2.0), 1.0)
_weights = np.zeros(0)


def _position_weights(n: int) -> np.ndarray:
    """Weights for ``n`` values, in [1, 2), a fixed low-discrepancy sequence (grown on demand)."""
    global _weights
    if len(_weights) < n:
        size = max(n, 2 * len(_weights), 3 * 256)
        _weights = 1.0 + np.mod(np.arange(1, size + 1) * GOLDEN, 1.0)
    return _weights[:n]


def fingerprint(numbers: np.ndarray, positions: np.ndarray, cell: np.ndarray) -> float:
    """The index value ``s`` of a structure (see the module docstring)."""
    n = len(numbers)
    w = _position_weights(3 * n)
    s = float(positions.reshape(-1) @ w)
    s += float(np.asarray(cell, dtype=float).reshape(-1) @ _CELL_WEIGHTS)
    s += float(numbers @ w[:n])
    return s


def fingerprint_window(natoms: int, value: float, tol: float) -> float:
    """Half-width of the range of ``s`` that can hold a structure within ``tol`` (Å) of this one."""
    bound = tol * (float(_position_weights(3 * natoms).sum()) + float(_CELL_WEIGHTS.sum()))
    return bound * (1.0 + 1e-9) + 1e-12 * (abs(value) + 1.0)


def same_structure(
    numbers_a: np.ndarray,
    positions_a: np.ndarray,
    cell_a: np.ndarray,
    pbc_a: np.ndarray,
    numbers_b: np.ndarray,
    positions_b: np.ndarray,
    cell_b: np.ndarray,
    pbc_b: np.ndarray,
    tol: float,
) -> bool:
    """True when both structures have the same species in the same order, the same periodicity,
    and every position and cell entry agrees within ``tol`` (Å)."""
    return (
        len(numbers_a) == len(numbers_b)
        and np.array_equal(numbers_a, numbers_b)
        and np.array_equal(np.asarray(pbc_a, bool), np.asarray(pbc_b, bool))
        and bool(np.abs(np.asarray(cell_a, float) - np.asarray(cell_b, float)).max() <= tol)
        and bool(np.abs(positions_a - positions_b).max() <= tol)
    )


def content_hash(numbers: np.ndarray, positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, seed: int) -> float:
    """A number in [0, 1) drawn from the structure's content (rounded to 1e-6 Å) and ``seed``."""
    h = hashlib.blake2b(digest_size=8, person=b"mlip-split")
    h.update(int(seed).to_bytes(16, "little", signed=True))
    h.update(np.asarray(numbers, dtype=np.int64).tobytes())
    h.update(np.asarray(pbc, dtype=np.uint8).tobytes())
    h.update(np.rint(np.asarray(cell, float) * 1e6).astype(np.int64).tobytes())
    h.update(np.rint(np.asarray(positions, float) * 1e6).astype(np.int64).tobytes())
    return int.from_bytes(h.digest(), "little") / 2.0**64
