"""The oracle's property results kept in the run's structure database, so a rerun calls the oracle for nothing.

Each result is a row with source ``property_<name>`` (``property_elastic``,
``property_surface_111``, ...; :meth:`DatabaseStore.stage` sets the name), status
``labelled``, and the label ``property`` instead of a train/validation split: the
database never gives such a row a split (:func:`~mlip_autopipec.database.labels.assign_split`),
and the fit exports only split-labelled rows, so property structures are never
trained on.  The row's provenance holds the :func:`~.cache.structure_key`, the
property and the seed's name.

A structure the database already holds labelled under another source (e.g. a
clean equation-of-state cell that a relaxation starts from) is found by
:meth:`~mlip_autopipec.database.DatabaseManager.find_duplicate` and its labels
are reused.  Results are written in one transaction per property (:meth:`flush`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from mlip_autopipec.database import DatabaseManager, StructureMetadata
from mlip_autopipec.database.metadata import PROPERTY

SOURCE_PREFIX = "property_"


def property_source(name: str) -> str:
    """``property_<name>`` with anything but letters, digits and '_' replaced by '_'."""
    return SOURCE_PREFIX + "".join(c if c.isalnum() or c == "_" else "_" for c in name)


class DatabaseStore:
    """A :class:`~.cache.ResultStore` in the run's database (energy eV, forces eV/Å, stress eV/Å³ Voigt)."""

    def __init__(self, db: DatabaseManager, seed: str) -> None:
        self.db = db
        self.seed = seed
        self.name = "relax"
        self.pending: list[tuple[Atoms, StructureMetadata]] = []
        self.known: dict[str, dict[str, Any]] = {}
        for rec in db.select(label=PROPERTY, status="labelled"):
            key = rec.metadata.provenance.get("property_key")
            if key:
                self.known[str(key)] = _results_of(rec.atoms)

    def stage(self, name: str) -> None:
        """Results put from now on belong to property ``name`` (the previous property's are written first)."""
        self.flush()
        self.name = name

    def get(self, key: str, atoms: Atoms | None = None) -> dict[str, Any] | None:
        found = self.known.get(key)
        if found is not None or atoms is None:
            return found
        sid = self.db.find_duplicate(atoms)
        if sid is None:
            return None
        rec = self.db.record(sid)
        return _results_of(rec.atoms) if rec.status == "labelled" else None

    def put(self, key: str, atoms: Atoms, results: dict[str, Any]) -> None:
        row = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
        row.calc = SinglePointCalculator(
            row, energy=results["energy"], forces=results["forces"], stress=results.get("stress")
        )
        meta = StructureMetadata(
            source=property_source(self.name),
            generation=0,
            labels=[PROPERTY],
            provenance={"property_key": key, "property": self.name, "seed": self.seed},
        )
        self.pending.append((row, meta))
        self.known[key] = dict(results)

    def flush(self) -> None:
        """Write the results put since the last flush (one transaction)."""
        if self.pending:
            atoms, metas = zip(*self.pending, strict=True)
            self.db.add_structures(list(atoms), list(metas))
            self.pending = []


def _results_of(atoms: Atoms) -> dict[str, Any]:
    calc = atoms.calc
    out: dict[str, Any] = {"energy": float(atoms.get_potential_energy()), "forces": np.array(atoms.get_forces())}
    if calc is not None and calc.results.get("stress") is not None:
        out["stress"] = np.array(atoms.get_stress(voigt=True))
    return out


__all__ = ["DatabaseStore", "SOURCE_PREFIX", "property_source"]
