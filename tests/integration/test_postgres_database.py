"""The database suite's key behaviours against a real PostgreSQL server, through the public DatabaseManager API.

Each test gets its own empty database on the server of scripts/start_local_postgres.sh
(fixture ``pg_url``: credentials from MLIP_AUTOPIPEC_TEST_PG_URL or the file that
script writes; never printed).  Without a server the tests skip, and fail under CI=true.

The same behaviours are tested on SQLite in tests/unit/test_database_manager.py,
tests/unit/test_database_formats.py and tests/integration/test_database_durability.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from mlip_autopipec.database import DatabaseManager, StructureMetadata
from mlip_autopipec.exceptions import DatabaseError

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]

META = StructureMetadata(source="initial_random", generation=0)


@pytest.fixture
def db(pg_url):
    with DatabaseManager(pg_url, reference_energies={"Cu": -0.5}) as manager:
        yield manager


def cu(seed: int, rattle: float = 0.05) -> Atoms:
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.rattle(rattle, seed=seed)
    return atoms


def with_emt(atoms: Atoms) -> Atoms:
    atoms.calc = EMT()
    atoms.get_potential_energy()
    atoms.get_stress()
    return atoms


def one_atom(i: int) -> Atoms:
    return Atoms("Cu", positions=[[0.013 * i, 0, 0]], cell=[4, 4, 4], pbc=True)


# ---------------------------------------------------------------- round trip and status
def test_round_trip_and_status_lifecycle(db, pg_url):
    a = cu(0)
    a.info["origin"] = "test"
    pending = db.add_structure(a, META)
    labelled = db.add_structure(with_emt(cu(1)), META)
    assert db.status(pending) == "pending" and db.status(labelled) == "labelled"
    atoms, meta = db.get(pending)
    np.testing.assert_allclose(atoms.positions, a.positions, atol=1e-12)
    np.testing.assert_allclose(atoms.cell.array, a.cell.array, atol=1e-12)
    assert meta.source == "initial_random" and atoms.info == {"origin": "test"}

    db.mark_failed(pending, "SCF not converged\n" * 100)
    assert db.record(pending).status == "failed" and db.count(status="failed") == 1
    assert db.reset_failed() == 1 and db.status(pending) == "pending"
    forces = np.arange(12.0).reshape(4, 3)
    db.set_labels(pending, -12.5, forces, stress=np.arange(6.0), info={"wall_time_s": 3.2})
    rec = db.record(pending)
    assert rec.status == "labelled" and rec.label_info == {"wall_time_s": 3.2}
    assert rec.atoms.get_potential_energy() == -12.5
    np.testing.assert_array_equal(rec.atoms.get_forces(), forces)
    with pytest.raises(DatabaseError, match="is labelled"):
        db.mark_failed(pending, "late")
    with pytest.raises(DatabaseError, match="no structure with id 99"):
        db.status(99)
    # another connection sees the same
    with DatabaseManager(pg_url) as again:
        assert again.count(status="labelled") == 2 and again.get(pending)[0].get_potential_energy() == -12.5


def test_select_and_count_filters(db):
    db.add_structures(
        [cu(i) for i in range(3)], StructureMetadata(source="initial_random", generation=0, labels=["train"])
    )
    db.add_structures([cu(10 + i) for i in range(2)], StructureMetadata(source="md_halt", generation=1))
    ids = db.add_structures(
        [with_emt(cu(20 + i)) for i in range(2)],
        StructureMetadata(source="md_halt", generation=2, labels=["validation"]),
    )
    assert db.count() == len(db) == 7
    assert db.count(source="md_halt") == 4 and db.count(generation=1) == 2 and db.count(label="train") == 3
    assert db.count(source="md_halt", generation=2, label="validation", status="labelled") == 2
    assert db.ids(source="md_halt", status="pending") == [4, 5]
    assert [r.id for r in db.select(source="md_halt", generation=2)] == ids
    assert [r.id for r in db.select(ids=[6, 2])] == [2, 6]


def test_credentials_can_come_from_the_environment_not_the_url(pg_url, monkeypatch):
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(pg_url)
    assert parts.password
    # a URL without the password, as a committed config would hold it;
    # libpq takes the password from PGPASSWORD (or ~/.pgpass)
    bare = urlunsplit(parts._replace(netloc=f"{parts.username}@{parts.hostname}:{parts.port}"))
    monkeypatch.setenv("PGPASSWORD", parts.password)
    with DatabaseManager(bare) as db:
        assert db.add_structure(cu(0), META) == 1
        assert db.count() == 1


def test_the_password_of_a_url_never_shows_in_messages(pg_url):
    from urllib.parse import urlsplit

    password = urlsplit(pg_url).password
    with DatabaseManager(pg_url) as db:
        # booleans only: a failed assert must not print the password either
        shown = {"repr": password in repr(db), "location": password in str(getattr(db, "location", ""))}
        with pytest.raises(DatabaseError) as err:
            db.status(99)
        shown["message"] = password in str(err.value)
    assert not any(shown.values()), f"the password shows in: {[k for k, v in shown.items() if v]}"


# ---------------------------------------------------------------- duplicates
def test_duplicates_are_found_within_a_batch_across_calls_and_across_connections(db, pg_url):
    a, b = cu(0), cu(1)
    assert db.add_structures([a, b, a.copy(), b.copy(), a], META) == [1, 2, 1, 2, 1]
    nudged = a.copy()
    nudged.positions += 4e-7  # within the 1e-6 Å tolerance
    assert db.add_structure(nudged, META) == 1
    moved = a.copy()
    moved.positions[3, 2] += 3e-6
    assert db.add_structure(moved, META) == 3
    pool = [cu(10 + i) for i in range(10)]
    first = db.add_structures(pool, META)
    with DatabaseManager(pg_url) as other:
        assert other.add_structures(pool, META) == first
        assert other.find_duplicate(b) == 2
    assert db.count() == 13


def test_a_duplicate_bringing_labels_labels_the_stored_structure(db):
    a = cu(0)
    sid = db.add_structure(a, META)
    db.mark_failed(sid, "timeout")
    assert db.add_structure(with_emt(a.copy()), META) == sid
    assert db.status(sid) == "labelled"
    energy = db.get(sid)[0].get_potential_energy()
    b = a.copy()
    b.calc = SinglePointCalculator(b, energy=energy + 1.0, forces=np.zeros((4, 3)))
    assert db.add_structure(b, META) == sid
    assert db.get(sid)[0].get_potential_energy() == energy


# ---------------------------------------------------------------- split
def test_split_is_stable_as_data_grows_and_across_connections(pg_url):
    pool = [one_atom(i) for i in range(300)]
    with DatabaseManager(pg_url) as db:
        db.add_structures(pool[:200], META)
        counts = db.assign_split(0.25, seed=7)
        assert counts.train + counts.validation == 200 and 25 <= counts.validation <= 75
        first = {sid: "validation" for sid in db.ids(label="validation")} | {
            sid: "train" for sid in db.ids(label="train")
        }
        again = db.assign_split(0.25, seed=7)  # the same setting again draws nothing new
        assert (again.train, again.validation) == (counts.train, counts.validation)
        assert set(db.ids(label="validation")) == {sid for sid, lab in first.items() if lab == "validation"}
    with DatabaseManager(pg_url) as db:  # another connection: the stored split applies to new structures
        assert db.split_settings() == (0.25, 7)
        db.add_structures(pool[200:], META)
        assert db.count(label="train") + db.count(label="validation") == 300
        grown = {sid: "validation" for sid in db.ids(label="validation")} | {
            sid: "train" for sid in db.ids(label="train")
        }
    assert all(grown[i] == first[i] for i in first)


# ---------------------------------------------------------------- exports
@pytest.mark.parametrize("name", ["set.pckl.gzip", "set.extxyz"])
def test_export_and_reload(db, tmp_path, name):
    ids = db.add_structures([with_emt(cu(i)) for i in range(4)], StructureMetadata(source="md_halt", generation=1))
    db.add_structure(cu(9), META)  # pending: not exported
    path = tmp_path / name
    assert db.save_dataset(path) == 4
    back = DatabaseManager.load_dataset(path)
    assert len(back) == 4
    for sid, atoms in zip(ids, back, strict=True):
        ref = db.get(sid)[0]
        assert abs(atoms.get_potential_energy() - ref.get_potential_energy()) < 1e-9
        np.testing.assert_allclose(atoms.get_forces(), ref.get_forces(), atol=1e-9)
    if name.endswith(".pckl.gzip"):
        df = pd.read_pickle(path, compression="gzip")
        np.testing.assert_allclose(df["energy_corrected"], df["energy"] + 0.5 * 4)  # reference -0.5 eV per Cu atom
    with pytest.raises(DatabaseError, match="no labelled structure"):
        db.save_dataset(tmp_path / "none.extxyz", source="nothing")


# ---------------------------------------------------------------- durability and concurrency with real processes
KILL_CHILD = textwrap.dedent(
    """
    import os, sys, time
    from ase import Atoms
    from ase_db_backends.postgresql import PostgreSQLDatabase
    from mlip_autopipec.database import DatabaseManager

    # ASE commits every 5000 rows inside `with db:`; the child may lower that number so the test stays short.
    every = int(sys.argv[3])
    managed = PostgreSQLDatabase.managed_connection
    PostgreSQLDatabase.managed_connection = lambda self, commit_frequency=5000: managed(self, commit_frequency=every)

    def structures(n, offset):
        cell = [3.0, 3.0, 3.0]
        return [Atoms("Cu", positions=[[0.001 * (i + offset), 0.0, 0.0]], cell=cell, pbc=True) for i in range(n)]

    db = DatabaseManager(os.environ["PG_URL"])
    db.add_structures(structures(40, 0), {"source": "committed"})
    print("COMMITTED", flush=True)
    original = PostgreSQLDatabase._write  # ASE's row writer: report, then wait to be killed, after the n-th row
    count = [0]
    def counting(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        count[0] += 1
        if count[0] == int(sys.argv[1]):
            print("PARKED", flush=True)
            time.sleep(120)
        return out
    PostgreSQLDatabase._write = counting
    db.add_structures(structures(int(sys.argv[2]), 100000), {"source": "interrupted"})
    print("BATCH RETURNED", flush=True)
    """
)


def _env(pg_url: str) -> dict:
    # the URL travels in the environment, never on a command line
    return {**os.environ, "PG_URL": pg_url}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("park_after", "batch", "commit_every"),
    [
        (20, 50, 5000),
        (60, 100, 50),  # past the row where ASE's `with db:` would commit on its own
    ],
    ids=["small-batch", "past-ASE-intermediate-commit"],
)
def test_sigkill_mid_batch_leaves_everything_before_and_nothing_of_the_batch(
    pg_url, tmp_path, park_after, batch, commit_every
):
    code = tmp_path / "child.py"
    code.write_text(KILL_CHILD)
    proc = subprocess.Popen(
        [sys.executable, str(code), str(park_after), str(batch), str(commit_every)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(pg_url),
    )
    try:
        lines = []
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.strip())
            if line.strip() == "PARKED":
                break
        assert lines == ["COMMITTED", "PARKED"], (
            f"child did not reach the middle of the batch: {lines} {proc.stderr.read()[-3000:]}"
        )
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with DatabaseManager(pg_url) as db:
        assert db.count(source="committed") == 40
        assert db.count(source="interrupted") == 0, "part of the killed batch was committed"
        assert db.count() == 40


WRITER = textwrap.dedent(
    """
    import json, os, sys, time
    from ase import Atoms
    from mlip_autopipec.database import DatabaseManager

    name, offset, go = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    db = DatabaseManager(os.environ["PG_URL"])
    while not os.path.exists(go):
        time.sleep(0.005)
    def s(i):
        return Atoms("Cu2", positions=[[0, 0, 0], [1.0 + 0.0001 * i, 1.2, 1.3]], cell=[4.0, 4.0, 4.0], pbc=True)
    ids = []
    for batch in range(8):
        ids += db.add_structures([s(offset + 25 * batch + k) for k in range(25)], {"source": name})
    for k in range(10):
        ids.append(db.add_structure(s(offset + 10000 + k), {"source": name}))
    print(json.dumps({"ids": ids}))
    """
)


def _run_writers(pg_url, tmp_path, offsets):
    code = tmp_path / "writer.py"
    code.write_text(WRITER)
    go = tmp_path / "go"
    with DatabaseManager(pg_url) as db:
        assert db.count() == 0  # ASE creates its tables on first use: both writers then race on rows only
    procs = [
        subprocess.Popen(
            [sys.executable, str(code), f"w{i}", str(off), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(pg_url),
        )
        for i, off in enumerate(offsets)
    ]
    time.sleep(1.0)
    go.touch()
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-3000:]
        outs.append(json.loads(out.strip().splitlines()[-1]))
    return outs


@pytest.mark.slow
def test_two_processes_writing_at_once_lose_no_rows_and_get_their_own_ids(pg_url, tmp_path):
    a, b = _run_writers(pg_url, tmp_path, [0, 50000])
    with DatabaseManager(pg_url) as db:
        assert db.count() == 420 and db.count(source="w0") == db.count(source="w1") == 210
        # the ids each writer was given are the rows it wrote
        assert len(set(a["ids"])) == len(set(b["ids"])) == 210 and not set(a["ids"]) & set(b["ids"])
        assert set(db.ids(source="w0")) == set(a["ids"]) and set(db.ids(source="w1")) == set(b["ids"])


@pytest.mark.slow
def test_two_processes_adding_the_same_structures_store_each_once(pg_url, tmp_path):
    a, b = _run_writers(pg_url, tmp_path, [0, 0])
    with DatabaseManager(pg_url) as db:
        assert db.count() == 210, f"{db.count() - 210} duplicates stored"
    assert a["ids"] == b["ids"]


FRESH_OPENER = textwrap.dedent(
    """
    import os, sys, time
    from ase import Atoms
    from mlip_autopipec.database import DatabaseManager

    go = sys.argv[1]
    while not os.path.exists(go):
        time.sleep(0.002)
    db = DatabaseManager(os.environ["PG_URL"])  # both open the fresh database at once: both create its tables
    db.add_structure(Atoms("Cu", positions=[[0, 0, 0]], cell=[3.0, 3.0, 3.0], pbc=True), {"source": "x"})
    """
)


@pytest.mark.slow
def test_two_processes_opening_a_fresh_database_at_once_both_succeed(pg_url, tmp_path):
    code = tmp_path / "opener.py"
    code.write_text(FRESH_OPENER)
    go = tmp_path / "go"
    procs = [
        subprocess.Popen([sys.executable, str(code), str(go)], stderr=subprocess.PIPE, text=True, env=_env(pg_url))
        for _ in range(2)
    ]
    time.sleep(1.0)
    go.touch()
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e.strip().splitlines()[-1] for e in errors if e.strip()]
    with DatabaseManager(pg_url) as db:
        assert db.count() == 1


# ---------------------------------------------------------------- labelling on the shared store
@pytest.mark.slow
def test_label_pending_writes_its_results_to_postgres(db, tmp_path):
    from mlip_autopipec.config import EMTOracleConfig, LocalComputeConfig
    from mlip_autopipec.oracle import label_pending

    ids = db.add_structures([cu(i) for i in range(4)], META)
    summary = label_pending(
        db, EMTOracleConfig(), LocalComputeConfig(n_workers=1), workdir=tmp_path / "runs", progress=False
    )
    assert sorted(summary.labelled) == ids and db.count(status="labelled") == 4
    for rec in db.select():
        ref = rec.atoms.copy()
        ref.calc = EMT()
        assert abs(rec.atoms.get_potential_energy() - ref.get_potential_energy()) < 1e-10
