"""PacemakerRunner around stand-ins for pacemaker: the exact command, the run directory, errors, timeout.

The stand-ins are small shell scripts that replay output captured from real pacemaker
runs (tests/data/pacemaker_*), so the runner's own work (input, process, log, progress,
metrics, errors) is tested in milliseconds; the real fit is in tests/integration.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from ase.build import bulk

from mlip_autopipec import launch
from mlip_autopipec.config import TrainingConfig, validate_config
from mlip_autopipec.exceptions import ConfigurationError, TrainerError
from mlip_autopipec.trainer import PacemakerProfile, PacemakerRunner, PaceRunner
from mlip_autopipec.trainer.parsing import prediction_errors
from mlip_autopipec.trainer.template import input_yaml

DATA = Path(__file__).resolve().parents[1] / "data"
CONFIG = dict(cutoff=5.0, number_of_functions_per_element=10, max_num_epochs=100, display_step=10)


def script(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def q(path: Path) -> str:
    return shlex.quote(str(path))


def replay(log: str, potential: bool = True, tables: bool = True, extra: str = "") -> str:
    """Body of a fake pacemaker that replays a real run's output files."""
    lines = [f"cat {q(DATA / log)}"]
    if potential:
        lines.append(f"cp {q(DATA / 'pacemaker_output_potential.yaml')} output_potential.yaml")
    if tables:
        lines.append(f"cp {q(DATA / 'pacemaker_cycle_metrics.txt')} cycle_metrics.txt")
        lines.append(f"cp {q(DATA / 'pacemaker_test_cycle_metrics.txt')} test_cycle_metrics.txt")
    return "\n".join([extra, *lines, ""])


@pytest.fixture
def dataset(tmp_path) -> Path:
    path = tmp_path / "data" / "train.pckl.gzip"
    path.parent.mkdir()
    atoms = [bulk("Cu", "fcc", a=3.6 + 0.01 * i) for i in range(3)]
    pd.DataFrame({"ase_atoms": atoms, "energy": [0.0] * 3}).to_pickle(path, compression="gzip")
    return path


@pytest.fixture
def bin_dir(tmp_path) -> Path:
    d = tmp_path / "bin"
    d.mkdir()
    return d


@pytest.fixture
def yaml2yace(bin_dir) -> str:
    return script(bin_dir / "pace_yaml2yace", 'echo "Saving Ctilde-basis to $3"\ncp "$1" "$3"\n')


def profile_with(bin_dir: Path, yaml2yace: str, body: str, **env: str) -> PacemakerProfile:
    return PacemakerProfile(pacemaker=script(bin_dir / "pacemaker", body), pace_yaml2yace=yaml2yace, env=env)


# --- the spec's mocked test ------------------------------------------------------------------------
def test_mocked_launcher_runs_pacemaker_input_yaml_in_output_dir(tmp_path, dataset, bin_dir, yaml2yace, monkeypatch):
    # the exact command lines, cwd, environment and log file handed to the one launcher
    calls: list[tuple[list[str], dict]] = []

    def fake_run_program(argv, **kwargs):
        calls.append((list(argv), kwargs))
        cwd = Path(kwargs["cwd"])
        if len(calls) == 1:
            assert (cwd / "input.yaml").is_file(), "input.yaml must exist before pacemaker starts"
            with open(kwargs["log_path"], "ab") as log:
                log.write((DATA / "pacemaker_tensorpot.log").read_bytes())
            (cwd / "output_potential.yaml").write_text((DATA / "pacemaker_output_potential.yaml").read_text())
            (cwd / "cycle_metrics.txt").write_text((DATA / "pacemaker_cycle_metrics.txt").read_text())
        else:
            (cwd / argv[-1]).write_text("fake yace")
        return launch.ProgramRun(
            kwargs["name"], tuple(argv), cwd, 0, False, kwargs["timeout_s"], 0.0, Path(kwargs["log_path"])
        )

    monkeypatch.setattr(launch, "run_program", fake_run_program)
    pacemaker = script(bin_dir / "pacemaker", "exit 99\n")  # must exist; never runs
    out = tmp_path / "fit"
    reports = []
    profile = PacemakerProfile(pacemaker=pacemaker, pace_yaml2yace=yaml2yace, env={"OMP_NUM_THREADS": "2"})
    runner = PacemakerRunner(TrainingConfig(**{**CONFIG, "timeout_s": 600}), profile, on_progress=reports.append)
    result = runner.train(dataset, out)

    (cmd, kwargs), (cmd2, kwargs2) = calls
    assert cmd == [pacemaker, "input.yaml"]
    assert Path(kwargs["cwd"]) == out.absolute() and Path(kwargs["log_path"]) == out.absolute() / "pacemaker.log"
    assert kwargs["timeout_s"] == 600 and kwargs["name"] == "pacemaker"
    assert kwargs["env"]["OMP_NUM_THREADS"] == "2" and kwargs["env"]["MPLBACKEND"] == "Agg"
    assert len(kwargs["pass_fds"]) == 1  # the fit folder's lock stays held while pacemaker lives
    assert cmd2 == [yaml2yace, "output_potential.yaml", "-o", "output_potential.yace"]
    assert Path(kwargs2["cwd"]) == out.absolute() and kwargs2["name"] == "pace_yaml2yace"
    assert (out / "input.yaml").read_text() == input_yaml(
        TrainingConfig(**{**CONFIG, "timeout_s": 600}), dataset, ["Cu"]
    )
    assert result.potential_yace == out.absolute() / "output_potential.yace"
    assert result.potential_yaml == out.absolute() / "output_potential.yaml"
    assert result.metrics.train_energy_rmse_mev_per_atom == pytest.approx(1.872982209425179)
    assert [r.iteration for r in reports if r.phase == "train"] == list(range(101))


def test_pace_runner_is_the_same_class():
    assert PaceRunner is PacemakerRunner


# --- real processes, stand-in programs --------------------------------------------------------------
def test_end_to_end_with_a_stand_in_pacemaker(tmp_path, dataset, bin_dir, yaml2yace):
    body = replay(
        "pacemaker_tensorpot.log", extra='pwd > cwd.txt\necho "$@" > args.txt\necho "$CUDA_VISIBLE_DEVICES" > env.txt'
    )
    profile = profile_with(bin_dir, yaml2yace, body, CUDA_VISIBLE_DEVICES="3")
    reports = []
    out = tmp_path / "fit"
    result = PacemakerRunner(TrainingConfig(**CONFIG), profile, on_progress=reports.append).train(dataset, out)

    assert Path((out / "cwd.txt").read_text().strip()).resolve() == out.resolve()
    assert (out / "args.txt").read_text().strip() == "input.yaml"
    assert (out / "env.txt").read_text().strip() == "3"  # the profile's environment reaches pacemaker
    assert result.log_path.read_text().startswith((DATA / "pacemaker_tensorpot.log").read_text()[:200])
    assert "Saving Ctilde-basis" in result.log_path.read_text()  # pace_yaml2yace's output is kept too
    assert result.potential_yace.is_file() and result.potential_yaml.is_file()
    m = result.metrics
    assert (m.train_energy_rmse_mev_per_atom, m.test_energy_rmse_mev_per_atom) == pytest.approx(
        (1.872982209425179, 2.691581173513685)
    )
    assert (m.train_force_rmse_mev_per_a, m.test_force_rmse_mev_per_a) == pytest.approx(
        (13.362307201142133, 8.760687040119244)
    )
    assert result.reference_energy is None
    assert result.evaluator == "tensorpot" or not PacemakerProfile().has_tensorpotential()
    train = [r for r in reports if r.phase == "train"]
    assert [r.iteration for r in train] == list(range(101))
    assert all(r.elapsed_s is not None and r.elapsed_s >= 0 for r in reports)
    doc = yaml.safe_load(result.input_yaml.read_text())
    assert doc["data"]["filename"] == str(dataset.absolute())


def test_metrics_from_log_and_test_predictions_when_tables_lack_them(tmp_path, dataset, bin_dir, yaml2yace):
    # the pyace evaluator prints no test errors; they come from test_pred.pckl.gzip
    body = (
        replay("pacemaker_pyace.log", tables=False, extra="")
        + f"cp {q(DATA / 'pacemaker_test_pred.pckl.gzip')} test_pred.pckl.gzip\n"
    )
    result = PacemakerRunner(
        TrainingConfig(**{**CONFIG, "evaluator": "pyace"}), profile_with(bin_dir, yaml2yace, body)
    ).train(dataset, tmp_path / "fit")
    expected = prediction_errors(pd.read_pickle(DATA / "pacemaker_test_pred.pckl.gzip", compression="gzip"))
    assert result.metrics.train_energy_rmse_mev_per_atom == pytest.approx(67.53, abs=0.006)  # from the log
    assert (result.metrics.test_energy_rmse_mev_per_atom, result.metrics.test_force_rmse_mev_per_a) == pytest.approx(
        expected
    )


def test_nonzero_exit_reports_directory_message_and_log_tail_once(tmp_path, dataset, bin_dir, yaml2yace, caplog):
    body = replay("pacemaker_broken_dataset.log", potential=False, tables=False) + "exit 1\n"
    out = tmp_path / "fit"
    with caplog.at_level(logging.DEBUG, logger="mlip_autopipec"), pytest.raises(TrainerError) as err:
        PacemakerRunner(TrainingConfig(**CONFIG), profile_with(bin_dir, yaml2yace, body)).train(dataset, out)
    text = str(err.value)
    assert text == (
        f"pacemaker failed (exit code 1) in {out.absolute()} (log {out.absolute() / 'pacemaker.log'}): "
        "ValueError: Column `forces` not found in dataset"
    )  # one sentence: whoever prints it (driver log, CLI) does not repeat the log's tail
    log_lines = (DATA / "pacemaker_broken_dataset.log").read_text().rstrip().splitlines()
    (tail_record,) = [r for r in caplog.records if log_lines[-1] in r.getMessage()]  # the tail, logged once
    assert tail_record.levelno == logging.DEBUG  # in the run log; on the terminal only with --verbose
    message = tail_record.getMessage()
    assert message.startswith(f"last 30 lines of the program's output (log {out.absolute() / 'pacemaker.log'}):")
    assert log_lines[-30] in message and log_lines[-31] not in message.split(":\n", 1)[1]
    shown = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert not any("Traceback" in m for m in shown)  # pacemaker's traceback never reaches the terminal


def test_no_potential_is_an_error_even_with_a_stale_one(tmp_path, dataset, bin_dir, yaml2yace):
    out = tmp_path / "fit"
    out.mkdir()
    (out / "output_potential.yaml").write_text("from an earlier run")
    body = replay("pacemaker_tensorpot.log", potential=False) + "exit 0\n"
    with pytest.raises(TrainerError, match="wrote no output_potential.yaml"):
        PacemakerRunner(TrainingConfig(**CONFIG), profile_with(bin_dir, yaml2yace, body)).train(dataset, out)


def test_yace_made_in_process_when_pace_yaml2yace_is_this_environments(tmp_path, dataset, bin_dir):
    profile = PacemakerProfile(pacemaker=script(bin_dir / "pacemaker", replay("pacemaker_tensorpot.log")))
    if not profile.is_local("pace_yaml2yace"):
        pytest.skip("pace_yaml2yace/pyace not installed beside this Python")
    result = PacemakerRunner(TrainingConfig(**CONFIG), profile).train(dataset, tmp_path / "fit")
    from pyace import ACECTildeBasisSet

    assert ACECTildeBasisSet(str(result.potential_yace)).nelements == 1  # a real, loadable .yace
    assert "converted to output_potential.yace with pyace" in result.log_path.read_text()
    assert not PacemakerProfile(pace_yaml2yace=str(bin_dir / "pacemaker")).is_local("pace_yaml2yace")


def test_in_process_conversion_leaves_the_callers_logging_alone():
    # `import pyace` calls logging.basicConfig(level=INFO); the trainer undoes that for its callers
    pytest.importorskip("pyace")
    code = (
        "import logging\n"
        "from mlip_autopipec.trainer.pyace_import import import_acebbasisset\n"
        "import_acebbasisset()\n"
        "root = logging.getLogger()\n"
        "print(len(root.handlers), root.level)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["0", str(logging.WARNING)]


def test_failed_yace_conversion_is_an_error(tmp_path, dataset, bin_dir):
    bad = script(bin_dir / "bad_yaml2yace", "echo 'RuntimeError: broken basis'\nexit 2\n")
    profile = PacemakerProfile(
        pacemaker=script(bin_dir / "pacemaker", replay("pacemaker_tensorpot.log")), pace_yaml2yace=bad
    )
    with pytest.raises(TrainerError, match="pace_yaml2yace could not convert.*exit code 2"):
        PacemakerRunner(TrainingConfig(**CONFIG), profile).train(dataset, tmp_path / "fit")


def test_timeout_stops_the_whole_process_group(tmp_path, dataset, bin_dir, yaml2yace):
    body = "echo started\nsleep 60 &\necho $! > child.pid\nwait\n"
    out = tmp_path / "fit"
    t0 = time.monotonic()
    with pytest.raises(
        TrainerError, match=r"pacemaker ran past its 1 s time limit in .*fit \(log .*pacemaker.log\) and was stopped"
    ) as err:
        PacemakerRunner(TrainingConfig(**{**CONFIG, "timeout_s": 1}), profile_with(bin_dir, yaml2yace, body)).train(
            dataset, out
        )
    assert time.monotonic() - t0 < 20
    assert str(out.absolute()) in str(err.value)
    child = int((out / "child.pid").read_text())
    for _ in range(50):  # the orphaned sleep is reaped by init shortly after its SIGTERM
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"pacemaker's child process {child} survived the timeout")


def test_missing_executable_says_how_to_install(tmp_path, dataset):
    profile = PacemakerProfile(pacemaker="no-such-pacemaker-anywhere")
    with pytest.raises(TrainerError) as err:
        PacemakerRunner(TrainingConfig(**CONFIG), profile).train(dataset, tmp_path / "fit")
    assert "pip install python-ace==0.4.0rc1" in str(err.value) and "scripts/setup.sh" in str(err.value)
    with pytest.raises(TrainerError, match="pip install python-ace"):
        PacemakerProfile(pace_yaml2yace=str(tmp_path / "nowhere" / "pace_yaml2yace")).executable("pace_yaml2yace")


def test_missing_dataset_and_initial_potential_are_errors(tmp_path, dataset, bin_dir, yaml2yace):
    profile = profile_with(bin_dir, yaml2yace, "exit 1\n")
    with pytest.raises(TrainerError, match="training dataset not found"):
        PacemakerRunner(TrainingConfig(**CONFIG), profile).train(tmp_path / "nope.pckl.gzip", tmp_path / "fit")
    with pytest.raises(TrainerError, match="initial_potential not found"):
        PacemakerRunner(TrainingConfig(**{**CONFIG, "initial_potential": tmp_path / "gen0.yaml"}), profile).train(
            dataset, tmp_path / "fit"
        )
    bad = tmp_path / "bad.pckl.gzip"
    bad.write_bytes(b"not a pickle")
    with pytest.raises(TrainerError, match="cannot read the training dataset"):
        PacemakerRunner(TrainingConfig(**CONFIG), profile).train(bad, tmp_path / "fit")


def test_initial_potential_is_copied_into_the_run(tmp_path, dataset, bin_dir, yaml2yace):
    start = tmp_path / "gen0" / "output_potential.yaml"
    start.parent.mkdir()
    start.write_text((DATA / "pacemaker_output_potential.yaml").read_text())
    out = tmp_path / "gen1"
    PacemakerRunner(
        TrainingConfig(**{**CONFIG, "initial_potential": start}),
        profile_with(bin_dir, yaml2yace, replay("pacemaker_tensorpot.log")),
    ).train(dataset, out)
    doc = yaml.safe_load((out / "input.yaml").read_text())
    assert doc["potential"] == {"filename": str(out.absolute() / "initial_potential.yaml")}
    assert (out / "initial_potential.yaml").read_text() == start.read_text()


def test_falls_back_to_pyace_without_tensorpotential(tmp_path, dataset, bin_dir, yaml2yace, monkeypatch, caplog):
    monkeypatch.setattr(PacemakerProfile, "has_tensorpotential", lambda self: False)
    with caplog.at_level(logging.WARNING, logger="mlip_autopipec.trainer.pace"):
        result = PacemakerRunner(
            TrainingConfig(**CONFIG), profile_with(bin_dir, yaml2yace, replay("pacemaker_tensorpot.log"))
        ).train(dataset, tmp_path / "fit")
    assert result.evaluator == "pyace"
    assert yaml.safe_load(result.input_yaml.read_text())["backend"]["evaluator"] == "pyace"
    assert any("tensorpotential" in rec.getMessage() for rec in caplog.records)


def test_a_failing_progress_callback_does_not_break_the_fit(tmp_path, dataset, bin_dir, yaml2yace):
    def boom(report):
        raise RuntimeError("display broke")

    result = PacemakerRunner(
        TrainingConfig(**CONFIG), profile_with(bin_dir, yaml2yace, replay("pacemaker_tensorpot.log")), on_progress=boom
    ).train(dataset, tmp_path / "fit")
    assert result.potential_yace.is_file()


# --- the profile --------------------------------------------------------------------------------------
def test_profile_looks_beside_python_first_then_on_path(tmp_path, monkeypatch):
    venv_bin, path_dir = tmp_path / "venv" / "bin", tmp_path / "elsewhere"
    venv_bin.mkdir(parents=True)
    path_dir.mkdir()
    script(path_dir / "pacemaker", "exit 0\n")
    monkeypatch.setattr(sys, "executable", str(venv_bin / "python"))
    monkeypatch.setenv("PATH", str(path_dir))
    assert PacemakerProfile().find("pacemaker") == str(path_dir / "pacemaker")
    script(venv_bin / "pacemaker", "exit 0\n")
    assert PacemakerProfile().find("pacemaker") == str(venv_bin / "pacemaker")
    assert PacemakerProfile().command("pacemaker", "input.yaml") == [str(venv_bin / "pacemaker"), "input.yaml"]


def test_profile_environment_adds_to_the_process_environment(monkeypatch):
    monkeypatch.setenv("MLIP_AUTOPIPEC_TEST_VAR", "outer")
    env = PacemakerProfile(env={"CUDA_VISIBLE_DEVICES": "1"}).environment()
    assert env["CUDA_VISIBLE_DEVICES"] == "1" and env["MLIP_AUTOPIPEC_TEST_VAR"] == "outer"


def test_mappings_are_validated_at_the_door_and_refused_inside():
    with pytest.raises(ConfigurationError, match="pacemker: unknown field"):
        validate_config(PacemakerProfile, {"pacemker": "typo"}, "trainer profile")
    with pytest.raises(ConfigurationError, match="training: cutoff"):
        validate_config(TrainingConfig, {"cutoff": -1}, "training")
    with pytest.raises(ConfigurationError, match="PacemakerRunner's config takes a configuration model"):
        PacemakerRunner(CONFIG)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="PacemakerRunner's profile takes a configuration model"):
        PacemakerRunner(TrainingConfig(**CONFIG), {"pacemaker": "pacemaker"})  # type: ignore[arg-type]
