"""Active learning end to end: real EMT, real pacemaker, real γ, a real Dask LocalCluster.

One run (module fixture) is started with the command line in a subprocess that a hook holds at the start of
generation 1's selection (``state.json`` then shows generation 1 explored); it is killed there with SIGKILL,
then started again in this process and finishes two generations, leaving a copy of its work directory as it
was before each step of generation 2.  The tests check the result, the forced halts (a very low gamma_halt),
that selection skips stored structures, that the resumed run redid nothing, and the stop rules.  The resume
tests take those copies (or the finished run): a run killed right after one step's work (before its record is
saved), a deleted fit folder or deleted candidates, and check that the run started again ends with the same
record as the uninterrupted one, without labelling anything twice.  The uninterrupted run's refit lies beside
the copies, so a resumed run that reaches the same data reuses it instead of fitting (only the deleted fit
folder is fitted again).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mlip_autopipec.config import load_config
from mlip_autopipec.database import DatabaseManager
from mlip_autopipec.pipeline.active_learning import loop
from mlip_autopipec.pipeline.active_learning.loop import resumed_initial_fit, run_active_learning
from mlip_autopipec.pipeline.context import RunContext, open_database
from mlip_autopipec.pipeline.run import run_pipeline
from mlip_autopipec.pipeline.state import read_state
from mlip_autopipec.pipeline.status import status_lines
from mlip_autopipec.records import ActiveLearningRecord, GenerationRecord
from mlip_autopipec.trainer.pace import TrainingResult
from mlip_autopipec.trainer.profile import PacemakerProfile

pytestmark = pytest.mark.slow

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
POOL = 16
N_DEFECTS = 2
MAX_NEW = 4

CONFIG = {
    "structure": {"element": "Cu", "lattice": "fcc", "a": 3.61, "cubic": True, "repeat": [1, 1, 1]},
    "generator": {
        "pool_size": POOL,
        "seed": 3,
        "rattle_stdev": 0.05,
        "volume_range": [0.95, 1.05],
        "eos_fraction": 0.2,
        "n_defect_structures": N_DEFECTS,
        "defect_kinds": ["vacancy"],
        "defect_supercell_min_width": 7.0,
    },
    "oracle": {"type": "emt"},
    "compute": {"type": "local", "n_workers": 2},
    "database": {"validation_fraction": 0.2, "split_seed": 0},
    "training": {
        "cutoff": 4.5,
        "number_of_functions_per_element": 8,
        "nradmax_by_orders": [5, 2, 1],
        "lmax_by_orders": [0, 1, 1],
        "max_num_epochs": 6,
        "batch_size": 100,
        "test_size": 0,
        "evaluator": "pyace",
        "display_step": 50,
    },
    "report": {
        "eos": False,
        "properties": {"elastic": False, "vacancy": False, "surfaces": [], "phonons": False, "md_stability": None},
    },  # not this test's subject
    "active_learning": {
        "gamma_select": 1.0,
        "gamma_halt": 1.2,  # far below what 900 K reaches with this potential: every trajectory halts
        "temperatures": [900.0],
        "ensembles": ["nvt", "npt"],
        "pressures": [0.0],
        "trajectories_per_condition": 2,
        "n_steps": 30,
        "sample_interval": 5,
        "md_min_atoms": 32,
        "n_rattled_copies": 2,
        "max_new_per_generation": MAX_NEW,
        "max_generations": 2,
    },
}


def _require_pace_tools() -> None:
    profile = PacemakerProfile()
    for name in ("pacemaker", "pace_yaml2yace", "pace_activeset"):
        if profile.find(name) is None:
            if IN_CI:
                pytest.fail(f"{name} is not installed, but CI=true: the CI set-up must install it")
            pytest.skip(f"{name} not found")


def _state(workdir: Path) -> dict:
    try:
        return json.loads((workdir / "state.json").read_text())
    except (OSError, ValueError):
        return {}


def _al(workdir: Path) -> ActiveLearningRecord:
    return read_state(workdir).active_learning


def _step_of_generation_1(workdir: Path) -> str | None:
    rows = (_state(workdir).get("active_learning") or {}).get("generations") or []
    return rows[0].get("step") if rows else None


#: The command line's ``run`` (argv[1]: the config), held at the start of generation 1's selection until it is
#: killed; argv[2] is written when it gets there.
HELD_RUN = """
import sys, time
from pathlib import Path

from mlip_autopipec.cli import main
from mlip_autopipec.pipeline.active_learning import loop


def held(step):
    def run(ctx, gen_run):
        if gen_run.gen.generation == 1:
            Path(sys.argv[2]).write_text(step.__name__)
            while True:
                time.sleep(1)
        step(ctx, gen_run)

    return run


loop.STEPS = tuple((held(s) if s.__name__ == "select_structures" else s, rule) for s, rule in loop.STEPS)
sys.exit(main(["run", sys.argv[1], "--no-progress"]))
"""


def _kill_tree(pid: int) -> None:
    """SIGKILL the run and every process it started (Dask nanny and workers, pacemaker), by their ids."""
    import psutil

    try:
        parent = psutil.Process(pid)
        family = [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for proc in family:
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(family, timeout=30)


def _labels(db: DatabaseManager) -> dict[int, str]:
    """Who computed each labelled structure's label (host:pid of the Dask worker)."""
    report_rows = set(db.ids(label="property"))  # the report's property calculations, not the campaign's labels
    return {
        rec.id: rec.label_info["oracle_worker"] for rec in db.select(status="labelled") if rec.id not in report_rows
    }


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _snapshots(root: Path, generation: int) -> tuple:
    """``loop.STEPS`` that first copy the work directory to ``root/before_<step>`` at each step of ``generation``."""

    def snapshot(step):
        def run(ctx, gen_run):
            if gen_run.gen.generation == generation:
                locks = shutil.ignore_patterns(".run.lock", "*.run-lock", "logs")
                shutil.copytree(ctx.workdir, root / f"before_{step.__name__}", ignore=locks)
            step(ctx, gen_run)

        return run

    return tuple((snapshot(step), rule) for step, rule in loop.STEPS)


def _first_run_held_and_killed(root: Path, config_path: Path) -> None:
    """Run the command line in a subprocess until it holds at generation 1's selection, then SIGKILL it."""
    held = root / "held_at"
    env = dict(os.environ, OMP_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="-1")
    with open(root / "first_run.log", "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", HELD_RUN, str(config_path), str(held)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=root,
        )
        try:
            deadline = time.monotonic() + 600
            while not held.exists():
                assert proc.poll() is None, (
                    f"the run ended before exploring:\n{(root / 'first_run.log').read_text()[-3000:]}"
                )
                assert time.monotonic() < deadline, "generation 1 was not explored within 600 s"
                time.sleep(0.1)
        finally:
            _kill_tree(proc.pid)
            proc.wait(timeout=60)


@pytest.fixture(scope="module")
def al_run(tmp_path_factory):
    _require_pace_tools()
    root = tmp_path_factory.mktemp("al")
    workdir = root / "run"
    config_path = root / "config.yaml"
    config_path.write_text(yaml.safe_dump({"workdir": str(workdir), **CONFIG}, sort_keys=False))
    _first_run_held_and_killed(root, config_path)
    candidates = workdir / "al" / "gen_1" / "candidates.xyz"
    before = {
        "step": _step_of_generation_1(workdir),
        "candidates_sha": _sha(candidates),
        "candidates_mtime": candidates.stat().st_mtime_ns,
        "fits": sorted(p.name for p in (workdir / "fits").iterdir() if p.is_dir()),
    }
    with DatabaseManager(workdir / "structures.db") as db:
        before["labels"] = _labels(db)
        before["n_structures"] = db.count()

    cfg = load_config(config_path)
    t0 = time.monotonic()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loop, "STEPS", _snapshots(root / "snapshots", generation=2))
        summary = run_pipeline(cfg, progress=False)
    return {
        "workdir": workdir,
        "config": cfg,
        "config_path": config_path,
        "summary": summary,
        "before": before,
        "resume_s": time.monotonic() - t0,
        "snapshots": root / "snapshots",
    }


def test_two_generations_end_to_end(al_run):
    workdir, summary = al_run["workdir"], al_run["summary"]
    al = _al(workdir)
    rows = al.generations
    assert [r.generation for r in rows] == [1, 2]
    assert all(r.step == "fitted" for r in rows)
    assert al.stop_reason.startswith("max_generations (2)")
    for r in rows:
        assert r.trajectories == 4 and 0 < r.selected <= MAX_NEW
        assert r.labelled == r.selected and r.failed == 0
        assert r.max_gamma >= 1.2
        assert r.validation_force_rmse_mev_per_angstrom > 0
        assert r.fit_dir.name.startswith(f"gen{r.generation}-") and r.fit_dir.parent == workdir / "fits"
        assert (r.fit_dir / "output_potential.yace").is_file()
    assert rows[1].n_labelled_total == POOL + rows[0].selected + rows[1].selected
    # the second generation explored with the first generation's potential and its active set
    assert rows[1].active_set.parent == rows[0].fit_dir
    # every trajectory's outcome is on record
    from mlip_autopipec.pipeline.active_learning.md_runs import read_trajectories

    for r in rows:
        records = read_trajectories(workdir, r.generation)
        assert len(records.trajectories) == r.trajectories
        assert sum(t.stop == "gamma" for t in records.trajectories) == r.gamma_halts
    # the final potential is the second refit, and the report shows the loop
    assert summary.potential.yace.parent == rows[1].fit_dir
    assert summary.active_learning.stop_reason == al.stop_reason
    assert (workdir / "report" / "active_learning.png").read_bytes()[:4] == b"\x89PNG"
    text = "\n".join(status_lines(workdir))
    assert "active learning:" in text and "stopped: max_generations (2)" in text
    assert f"latest fit: {rows[1].fit_dir}" in text


def test_forced_halts_are_labelled_as_md_halt(al_run):
    workdir = al_run["workdir"]
    rows = _al(workdir).generations
    assert all(r.gamma_halts > 0 for r in rows)
    with DatabaseManager(workdir / "structures.db") as db:
        for g in (1, 2):
            halts = list(db.select(source="md_halt", generation=g))
            assert halts, f"no md_halt structure in generation {g}"
            for rec in halts:
                assert rec.status == "labelled" and rec.atoms.info["md_condition"] in ("nvt_900K", "npt_900K_0GPa")
                assert rec.atoms.info["max_gamma"] >= 1.2 or rec.atoms.info.get("rattled")
                assert rec.metadata.parent_id is None or db.status(rec.metadata.parent_id) == "labelled"
            sampled = db.count(source=f"active_learning_iter_{g}", generation=g)
            assert len(halts) + sampled == rows[g - 1].selected == db.count(generation=g)


def test_selection_never_picks_a_stored_structure(al_run):
    from mlip_autopipec.explore.activeset import asi_path_for
    from mlip_autopipec.explore.select import select_candidates
    from mlip_autopipec.pipeline.active_learning.md_runs import read_candidates
    from mlip_autopipec.pipeline.active_learning.steps import stored_already
    from mlip_autopipec.pipeline.fits import latest_fit

    workdir = al_run["workdir"]
    fit = latest_fit(workdir)
    rows = _al(workdir).generations
    asi = rows[1].active_set
    assert asi == asi_path_for(rows[0].fit_dir / "output_potential.yaml")
    with DatabaseManager(workdir / "structures.db") as db:
        stored = [rec.atoms for rec in db.select(generation=2)] + [rec.atoms for rec in db.select(generation=1)]
        fresh = read_candidates(workdir / "al" / "gen_2" / "candidates.xyz")
        known = stored_already(db)
        fresh = [a for a in fresh if not known(a)]
        assert fresh, "every candidate of generation 2 was stored?"
        pool = stored + fresh
        result = select_candidates(pool, fit.potential_yaml, asi, len(pool), exclude=known)
        assert result.n_excluded == len(stored)
        assert result.selected and all(i >= len(stored) for i in result.indices)
        assert not any(known(a) for a in result.selected)


def test_resume_after_kill_redid_nothing(al_run):
    workdir, before = al_run["workdir"], al_run["before"]
    assert before["step"] == "explored"  # killed as it started selecting in generation 1
    candidates = workdir / "al" / "gen_1" / "candidates.xyz"
    assert candidates.stat().st_mtime_ns == before["candidates_mtime"] and _sha(candidates) == before["candidates_sha"]
    fits = sorted(p.name for p in (workdir / "fits").iterdir() if p.is_dir())
    initial = [f for f in fits if f.startswith("fit-")]
    assert initial == before["fits"], "the first fit was made again"
    assert len(fits) == 3  # the first fit and one refit per generation
    rows = _al(workdir).generations
    with DatabaseManager(workdir / "structures.db") as db:
        after = _labels(db)
        assert {sid: after[sid] for sid in before["labels"]} == before["labels"], "a structure was labelled again"
        assert (
            db.count() - db.count(label="property") == POOL + rows[0].selected + rows[1].selected
        )  # the report's own rows aside
        assert db.count(status="pending") == 0
    # what a resumed pipeline may take instead of fitting its first potential again
    cfg = al_run["config"]
    ctx = RunContext(cfg, workdir, open_database(cfg, workdir), progress=False)
    try:
        assert resumed_initial_fit(ctx).output_dir.name == initial[0]
    finally:
        ctx.db.close()


def test_stop_rules_budget_and_convergence(al_run, tmp_path):
    """On a copy of the finished run: a spent oracle budget stops at once; a potential that never halts converges."""
    from mlip_autopipec.pipeline.fits import latest_fit

    workdir = tmp_path / "copy"
    shutil.copytree(al_run["workdir"], workdir)
    cfg = al_run["config"]
    rows = _al(workdir).generations
    used = rows[0].selected + rows[1].selected
    fit = latest_fit(workdir)
    assert fit.output_dir.parent == workdir / "fits"  # the copy's own fit

    def run(**al_changes):
        c = cfg.model_copy(update={"active_learning": cfg.active_learning.model_copy(update=al_changes)})
        ctx = RunContext(c, workdir, open_database(c, workdir), progress=False)
        try:
            return run_active_learning(ctx, fit), _al(workdir)
        finally:
            ctx.db.close()

    final, al = run(max_generations=5, max_oracle_calls=used)
    assert al.stop_reason.startswith(f"max_oracle_calls ({used}) spent")
    assert len(al.generations) == 2 and final.output_dir == fit.output_dir

    # a tiny potential may heat a trajectory past the blow-up limits: widen them, this checks the γ rule
    # Convergence also needs an adequate fit and `quiet_generations` quiet generations in a row: this 6-epoch
    # potential is far from the default targets (25 meV/Å, 5 meV/atom), so they are switched off and one quiet
    # generation suffices; gamma_select that high keeps sampled frames out, so nothing is labelled (the fit-side
    # and streak rules are unit-tested in tests/unit/test_campaign_exploration.py)
    final, al = run(
        max_generations=5,
        gamma_halt=1e6,
        gamma_select=1e5,
        temperatures=[300.0],
        ensembles=["nvt"],
        trajectories_per_condition=1,
        max_temperature_ratio=1e3,
        min_distance_fraction=0.01,
        quiet_generations=1,
        target_force_rmse_mev_per_angstrom=None,
        target_energy_rmse_mev_per_atom=None,
    )
    assert al.stop_reason.startswith("converged: fit targets not set; exploration quiet"), al.stop_reason
    row = al.generations[2]
    from mlip_autopipec.pipeline.active_learning.md_runs import read_trajectories

    assert row.generation == 3 and row.step == "explored" and row.halts == 0, read_trajectories(workdir, 3)
    assert final.output_dir == fit.output_dir
    with DatabaseManager(workdir / "structures.db") as db:
        assert db.count(generation=3) == 0  # nothing labelled once converged


def test_short_refits_end_with_one_full_fit(al_run, tmp_path):
    """refit_max_epochs: generation 3 refits with 2 iterations; the run converges in generation 4 and hands on one
    more fit with final_max_epochs (6), continued from that refit on the same data; a rerun reuses it."""
    from mlip_autopipec.pipeline.fits import latest_fit

    workdir = tmp_path / "copy"
    shutil.copytree(al_run["workdir"], workdir)
    cfg = al_run["config"]
    start = latest_fit(workdir)
    # frames sampled at 1500 K reach γ >= 1 (candidates) but never gamma_halt: generations 3 and 4 are quiet; with
    # quiet_generations 2, generation 3 still labels and refits, and generation 4 converges (fit targets off)
    al_cfg = cfg.active_learning.model_copy(
        update=dict(
            refit_max_epochs=2,
            final_max_epochs=6,
            max_generations=5,
            gamma_select=1.0,
            gamma_halt=1e6,
            temperatures=[1500.0],
            trajectories_per_condition=1,
            max_temperature_ratio=1e3,
            min_distance_fraction=0.01,
            quiet_generations=2,
            target_force_rmse_mev_per_angstrom=None,
            target_energy_rmse_mev_per_atom=None,
        )
    )
    c = cfg.model_copy(update={"active_learning": al_cfg})

    def run():
        ctx = RunContext(c, workdir, open_database(c, workdir), progress=False)
        try:
            return run_active_learning(ctx, start), _al(workdir), ctx.pacemaker_s
        finally:
            ctx.db.close()

    def maxiter(fit_dir: Path) -> int:
        return yaml.safe_load((fit_dir / "input.yaml").read_text())["fit"]["maxiter"]

    final, al, _ = run()
    assert al.stop_reason.startswith("converged: fit targets not set; exploration quiet"), al.stop_reason
    g3 = al.generation(3)
    assert g3.labelled, g3.max_gamma
    assert g3.fit_max_epochs == 2 and maxiter(g3.fit_dir) == 2
    assert al.generation(4).step == "explored"  # converged before selecting: no refit in generation 4
    assert al.final is not None and al.final.start_dir == g3.fit_dir and al.final.max_epochs == 6
    assert final.output_dir == al.final.fit_dir and final.output_dir.name.startswith("final-")
    assert maxiter(final.output_dir) == 6
    assert (final.output_dir / "initial_potential.yaml").read_bytes() == (
        g3.fit_dir / "output_potential.yaml"
    ).read_bytes()
    assert al.final.validation_force_rmse_mev_per_angstrom is not None
    assert latest_fit(workdir).output_dir == final.output_dir
    assert any(line.strip().startswith("final fit: 6 iterations") for line in status_lines(workdir))

    fits = _oracle_and_fit_dirs(workdir)
    again, al_again, pacemaker_s = run()
    assert again.output_dir == final.output_dir and al_again.final.fit_dir == al.final.fit_dir
    assert pacemaker_s == 0.0 and _oracle_and_fit_dirs(workdir) == fits


def _oracle_and_fit_dirs(workdir: Path) -> tuple[set[str], set[str]]:
    return {p.name for p in (workdir / "oracle").iterdir()}, {
        p.name for p in (workdir / "fits").iterdir() if p.is_dir()
    }


def _rows(workdir: Path) -> dict[int, tuple]:
    with DatabaseManager(workdir / "structures.db") as db:
        return {rec.id: (rec.status, (rec.label_info or {}).get("oracle_worker")) for rec in db.select()} | {
            "validation": tuple(db.ids(label="validation"))
        }


def _rerun_elsewhere(al_run, workdir: Path, fit_records_rewritten: bool = True):
    """Run the finished run's config again in ``workdir``: what it changed and what it reported.

    ``fit_records_rewritten``: the fits' result.json were written by this version (an older one's are only read).
    """
    before = _rows(workdir), _oracle_and_fit_dirs(workdir)
    summary = run_pipeline(al_run["config"].model_copy(update={"workdir": workdir}), progress=False)
    assert _rows(workdir) == before[0], "a structure was added or labelled again"
    assert _oracle_and_fit_dirs(workdir) == before[1], "an oracle call or a fit was made again"
    assert summary.timings.pacemaker_s == 0.0
    assert summary.workdir == workdir and summary.potential.yace.parent.parent == workdir / "fits"
    assert summary.potential.yace.is_file()
    assert all(r.fit_dir.parent == workdir / "fits" for r in summary.active_learning.generations)
    original = str(al_run["workdir"])
    results = list((workdir / "fits").glob("*/result.json")) if fit_records_rewritten else []
    for path in [
        workdir / "state.json",
        workdir / "report" / "summary.json",
        workdir / "fits" / "latest.json",
        *results,
    ]:
        assert original not in path.read_text(), f"{path} still names the original work directory"
    assert str(workdir) in (workdir / "report" / "summary.md").read_text()
    return summary


def test_a_moved_work_directory_reruns_without_oracle_calls_or_fits(al_run, tmp_path):
    workdir = tmp_path / "elsewhere" / "run"
    shutil.copytree(al_run["workdir"], workdir)
    summary = _rerun_elsewhere(al_run, workdir)
    assert summary.active_learning.stop_reason == _al(al_run["workdir"]).stop_reason
    assert summary.validation.force_rmse_mev_per_angstrom == pytest.approx(
        al_run["summary"].validation.force_rmse_mev_per_angstrom
    )


def test_a_work_directory_of_the_previous_layout_resumes(al_run, tmp_path):
    """Records as the version before typed records wrote them (absolute paths of where the run was made), moved."""
    workdir = tmp_path / "old" / "run"
    shutil.copytree(al_run["workdir"], workdir)
    original = al_run["workdir"]
    state = json.loads((workdir / "state.json").read_text())
    state.pop("schema_version")
    state["config"]["workdir"] = str(original)
    al = state["active_learning"]
    al["initial"]["fit_dir"] = str(original / al["initial"]["fit_dir"])
    for row in al["generations"]:
        row.update(fit_dir=str(original / row["fit_dir"]), active_set=str(original / row["active_set"]))
    (workdir / "state.json").write_text(json.dumps(state))
    for result in (workdir / "fits").glob("*/result.json"):
        data = json.loads(result.read_text())
        data.pop("schema_version")
        for key in ("potential_yace", "potential_yaml", "log_path", "input_yaml", "output_dir"):
            data[key] = str(original / data[key])
        result.write_text(json.dumps(data))
    latest = json.loads((workdir / "fits" / "latest.json").read_text())
    (workdir / "fits" / "latest.json").write_text(json.dumps({"fit": Path(latest["fit_dir"]).name}))
    for trajectories in (workdir / "al").glob("gen_*/trajectories.json"):
        trajectories.write_text(json.dumps(json.loads(trajectories.read_text())["trajectories"]))
    assert "active learning:" in "\n".join(status_lines(workdir))
    _rerun_elsewhere(al_run, workdir, fit_records_rewritten=False)
    assert json.loads((workdir / "state.json").read_text())["schema_version"] == 1


def test_a_new_split_refits_on_it_without_oracle_calls(al_run, tmp_path):
    """Issue 22 item 6, on a copy of the finished run with another split_seed: the labelled rows are split anew in
    place, no oracle call is made, and the potential handed on is a new fit on the new split, not a fit recorded
    under the old one (the generations' refits were trained with the old validation rows among their training
    data)."""
    from mlip_autopipec.pipeline.fits import fit_key, latest_fit

    workdir = tmp_path / "resplit"
    shutil.copytree(al_run["workdir"], workdir)
    cfg = al_run["config"]
    cfg = cfg.model_copy(update={"workdir": workdir, "database": cfg.database.model_copy(update={"split_seed": 1})})
    rows, (oracle_dirs, fit_dirs) = _rows(workdir), _oracle_and_fit_dirs(workdir)
    summary = run_pipeline(cfg, progress=False)
    now = _rows(workdir)
    assert now.pop("validation") != rows.pop("validation")  # split anew
    assert now == rows and _oracle_and_fit_dirs(workdir)[0] == oracle_dirs  # nothing labelled again
    data = workdir / "data"
    fitted = f"fit-{fit_key(cfg.training, data / 'train.pckl.gzip', data / 'validation.pckl.gzip')}"
    assert latest_fit(workdir).output_dir.name == fitted and fitted not in fit_dirs  # a new fit, on the new split
    assert summary.potential.yace.parent == workdir / "fits" / fitted and summary.timings.pacemaker_s > 0
    assert _al(workdir).initial.fit_dir == workdir / "fits" / fitted


# --------------------------------------------------------------------------- resume: kills, deleted files
TIMINGS = {"active_set_s", "explore_s", "select_s", "label_s", "fit_s"}


def _continue(cfg, workdir: Path) -> tuple[TrainingResult, float]:
    """Active learning on ``workdir`` from its recorded initial fit: the final fit and the seconds pacemaker ran."""
    ctx = RunContext(cfg, workdir, open_database(cfg, workdir), progress=False)
    try:
        initial = resumed_initial_fit(ctx)
        assert initial is not None
        return run_active_learning(ctx, initial), ctx.pacemaker_s
    finally:
        ctx.db.close()


def _row(row: GenerationRecord, workdir: Path) -> dict:
    """A generation's record without its timings, its paths relative to ``workdir``."""
    return row.model_dump(mode="json", exclude=TIMINGS, context={"workdir": workdir})


def _assert_same_campaign(workdir: Path, reference: Path) -> None:
    """``workdir`` ended as the uninterrupted run in ``reference``: the same records, structures, labels' count,
    oracle folders and fits."""
    al, ref = _al(workdir), _al(reference)
    assert [_row(r, workdir) for r in al.generations] == [_row(r, reference) for r in ref.generations]
    assert al.stop_reason == ref.stop_reason and al.final is None
    with DatabaseManager(workdir / "structures.db") as db, DatabaseManager(reference / "structures.db") as ref_db:
        for status in ("labelled", "pending", "failed"):
            assert db.ids(status=status) == ref_db.ids(status=status), status
        assert db.ids(label="validation") == ref_db.ids(label="validation")
    assert _oracle_and_fit_dirs(workdir) == _oracle_and_fit_dirs(reference)


def _kill_after(monkeypatch: pytest.MonkeyPatch, name: str, generation: int) -> None:
    """End step ``name`` of ``generation`` with a KeyboardInterrupt once its work is done and before the loop saves
    its record: the worst moment for a kill (its files and database rows are there, state.json does not say so)."""

    def wrap(step):
        def killed(ctx, gen_run):
            step(ctx, gen_run)
            if gen_run.gen.generation == generation:
                raise KeyboardInterrupt(f"test: killed after {name}")

        return killed

    monkeypatch.setattr(loop, "STEPS", tuple((wrap(s) if s.__name__ == name else s, r) for s, r in loop.STEPS))


def _copy_with_generation_2_fit(al_run, snapshot: str, workdir: Path) -> None:
    """Copy ``snapshot`` to ``workdir``, with the uninterrupted run's refit of generation 2 beside its fits: a run
    that reaches the same data reuses it (fits are found by their settings, data and start), one that does not
    fits anew, so ``pacemaker_s`` tells which (and no test here waits for pacemaker)."""
    shutil.copytree(al_run["snapshots"] / snapshot, workdir)
    fit_dir = _al(al_run["workdir"]).generation(2).fit_dir
    shutil.copytree(fit_dir, workdir / "fits" / fit_dir.name)


@pytest.mark.parametrize(
    "step", ["make_active_set", "explore_generation", "select_structures", "label_selection", "refit_generation"]
)
def test_a_kill_after_each_step_resumes_to_the_same_record(al_run, tmp_path, monkeypatch, step):
    workdir = tmp_path / "run"
    _copy_with_generation_2_fit(al_run, f"before_{step}", workdir)
    cfg = al_run["config"]
    _kill_after(monkeypatch, step, generation=2)
    with pytest.raises(KeyboardInterrupt, match=f"killed after {step}"):
        _continue(cfg, workdir)
    monkeypatch.undo()
    with DatabaseManager(workdir / "structures.db") as db:
        labelled_at_kill = _labels(db)
    _, pacemaker_s = _continue(cfg, workdir)
    assert pacemaker_s == 0.0, "the resumed run fitted other data than the uninterrupted one"
    _assert_same_campaign(workdir, al_run["workdir"])
    with DatabaseManager(workdir / "structures.db") as db:
        after = _labels(db)
    assert {sid: after[sid] for sid in labelled_at_kill} == labelled_at_kill, "a structure was labelled again"
    if step in ("label_selection", "refit_generation"):
        assert after == labelled_at_kill  # generation 2 was labelled before the kill: nothing more after it


def test_a_deleted_fit_folder_is_fitted_again(al_run, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(al_run["workdir"], workdir)
    gen2 = _al(workdir).generation(2)
    shutil.rmtree(gen2.fit_dir)
    rows = _rows(workdir)
    final, pacemaker_s = _continue(al_run["config"], workdir)
    assert pacemaker_s > 0.0 and final.output_dir == gen2.fit_dir  # the same data: the same fit folder
    assert (gen2.fit_dir / "result.json").is_file() and (gen2.fit_dir / "output_potential.yace").is_file()
    assert _rows(workdir) == rows, "a structure was added or labelled again"
    _assert_same_campaign(workdir, al_run["workdir"])


def test_deleted_candidates_are_explored_again(al_run, tmp_path):
    workdir = tmp_path / "run"
    _copy_with_generation_2_fit(al_run, "before_select_structures", workdir)
    assert _al(workdir).generation(2).step == "explored"
    gen_dir = workdir / "al" / "gen_2"
    explored_at = (gen_dir / "trajectories.json").stat().st_mtime_ns
    (gen_dir / "candidates.xyz").unlink()
    _, pacemaker_s = _continue(al_run["config"], workdir)
    assert (gen_dir / "trajectories.json").stat().st_mtime_ns != explored_at  # explored again
    assert pacemaker_s == 0.0  # ... to the same candidates, selection and labels: the same fit
    reference = al_run["workdir"] / "al" / "gen_2" / "candidates.xyz"
    assert _sha(gen_dir / "candidates.xyz") == _sha(reference)
    _assert_same_campaign(workdir, al_run["workdir"])
