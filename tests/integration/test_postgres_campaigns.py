"""Several campaigns in one PostgreSQL database, and whole pipelines against it (marked postgres).

How campaigns are kept apart: each is a PostgreSQL schema named after it
(``database.campaign``, default: the work directory's name); the connection's
``search_path`` is that schema alone, so ids, settings, the split, duplicates
and every query are the campaign's own, and its writers share one lock that
other campaigns never wait for.

Credentials: the configs hold the URL without its password; the password
travels in PGPASSWORD only, and is looked for (and must not be found) in every
file of the work directories and in everything the runs printed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import yaml

from mlip_autopipec.database import DatabaseManager
from mlip_autopipec.database.location import default_campaign
from mlip_autopipec.exceptions import DatabaseError

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(600)]


def bare_and_password(pg_url: str) -> tuple[str, str]:
    """The URL without its password (as a committed config holds it), and the password."""
    parts = urlsplit(pg_url)
    assert parts.password
    return urlunsplit(parts._replace(netloc=f"{parts.username}@{parts.hostname}:{parts.port}")), parts.password


def files_holding(root: Path, secret: str) -> list[str]:
    """Every file under ``root`` whose bytes contain ``secret`` (names only: a failure must not print it)."""
    needle = secret.encode()
    return [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


# ---------------------------------------------------------------- campaigns through the API
def test_campaigns_in_one_database_see_only_their_own_structures(pg_url, tmp_path):
    from ase.build import bulk

    a = bulk("Cu", "fcc", a=3.6, cubic=True)
    a.rattle(0.05, seed=1)
    with DatabaseManager(pg_url, campaign="alpha") as alpha, DatabaseManager(pg_url, campaign="beta") as beta:
        assert alpha.add_structures([a, a.copy()], {"source": "gen"}) == [1, 1]
        assert alpha.count() == 1 and beta.count() == 0 and beta.find_duplicate(a) is None
        assert (
            beta.add_structure(a, {"source": "other"}) == 1
        )  # the same structure, stored again: its own row, its own id
        alpha.assign_split(0.5, seed=1)
        assert beta.split_settings() is None  # settings are the campaign's own
        with pytest.raises(DatabaseError, match="no structure with id 2"):
            beta.status(2)
        assert [r.metadata.source for r in beta.select()] == ["other"]
    with DatabaseManager(pg_url) as public:  # the default campaign (schema public) is a third, empty one
        assert public.count() == 0
    with DatabaseManager(pg_url, campaign="alpha", read_only=True) as reader:
        assert reader.count() == 1 and reader.split_settings() == (0.5, 1)
        with pytest.raises(DatabaseError, match="read-only"):
            reader.add_structure(a, {"source": "x"})
    with pytest.raises(DatabaseError, match="no schema 'gamma'"):
        DatabaseManager(pg_url, campaign="gamma", read_only=True)
    with pytest.raises(DatabaseError, match="not a valid campaign name"):
        DatabaseManager(pg_url, campaign="Alpha-1")
    with pytest.raises(DatabaseError, match="reserved word"):
        DatabaseManager(pg_url, campaign="select")


def test_a_schema_of_another_program_is_refused_and_left_untouched(pg_url):
    import psycopg2

    con = psycopg2.connect(pg_url)
    con.autocommit = True
    with con.cursor() as cur:
        cur.execute("CREATE SCHEMA shop; CREATE TABLE shop.invoices (id int); INSERT INTO shop.invoices VALUES (7)")
    try:
        with pytest.raises(DatabaseError, match=r"another program's tables \(invoices\).*database.campaign"):
            DatabaseManager(pg_url, campaign="shop")
        with con.cursor() as cur:
            cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema='shop'")
            assert cur.fetchall() == [("invoices",)]
    finally:
        con.close()


def test_a_wrong_password_or_server_is_a_sentence_without_the_password(pg_url):
    parts = urlsplit(pg_url)
    wrong = urlunsplit(parts._replace(netloc=f"{parts.username}:Wr0ngSecret@{parts.hostname}:{parts.port}"))
    with pytest.raises(DatabaseError) as err:
        DatabaseManager(wrong)
    text = str(err.value)
    assert "cannot connect" in text and "PGPASSWORD" in text
    assert "Wr0ngSecret" not in text and parts.password not in text


def test_two_work_directories_of_one_name_do_not_share_a_campaign_by_accident(pg_url, tmp_path, monkeypatch):
    from mlip_autopipec.config.schemas.pipeline import PipelineConfig
    from mlip_autopipec.pipeline.run import open_database

    bare, password = bare_and_password(pg_url)
    monkeypatch.setenv("PGPASSWORD", password)
    from ase.build import bulk

    first, second = tmp_path / "a" / "run1", tmp_path / "b" / "run1"
    with open_database(PipelineConfig.model_validate(tiny_config(first, bare)), first) as db:
        assert db.add_structure(bulk("Cu", cubic=True), {"source": "x"}) == 1
    with open_database(PipelineConfig.model_validate(tiny_config(first, bare)), first) as db:  # the same run again
        assert db.count() == 1
    with pytest.raises(
        DatabaseError, match=r"campaign 'run1' \(named after the work directory\) belongs to the run in .*a/run1"
    ):
        open_database(PipelineConfig.model_validate(tiny_config(second, bare)), second)
    # naming the campaign shares it on purpose
    with open_database(PipelineConfig.model_validate(tiny_config(second, bare, campaign="run1")), second) as db:
        assert db.count() == 1


LABELLER = textwrap.dedent(
    """
    import json, os, sys, time
    from ase.build import bulk
    from mlip_autopipec.database import DatabaseManager
    from mlip_autopipec.config import EMTOracleConfig, LocalComputeConfig
    from mlip_autopipec.oracle import label_pending

    def s(i):
        a = bulk("Cu", "fcc", a=3.6, cubic=True)
        a.rattle(0.04, seed=i)
        return a

    if __name__ == "__main__":  # Dask's worker processes import this file again
        campaign, workdir, go = sys.argv[1], sys.argv[2], sys.argv[3]
        while not os.path.exists(go):
            time.sleep(0.005)
        db = DatabaseManager(os.environ["PG_URL"], campaign=campaign)
        # the same 30 structures in both campaigns (each must keep its own copy), added in batches and one by one
        ids = db.add_structures([s(i) for i in range(20)], {"source": "pool"})
        ids += [db.add_structure(s(i), {"source": "pool"}) for i in range(20, 30)]
        ids += db.add_structures([s(i) for i in range(25)], {"source": "again"})  # duplicates: the stored ids back
        summary = label_pending(db, EMTOracleConfig(), LocalComputeConfig(n_workers=1), workdir=workdir, progress=False)
        print(json.dumps({"ids": ids, "labelled": sorted(summary.labelled)}))
    """
)


@pytest.mark.slow
def test_two_campaigns_adding_and_labelling_at_once_lose_nothing_and_duplicate_nothing(pg_url, tmp_path):
    bare, password = bare_and_password(pg_url)
    code = tmp_path / "labeller.py"
    code.write_text(LABELLER)
    go = tmp_path / "go"
    env = {**os.environ, "PG_URL": bare, "PGPASSWORD": password}
    procs = {
        name: subprocess.Popen(
            [sys.executable, str(code), name, str(tmp_path / name), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for name in ("cu_one", "cu_two")
    }
    time.sleep(1.0)
    go.touch()  # both create their campaign, add and label at the same time
    out = {}
    for name, p in procs.items():
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr[-3000:]
        assert password not in stdout + stderr
        out[name] = json.loads(stdout.strip().splitlines()[-1])
    for name, result in out.items():
        assert result["ids"] == list(range(1, 31)) + list(range(1, 26)), (
            name
        )  # its own ids, duplicates found in its own rows
        assert result["labelled"] == list(range(1, 31))
        with DatabaseManager(pg_url, campaign=name) as db:
            assert db.count() == 30 and db.count(status="labelled") == 30 and db.count(source="again") == 0
            energies = [r.atoms.get_potential_energy() for r in db.select()]
            assert len(set(round(e, 9) for e in energies)) == 30  # 30 distinct structures, each once
            # labelled exactly once: one oracle call per structure, recorded with its labels
            assert all(r.label_info and r.label_info.get("oracle") == "emt" for r in db.select())
    import psycopg2

    con = psycopg2.connect(pg_url)
    try:
        with con.cursor() as cur:
            cur.execute(
                "SELECT table_schema, COUNT(*) FROM information_schema.tables WHERE table_name='systems' "
                "GROUP BY 1 ORDER BY 1"
            )
            assert cur.fetchall() == [("cu_one", 1), ("cu_two", 1)]  # nothing in public, one table set per campaign
            cur.execute("SELECT (SELECT COUNT(*) FROM cu_one.systems), (SELECT COUNT(*) FROM cu_two.systems)")
            assert cur.fetchone() == (30, 30)
    finally:
        con.close()


# ---------------------------------------------------------------- whole pipelines
def tiny_config(workdir: Path, bare_url: str, **database) -> dict:
    """The tiny Cu/EMT run of tests/integration/test_pipeline.py, smaller, on a database server."""
    return {
        "workdir": str(workdir),
        "structure": {"element": "Cu", "lattice": "fcc", "a": 3.61, "cubic": True},
        "generator": {
            "pool_size": 16,
            "seed": 5,
            "rattle_stdev": 0.03,
            "volume_range": [0.92, 1.08],
            "eos_fraction": 0.3,
            "max_anisotropic_strain": 0.02,
        },
        "oracle": {"type": "emt"},
        "compute": {"type": "local", "n_workers": 1},
        "database": {"path": bare_url, "validation_fraction": 0.25, **database},
        "report": {
            "properties": {"elastic": False, "vacancy": False, "surfaces": [], "phonons": False, "md_stability": None}
        },  # not this test's subject; its counts are the pool's
        "training": {
            "cutoff": 4.5,
            "number_of_functions_per_element": 10,
            "nradmax_by_orders": [6, 3],
            "lmax_by_orders": [0, 2],
            "max_num_epochs": 10,
            "batch_size": 100,
            "test_size": 0,
            "seed": 1,
            "evaluator": "pyace",  # a real fit, without TensorFlow's graph builds: the fit is not this test's subject
        },
    }


@pytest.mark.slow
def test_two_pipelines_on_one_postgres_database_at_once_end_to_end(pg_url, tmp_path):
    """Two real `mlip-autopipec run` (Cu/EMT, real pacemaker) with their own work directories write into one
    database at once: one campaign named in its config, the other named after its work directory."""
    bare, password = bare_and_password(pg_url)
    runs = {"first": tmp_path / "first", "second": tmp_path / "Cu run 2"}
    campaigns = {"first": "cu_first", "second": default_campaign(runs["second"])}
    assert campaigns["second"] == "cu_run_2"
    env = {**os.environ, "PGPASSWORD": password}
    env.pop("MLIP_AUTOPIPEC_TEST_PG_URL", None)
    procs = {}
    for name, workdir in runs.items():
        extra = {"campaign": "cu_first"} if name == "first" else {}
        cfg = tiny_config(workdir, bare, **extra)
        if name == "second":
            cfg["generator"]["seed"] = 11  # another pool
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", "mlip_autopipec.cli", "run", str(path), "--no-progress"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=tmp_path,
        )
    printed = {}
    for name, p in procs.items():
        printed[name] = p.communicate(timeout=540)[0]
        assert p.returncode == 0, printed[name][-3000:]
    for name, workdir in runs.items():
        summary = json.loads((workdir / "report" / "summary.json").read_text())
        # the pool's 16; the report's equation-of-state cells (property rows, never trained on) come on top
        assert summary["counts"]["by_source"]["initial_random (generation 0)"] == 16, (name, summary["counts"])
        with DatabaseManager(pg_url, campaign=campaigns[name]) as db:
            n_property = db.count(label="property")
            assert db.count() == 16 + n_property and db.count(status="labelled") == db.count()
            assert db.count(label="train") + db.count(label="validation") == 16
        assert (workdir / "fits").exists() or any(workdir.rglob("output_potential.yaml"))
    # each run trained on its own campaign's structures only: its exported sets are exactly its campaign's rows
    stored = {}
    for name, workdir in runs.items():
        with DatabaseManager(pg_url, campaign=campaigns[name]) as db:
            stored[name] = sorted(
                round(r.atoms.get_potential_energy(), 8) for r in db.select() if "property" not in r.metadata.labels
            )
        exported = []
        for part in ("train", "validation"):
            if (workdir / "data" / f"{part}.pckl.gzip").exists():
                exported += [
                    round(a.get_potential_energy(), 8)
                    for a in DatabaseManager.load_dataset(workdir / "data" / f"{part}.pckl.gzip")
                ]
        assert sorted(exported) == stored[name], name
    assert stored["first"] != stored["second"]  # two pools (they may share the unstrained crystal)
    # the password is nowhere: not in the logs, state.json, the report, the datasets, nor on the terminal
    for name, workdir in runs.items():
        assert files_holding(workdir, password) == [], f"the password is written in {name}'s work directory"
        assert password not in printed[name], f"run {name} printed the password"


def test_a_config_with_a_password_in_the_url_is_refused_without_echoing_it(pg_url, tmp_path):
    cfg = tiny_config(tmp_path / "w", pg_url)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    p = subprocess.run(
        [sys.executable, "-m", "mlip_autopipec.cli", "validate", str(path)], capture_output=True, text=True, timeout=120
    )
    _, password = bare_and_password(pg_url)
    assert p.returncode == 2 and "PGPASSWORD" in p.stdout + p.stderr
    assert password not in p.stdout + p.stderr
    assert not (tmp_path / "w").exists() or files_holding(tmp_path / "w", password) == []


# ---------------------------------------------------------------- the write lock and the connection
def test_a_writer_held_up_past_busy_timeout_gets_a_sentence_and_a_dropped_connection_is_reopened(pg_url):
    import psycopg2
    from ase.build import bulk

    with DatabaseManager(pg_url, campaign="held", busy_timeout=0.5) as db:
        other = psycopg2.connect(pg_url)
        other.autocommit = True
        try:
            with other.cursor() as cur:  # another process holding the campaign's write lock
                cur.execute("SELECT pg_advisory_lock(%s, hashtext('held'))", (0x6D6C6970,))
            t0 = time.monotonic()
            with pytest.raises(
                DatabaseError,
                match=r"another process held the campaign's write lock for longer than busy_timeout=0.5 s",
            ):
                db.add_structure(bulk("Cu", cubic=True), {"source": "x"})
            assert time.monotonic() - t0 < 30
            with DatabaseManager(
                pg_url, campaign="other_one", busy_timeout=0.5
            ) as free:  # other campaigns are not held up
                assert free.add_structure(bulk("Cu", cubic=True), {"source": "x"}) == 1
            with other.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock_all()")
                # the server drops the manager's connection (a restart, an idle timeout)
                cur.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
        finally:
            other.close()
        assert db.count() == 0  # the call that finds the connection gone connects again and is done once more
        assert db.add_structure(bulk("Cu", cubic=True), {"source": "x"}) == 1 and db.count() == 1
    # a server that stays away: a sentence (the connection's URL pointed at a closed port, the connection dropped)
    db = DatabaseManager(pg_url, campaign="held")
    try:
        db._storage._url = db._storage._url.replace(f":{urlsplit(pg_url).port}/", ":1/")
        db._storage.raw.close()
        with pytest.raises(DatabaseError, match="cannot connect to the database server"):
            db.count()
    finally:
        db.close()
