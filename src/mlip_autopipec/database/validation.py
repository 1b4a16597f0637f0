"""The database's invariants as pure functions: what may be stored, checked before anything is written.

Each check raises :class:`StructureError` with a message that names the
structure (``where``) and the rule it broke.  The checks are vectorised NumPy
reductions, a few microseconds per structure.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, NamedTuple

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

from mlip_autopipec.exceptions import StructureError

MAX_Z = len(chemical_symbols) - 1  # 118 (Og); 0 is ASE's dummy atom 'X' and is refused
MIN_PERIODIC_MEASURE = 1e-6  # Å^k: length, area or volume spanned by the k periodic cell vectors


def describe(atoms: Atoms) -> str:
    """A short label for error messages: the formula, or 'empty structure'."""
    try:
        return atoms.get_chemical_formula() or "empty structure"
    except Exception:  # an inconsistent object must not hide the real error
        return "unreadable structure"


def check_structure(atoms: Any, where: str) -> None:
    """Raise :class:`StructureError` unless ``atoms`` may be stored.

    Rules: an ``ase.Atoms`` with at least one atom; atomic numbers 1..118;
    finite positions and cell; the periodic cell vectors span a non-zero
    length, area or volume.
    """
    if not isinstance(atoms, Atoms):
        raise StructureError(f"{where}: expected an ase.Atoms, got {type(atoms).__name__}")
    n = len(atoms)
    if n == 0:
        raise StructureError(f"{where}: has no atoms; a structure needs at least one atom")
    z = atoms.numbers
    if z.min() < 1 or z.max() > MAX_Z:
        bad = sorted({int(x) for x in z if x < 1 or x > MAX_Z})
        raise StructureError(f"{where}: invalid atomic numbers {bad}; valid are 1..{MAX_Z}")
    positions = atoms.positions
    if not np.isfinite(positions).all():
        bad_atoms = np.flatnonzero(~np.isfinite(positions).all(axis=1))
        raise StructureError(f"{where}: non-finite positions (NaN or inf) on atoms {bad_atoms[:10].tolist()}")
    cell = atoms.cell.array
    if not np.isfinite(cell).all():
        raise StructureError(f"{where}: the cell has non-finite entries (NaN or inf): {cell.tolist()}")
    pbc = atoms.pbc
    if pbc.any():
        vectors = cell[pbc]
        # sqrt(det(V V^T)) is the length, area or volume spanned by the periodic vectors.
        gram = vectors @ vectors.T
        measure = float(np.sqrt(max(np.linalg.det(gram), 0.0)))
        if measure < MIN_PERIODIC_MEASURE:
            axes = "".join("abc"[i] for i in range(3) if pbc[i])
            raise StructureError(
                f"{where}: the periodic cell vectors ({axes}) span zero "
                f"{['length', 'area', 'volume'][len(vectors) - 1]} ({measure:.3g}); a periodic axis needs a cell"
            )


def check_results(
    energy: Any, forces: Any, stress: Any, natoms: int, where: str
) -> tuple[float, np.ndarray, np.ndarray | None]:
    """Return ``(energy, forces, stress)`` as ``float``, ``(natoms, 3)`` and Voigt ``(6,)`` (or ``None``) arrays.

    Energy in eV, forces in eV/Å, stress in eV/Å^3 (ASE's sign convention).
    A 3x3 stress is converted to Voigt order (xx, yy, zz, yz, xz, xy) after
    symmetrising.  Raises :class:`StructureError` for anything non-finite or of
    the wrong shape.
    """
    if isinstance(energy, (bool, np.bool_)) or not isinstance(energy, (numbers.Real, np.ndarray)):
        raise StructureError(f"{where}: energy must be a real number (eV), got {type(energy).__name__}")
    e_arr = np.asarray(energy, dtype=float)
    if e_arr.size != 1:
        raise StructureError(f"{where}: energy must be one number (eV), got an array of shape {e_arr.shape}")
    e = float(e_arr.reshape(()))
    if not np.isfinite(e):
        raise StructureError(f"{where}: energy is not finite ({e})")
    try:
        f = np.array(forces, dtype=float)
    except (TypeError, ValueError) as exc:
        raise StructureError(f"{where}: forces are not a numeric array: {exc}") from None
    if f.shape != (natoms, 3):
        raise StructureError(f"{where}: forces must have shape ({natoms}, 3), got {f.shape}")
    if not np.isfinite(f).all():
        bad_atoms = np.flatnonzero(~np.isfinite(f).all(axis=1))
        raise StructureError(f"{where}: non-finite forces (NaN or inf) on atoms {bad_atoms[:10].tolist()}")
    s = None
    if stress is not None:
        try:
            s = np.array(stress, dtype=float)
        except (TypeError, ValueError) as exc:
            raise StructureError(f"{where}: stress is not a numeric array: {exc}") from None
        if s.shape == (3, 3):
            s = 0.5 * (s + s.T)
            s = s[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
        elif s.shape != (6,):
            raise StructureError(f"{where}: stress must have 6 (Voigt) or 3x3 components, got shape {s.shape}")
        if not np.isfinite(s).all():
            raise StructureError(f"{where}: stress is not finite: {s.tolist()}")
    return e, f, s


def attached_results(atoms: Atoms, where: str) -> tuple[float, np.ndarray, np.ndarray | None] | None:
    """The energy, forces and stress a calculator attached to ``atoms`` holds for these very atoms, else ``None``.

    Results computed for other positions, cell or species (the structure moved
    after the calculation) are stale and ignored, as ASE itself does.  An energy
    without forces (or the reverse) is refused: a labelled structure has both.
    """
    calc = atoms.calc
    if calc is None:
        return None
    results = getattr(calc, "results", None) or {}
    if "energy" not in results and "forces" not in results:
        return None
    ref = getattr(calc, "atoms", None)
    if ref is not None and not (
        len(ref) == len(atoms)
        and np.array_equal(ref.numbers, atoms.numbers)
        and np.array_equal(ref.positions, atoms.positions)
        and np.array_equal(ref.cell.array, atoms.cell.array)
        and np.array_equal(ref.pbc, atoms.pbc)
    ):
        return None
    if "energy" not in results or "forces" not in results:
        missing = "forces" if "energy" in results else "an energy"
        raise StructureError(
            f"{where}: the attached calculator has results but no {missing}; a labelled structure needs both"
        )
    return check_results(results["energy"], results["forces"], results.get("stress"), len(atoms), where)


class MagneticMoments(NamedTuple):
    """Checked final magnetic moments (μB): per atom (shape (natoms,)) and of the cell; either may be None."""

    magmoms: np.ndarray | None
    magmom: float | None


def check_magnetic_moments(magmoms: Any, magmom: Any, natoms: int, where: str) -> MagneticMoments | None:
    """Return the moments as a ``(natoms,)`` array and a float, or None when neither is given.

    Raises :class:`StructureError` for anything non-finite or of the wrong shape.
    """
    if magmoms is None and magmom is None:
        return None
    m = None
    if magmoms is not None:
        try:
            m = np.array(magmoms, dtype=float)
        except (TypeError, ValueError) as exc:
            raise StructureError(f"{where}: magnetic moments are not a numeric array: {exc}") from None
        if m.shape != (natoms,) or not np.isfinite(m).all():
            raise StructureError(f"{where}: magnetic moments must be {natoms} finite numbers (μB), got {m.tolist()}")
    total = None
    if magmom is not None:
        if isinstance(magmom, (bool, np.bool_)) or not isinstance(magmom, numbers.Real) or not math.isfinite(magmom):
            raise StructureError(f"{where}: the cell's magnetic moment must be a finite number (μB), got {magmom!r}")
        total = float(magmom)
    return MagneticMoments(m, total)
