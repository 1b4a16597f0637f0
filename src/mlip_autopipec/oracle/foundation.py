"""A foundation model shipped inside its Python wheel (CHGNet, SevenNet) as an oracle: labels with no DFT.

The model is loaded once per process, on first use, and kept in a module-level
cache keyed by (name, version, threads): a Dask worker loads it for its first
structure and reuses it for every later one.  The :class:`FoundationModelOracle`
itself holds only its configuration, so it pickles to the workers without the
model.  Weights come only from the installed package
(:func:`~mlip_autopipec.config.schemas.foundation_weights.shipped_weights`), never
from a download.  Each label records the model, its version and its package's
version (``oracle_model``, ``oracle_model_version``, ``oracle_model_package``).
"""

from __future__ import annotations

import contextlib
import io
import threading
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ase import Atoms

from mlip_autopipec.config.schemas.foundation_weights import INSTALL_ADVICE, package_version, shipped_weights
from mlip_autopipec.config.schemas.oracle import FoundationModelOracleConfig
from mlip_autopipec.exceptions import OracleError
from mlip_autopipec.oracle.base import LabelResult, Oracle, fully_periodic, results_from_calculator

ModelKey = tuple[str, str, int]

#: the calculators loaded in this process, by (name, version, threads)
_CALCULATORS: dict[ModelKey, Any] = {}
#: how often each model was loaded in this process (once, unless the cache was cleared)
_LOADS: Counter[ModelKey] = Counter()
#: one calculation at a time per process: an ASE calculator keeps its last results, and torch's threads are shared
_LOCK = threading.Lock()


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as err:
        raise OracleError(f"the foundation_model oracle needs torch, which is not installed: {INSTALL_ADVICE}") from err
    return torch


def _load_chgnet(version: str, weights: Path) -> Any:
    """CHGNet's ASE calculator on the CPU; ``CHGNet.load`` reads the checkpoint its package ships for ``version``."""
    from chgnet.model import CHGNet
    from chgnet.model.dynamics import CHGNetCalculator

    model = CHGNet.load(model_name=version, use_device="cpu", verbose=False)
    return CHGNetCalculator(model=model, use_device="cpu")


def _load_sevenn(version: str, weights: Path) -> Any:
    """SevenNet's ASE calculator on the CPU, from the checkpoint file itself (a name could trigger a download)."""
    from sevenn.calculator import SevenNetCalculator

    return SevenNetCalculator(model=str(weights), device="cpu")


_LOADERS = {"chgnet": _load_chgnet, "sevenn": _load_sevenn}


def model_key(config: FoundationModelOracleConfig) -> ModelKey:
    return (config.name, config.model_version, config.threads)


def load_calculator(config: FoundationModelOracleConfig) -> Any:
    """The model's ASE calculator in this process: loaded on first use (torch threads set), then reused."""
    key = model_key(config)
    calc = _CALCULATORS.get(key)
    if calc is not None:
        return calc
    weights = check_weights(config)
    torch = _import_torch()
    torch.set_num_threads(config.threads)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # "no tensor product accelerator", torch's deprecations: noise on a CPU
        calc = _LOADERS[config.name](config.model_version, weights)
    _CALCULATORS[key] = calc
    _LOADS[key] += 1
    return calc


def model_loads() -> dict[str, int]:
    """How often each model was loaded in this process, as ``{"chgnet 0.3.0 threads=1": 1}`` (for tests and checks,
    e.g. through ``client.run(model_loads)`` on every Dask worker)."""
    return {f"{name} {version} threads={threads}": n for (name, version, threads), n in _LOADS.items()}


def check_weights(config: FoundationModelOracleConfig) -> Path:
    """The shipped checkpoint of ``config``'s model, or :class:`OracleError` in one sentence (before any work)."""
    try:
        return shipped_weights(config.name, config.model_version)
    except ValueError as err:
        raise OracleError(f"oracle: {err}") from None


@dataclass(frozen=True)
class FoundationLabelResult(LabelResult):
    """A label from a foundation model: its provenance names the model, its version and its package's version."""

    model: str = ""
    model_version: str = ""
    package: str = ""

    def info(self) -> dict[str, Any]:
        return {
            **super().info(),
            "oracle_model": self.model,
            "oracle_model_version": self.model_version,
            "oracle_model_package": self.package,
        }


class FoundationModelOracle(Oracle):
    """Labels with CHGNet or SevenNet on the CPU: energy (eV), forces (eV/Å), stress (eV/Å³, ASE's sign) of fully
    periodic cells; the model is loaded once per process."""

    kind = "foundation_model"
    config: FoundationModelOracleConfig

    def _compute(self, atoms: Atoms, directory: Path | None) -> LabelResult:
        cfg = self.config
        calc = load_calculator(cfg)
        torch = _import_torch()
        with _LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.set_num_threads(cfg.threads)
            atoms.calc = calc
            energy, forces, stress = results_from_calculator(atoms, fully_periodic(atoms))
            atoms.calc = None
        package = f"{cfg.name} {package_version(cfg.name)}"
        return FoundationLabelResult(
            energy=energy,
            forces=forces,
            stress=stress,
            command=f"{package}: {cfg.name} {cfg.model_version} on the CPU ({cfg.threads} torch thread(s))",
            directory=str(directory) if directory is not None else None,
            model=cfg.name,
            model_version=cfg.model_version,
            package=package,
        )
