"""pace_activeset / pace_select command lines, their profile, the log parser and the quiet pyace import."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlip_autopipec.exceptions import TrainerError
from mlip_autopipec.explore.activeset import activeset_command, asi_path_for, build_active_set, parse_activeset_log
from mlip_autopipec.explore.select import select_command
from mlip_autopipec.trainer.profile import PacemakerProfile

DATA = Path(__file__).resolve().parents[1] / "data" / "explore"


def test_activeset_command_is_an_argument_list():
    cmd = activeset_command("/x/pace_activeset", "pot.yaml", [Path("/d/a.pckl.gzip"), Path("/d/b.pckl.gzip")])
    assert cmd == ["/x/pace_activeset", "pot.yaml", "-d", "/d/a.pckl.gzip", "-d", "/d/b.pckl.gzip"]
    cmd = activeset_command("pa", "pot.yaml", [Path("d.pckl.gzip")], all_atoms=True, memory_limit=2.0)
    assert cmd == ["pa", "pot.yaml", "-d", "d.pckl.gzip", "-a", "-m", str(2 * 2**20)]


def test_select_command_is_an_argument_list():
    cmd = select_command("ps", "c.pckl.gzip", Path("/p/pot.yaml"), Path("/p/pot.asi"), 7, 1000, 1.01, 300, 2)
    assert cmd == [
        "ps",
        "c.pckl.gzip",
        "-p",
        "/p/pot.yaml",
        "-a",
        "/p/pot.asi",
        "-m",
        "7",
        "-o",
        "selected.pkl.gz",
        "-b",
        "auto",
        "-g",
        "1.01",
        "-i",
        "300",
        "-r",
        "2",
        "-mem",
        "1000",
    ]
    assert "-a" not in select_command("ps", "c.pckl.gzip", Path("/p/pot.yaml"), None, 7, 1000, 1.01, 300, 2)


def test_asi_path_replaces_only_the_file_name():
    assert asi_path_for(Path("/w/gen.yaml.d/output_potential.yaml")) == Path("/w/gen.yaml.d/output_potential.asi")


def test_parse_canned_activeset_log():
    summary = parse_activeset_log((DATA / "pace_activeset.log").read_text())
    assert set(summary) == {"Cu"}
    assert summary["Cu"].n_functions == 12
    assert summary["Cu"].gamma_max == pytest.approx(1.007)
    assert parse_activeset_log("nothing here") == {}


def test_non_yaml_potential_is_refused_and_left_untouched(tmp_path):
    pot = tmp_path / "pot.yace"
    pot.write_text("original")
    data = tmp_path / "d.pckl.gzip"
    data.write_bytes(b"x")
    with pytest.raises(TrainerError, match=r"\.yaml"):
        build_active_set(pot, data)
    assert pot.read_text() == "original"


def test_missing_inputs_are_named(tmp_path):
    pot = tmp_path / "pot.yaml"
    with pytest.raises(TrainerError, match="pot.yaml"):
        build_active_set(pot, tmp_path / "d.pckl.gzip")
    pot.write_text("x")
    with pytest.raises(TrainerError, match="d.pckl.gzip"):
        build_active_set(pot, tmp_path / "d.pckl.gzip")


def test_missing_executable_says_how_to_install(tmp_path):
    pot = tmp_path / "pot.yaml"
    pot.write_text("x")
    data = tmp_path / "d.pckl.gzip"
    data.write_bytes(b"x")
    with pytest.raises(TrainerError, match="python-ace"):
        build_active_set(pot, data, profile=PacemakerProfile(pace_activeset="no_such_pace_tool_xyz"))
    with pytest.raises(TrainerError, match="python-ace"):
        PacemakerProfile(pace_select=str(tmp_path / "nope" / "pace_select")).executable("pace_select")


def stand_in(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def test_run_in_the_potential_folder_with_profile_environment(tmp_path):
    pot_dir = tmp_path / "fit"
    pot_dir.mkdir()
    pot = pot_dir / "output_potential.yaml"
    pot.write_text("x")
    data = tmp_path / "train.pckl.gzip"
    data.write_bytes(b"x")
    exe = stand_in(
        tmp_path / "pace_activeset",
        'echo "$@" > args.txt\npwd > cwd.txt\necho "threads $OMP_NUM_THREADS"\necho asi > output_potential.asi\n',
    )
    asi = build_active_set(pot, data, profile=PacemakerProfile(pace_activeset=str(exe), env={"OMP_NUM_THREADS": "3"}))
    assert asi == pot_dir / "output_potential.asi"
    assert (pot_dir / "args.txt").read_text().split() == ["output_potential.yaml", "-d", str(data)]
    assert Path((pot_dir / "cwd.txt").read_text().strip()).resolve() == pot_dir.resolve()
    assert (pot_dir / "pace_activeset.log").read_text() == "threads 3\n"


def test_failure_carries_the_output_tail_and_stale_asi_is_not_success(tmp_path):
    pot = tmp_path / "p.yaml"
    pot.write_text("x")
    (tmp_path / "p.asi").write_bytes(b"stale")
    data = tmp_path / "d.pckl.gzip"
    data.write_bytes(b"x")
    exe = stand_in(tmp_path / "pa", "echo 'quietly did nothing'\n")
    with pytest.raises(TrainerError, match="wrote no active set"):
        build_active_set(pot, data, profile=PacemakerProfile(pace_activeset=str(exe)))
    stand_in(exe, "echo line\necho 'ValueError: boom' >&2\nexit 1\n")
    with pytest.raises(TrainerError, match="boom") as err:
        build_active_set(pot, data, profile=PacemakerProfile(pace_activeset=str(exe)))
    assert "pace_activeset failed (exit code 1)" in str(err.value) and str(tmp_path) in str(err.value)


def test_a_killed_tool_is_described_by_its_signal(tmp_path):
    pot = tmp_path / "p.yaml"
    pot.write_text("x")
    data = tmp_path / "d.pckl.gzip"
    data.write_bytes(b"x")
    exe = stand_in(tmp_path / "pa", "echo working\nkill -9 $$\n")
    with pytest.raises(TrainerError) as err:
        build_active_set(pot, data, profile=PacemakerProfile(pace_activeset=str(exe)))
    expected = (
        f"pace_activeset was killed by signal 9 (SIGKILL) in {tmp_path} (log {tmp_path / 'pace_activeset.log'}): "
        "possibly out of memory"
    )
    assert expected in str(err.value)
    assert "working" in str(err.value)


def test_pace_select_is_looked_up_beside_the_interpreter_first():
    beside = Path(sys.executable).parent / Path(sys.executable).name
    assert PacemakerProfile(pace_select=Path(sys.executable).name).find("pace_select") == str(beside)
    assert PacemakerProfile(pace_select="no_such_pace_tool_xyz").find("pace_select") is None


def _root_logger_after(import_line: str) -> str:
    code = f"import logging; logging.getLogger().setLevel(logging.WARNING)\n{import_line}\n" + (
        "print(logging.getLogger().level, len(logging.getLogger().handlers))"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ), check=True
    ).stdout.strip()


def test_quiet_import_keeps_the_root_logger_level():
    quiet = "from mlip_autopipec.trainer.pyace_import import import_pyace_calculator; import_pyace_calculator()"
    assert _root_logger_after(quiet) == "30 0"
    assert _root_logger_after("import pyace") == "20 1"  # what pyace does to the root logger without the guard
