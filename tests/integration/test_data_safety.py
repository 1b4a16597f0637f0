"""A campaign never trains on the wrong data (issue 22): ``--force``, shared databases, storage failures, a new split.

Each test is a row of the issue's table, with real processes: the command line
in subprocesses, real pacemaker fits, a real tmpfs filled to the last byte, a
real hard link, a real PostgreSQL server whose database stops taking
connections.  Oracle calls are counted from
:class:`~mlip_autopipec.oracle.testing.SlowEMT`'s call log (one line per
calculation started and finished).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest
import yaml
from test_safety import EXE, assert_one_sentence, calls, slow_config, start_run, wait_for

from mlip_autopipec.database import DatabaseManager

pytestmark = pytest.mark.slow


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=timeout, env=env)


def config_file(path: Path, cfg: dict) -> str:
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def snapshot(db_file: Path) -> tuple[bytes, int]:
    return db_file.read_bytes(), os.stat(db_file).st_mtime_ns


def stop(proc: subprocess.Popen) -> None:
    """SIGKILL a run started by :func:`start_run` (its own process group: the run, its Dask workers, pacemaker)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def fit_dirs(workdir: Path) -> set[str]:
    return {p.name for p in (workdir / "fits").iterdir() if p.is_dir()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A finished cold start (Cu, SlowEMT logging every call to ``root/calls.log``, a real pacemaker fit), run by
    the command line: ``(root, workdir, config file)``.  A test that runs in it works on a copy of it."""
    root = tmp_path_factory.mktemp("finished")
    cfg = slow_config(root, root / "cu", pool=10, delay_s=0.0)
    proc = run_cli("run", str(cfg), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    return root, root / "cu", cfg


# --------------------------------------------------------------------------- rows 2 and 10: what made the database


def test_a_database_refuses_a_config_and_a_work_directory_it_was_not_made_for(finished, tmp_path):
    """Row 2: an Au config (its own work directory) naming the Cu run's database is refused in one sentence naming
    both, and writes nothing; so is a second work directory with the Cu config.  Row 10: the corrected config then
    runs in the folder of the refused run."""
    root, cu, cfg_path = finished
    db_file = cu / "structures.db"
    before = snapshot(db_file)
    data = yaml.safe_load(cfg_path.read_text())
    au_dir = tmp_path / "au"
    au = {
        **data,
        "workdir": str(au_dir),
        "structure": {"element": "Au", "lattice": "fcc", "a": 4.08, "cubic": True},
        "database": {**data["database"], "path": str(db_file)},
    }
    proc = run_cli("run", config_file(tmp_path / "au.yaml", au), "--no-progress")
    assert proc.returncode == 2, proc.stderr
    line = assert_one_sentence(proc.stderr, str(db_file), str(cu), str(au_dir), "seeds", "--force")
    print(line)
    assert sorted(p.name for p in au_dir.iterdir()) == [".run.lock", "logs"]  # no state.json, no records
    assert snapshot(db_file) == before

    twin_dir = tmp_path / "cu_twin"
    twin = {**data, "workdir": str(twin_dir), "database": {**data["database"], "path": str(db_file)}}
    proc = run_cli("run", config_file(tmp_path / "twin.yaml", twin), "--no-progress")
    assert proc.returncode == 2, proc.stderr
    print(assert_one_sentence(proc.stderr, str(db_file), f"belongs to the work directory {cu}", str(twin_dir)))
    assert not (twin_dir / "state.json").exists() and snapshot(db_file) == before

    au["database"] = data["database"]  # row 10: its own database, in the folder of the refused run
    proc = run_cli("run", config_file(tmp_path / "au.yaml", au), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    with DatabaseManager(au_dir / "structures.db", read_only=True) as au_db, DatabaseManager(db_file) as cu_db:
        assert au_db.count(status="labelled") == 10
        assert {a.get_chemical_formula(mode="reduce") for a, _, _ in au_db.select()} <= {"Au", "Au4"}
        ours, theirs = au_db.origin(), cu_db.origin()
    assert ours.workdir == str(au_dir) and theirs.workdir == str(cu)
    assert ours.fingerprints["seeds"] != theirs.fingerprints["seeds"]
    assert ours.fingerprints["oracle"] == theirs.fingerprints["oracle"]


def test_one_database_file_under_two_names_takes_one_run(tmp_path):
    """Row 7: the database file under a second name (a hard link) in another work directory, two runs at once: the
    second is refused naming the holder, before any oracle call."""
    first_cfg = slow_config(tmp_path, tmp_path / "w1", pool=10, delay_s=0.5)
    first = start_run("run", str(first_cfg), "--no-progress")
    second_dir = tmp_path / "w2"
    try:
        wait_for(lambda: len(calls(tmp_path, "done")) >= 1, what="the first run's labelling")
        second_dir.mkdir()
        os.link(tmp_path / "w1" / "structures.db", second_dir / "structures.db")
        data = yaml.safe_load(first_cfg.read_text())
        n_started = len(calls(tmp_path, "start"))
        proc = run_cli("run", config_file(tmp_path / "w2.yaml", {**data, "workdir": str(second_dir)}), "--no-progress")
        assert first.poll() is None  # the first run still works
    finally:
        stop(first)
    assert proc.returncode == 2, proc.stderr
    line = assert_one_sentence(
        proc.stderr, str(second_dir / "structures.db"), "in use by another run", f"pid {first.pid}", "another name"
    )
    print(line)
    assert not (second_dir / "state.json").exists()
    started = calls(tmp_path, "start")
    assert len(started) == len(set(started)) >= n_started  # no structure went to the oracle twice


# --------------------------------------------------------------------------- row 12: a new split


def test_a_new_split_splits_the_labelled_rows_anew_and_refits_without_an_oracle_call(finished, tmp_path):
    """Row 12: validation_fraction and split_seed changed in a copy of the finished work directory: the rows are
    split anew in place, the fit is made again on the new split, not one oracle call; the old split is on record."""
    root, cu, cfg_path = finished
    copy = tmp_path / "copy"
    shutil.copytree(cu, copy, ignore=shutil.ignore_patterns(".run.lock", "*.run-lock"))  # a copied work directory
    n_calls = len(calls(root, "start"))
    with DatabaseManager(cu / "structures.db", read_only=True) as db:
        before = {rec.id: rec.metadata.labels for rec in db.select()}
    data = yaml.safe_load(cfg_path.read_text())
    data["workdir"] = str(copy)
    data["database"] = {**data["database"], "validation_fraction": 0.5, "split_seed": 3}
    proc = run_cli("run", config_file(tmp_path / "resplit.yaml", data), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert len(calls(root, "start")) == n_calls  # no oracle call
    with DatabaseManager(copy / "structures.db", read_only=True) as db:
        assert db.split_settings() == (0.5, 3) and db.count(status="labelled") == 10
        after = {rec.id: rec.metadata.labels for rec in db.select()}
        n_validation = db.count(label="validation")
    assert set(after) == set(before) and after != before
    from ase.db import connect

    raw = connect(str(copy / "structures.db"))
    settings = raw.metadata["mlip_autopipec"]
    assert [(h["validation_fraction"], h["seed"]) for h in settings["split_history"]] == [(0.25, 0)]
    for sid, labels in before.items():
        assert raw.get(id=sid).data["split_history"][-1]["label"] == labels[0]  # each row's previous split
    old_fit = json.loads((cu / "fits" / "latest.json").read_text())["fit_dir"]
    new_fit = json.loads((copy / "fits" / "latest.json").read_text())["fit_dir"]
    assert new_fit != old_fit and len(fit_dirs(copy)) == 2
    summary = json.loads((copy / "report" / "summary.json").read_text())
    assert summary["validation"]["n_structures"] == n_validation
    assert Path(old_fit).name not in json.dumps(summary)


# --------------------------------------------------------------------------- row 3: storage failures


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MiB tmpfs at ``tmp_path/small`` (unmounted afterwards); skipped where mounting is not permitted."""
    folder = tmp_path / "small"
    folder.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here (needs root): {proc.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def fill(folder: Path) -> Path:
    """Fill the file system of ``folder`` to the last byte with one file; return it."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    block = b"\0" * 65536
    try:
        while True:
            if os.write(fd, block) < len(block):
                os.write(fd, block)  # the rest of the last page: raises ENOSPC
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_stops_the_run_and_leaves_the_structures_pending(small_disk, tmp_path):
    """Row 3: the disk fills while labelling: one sentence, no structure marked failed, each finished and stored
    result kept; after freeing space the same command labels only what was never stored.  Row 13: when the disk
    fills again while pacemaker fits, the run stops in one sentence; pacemaker's traceback stays in its log."""
    workdir = small_disk / "w"
    cfg = slow_config(tmp_path, workdir, pool=30, delay_s=0.3)
    proc = start_run("run", str(cfg), "--no-progress")
    try:
        wait_for(lambda: len(calls(tmp_path, "done")) >= 4, what="four finished calculations")
        filler = fill(small_disk)
        out, err = proc.communicate(timeout=300)
    finally:
        stop(proc)
    assert proc.returncode == 2, err
    print(assert_one_sentence(err, str(workdir / "structures.db"), "disk is full", "free some space"))
    assert "Logging error" not in err
    with DatabaseManager(workdir / "structures.db", read_only=True) as db:
        assert db.count(status="failed") == 0
        stored, pending = set(db.ids(status="labelled")), set(db.ids(status="pending"))
    assert len(stored) >= 4 and pending and len(stored) + len(pending) == 30
    n_started = len(calls(tmp_path, "start"))

    filler.unlink()  # space freed: the same command again, and the disk fills again while pacemaker fits
    proc2 = start_run("run", str(cfg), "--no-progress")
    try:
        wait_for(lambda: any((workdir / "fits").glob("*/pacemaker.log")), timeout=300, what="the fit's start")
        fill(small_disk)
        out, err = proc2.communicate(timeout=300)
    finally:
        stop(proc2)
    again = calls(tmp_path, "start")[n_started:]
    assert sorted(again) == sorted(f"structure_{i}" for i in pending)  # only what was never stored
    with DatabaseManager(workdir / "structures.db", read_only=True) as db:
        assert db.count(status="labelled") == 30 and db.count(status="failed") == 0
    assert proc2.returncode == 2, err  # pacemaker's traceback (if it wrote one) stays in its log
    print(assert_one_sentence(err, str(workdir), "is full"))
    assert "Logging error" not in err and "matplotlib" not in err


# --------------------------------------------------------------------------- row 1: --force starts afresh

AL = {
    "gamma_select": 1.0,
    "gamma_halt": 1.2,  # far below what 900 K reaches with this potential: every trajectory halts
    "temperatures": [900.0],
    "ensembles": ["nvt"],
    "pressures": [0.0],
    "trajectories_per_condition": 1,
    "n_steps": 20,
    "sample_interval": 5,
    "md_min_atoms": 32,
    "n_rattled_copies": 1,
    "max_new_per_generation": 3,
    "max_generations": 1,
}


def test_force_starts_the_records_afresh_and_names_no_fit_from_before(finished, tmp_path):
    """Row 1: a finished active-learning work directory, the generator's seed changed, `run --force`: the cold start
    and active learning run anew; no fit from before is named in the new report or records; the old database and
    records are moved aside beside it, not deleted.  The work directory is a copy of the finished cold start, which
    goes on with active learning first (a config that adds active learning invalidates nothing)."""
    _root, cu, cfg_path = finished
    workdir = tmp_path / "w"
    shutil.copytree(cu, workdir, ignore=shutil.ignore_patterns(".run.lock", "*.run-lock"))
    cfg = {**yaml.safe_load(cfg_path.read_text()), "workdir": str(workdir), "active_learning": dict(AL)}
    path = tmp_path / "cfg.yaml"
    proc = run_cli("run", config_file(path, cfg), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    old_fits = fit_dirs(workdir)
    old_state = json.loads((workdir / "state.json").read_text())
    assert old_state["active_learning"]["generations"] and len(old_fits) >= 2
    with DatabaseManager(workdir / "structures.db", read_only=True) as db:
        old_pool = {round(float(a.positions.sum()), 9) for a, _, _ in db.select(source="initial_random")}

    cfg["generator"]["seed"] = 6
    proc = run_cli("run", config_file(path, cfg), "--no-progress")
    assert proc.returncode == 2 and "--force" in proc.stderr  # refused without it
    proc = run_cli("run", str(path), "--no-progress", "--force")
    assert proc.returncode == 0, proc.stderr

    records = {name: (workdir / name).read_text() for name in ("state.json", "fits/latest.json", "report/summary.json")}
    for name, text in records.items():
        for fit in old_fits:
            assert fit not in text, (name, fit)  # no fit from before the --force is named
    state = json.loads(records["state.json"])
    assert state["active_learning"]["initial"]["fit_dir"].split("/")[-1] not in old_fits
    assert [g["generation"] for g in state["active_learning"]["generations"]] == [1]  # active learning ran anew
    with DatabaseManager(workdir / "structures.db", read_only=True) as db:
        new_pool = {round(float(a.positions.sum()), 9) for a, _, _ in db.select(source="initial_random")}
        assert db.count(generation=1) > 0  # this run's active learning added its own structures
    assert len(new_pool - old_pool) >= 5  # the new seed's pool (the seed-independent EOS cells are in both)
    aside = sorted(p.name.split(".replaced-")[0] for p in workdir.glob("*.replaced-*"))
    assert aside == ["al", "oracle", "report", "state.json", "structures.db"], aside
    assert len(list((workdir / "fits").glob("latest.json.replaced-*"))) == 1
    moved_state = json.loads(next(workdir.glob("state.json.replaced-*")).read_text())
    assert moved_state["active_learning"] == old_state["active_learning"]  # kept, not deleted


# --------------------------------------------------------------------------- rows 8 and 3: PostgreSQL


def pg_config(tmp_path: Path, workdir: Path, bare_url: str, pool: int) -> str:
    cfg = yaml.safe_load(slow_config(tmp_path, workdir, pool=pool, delay_s=0.5).read_text())
    cfg["database"] = {"path": bare_url, "campaign": "shared", "validation_fraction": 0.25}
    return config_file(tmp_path / f"{workdir.name}.yaml", cfg)


def start_with_env(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [EXE, *args], start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


@pytest.mark.postgres
def test_a_campaign_takes_one_driver_at_a_time(pg_url, tmp_path):
    """Row 8: two work directories drive one PostgreSQL campaign at once: the second is refused with the holder's
    pid and host, before any oracle call; once the holder is gone the campaign is free."""
    from test_postgres_campaigns import bare_and_password

    from mlip_autopipec.database.campaigns import CampaignDriverLock

    bare, password = bare_and_password(pg_url)
    env = {**os.environ, "PGPASSWORD": password}
    first = start_with_env(env, "run", pg_config(tmp_path, tmp_path / "w1", bare, 10), "--no-progress")
    try:
        wait_for(lambda: len(calls(tmp_path, "done")) >= 1, what="the first run's labelling")
        proc = run_cli("run", pg_config(tmp_path, tmp_path / "w2", bare, 10), "--no-progress", env=env)
        assert first.poll() is None
    finally:
        stop(first)
    assert proc.returncode == 2, proc.stderr
    line = assert_one_sentence(
        proc.stderr, "campaign shared", "driven by another run", f"pid {first.pid}", socket.gethostname()
    )
    print(line)
    assert password not in proc.stderr and not (tmp_path / "w2" / "state.json").exists()
    lock = CampaignDriverLock(pg_url, "shared")
    wait_for(lambda: _try(lock), timeout=30, what="the killed driver's lock to be released by the server")
    lock.release()


def _try(lock) -> bool:
    from mlip_autopipec.exceptions import DatabaseError

    try:
        lock.acquire()
    except DatabaseError:
        return False
    return True


def _stored(pg_url: str) -> int:
    """Labelled rows of the shared campaign (0 while the run has not made it yet)."""
    try:
        with DatabaseManager(pg_url, campaign="shared", read_only=True) as db:
            return db.count(status="labelled")
    except Exception:
        return 0


@pytest.mark.postgres
def test_a_lost_database_server_stops_the_run_and_leaves_the_structures_pending(pg_url, tmp_path):
    """Row 3 on a server: the database stops taking connections while labelling (every session ended): one
    sentence, nothing marked failed, each stored result kept."""
    import psycopg2
    from test_postgres_campaigns import bare_and_password

    from conftest import require_postgres

    bare, password = bare_and_password(pg_url)
    name = pg_url.rsplit("/", 1)[1]
    env = {**os.environ, "PGPASSWORD": password}
    proc = start_with_env(env, "run", pg_config(tmp_path, tmp_path / "w", bare, 12), "--no-progress")
    admin = psycopg2.connect(require_postgres())  # the server's own database: this test's one is closed to all
    admin.autocommit = True
    try:
        # three results stored (finished on a worker is not yet stored: under load the driver lags behind)
        wait_for(lambda: _stored(pg_url) >= 3, what="three stored results")
        with admin.cursor() as cur:
            cur.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
        out, err = proc.communicate(timeout=300)
    finally:
        stop(proc)
        with admin.cursor() as cur:
            cur.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        admin.close()
    assert proc.returncode == 2, err
    print(
        assert_one_sentence(err, "campaign shared", "cannot connect to the database server", "once the server is back")
    )
    assert password not in err
    with DatabaseManager(pg_url, campaign="shared", read_only=True) as db:
        assert db.count(status="failed") == 0
        n_stored, n_pending = db.count(status="labelled"), db.count(status="pending")
    assert n_stored >= 3 and n_pending > 0 and n_stored + n_pending == 12
