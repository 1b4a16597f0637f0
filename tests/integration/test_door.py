"""Odd input refused at the door, in one sentence (issue 22, rows 4, 5, 6, 9 and 13): real `mlip-autopipec` processes.

Each case runs the installed command on real files and checks what a user sees:
exit status 2, one ``error:`` line that names the problem, no traceback, and
nothing written.  None of these needs an oracle call or a fit.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase.build import bulk
from ase.calculators.emt import EMT

from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.database import DatabaseManager, StructureMetadata

EXE = str(Path(sys.executable).with_name("mlip-autopipec"))
P1_CU4 = """data_p1
_symmetry_space_group_name_H-M   'P 1'
_cell_length_a   3.61
_cell_length_b   3.61
_cell_length_c   3.61
_cell_angle_alpha   90
_cell_angle_beta    90
_cell_angle_gamma   90
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
Cu1 Cu 0 0 0
Cu2 Cu 0 0.5 0.5
Cu3 Cu 0.5 0 0.5
Cu4 Cu 0.5 0.5 0
"""


def cli(*args: str, umask: int | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    preexec = (lambda: os.umask(umask)) if umask is not None else None  # noqa: E731 - set in the child only
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=120, preexec_fn=preexec, cwd=cwd)


def refused(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit status 2 and one ``error:`` line naming ``needles``; no traceback; "valid" never said."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and "valid\n" not in proc.stdout, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def test_random_bytes_as_the_config(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_bytes(np.random.default_rng(22).bytes(4096))
    refused(cli("validate", str(path)), str(path), "is not a text file in UTF-8", "a configuration must be a YAML")


def test_a_key_given_twice_is_refused_with_both_lines(tmp_path):
    """Row 4: a second `training:` block silently replaced the first, and `validate` said valid."""
    path = tmp_path / "cfg.yaml"
    path.write_text(
        "structure: {element: Cu, cubic: true}\n"
        "training:\n  cutoff: 5.0\n"
        "generator: {pool_size: 10}\n"
        "training:\n  cutoff: 7.0\n  number_of_functions_per_element: 400\n"
    )
    refused(cli("validate", str(path)), "the key 'training' is given twice", "at lines 2 and 5")


def test_malformed_yaml_is_one_line_with_file_line_and_column(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("structure: {element: Cu, cubic: true\ngenerator: {pool_size: 10}\n")
    line = refused(cli("validate", str(path)), f"{path}:2:10: not valid YAML: ")
    assert "while parsing a flow mapping that started at line 1" in line


def test_a_p1_cif_with_one_atom_twice_is_refused(tmp_path):
    """Row 6: no occupancy column, so ASE merged the fifth atom silently and the seed became Cu4."""
    (tmp_path / "cu5.cif").write_text(P1_CU4 + "Cu5 Cu 0.5 0.5 0\n")
    path = tmp_path / "cfg.yaml"
    path.write_text("structure: {file: cu5.cif}\ngenerator: {pool_size: 10}\n")
    refused(cli("validate", str(path)), "cu5.cif", "lists 5 sites", "sites Cu4 and Cu5", "it read only 4 atoms")


def test_a_seed_above_max_atoms_is_refused_with_an_estimate(tmp_path):
    """Row 9: `repeat: [20, 20, 20]` (32,000 atoms) was valid, and `run` sat at ~15 GB in the generate step."""
    path = tmp_path / "cfg.yaml"
    path.write_text(
        "structure: {element: Cu, cubic: true, repeat: [20, 20, 20]}\n"
        "generator: {pool_size: 30, n_defect_structures: 2, defect_kinds: [interstitial]}\n"
    )
    refused(
        cli("validate", str(path)),
        "has 32000 atoms, more than generator.max_atoms (2000)",
        "the pool would take roughly",
        "(an estimate: about 500 bytes per atom",
    )
    out = tmp_path / "pool.xyz"
    refused(cli("generate", str(path), "-o", str(out)), "has 32000 atoms")
    assert not out.exists()


def test_a_seed_name_keeps_its_unicode_letters(tmp_path):
    (tmp_path / "séed ü.cif").write_text(P1_CU4)
    path = tmp_path / "cfg.yaml"
    path.write_text("seeds:\n  - file: séed ü.cif\ngenerator: {pool_size: 4}\n", encoding="utf-8")
    proc = cli("generate", str(path), "-o", str(tmp_path / "pool.xyz"))
    assert proc.returncode == 0, proc.stderr
    assert "(seeds: 4 séed_ü;" in proc.stdout


@pytest.fixture(scope="module")
def labelled_workdir(tmp_path_factory):
    """A work directory with three structures labelled by EMT in this process (no Dask, no fit)."""
    from mlip_autopipec.pipeline.state import write_state

    workdir = tmp_path_factory.mktemp("door") / "w"
    workdir.mkdir()
    cfg = PipelineConfig.model_validate(
        {"workdir": str(workdir), "structure": {"element": "Cu", "cubic": True}, "oracle": {"type": "emt"}}
    )
    write_state(workdir, cfg)
    with DatabaseManager(workdir / "structures.db") as db:
        for a in (3.55, 3.6, 3.65):
            atoms = bulk("Cu", "fcc", a=a, cubic=True)
            atoms.rattle(0.02, seed=int(a * 100))
            sid = db.add_structure(atoms, StructureMetadata(source="initial_random"))
            atoms.calc = EMT()
            db.set_labels(sid, atoms.get_potential_energy(), atoms.get_forces())
    return workdir


def test_export_writes_exactly_the_path_given_with_the_users_umask(labelled_workdir, tmp_path):
    """Row 13: `-o out.txt` wrote `out.txt.xyz`; exports were created 0600."""
    out = tmp_path / "out"
    out.mkdir()
    refused(
        cli("export", str(labelled_workdir), "--format", "extxyz", "-o", str(out / "all.txt")),
        "all.txt: unknown dataset format",
        ".pckl.gzip (pacemaker)",
        ".xyz / .extxyz (extended XYZ)",
    )
    refused(
        cli("export", str(labelled_workdir), "--format", "pacemaker", "-o", str(out / "all.xyz")),
        "--format pacemaker, but the name says extxyz; give a name ending in .pckl.gzip",
    )
    assert list(out.iterdir()) == []
    for name, umask in (("all.extxyz", 0o002), ("train.pckl.gzip", 0o022)):
        proc = cli("export", str(labelled_workdir), "-o", str(out / name), umask=umask)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == f"wrote 3 labelled structures to {out / name}"
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o666 & ~umask
    assert sorted(p.name for p in out.iterdir()) == ["all.extxyz", "train.pckl.gzip"]


def test_records_get_the_users_umask(tmp_path):
    """state.json and the other records are written through the same atomic writer as the exports."""
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump({"structure": {"element": "Cu", "cubic": True}, "generator": {"pool_size": 4}}))
    proc = cli("generate", str(path), "-o", str(tmp_path / "pool.xyz"), umask=0o007)
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE((tmp_path / "pool.xyz").stat().st_mode) == 0o660
