"""A :class:`~mlip_autopipec.report.properties.cache.ResultStore` in one JSON file: a calculator's results kept
between runs of the report, outside the structure database.

The report keeps the foundation model's results here (its energies of the validation structures, its equation
of state and elastic cells), so a rerun of the report evaluates the model on nothing it has seen.  These are not
the oracle's results: they must never become database rows, where they could be taken for the oracle's labels.
The file names the model it holds; a file of another model, or one that cannot be read, starts an empty cache.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from mlip_autopipec.fileio import atomic_path

log = logging.getLogger("mlip_autopipec")


class JsonResultStore:
    """Results (energy eV, forces eV/Å, stress eV/Å³ Voigt) of ``model`` by structure key, in the file ``path``.

    Read when made; :meth:`flush` writes what was put since (atomically)."""

    def __init__(self, path: Path, model: str) -> None:
        self.path = Path(path)
        self.model = model
        self.results: dict[str, dict[str, Any]] = {}
        self.changed = False
        if self.path.is_file():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as err:
                log.warning("report: the cache %s cannot be read (%s); it is started again", self.path, err)
                return
            if isinstance(data, dict) and data.get("model") == model and isinstance(data.get("results"), dict):
                self.results = data["results"]

    def get(self, key: str, atoms: Atoms | None = None) -> dict[str, Any] | None:
        found = self.results.get(key)
        if found is None:
            return None
        out: dict[str, Any] = {"energy": float(found["energy"]), "forces": np.array(found["forces"], dtype=float)}
        if found.get("stress") is not None:
            out["stress"] = np.array(found["stress"], dtype=float)
        return out

    def put(self, key: str, atoms: Atoms, results: dict[str, Any]) -> None:
        stress = results.get("stress")
        self.results[key] = {
            "energy": float(results["energy"]),
            "forces": np.asarray(results["forces"], dtype=float).tolist(),
            "stress": None if stress is None else np.asarray(stress, dtype=float).tolist(),
        }
        self.changed = True

    def flush(self) -> None:
        """Write the file when anything was put since it was read or last written."""
        if not self.changed:
            return
        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps({"model": self.model, "results": self.results}), encoding="utf-8")
        self.changed = False

    def __len__(self) -> int:
        return len(self.results)


__all__ = ["JsonResultStore"]
