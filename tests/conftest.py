"""Shared fixtures: small seed crystals, temporary work directories, tool availability."""

from __future__ import annotations

import os
import shutil

import pytest
from ase.build import bulk
from hypothesis import settings

# Property tests draw the same examples on every run (set HYPOTHESIS_PROFILE=explore to draw new ones),
# so a CI run can never turn red on a new random draw.
settings.register_profile("repeatable", derandomize=True, deadline=None)
settings.register_profile("explore", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

import sys
from pathlib import Path

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Programs installed beside this interpreter (pacemaker, pace_yaml2yace, ...) are found
# even when the suite runs as `.venv/bin/python -m pytest` without an activated venv.
_BIN = str(Path(sys.executable).parent)
if _BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _BIN + os.pathsep + os.environ.get("PATH", "")


def require_executable(name: str) -> str:
    """Return the path of ``name``; skip the test when absent, but fail under CI=true.

    CI installs every external program the suite needs, so a missing one there is
    a broken set-up, never a reason to skip.
    """
    path = shutil.which(name)
    if path is None:
        if IN_CI:
            pytest.fail(f"{name} is not installed, but CI=true: the CI set-up must install it")
        pytest.skip(f"{name} not found on PATH")
    return path


@pytest.fixture
def cu_fcc():
    return bulk("Cu", "fcc", a=3.61, cubic=True)


@pytest.fixture
def si_diamond():
    return bulk("Si", "diamond", a=5.43)
