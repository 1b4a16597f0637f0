"""Shared fixtures: small seed crystals, temporary work directories, tool availability."""

from __future__ import annotations

import os
import shutil

import pytest
from ase.build import bulk

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


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
