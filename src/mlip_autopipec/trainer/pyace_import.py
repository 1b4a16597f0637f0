"""Import pyace without letting it reconfigure the application's logging (the one home of this guard).

``import pyace`` calls ``logging.basicConfig(level=INFO)`` and sets the root
logger to INFO, and ``pyace.aceselect`` calls ``basicConfig`` again; imported
naively, every INFO message of every library would start to print.  These
helpers import lazily (pyace also takes ~1 s to import) and put the root
logger's level and handlers back as they were.
"""

from __future__ import annotations

import importlib
import logging
from types import ModuleType


def import_quietly(module: str) -> ModuleType:
    """Import ``module`` and restore the root logger's level and handlers afterwards."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        return importlib.import_module(module)
    finally:
        for h in list(root.handlers):
            if h not in handlers:
                root.removeHandler(h)
        root.setLevel(level)


def import_acebbasisset():
    """``pyace.ACEBBasisSet`` (the B-basis potential: .yaml files, conversion to .yace)."""
    return import_quietly("pyace.basis").ACEBBasisSet


def import_pyace_calculator():
    """``pyace.PyACECalculator``."""
    return import_quietly("pyace.asecalc").PyACECalculator


__all__ = ["import_acebbasisset", "import_pyace_calculator", "import_quietly"]
