"""The espresso oracle's command line, environment and healing loop, shown with a stand-in for pw.x.

The stand-in replays canned outputs of real pw.x runs (tests/data/qe_*), so
these tests run where pw.x is absent; the real program is exercised in
tests/integration/test_oracle_espresso.py.
"""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.io import read

from mlip_autopipec.config import EspressoOracleConfig
from mlip_autopipec.oracle import LabelFailed, label_one, make_oracle
from mlip_autopipec.oracle.espresso import PwProfile

DATA = Path(__file__).resolve().parents[1] / "data"

FAKE_PW = """#!{python}
# Stand-in for pw.x: records its argv, cwd and OMP_NUM_THREADS, then replays a canned output.
import json, os, re, sys
args = sys.argv[1:]
inp = open(args[args.index("-in") + 1]).read()
with open({log!r}, "a") as log:
    call = {{"argv": sys.argv, "cwd": os.getcwd(), "omp": os.environ.get("OMP_NUM_THREADS"), "input": inp}}
    log.write(json.dumps(call) + "\\n")
maxstep = int(re.search(r"electron_maxstep\\s*=\\s*(\\d+)", inp).group(1))
name = "qe_si2_not_converged.pwo" if maxstep < {converge_from} else "qe_si2_converged.pwo"
sys.stdout.write(open(os.path.join({data!r}, name)).read())
sys.exit(2 if maxstep < {converge_from} else 0)
"""


def si2():
    atoms = bulk("Si", "diamond", a=5.43)
    atoms.rattle(0.05, seed=1)
    return atoms


@pytest.fixture
def fake_pw(tmp_path):
    def make(converge_from: int = 2) -> tuple[str, Path]:
        exe = tmp_path / "bin" / "fake-pw.x"
        exe.parent.mkdir(exist_ok=True)
        log = tmp_path / "pw_calls.jsonl"
        exe.write_text(FAKE_PW.format(python=sys.executable, log=str(log), data=str(DATA), converge_from=converge_from))
        exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
        return str(exe), log

    return make


def calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture
def pseudo_dir(tmp_path):
    # The oracle checks the pseudopotential file exists before it runs pw.x: give the stand-in one.
    folder = tmp_path / "pseudo"
    folder.mkdir()
    (folder / "Si.pbe-rrkj.UPF").write_text("stand-in pseudopotential for tests with a fake pw.x\n")
    return folder


@pytest.fixture
def qe_config(pseudo_dir):
    def make(command: str, **extra) -> EspressoOracleConfig:
        return EspressoOracleConfig(
            **{
                "type": "espresso",
                "command": command,
                "pseudopotentials": {"Si": "Si.pbe-rrkj.UPF"},
                "pseudo_dir": str(pseudo_dir),
                "ecutwfc": 12,
                "kspacing": 1.2,
                **extra,
            }
        )

    return make


def test_profile_splits_the_command_without_a_shell():
    profile = PwProfile("mpirun -np 4 pw.x", "/pseudo", env={"OMP_NUM_THREADS": "1"})
    assert profile.get_command("espresso.pwi") == ["mpirun", "-np", "4", "pw.x", "-in", "espresso.pwi"]
    assert profile.pseudo_dir == "/pseudo" and profile.env == {"OMP_NUM_THREADS": "1"}


def test_one_run_writes_the_input_and_reads_the_output(fake_pw, tmp_path, monkeypatch, qe_config, pseudo_dir):
    exe, log = fake_pw()
    monkeypatch.setenv("OMP_NUM_THREADS", "8")  # the profile's env wins over the worker's
    result = make_oracle(qe_config(f"{exe} -nk 1", electron_maxstep=50)).label(si2(), tmp_path / "structure_1")
    (call,) = calls(log)
    assert call["argv"][1:] == ["-nk", "1", "-in", "espresso.pwi"]
    assert call["cwd"] == str(tmp_path / "structure_1" / "attempt_1") and call["omp"] == "1"
    inp = call["input"]
    for fragment in (
        "tprnfor          = .true.",
        "tstress          = .true.",
        f"pseudo_dir       = '{pseudo_dir}'",
        "ecutwfc          = 12",
        "2 2 2  0 0 0",
    ):
        assert fragment in inp
    ref = read(DATA / "qe_si2_converged.pwo")
    assert result.energy == pytest.approx(ref.get_potential_energy(), abs=1e-10)
    assert np.allclose(result.forces, ref.get_forces(), atol=1e-10) and np.allclose(
        result.stress, ref.get_stress(), atol=1e-12
    )
    assert result.command == f"{exe} -nk 1 -in espresso.pwi"
    assert [a.outcome for a in result.attempts] == ["converged in 7 SCF iterations"]
    assert not (tmp_path / "structure_1" / "attempt_1" / "scratch").exists()


def test_non_convergence_climbs_the_ladder_and_records_every_attempt(fake_pw, tmp_path, qe_config):
    exe, log = fake_pw(converge_from=301)  # the ladder's 300 steps are not enough for this stand-in
    with pytest.raises(LabelFailed, match=r"SCF did not converge in 3 attempt\(s\)") as err:
        make_oracle(qe_config(exe, max_attempts=3)).label(si2(), tmp_path / "s")
    assert [a.number for a in err.value.attempts] == [1, 2, 3]
    assert all(a.outcome == "SCF not converged after 1 iterations" for a in err.value.attempts)
    assert err.value.attempts[2].settings == {
        "electrons.mixing_beta": 0.1,
        "electrons.electron_maxstep": 300,
        "electrons.mixing_mode": "local-TF",
    }
    assert "convergence NOT achieved" in err.value.output_tail
    inputs = [c["input"] for c in calls(log)]
    assert "mixing_beta      = 0.7" in inputs[0] and "mixing_beta      = 0.3" in inputs[1] and "'local-TF'" in inputs[2]
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["attempt_1", "attempt_2", "attempt_3"]


def test_second_rung_heals_a_forced_non_convergence(fake_pw, tmp_path, qe_config):
    exe, log = fake_pw(converge_from=2)
    result = make_oracle(qe_config(exe, electron_maxstep=1)).label(si2(), tmp_path / "s")
    assert [a.outcome for a in result.attempts] == [
        "SCF not converged after 1 iterations",
        "converged in 7 SCF iterations",
    ]
    assert result.attempts[1].settings == {"electrons.mixing_beta": 0.3, "electrons.electron_maxstep": 300}
    assert len(calls(log)) == 2 and result.directory == str(tmp_path / "s" / "attempt_2")


def test_a_rerun_starts_from_clean_attempt_folders(fake_pw, tmp_path, qe_config):
    exe, _ = fake_pw(converge_from=2)
    oracle = make_oracle(qe_config(exe, electron_maxstep=1))
    oracle.label(si2(), tmp_path / "s")
    (tmp_path / "s" / "attempt_3").mkdir()  # left over by an earlier, killed run
    oracle.label(si2(), tmp_path / "s")
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["attempt_1", "attempt_2"]


def test_missing_program_and_missing_pseudopotentials_are_clear_failures(tmp_path, qe_config):
    outcome = label_one(make_oracle(qe_config(str(tmp_path / "no-such-pw.x"))), si2(), str(tmp_path / "s"), 11)
    assert (
        not outcome.ok
        and "pw.x wrote no output; FileNotFoundError" in outcome.reason
        and "no-such-pw.x" in outcome.reason
    )
    with pytest.raises(LabelFailed, match=r"pseudopotential file\(s\) \['Nope.UPF'\] not found in"):
        make_oracle(qe_config("pw.x").model_copy(update={"pseudopotentials": {"Si": "Nope.UPF"}})).label(
            si2(), tmp_path / "t"
        )
    with pytest.raises(LabelFailed, match="no pseudopotential configured for Cu"):
        make_oracle(qe_config("pw.x")).label(bulk("Cu"), tmp_path / "u")


def test_without_a_directory_the_run_happens_in_a_temporary_folder(fake_pw, qe_config):
    exe, log = fake_pw(converge_from=2)
    result = make_oracle(qe_config(exe, electron_maxstep=50)).label(si2())
    assert result.directory is None and len(result.attempts) == 1
    (call,) = calls(log)
    assert not Path(call["cwd"]).exists()  # removed afterwards


def test_a_pw_killed_by_a_signal_is_named_in_the_failure(tmp_path, qe_config):
    exe = tmp_path / "bin" / "killed-pw.x"
    exe.parent.mkdir(exist_ok=True)
    exe.write_text("#!/bin/sh\necho '     Program PWSCF v.6.7MaX starts on  1Jan2026'\nkill -KILL $$\n")
    exe.chmod(0o755)
    outcome = label_one(make_oracle(qe_config(str(exe))), si2(), str(tmp_path / "s"), 3)
    assert not outcome.ok and len(outcome.attempts) == 1  # not retried: the ladder heals SCFs, not kills
    assert outcome.reason.startswith(
        f"pw.x failed on attempt 1: pw.x was killed by signal 9 (SIGKILL) in {tmp_path / 's' / 'attempt_1'}"
    )
    assert "possibly out of memory" in outcome.reason and "exit code" not in outcome.reason
