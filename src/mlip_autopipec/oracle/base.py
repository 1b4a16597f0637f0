"""The Oracle interface: a structure in, energy, forces and stress out.

An :class:`Oracle` holds nothing but its typed configuration, so it pickles
cheaply and ships to Dask workers; every calculator object is made inside
:meth:`Oracle.label`.  A calculation that cannot give a trustworthy result
raises :class:`LabelFailed` (an :class:`OracleError`) carrying the reason, the
last lines of the program's output and the record of every attempt.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from mlip_autopipec.exceptions import OracleError


@dataclass(frozen=True)
class AttemptRecord:
    """One try at a calculation: its number (from 1), the settings it changed, how it ended and how long it took."""

    number: int
    settings: dict[str, Any]
    outcome: str
    wall_time_s: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "settings": self.settings,
            "outcome": self.outcome,
            "wall_time_s": round(self.wall_time_s, 3),
        }


@dataclass(frozen=True)
class LabelResult:
    """A labelled structure: energy (eV), forces (eV/Å, shape (n, 3)), stress (eV/Å³, Voigt xx yy zz yz xz xy,
    as ASE; None for a cell that is not periodic along all three axes); for a spin-polarised calculation the final
    magnetic moments (μB): per atom ``magmoms`` (shape (n,)) and of the cell ``magmom``, else None."""

    energy: float
    forces: np.ndarray
    stress: np.ndarray | None
    command: str
    wall_time_s: float = 0.0
    attempts: list[AttemptRecord] = field(default_factory=list)
    directory: str | None = None
    magmoms: np.ndarray | None = None
    magmom: float | None = None

    def info(self) -> dict[str, Any]:
        """Provenance for the database row: what ran, how long, how many attempts."""
        return {
            "oracle_command": self.command,
            "oracle_wall_time_s": round(self.wall_time_s, 3),
            "oracle_attempts": max(1, len(self.attempts)),
        }


class LabelFailed(OracleError):
    """A calculation gave no trustworthy result: ``reason``, the program's ``output_tail`` and the ``attempts`` made."""

    def __init__(
        self,
        reason: str,
        output_tail: str = "",
        attempts: list[AttemptRecord] | None = None,
        directory: str | None = None,
    ):
        self.reason = reason
        self.output_tail = output_tail
        self.attempts = list(attempts or [])
        self.directory = directory
        where = f" (in {directory})" if directory else ""
        super().__init__(f"{reason}{where}")

    def __reduce__(self):  # keep the fields through pickling (Dask ships it back from workers)
        return (type(self), (self.reason, self.output_tail, self.attempts, self.directory))


def output_tail(text: str, n_lines: int = 20) -> str:
    """The last ``n_lines`` non-blank lines of a program's output."""
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    return "\n".join(lines[-n_lines:])


def check_plausible(result: LabelResult, n_atoms: int, max_force: float, max_abs_energy_per_atom: float) -> None:
    """Raise :class:`LabelFailed` when the result is non-finite, has the wrong shape, or is implausibly large."""
    if not math.isfinite(result.energy):
        raise LabelFailed(
            f"implausible result: energy is {result.energy}", attempts=result.attempts, directory=result.directory
        )
    if result.forces.shape != (n_atoms, 3):
        raise LabelFailed(
            f"implausible result: forces have shape {result.forces.shape}, expected ({n_atoms}, 3)",
            attempts=result.attempts,
            directory=result.directory,
        )
    if not np.all(np.isfinite(result.forces)):
        raise LabelFailed("implausible result: non-finite forces", attempts=result.attempts, directory=result.directory)
    if result.stress is not None and (result.stress.shape != (6,) or not np.all(np.isfinite(result.stress))):
        raise LabelFailed(
            f"implausible result: stress {result.stress!r}", attempts=result.attempts, directory=result.directory
        )
    fmax = float(np.abs(result.forces).max()) if n_atoms else 0.0
    if fmax > max_force:
        raise LabelFailed(
            f"implausible result: a force component of {fmax:.4g} eV/Å exceeds max_force={max_force:g} eV/Å",
            attempts=result.attempts,
            directory=result.directory,
        )
    e_atom = abs(result.energy) / max(n_atoms, 1)
    if e_atom > max_abs_energy_per_atom:
        raise LabelFailed(
            f"implausible result: |energy| of {e_atom:.4g} eV/atom exceeds "
            f"max_abs_energy_per_atom={max_abs_energy_per_atom:g} eV/atom",
            attempts=result.attempts,
            directory=result.directory,
        )


def kpoint_mesh(atoms: Atoms, kspacing: float) -> tuple[int, int, int]:
    """Monkhorst-Pack mesh for ``kspacing`` (Å⁻¹): ASE's ``kptdensity2monkhorstpack`` at a density of
    1 / ``kspacing`` points per Å⁻¹, not rounded up to even numbers.

    n_i = ceil(2π·|b_i| / kspacing) with b_i the rows of ``atoms.cell.reciprocal()`` (without the 2π; VASP's
    KSPACING convention), and 1 along non-periodic axes.  Computed from each cell, so strained cells get the
    same sampling density.
    """
    from ase.calculators.calculator import kptdensity2monkhorstpack

    if kspacing <= 0:
        raise OracleError(f"kspacing must be positive, got {kspacing} Å⁻¹")
    mesh = kptdensity2monkhorstpack(atoms, kptdensity=1.0 / kspacing, even=False)
    return (int(mesh[0]), int(mesh[1]), int(mesh[2]))


def fully_periodic(atoms: Atoms) -> bool:
    return bool(np.all(atoms.pbc))


class Oracle(ABC):
    """Labels one structure at a time; holds only its configuration (picklable, shipped to Dask workers)."""

    #: the kind of oracle, equal to its configuration's ``type``
    kind: str = "oracle"

    def __init__(self, config: Any):
        self.config = config

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"

    def label(self, atoms: Atoms, directory: str | Path | None = None) -> LabelResult:
        """Compute energy, forces and stress of ``atoms`` (not modified) in ``directory``.

        Raises :class:`LabelFailed` when no trustworthy result comes out (the
        reason names the structure's folder and shows the output's last lines).
        """
        if len(atoms) == 0:
            raise LabelFailed("the structure has no atoms")
        path = Path(directory) if directory is not None else None
        if path is not None:
            path.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        work = atoms.copy()
        work.set_constraint()  # one point of a geometry: a relaxation's constraints (FixSymmetry) mean nothing here,
        # the raw forces are the label (the caller's Atoms applies its constraints), and ASE's pw.x writer would warn
        result = self._compute(work, path)
        result = replace(result, wall_time_s=time.perf_counter() - start)
        check_plausible(result, len(atoms), self.config.max_force, self.config.max_abs_energy_per_atom)
        return result

    @abstractmethod
    def _compute(self, atoms: Atoms, directory: Path | None) -> LabelResult:
        """Run the calculation on a private copy of the structure (``wall_time_s`` is filled in by :meth:`label`)."""


def results_from_calculator(atoms: Atoms, want_stress: bool) -> tuple[float, np.ndarray, np.ndarray | None]:
    """Energy (eV), forces (eV/Å) and, if asked, Voigt stress (eV/Å³) from the calculator attached to ``atoms``."""
    energy = float(atoms.get_potential_energy())
    forces = np.array(atoms.get_forces(), dtype=float)
    stress = np.array(atoms.get_stress(voigt=True), dtype=float) if want_stress else None
    return energy, forces, stress
