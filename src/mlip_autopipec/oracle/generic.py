"""Any ASE calculator as an oracle, by import path and keyword arguments.

This is how a user plugs in VASP, CP2K, a machine-learned potential or a
Lennard-Jones toy: ``{"type": "ase", "calculator": "ase.calculators.lj.LennardJones",
"kwargs": {"sigma": 2.3}}``.  The class is imported on the worker that runs
the calculation, so it must be importable there.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from ase import Atoms

from mlip_autopipec.config.schemas.oracle import ASEOracleConfig
from mlip_autopipec.exceptions import OracleError
from mlip_autopipec.oracle.base import LabelResult, Oracle, fully_periodic, results_from_calculator


def import_object(path: str) -> Any:
    """Import ``package.module.Name`` or ``package.module:Name``; :class:`OracleError` naming the path otherwise."""
    if ":" in path:
        module_name, _, attr = path.partition(":")
    else:
        module_name, _, attr = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise OracleError(f"cannot import the calculator module {module_name!r} (from {path!r}): {err}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise OracleError(f"module {module_name!r} has no {attr!r} (calculator {path!r})") from None


class ASEOracle(Oracle):
    """Labels with any ASE calculator: ``calculator(**kwargs)``, one fresh instance per structure."""

    kind = "ase"
    config: ASEOracleConfig

    def make_calculator(self, directory: Path | None) -> Any:
        factory = import_object(self.config.calculator)
        try:
            calc = factory(**self.config.kwargs)
        except TypeError as err:
            raise OracleError(
                f"cannot create {self.config.calculator} with kwargs {self.config.kwargs}: {err}"
            ) from None
        if self.config.set_directory and directory is not None and hasattr(calc, "directory"):
            calc.directory = str(directory)
        return calc

    def _compute(self, atoms: Atoms, directory: Path | None) -> LabelResult:
        atoms.calc = self.make_calculator(directory)
        energy, forces, stress = results_from_calculator(atoms, self.config.stress and fully_periodic(atoms))
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.kwargs.items())
        return LabelResult(
            energy=energy,
            forces=forces,
            stress=stress,
            command=f"{self.config.calculator}({args})",
            directory=str(directory) if directory is not None else None,
        )
