"""The import layers (pyproject.toml [tool.importlinter]) hold, and lint-imports really catches a break.

Each case copies src/ and pyproject.toml to a temporary folder, changes the copy and runs
``lint-imports`` on it, as scripts/test.sh does on the real tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def lint_imports() -> str:
    """The lint-imports beside this Python (a test extra), else the one on PATH; a missing one fails the test."""
    beside = Path(sys.executable).parent / "lint-imports"
    found = str(beside) if beside.is_file() else shutil.which("lint-imports")
    if found is None:
        pytest.fail("lint-imports is not installed: pip install -e '.[test]' (import-linter is a test extra)")
    return found


@pytest.fixture
def tree(tmp_path):
    """A copy of src/ and pyproject.toml, without caches."""
    shutil.copytree(ROOT / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy2(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def run_lint(folder: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(folder / "src")}  # the copy, not the installed package
    return subprocess.run(
        [lint_imports(), "--no-logo", "--no-cache", "pyproject.toml"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def add_line(path: Path, line: str) -> None:
    text = path.read_text()
    head, sep, rest = text.partition("from __future__ import annotations\n")
    path.write_text(head + sep + line + "\n" + rest if sep else line + "\n" + text)


def test_the_untouched_tree_keeps_every_contract(tree):
    result = run_lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_upward_import_fails_and_is_named(tree):
    add_line(
        tree / "src/mlip_autopipec/database/validation.py", "import mlip_autopipec.pipeline  # deliberately upward"
    )
    result = run_lint(tree)
    assert result.returncode != 0
    out = result.stdout
    assert "mlip_autopipec.database is not allowed to import mlip_autopipec.pipeline" in out
    assert "mlip_autopipec.database.validation -> mlip_autopipec.pipeline" in out


def test_a_sideways_import_between_independent_siblings_fails(tree):
    add_line(tree / "src/mlip_autopipec/oracle/emt.py", "import mlip_autopipec.trainer  # siblings stay independent")
    result = run_lint(tree)
    assert result.returncode != 0
    assert "mlip_autopipec.oracle is not allowed to import mlip_autopipec.trainer" in result.stdout


def test_a_cycle_inside_a_package_fails(tree):
    """The config cycle issue 10 found (schemas -> loader -> schemas) is caught if it comes back."""
    add_line(tree / "src/mlip_autopipec/config/schemas/oracle.py", "import mlip_autopipec.config.loader  # a cycle")
    result = run_lint(tree)
    assert result.returncode != 0
    assert "No cycles are allowed in mlip_autopipec.config" in result.stdout
