"""Counting and caching the oracle's work on property structures.

Every property function takes an ASE :class:`~ase.calculators.calculator.Calculator`.
On the oracle side wrap it (or the oracle itself, through :class:`OracleCalculator`)
in a :class:`CachedCalculator` over a *store*: any object with ``get(key) -> dict | None``
and ``put(key, atoms, results)``.  The key (:func:`structure_key`) is a hash of
species, positions, cell and periodicity, so

* a rerun asks the store first and calls the oracle only for what is missing;
* relaxations are deterministic (ASE's optimizers on the same forces take the same
  steps), so a rerun of a relaxation replays the same structures from the store;
* structures that need no sequential loop (strained cells, displaced supercells:
  :func:`~mlip_autopipec.report.properties.elastic.elastic_strain_set`,
  :func:`~mlip_autopipec.report.properties.phonons.phonon_structures`) can be labelled
  in parallel beforehand (e.g. on Dask) and ``put`` into the store.

The pipeline's store keeps these results in the structure database under their own
source (never trained on); :class:`MemoryStore` is the in-process one.
``CachedCalculator.n_computed`` counts the oracle calls, ``n_cached`` the hits.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from mlip_autopipec.exceptions import PropertyError

_DECIMALS = 8  # Å; far below any physical difference, far above round-off of a replayed structure


def structure_key(atoms: Atoms, decimals: int = _DECIMALS) -> str:
    """A hash of species, positions (Å), cell (Å) and periodicity, rounded to ``decimals``."""
    h = hashlib.sha256()
    h.update(np.asarray(atoms.numbers, dtype=np.int64).tobytes())
    h.update(np.round(np.asarray(atoms.positions, dtype=float), decimals).tobytes())
    h.update(np.round(np.asarray(atoms.cell.array, dtype=float), decimals).tobytes())
    h.update(np.asarray(atoms.pbc, dtype=bool).tobytes())
    return h.hexdigest()


class ResultStore(Protocol):
    """Where oracle results of property structures are kept (energy eV, forces eV/Å, stress eV/Å³ Voigt)."""

    def get(self, key: str, atoms: Atoms | None = None) -> dict[str, Any] | None: ...

    def put(self, key: str, atoms: Atoms, results: dict[str, Any]) -> None: ...


class MemoryStore:
    """A :class:`ResultStore` in a dict (one process, one run)."""

    def __init__(self) -> None:
        self.results: dict[str, dict[str, Any]] = {}

    def get(self, key: str, atoms: Atoms | None = None) -> dict[str, Any] | None:
        return self.results.get(key)

    def put(self, key: str, atoms: Atoms, results: dict[str, Any]) -> None:
        self.results[key] = results

    def __len__(self) -> int:
        return len(self.results)


class CachedCalculator(Calculator):
    """An ASE calculator that looks results up in ``store`` before asking ``calculator``.

    Energy and forces are always computed together (stress too when the cell is
    periodic in all directions), so one oracle call serves every property asked of
    a structure.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, calculator: Calculator, store: ResultStore | None = None) -> None:
        super().__init__()
        self.inner = calculator
        self.store: ResultStore = store if store is not None else MemoryStore()
        self.n_computed = 0
        self.n_cached = 0

    def calculate(self, atoms: Atoms | None = None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        assert self.atoms is not None
        key = structure_key(self.atoms)
        cached = self.store.get(key, self.atoms)
        if cached is not None and all(p in cached for p in properties if p != "free_energy"):
            self.n_cached += 1
            self.results = _results(cached)
            return
        probe = self.atoms.copy()
        probe.calc = self.inner
        results: dict[str, Any] = {
            "energy": float(probe.get_potential_energy()),
            "forces": np.array(probe.get_forces()),
        }
        if probe.pbc.all():
            results["stress"] = np.array(probe.get_stress(voigt=True))
        self.n_computed += 1
        self.store.put(key, self.atoms.copy(), results)
        self.results = _results(results)


def _results(r: dict[str, Any]) -> dict[str, Any]:
    out = {
        "energy": float(r["energy"]),
        "free_energy": float(r["energy"]),
        "forces": np.array(r["forces"], dtype=float),
    }
    if r.get("stress") is not None:
        out["stress"] = np.array(r["stress"], dtype=float)
    return out


class OracleCalculator(Calculator):
    """An oracle of this package (anything with ``label(atoms, directory) -> LabelResult``) as an ASE calculator.

    Each evaluation runs in its own folder under ``directory``, named by the structure's
    :func:`structure_key` (None: no files kept, e.g. EMT).
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, oracle: Any, directory: str | Path | None = None) -> None:
        super().__init__()
        self.oracle = oracle
        self.workdir = Path(directory) if directory is not None else None
        self.n_calls = 0

    def calculate(self, atoms: Atoms | None = None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        assert self.atoms is not None
        self.n_calls += 1
        # named by the structure, so a rerun never finds another structure's files in it
        folder = self.workdir / f"property_{structure_key(self.atoms)[:16]}" if self.workdir is not None else None
        result = self.oracle.label(self.atoms, folder)
        if "stress" in properties and result.stress is None:
            raise PropertyError(
                f"the oracle gave no stress for {self.atoms.get_chemical_formula()} (a cell not periodic in 3D?)"
            )
        self.results = _results({"energy": result.energy, "forces": result.forces, "stress": result.stress})


__all__ = ["CachedCalculator", "MemoryStore", "OracleCalculator", "ResultStore", "structure_key"]
