"""Strain tensors and the deformation of periodic directions only.

All functions are pure and vectorised over a batch: the explorer draws every
strain of a pool in one call.  A strain is returned as the deformation gradient
``F`` (3×3, symmetric) acting on Cartesian vectors: a cell vector ``a`` becomes
``F @ a`` and a position ``r`` becomes ``F @ r`` (fractional coordinates kept).
On a structure that is not periodic along some axis, ``F`` is the identity
outside the span of the periodic cell vectors, so a slab's vacuum direction and
a molecule are left alone.
"""

from __future__ import annotations

import numpy as np

from mlip_autopipec.exceptions import StructureError


def periodic_basis(cell: np.ndarray, pbc: np.ndarray) -> np.ndarray:
    """Orthonormal basis (3×k) of the space spanned by the periodic cell vectors."""
    vectors = np.asarray(cell, dtype=float)[np.asarray(pbc, dtype=bool)]
    if len(vectors) == 0:
        return np.zeros((3, 0))
    q, r = np.linalg.qr(vectors.T)
    if np.any(np.abs(np.diag(r)) < 1e-8 * max(1.0, np.abs(r).max())):
        raise StructureError("the cell vectors along the periodic axes are linearly dependent (zero volume)")
    return q


def embed(strain_k: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Deformation gradients ``I + Q ε Q^T`` (batch, 3, 3) from strains in the periodic subspace (batch, k, k)."""
    eye = np.eye(3)
    if basis.shape[1] == 0:
        return np.broadcast_to(eye, (strain_k.shape[0], 3, 3)).copy()
    return eye + np.einsum("ik,bkl,jl->bij", basis, strain_k, basis)


def isotropic(volume_ratios: np.ndarray, k: int) -> np.ndarray:
    """Strains (batch, k, k) that scale a k-dimensional periodic subspace by ``volume_ratios``."""
    v = np.asarray(volume_ratios, dtype=float)
    if k == 0:
        return np.zeros((len(v), 0, 0))
    return (v ** (1.0 / k) - 1.0)[:, None, None] * np.eye(k)


def anisotropic(rng: np.random.Generator, volume_ratios: np.ndarray, k: int, max_deviatoric: float) -> np.ndarray:
    """Random symmetric strains (batch, k, k) with the given volume ratios.

    The deviatoric part of each strain has every component within
    ``max_deviatoric`` in magnitude (its largest component is drawn uniformly in
    ``(0, max_deviatoric]``); the volume ratio ``det(I + ε)`` equals the one asked for.
    """
    n = len(volume_ratios)
    if k == 0:
        return np.zeros((n, 0, 0))
    raw = rng.normal(size=(n, k, k))
    sym = 0.5 * (raw + np.swapaxes(raw, 1, 2))
    dev = sym - (np.trace(sym, axis1=1, axis2=2) / k)[:, None, None] * np.eye(k)
    peak = np.abs(dev).max(axis=(1, 2))
    peak[peak == 0.0] = 1.0
    target = max_deviatoric * (1.0 - rng.random(n))  # in (0, max]
    dev *= (target / peak)[:, None, None]
    eye = np.eye(k)
    # ε = c (I + d) - I  with c^k det(I + d) = v; its deviatoric part is c d.
    # Shrink d until c |d| <= max (c barely differs from 1, two passes suffice).
    for _ in range(3):
        det = np.linalg.det(eye + dev)
        c = (np.asarray(volume_ratios) / det) ** (1.0 / k)
        over = c * np.abs(dev).max(axis=(1, 2)) > max_deviatoric
        if not over.any():
            break
        dev[over] *= (1.0 - 1e-12) / c[over, None, None]
    det = np.linalg.det(eye + dev)
    c = (np.asarray(volume_ratios) / det) ** (1.0 / k)
    return c[:, None, None] * (eye + dev) - eye


def deviatoric(strain: np.ndarray) -> np.ndarray:
    """Deviatoric (traceless) part of a strain tensor in its own dimension."""
    strain = np.asarray(strain, dtype=float)
    k = strain.shape[-1]
    if k == 0:
        return strain
    return strain - (np.trace(strain, axis1=-2, axis2=-1) / k)[..., None, None] * np.eye(k)
