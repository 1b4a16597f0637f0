"""Active-learning building blocks on a real tiny ACE potential (real pacemaker, pace_activeset, pace_select, γ).

One potential is fitted per session (about 20 s): 20 rattled and strained 4-atom
Cu fcc cells labelled with EMT, 12 functions, tensorpot backend.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import subprocess
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT

from mlip_autopipec.config.schemas.active_learning import ActiveLearningConfig
from mlip_autopipec.exceptions import StructureError, TrainerError
from mlip_autopipec.explore import MDCondition, build_active_set, parse_activeset_log, run_trajectory, select_candidates
from mlip_autopipec.trainer.profile import PacemakerProfile
from mlip_autopipec.trainer.pyace_import import import_pyace_calculator

pytestmark = pytest.mark.slow

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

PACEMAKER_INPUT = """\
seed: 42
data:
  filename: {data}
potential:
  deltaSplineBins: 0.001
  elements: [Cu]
  embeddings:
    ALL: {{npot: FinnisSinclairShiftedScaled, fs_parameters: [1, 1, 1, 0.5], ndensity: 2}}
  bonds:
    ALL: {{radbase: SBessel, radparameters: [5.25], rcut: 5.0, dcut: 0.01, NameOfCutoffFunction: cos}}
  functions:
    number_of_functions_per_element: 12
    ALL: {{nradmax_by_orders: [6, 2, 1], lmax_by_orders: [0, 1, 1]}}
fit:
  loss: {{kappa: 0.3, L1_coeffs: 1.0e-8, L2_coeffs: 1.0e-8}}
  optimizer: BFGS
  maxiter: 30
backend:
  evaluator: tensorpot
  batch_size: 50
  display_step: 50
"""


def _tool(name: str) -> str:
    path = PacemakerProfile().find(name)
    if path is None:
        if IN_CI:
            pytest.fail(f"{name} is not installed, but CI=true: the CI set-up must install it")
        pytest.skip(f"{name} not found")
    return path


def _emt_dataset(path: Path, n: int = 20, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
        atoms.set_cell(atoms.cell * rng.uniform(0.96, 1.04), scale_atoms=True)
        atoms.positions += rng.normal(0.0, 0.1, atoms.positions.shape)
        atoms.calc = EMT()
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = None
        rows.append(
            {"ase_atoms": atoms, "energy": energy, "forces": forces, "energy_corrected": energy, "name": f"cu_{i}"}
        )
    pd.DataFrame(rows).to_pickle(path, compression="gzip")


@pytest.fixture(scope="session")
def tiny_fit(tmp_path_factory):
    """(folder, potential .yaml, training dataset) of one real tiny pacemaker fit."""
    pacemaker = _tool("pacemaker")
    _tool("pace_activeset")
    folder = tmp_path_factory.mktemp("tiny_ace")
    data = folder / "train.pckl.gzip"
    _emt_dataset(data)
    (folder / "input.yaml").write_text(PACEMAKER_INPUT.format(data=data))
    env = dict(os.environ, OMP_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="-1")
    proc = subprocess.run([pacemaker, "input.yaml"], cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    potential = folder / "output_potential.yaml"
    assert proc.returncode == 0 and potential.is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return folder, potential, data


@pytest.fixture(scope="session")
def active_set(tiny_fit):
    _folder, potential, data = tiny_fit
    return build_active_set(potential, data)


def _gamma(potential: Path, asi: Path, atoms: Atoms) -> np.ndarray:
    calc = import_pyace_calculator()(str(potential))
    calc.set_active_set(str(asi))
    atoms = atoms.copy()
    atoms.calc = calc
    atoms.get_potential_energy()
    return np.asarray(calc.results["gamma"])


def _settings(**kw) -> ActiveLearningConfig:
    base = dict(n_steps=40, sample_interval=5, gamma_select=1.5, gamma_halt=1e6, md_min_atoms=32, n_rattled_copies=2)
    base.update(kw)
    return ActiveLearningConfig(**base)


def _cu() -> Atoms:
    return bulk("Cu", "fcc", a=3.61, cubic=True)


# ---------------------------------------------------------------- active set


def test_active_set_is_built_and_training_data_interpolates(tiny_fit, active_set):
    folder, potential, data = tiny_fit
    assert active_set == folder / "output_potential.asi"
    with np.load(active_set) as asi:
        assert list(asi.keys()) == ["Cu"]
        assert asi["Cu"].shape == (12, 12)
    summary = parse_activeset_log((folder / "pace_activeset.log").read_text())
    assert summary["Cu"].n_functions == 12 and summary["Cu"].gamma_max < 1.05
    train = pd.read_pickle(data, compression="gzip")["ase_atoms"]
    gammas = np.concatenate([_gamma(potential, active_set, a) for a in train])
    assert np.median(gammas) <= 1.01  # in the span of the active set
    compressed = _cu()
    compressed.set_cell(compressed.cell * 0.85, scale_atoms=True)  # far outside the 0.96-1.04 training strains
    assert _gamma(potential, active_set, compressed).max() > 5.0


def test_batched_active_set_needs_all_atoms(tiny_fit, tmp_path):
    _folder, potential, data = tiny_fit
    copy = tmp_path / "pot.yaml"
    copy.write_text(potential.read_text())
    with pytest.raises(TrainerError, match="all_atoms"):
        build_active_set(copy, data, memory_limit=0.01)
    asi = build_active_set(copy, data, memory_limit=0.01, all_atoms=True)
    assert asi == tmp_path / "pot.asi" and asi.is_file()


def test_pace_activeset_failure_is_reported(tiny_fit, tmp_path):
    _folder, potential, _data = tiny_fit
    copy = tmp_path / "pot.yaml"  # a failed run removes the potential's old .asi: keep the shared one
    copy.write_text(potential.read_text())
    broken = tmp_path / "broken.pckl.gzip"
    broken.write_text("not a pickle")
    with pytest.raises(TrainerError, match="pace_activeset failed") as err:
        build_active_set(copy, broken)
    message = str(err.value)  # one sentence with the program's own error line; its traceback stays in the log
    assert "BadGzipFile" in message and "Traceback" not in message and "pace_activeset.log" in message


# ---------------------------------------------------------------- molecular dynamics


def test_trajectory_runs_full_length_and_reports_gamma(tiny_fit, active_set):
    _folder, potential, _data = tiny_fit
    cfg = _settings()
    res = run_trajectory(_cu(), potential, active_set, MDCondition("nvt", 300.0), cfg, seed=1, label="seed_crystal")
    assert res.stop == "completed" and not res.halted
    assert res.n_atoms == 32 and res.n_steps_done == 40
    assert [s for s, _ in res.gamma_trace] == list(range(0, 41, 5))
    gammas = np.array([g for _, g in res.gamma_trace])
    assert np.all(np.isfinite(gammas)) and np.all(gammas > 0)
    assert res.max_gamma >= gammas.max()  # every step counts, the trace holds the samples
    for cand in res.candidates:  # frames in the selection window, with provenance
        assert cand.info["source"] == "md_sample"
        assert cfg.gamma_select <= cand.info["max_gamma"] < cfg.gamma_halt
        assert cand.info["md_condition"] == "nvt_300K" and cand.info["md_start"] == "seed_crystal"
        assert cand.info["md_time_fs"] == pytest.approx(cand.info["md_step"] * cfg.timestep)
        assert cand.calc is None and len(cand) == 32
    again = run_trajectory(_cu(), potential, active_set, MDCondition("nvt", 300.0), cfg, seed=1)
    np.testing.assert_array_equal(again.final_structure.positions, res.final_structure.positions)
    other = run_trajectory(_cu(), potential, active_set, MDCondition("nvt", 300.0), cfg, seed=2)
    assert not np.allclose(other.final_structure.positions, res.final_structure.positions)


def test_low_gamma_halt_stops_with_md_halt_candidates(tiny_fit, active_set):
    _folder, potential, _data = tiny_fit
    gamma0 = _gamma(potential, active_set, _cu()).max()
    cfg = _settings(
        n_steps=500, gamma_select=1.0 + 1e-9, gamma_halt=gamma0 + 0.5, n_rattled_copies=3, rattle_stdev=0.05
    )
    res = run_trajectory(_cu(), potential, active_set, MDCondition("nvt", 1300.0), cfg, seed=3)
    assert res.stop == "gamma" and res.halted
    assert 0 < res.n_steps_done < 500
    halt = [c for c in res.candidates if c.info["source"] == "md_halt"]
    assert len(halt) == 1 + 3
    original = [c for c in halt if not c.info["rattled"]]
    assert len(original) == 1 and original[0].info["max_gamma"] >= cfg.gamma_halt
    assert original[0].info["md_step"] == res.n_steps_done
    for copy in halt[1:]:
        disp = copy.positions - original[0].positions
        assert 0.02 < disp.std() < 0.1
        assert np.isfinite(copy.info["max_gamma"])
    assert all(c.info["max_gamma"] < cfg.gamma_halt for c in res.candidates if c.info["source"] == "md_sample")


def test_npt_follows_the_pressure(tiny_fit, active_set):
    _folder, potential, _data = tiny_fit
    cfg = _settings(n_steps=150, barostat_time=100.0, thermostat_time=50.0)
    vols = {}
    for p in (-5.0, 5.0):
        res = run_trajectory(_cu(), potential, active_set, MDCondition("npt", 300.0, p), cfg, seed=3)
        assert res.stop == "completed" and res.ensemble_used == "npt"
        vols[p] = res.final_structure.get_volume() / res.n_atoms
    assert vols[5.0] < vols[-5.0] - 0.3  # Å^3/atom


def test_blowups_stop_and_the_frames_leading_into_them_become_candidates(tiny_fit, active_set):
    _folder, potential, _data = tiny_fit
    crowded = _cu().repeat(2)
    crowded.positions[1] = crowded.positions[0] + [0.4, 0.0, 0.0]
    res = run_trajectory(crowded, potential, active_set, MDCondition("nvt", 300.0), _settings(), seed=0)
    assert res.stop == "blowup" and "Å" in res.reason
    assert res.candidates == []  # nothing sane led into it: the start itself has atoms 0.4 Å apart
    strained = _cu().repeat(2)  # its potential energy turns into heat: far above 2 x 300 K within a few steps
    strained.positions += np.random.default_rng(0).normal(0.0, 0.2, strained.positions.shape)
    hot = run_trajectory(
        strained, potential, active_set, MDCondition("nvt", 300.0), _settings(max_temperature_ratio=2.0), seed=0
    )
    assert hot.stop == "blowup" and "temperature" in hot.reason
    assert all(c.info["md_step"] < hot.n_steps_done for c in hot.candidates)
    lead_up = [c for c in hot.candidates if c.info["source"] == "md_blowup"]
    assert 1 <= len(lead_up) <= _settings().blowup_candidates
    assert all(c.info["blowup_step"] == hot.n_steps_done for c in lead_up)
    assert {c.info["source"] for c in hot.candidates} <= {"md_sample", "md_blowup"}


def test_a_slab_runs_nvt_with_its_vacuum_axis_left_alone(tiny_fit, active_set):
    from ase.build import fcc111

    from mlip_autopipec.explore.md import vacuum_axes

    _folder, potential, _data = tiny_fit
    slab = fcc111("Cu", (2, 2, 4), a=3.61, vacuum=7.0)  # pbc (T, T, F), 16 atoms: repeated in-plane to 32
    res = run_trajectory(slab, potential, active_set, MDCondition("npt", 300.0, 5.0), _settings(n_steps=40), seed=1)
    assert res.ensemble_used == "nvt" and res.n_atoms == 32
    final = res.final_structure
    assert final.pbc.all()  # pyace takes fully periodic cells: the vacuum gap is kept instead
    np.testing.assert_allclose(final.cell[2], slab.cell[2])  # never repeated, never barostatted along z
    assert vacuum_axes(final) == (False, False, True)
    assert sorted(np.round(final.cell.lengths()[:2] / slab.cell.lengths()[:2]).tolist()) == [1.0, 2.0]  # in-plane only


def test_foreign_species_and_missing_files(tiny_fit, active_set, tmp_path):
    _folder, potential, _data = tiny_fit
    with pytest.raises(StructureError):
        run_trajectory(
            bulk("Al", "fcc", a=4.05, cubic=True), potential, active_set, MDCondition("nvt", 300.0), _settings(), seed=0
        )
    with pytest.raises(TrainerError, match="active set"):
        run_trajectory(_cu(), potential, tmp_path / "none.asi", MDCondition("nvt", 300.0), _settings(), seed=0)


def test_trajectory_runs_in_another_process(tiny_fit, active_set):
    """What a Dask worker does: unpickle the function and its arguments in a fresh interpreter."""
    _folder, potential, _data = tiny_fit
    args = (_cu(), str(potential), str(active_set), MDCondition("npt", 600.0, 0.0), _settings(n_steps=10), 5)
    pickle.loads(pickle.dumps((run_trajectory, args)))
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        res = pool.submit(run_trajectory, *args).result(timeout=120)
    assert res.n_steps_done == 10 and res.condition == args[3]
    local = run_trajectory(*args)
    np.testing.assert_allclose(res.final_structure.positions, local.final_structure.positions)


# ---------------------------------------------------------------- selection


@pytest.fixture(scope="session")
def hot_candidates(tiny_fit, active_set):
    _folder, potential, _data = tiny_fit
    cfg = _settings(n_steps=60, sample_interval=3, gamma_select=1.0 + 1e-9)
    res = run_trajectory(_cu(), potential, active_set, MDCondition("nvt", 1300.0), cfg, seed=11)
    assert len(res.candidates) >= 10
    return res.candidates


def _same(a: Atoms, b: Atoms) -> bool:
    return len(a) == len(b) and np.allclose(a.positions, b.positions, atol=1e-6) and np.allclose(a.cell, b.cell)


def test_selection_is_bounded_and_skips_known_structures(tiny_fit, active_set, hot_candidates):
    _folder, potential, _data = tiny_fit
    first = select_candidates(hot_candidates, potential, active_set, 3)
    assert 1 <= len(first.selected) <= 3 and not first.batched
    assert first.n_candidates == len(hot_candidates) and first.n_excluded == 0
    assert all(hot_candidates[i] is s for i, s in zip(first.indices, first.selected, strict=True))
    known = [first.selected[0]]
    asked = []

    def exclude(atoms: Atoms) -> bool:
        asked.append(atoms)
        return any(_same(atoms, k) for k in known)

    second = select_candidates(hot_candidates, potential, active_set, 3, exclude=exclude)
    assert len(asked) == len(hot_candidates)
    assert second.n_excluded == 1
    assert first.indices[0] not in second.indices
    assert not any(_same(s, known[0]) for s in second.selected)
    assert 1 <= len(second.selected) <= 3
    none_left = select_candidates(hot_candidates, potential, active_set, 3, exclude=lambda a: True)
    assert none_left.selected == [] and none_left.n_excluded == len(hot_candidates)


def test_training_data_is_only_kept_out_by_the_exclude_predicate(tiny_fit, active_set, hot_candidates):
    """Atoms pace_activeset left out as force outliers, and copies of active-set rows, can win MaxVol again."""
    _folder, potential, data = tiny_fit
    train = list(pd.read_pickle(data, compression="gzip")["ase_atoms"])
    mixed = train + list(hot_candidates)
    res = select_candidates(mixed, potential, active_set, 5, exclude=lambda a: any(a is t for t in train))
    assert res.n_excluded == len(train)
    assert res.selected and all(i >= len(train) for i in res.indices)


def test_selection_in_batches_runs_pace_select_in_its_folder(
    tiny_fit, active_set, hot_candidates, tmp_path, monkeypatch
):
    _folder, potential, _data = tiny_fit
    monkeypatch.chdir(tmp_path)
    work = tmp_path / "select"
    res = select_candidates(hot_candidates, potential, active_set, 4, memory_limit=0.05, workdir=work)
    assert res.batched
    assert 1 <= len(res.selected) <= 4 and len(set(res.indices)) == len(res.indices)
    assert all(0 <= i < len(hot_candidates) for i in res.indices)
    assert (work / "pace_select.log").is_file()
    assert not (tmp_path / "interim_active_set.asi").exists()
    with pytest.raises(TrainerError, match="memory limit"):
        select_candidates(hot_candidates, potential, active_set, 4, memory_limit=1e-6)


def test_selection_without_active_set(tiny_fit, hot_candidates):
    _folder, potential, _data = tiny_fit
    res = select_candidates(hot_candidates, potential, None, 2)
    assert 1 <= len(res.selected) <= 2
