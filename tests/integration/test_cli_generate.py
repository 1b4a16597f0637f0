"""`mlip-autopipec generate CONFIG -o OUT`: the pool on disk with its provenance."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from ase.io import read

from mlip_autopipec.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_generate_writes_extxyz_with_provenance(tmp_path, capsys):
    out = tmp_path / "pool.xyz"
    assert main(["generate", str(ROOT / "examples" / "cu_generate.yaml"), "-o", str(out), "-n", "30"]) == 0
    pool = read(out, ":")
    assert len(pool) == 30
    assert "wrote 30 structures" in capsys.readouterr().out
    ops = {a.info["operation"] for a in pool}
    assert {"eos", "isotropic", "anisotropic", "defect"} <= ops
    strain = np.asarray(pool[-1].info["strain"])
    assert strain.shape == (3, 3)
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temporary file left


def test_generate_error_is_one_clear_line(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("structure: {element: Cu}\ngenerator: {volume_range: [0, 1]}\n")
    assert main(["generate", str(cfg), "-o", str(tmp_path / "x.xyz")]) == 2
    err = capsys.readouterr().err
    assert "generator.volume_range" in err and "Traceback" not in err
    assert not (tmp_path / "x.xyz").exists()


def test_console_script_is_installed(tmp_path):
    exe = Path(sys.executable).with_name("mlip-autopipec")
    out = tmp_path / "p.xyz"
    res = subprocess.run(
        [str(exe), "generate", str(ROOT / "examples" / "cu_generate.yaml"), "-o", str(out), "-n", "12"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert len(read(out, ":")) == 12
