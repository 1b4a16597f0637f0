"""No function in src/ is longer than 80 lines (issue 21): a long function does several jobs.

The test lists every function past the limit with its length, so a failure says where to look.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "mlip_autopipec"
MAX_LINES = 80


def function_lengths(path: Path) -> list[tuple[str, int]]:
    """(qualified name, lines from ``def`` to the last line of the body) of every function in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out: list[tuple[str, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                out.append((name, (child.end_lineno or child.lineno) - child.lineno + 1))
                visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")

    visit(tree, "")
    return out


def test_the_measure_counts_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(90))
    src = tmp_path / "m.py"
    src.write_text(f"class C:\n    def short(self):\n        return 1\n\n\ndef long():\n{body}\n", encoding="utf-8")
    assert dict(function_lengths(src)) == {"C.short": 2, "long": 91}


def test_no_function_in_src_is_longer_than_80_lines() -> None:
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 50, f"found only {len(files)} modules under {SRC}"
    too_long = [
        f"{path.relative_to(SRC)}::{name}: {n} lines"
        for path in files
        for name, n in function_lengths(path)
        if n > MAX_LINES
    ]
    if too_long:
        pytest.fail(f"{len(too_long)} function(s) longer than {MAX_LINES} lines:\n" + "\n".join(too_long))
