"""Figures of merit of a fitted potential: validation errors and the equation of state.

Numerics on plain arrays and ASE objects; :func:`validation_errors` is the one
place that evaluates a potential on the labelled validation split (the report
and every active-learning generation call it).  Plots live in :mod:`plots`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.eos import EquationOfState
from ase.units import GPa

from mlip_autopipec.database import DatabaseManager
from mlip_autopipec.exceptions import MlipAutopipecError


@dataclass
class Predictions:
    """Reference (oracle) and predicted (potential) energies and forces of a set of structures."""

    natoms: np.ndarray  # (n,)
    energy_ref: np.ndarray  # eV, (n,)
    energy_pred: np.ndarray  # eV, (n,)
    forces_ref: np.ndarray  # eV/Å, (sum natoms, 3)
    forces_pred: np.ndarray  # eV/Å, (sum natoms, 3)


@dataclass
class ErrorMetrics:
    """Root-mean-square and mean absolute errors, energy per atom (meV/atom) and force components (meV/Å)."""

    n_structures: int
    energy_rmse_mev_per_atom: float
    energy_mae_mev_per_atom: float
    force_rmse_mev_per_angstrom: float
    force_mae_mev_per_angstrom: float

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class EOSFit:
    """A Birch–Murnaghan fit: equilibrium volume (Å³/atom), energy (eV/atom), bulk modulus (GPa)."""

    volume_per_atom: float
    energy_per_atom: float
    bulk_modulus_gpa: float
    lattice_constant: float  # Å, the seed's lattice constant scaled to the equilibrium volume
    parameters: tuple[float, float, float, float] = (
        0.0,
        0.0,
        0.0,
        0.0,
    )  # ase.eos.birchmurnaghan's E0, B0 (eV/Å³), B', V0

    def energy(self, volume_per_atom: np.ndarray) -> np.ndarray:
        """The fitted curve (eV/atom) at the given volumes (Å³/atom)."""
        from ase.eos import birchmurnaghan

        return birchmurnaghan(np.asarray(volume_per_atom), *self.parameters)


@dataclass
class EOSComparison:
    """The oracle's and the potential's equations of state on the same cells.

    ``potential`` is None when the potential's E(V) has no minimum in the
    sampled range (a badly underfitted potential); the errors are then None.
    """

    volumes_per_atom: np.ndarray
    oracle_energy_per_atom: np.ndarray
    potential_energy_per_atom: np.ndarray
    oracle: EOSFit
    potential: EOSFit | None
    potential_failure: str | None = None
    lattice_constant_error_percent: float | None = field(init=False)
    bulk_modulus_error_percent: float | None = field(init=False)

    def __post_init__(self) -> None:
        if self.potential is None:
            self.lattice_constant_error_percent = self.bulk_modulus_error_percent = None
            return
        self.lattice_constant_error_percent = 100.0 * (
            self.potential.lattice_constant / self.oracle.lattice_constant - 1.0
        )
        self.bulk_modulus_error_percent = 100.0 * (self.potential.bulk_modulus_gpa / self.oracle.bulk_modulus_gpa - 1.0)

    def as_dict(self) -> dict:
        def fit(f: EOSFit | None):
            return None if f is None else {k: v for k, v in f.__dict__.items() if k != "parameters"}

        out = {
            "n_points": int(len(self.volumes_per_atom)),
            "oracle": fit(self.oracle),
            "potential": fit(self.potential),
            "lattice_constant_error_percent": self.lattice_constant_error_percent,
            "bulk_modulus_error_percent": self.bulk_modulus_error_percent,
        }
        if self.potential_failure:
            out["potential_failure"] = self.potential_failure
        return out


def energy_shift(reference_energy: dict[str, float] | None) -> Callable[[Atoms], float] | None:
    """What to add (eV) to a potential's energy of ``atoms`` to get the reference method's total energy.

    ``reference_energy`` is pacemaker's own record (the potential's metadata
    ``reference_energy``, :func:`mlip_autopipec.trainer.parsing.parse_reference_energy`):
    per-element energies and, when pacemaker computed them itself
    (``data.reference_energy: auto``, also chosen by pacemaker when energies are
    below -20 eV/atom, as with pw.x), a ``"shift"`` (eV/atom).  pacemaker fits
    (pyace ``process_df.compute_corrected_energy`` and
    ``compute_shifted_scaled_corrected_energy``)::

        energy_corrected = energy - sum_i E_ref[element_i] + shift * n_atoms

    so the total energy is ``prediction + sum_i E_ref[element_i] - shift * n_atoms``.
    Elements missing from the record count 0, as in pacemaker.  None when nothing
    was subtracted.
    """
    if not reference_energy:
        return None
    refs = {str(k): float(v) for k, v in reference_energy.items()}
    shift = refs.pop("shift", 0.0)
    if not any(refs.values()) and shift == 0.0:
        return None
    return lambda atoms: float(sum(refs.get(s, 0.0) for s in atoms.get_chemical_symbols()) - shift * len(atoms))


def predict(
    structures: Sequence[Atoms], calculator: Calculator, energy_shift: Callable[[Atoms], float] | None = None
) -> Predictions:
    """Evaluate ``calculator`` on labelled ``structures`` (each carrying its reference results).

    ``energy_shift(atoms)`` (eV) is added to the prediction, e.g. the sum of the
    per-element reference energies pacemaker subtracted before fitting.
    """
    if not structures:
        raise MlipAutopipecError("no structures to evaluate the potential on")
    natoms, e_ref, e_pred, f_ref, f_pred = [], [], [], [], []
    for atoms in structures:
        ref_e = atoms.get_potential_energy()
        ref_f = atoms.get_forces()
        probe = atoms.copy()
        probe.calc = calculator
        e = probe.get_potential_energy() + (energy_shift(atoms) if energy_shift else 0.0)
        natoms.append(len(atoms))
        e_ref.append(ref_e)
        e_pred.append(e)
        f_ref.append(ref_f)
        f_pred.append(probe.get_forces())
    return Predictions(
        np.array(natoms), np.array(e_ref), np.array(e_pred), np.concatenate(f_ref), np.concatenate(f_pred)
    )


def error_metrics(p: Predictions) -> ErrorMetrics:
    """RMSE and MAE of energy per atom (meV/atom) and of every force component (meV/Å)."""
    de = (p.energy_pred - p.energy_ref) / p.natoms
    df = (p.forces_pred - p.forces_ref).ravel()
    return ErrorMetrics(
        n_structures=int(len(de)),
        energy_rmse_mev_per_atom=float(1000 * np.sqrt(np.mean(de**2))),
        energy_mae_mev_per_atom=float(1000 * np.mean(np.abs(de))),
        force_rmse_mev_per_angstrom=float(1000 * np.sqrt(np.mean(df**2))),
        force_mae_mev_per_angstrom=float(1000 * np.mean(np.abs(df))),
    )


def fit_eos(
    volumes_per_atom: np.ndarray,
    energies_per_atom: np.ndarray,
    seed_volume_per_atom: float,
    seed_lattice_constant: float,
) -> EOSFit:
    """Birch–Murnaghan fit of E(V) per atom; the lattice constant is the seed's, scaled isotropically to V0."""
    if len(volumes_per_atom) < 5:
        raise MlipAutopipecError(f"an equation-of-state fit needs at least 5 volumes, got {len(volumes_per_atom)}")
    eos = EquationOfState(np.asarray(volumes_per_atom), np.asarray(energies_per_atom), eos="birchmurnaghan")
    v0, e0, b = eos.fit()
    if not (np.isfinite(v0) and np.isfinite(b)) or b <= 0:
        raise MlipAutopipecError(
            f"the equation-of-state fit failed (V0={v0}, B={b}); are the volumes around the minimum?"
        )
    a0 = seed_lattice_constant * (v0 / seed_volume_per_atom) ** (1.0 / 3.0)
    p_e0, p_b0, p_bp, p_v0 = (float(x) for x in eos.eos_parameters)  # birchmurnaghan's four
    return EOSFit(float(v0), float(e0), float(b / GPa), float(a0), (p_e0, p_b0, p_bp, p_v0))


def _energy_per_atom(atoms: Atoms, calculator: Calculator) -> float:
    """``calculator``'s energy (eV/atom) of a copy of ``atoms``."""
    probe = atoms.copy()
    probe.calc = calculator
    return float(probe.get_potential_energy()) / len(atoms)


def compare_eos(
    structures: Sequence[Atoms],
    calculator: Calculator,
    seed_volume_per_atom: float,
    seed_lattice_constant: float,
    energy_shift: Callable[[Atoms], float] | None = None,
) -> EOSComparison:
    """Fit the oracle's and the potential's equations of state on the same clean, isotropically scaled cells.

    ``energy_shift(atoms)`` (eV) is added to each prediction, as in :func:`predict` (the reference energies
    pacemaker subtracted: without them a pw.x EOS lies ~100 eV/atom below the potential's)."""
    order = np.argsort([a.get_volume() / len(a) for a in structures])
    structures = [structures[i] for i in order]
    volumes = np.array([a.get_volume() / len(a) for a in structures])
    ref = np.array([a.get_potential_energy() / len(a) for a in structures])
    pred = np.array(
        [
            _energy_per_atom(atoms, calculator) + (energy_shift(atoms) / len(atoms) if energy_shift else 0.0)
            for atoms in structures
        ]
    )
    oracle = fit_eos(volumes, ref, seed_volume_per_atom, seed_lattice_constant)
    try:
        potential, failure = fit_eos(volumes, pred, seed_volume_per_atom, seed_lattice_constant), None
    except MlipAutopipecError as err:
        potential, failure = None, str(err)
    return EOSComparison(volumes, ref, pred, oracle, potential, failure)


@dataclass
class Validation:
    """A potential's predictions on the labelled validation split and their errors."""

    predictions: Predictions
    metrics: ErrorMetrics
    groups: list[str] = field(default_factory=list)  # per structure: its seed (provenance 'seed'), else its source


def validation_errors(
    db: DatabaseManager, potential_yace: Path, reference_energy: dict[str, float] | None
) -> Validation | None:
    """Evaluate the potential ``potential_yace`` on the labelled validation structures of ``db`` (None: there are none).

    ``reference_energy``: the per-element energies (eV) pacemaker subtracted
    (``TrainingResult.reference_energy``), added back to each prediction.
    """
    records = list(db.select(label="validation", status="labelled"))
    structures = [rec.atoms for rec in records]
    if not structures:
        return None
    from mlip_autopipec.trainer.pyace_import import import_pyace_calculator

    calc = import_pyace_calculator()(str(potential_yace))
    predictions = predict(structures, calc, energy_shift(reference_energy))
    groups = [str(rec.metadata.provenance.get("seed") or rec.metadata.source) for rec in records]
    return Validation(predictions, error_metrics(predictions), groups)
