"""Durability and concurrency with real processes: a SIGKILL in the middle of a batch, two writers at once.

The children are real Python processes using the real DatabaseManager on a
real SQLite file.  The only instrumentation is a counter around ASE's row
writer that tells the parent how far the batch has gone (and parks the child
there), so the kill lands after ASE would have made its own intermediate
commit (every 5000 rows inside ``with db:``).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from mlip_autopipec.database import DatabaseManager

pytestmark = pytest.mark.slow

COMMON = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from ase import Atoms
    import ase.db.sqlite as ase_sqlite

    def structures(n, offset):
        # one-atom cells, all different: cheap to write, so a batch can pass ASE's 5000-row commit point
        cell = [3.0, 3.0, 3.0]
        return [Atoms("Cu", positions=[[0.001 * (i + offset), 0.0, 0.0]], cell=cell, pbc=True) for i in range(n)]

    def park_after(n_rows):
        # Report when the n-th row of the batch has been written, then wait to be killed.
        original = ase_sqlite.SQLite3Database._write
        count = [0]
        def counting(self, *args, **kwargs):
            out = original(self, *args, **kwargs)
            count[0] += 1
            if count[0] == n_rows:
                print("PARKED", flush=True)
                time.sleep(120)
            return out
        ase_sqlite.SQLite3Database._write = counting
    """
)

KILL_OURS = COMMON + textwrap.dedent(
    """
    from mlip_autopipec.database import DatabaseManager
    db = DatabaseManager(sys.argv[1])
    db.add_structures(structures(40, 0), {"source": "committed"})
    print("COMMITTED", flush=True)
    park_after(5500)
    db.add_structures(structures(6000, 100000), {"source": "interrupted"})
    print("BATCH RETURNED", flush=True)
    """
)

KILL_PLAIN_ASE = COMMON + textwrap.dedent(
    """
    import ase.db
    db = ase.db.connect(sys.argv[1], use_lock_file=False)
    with db:
        for a in structures(40, 0):
            db.write(a)
    print("COMMITTED", flush=True)
    park_after(5500)
    with db:
        for a in structures(6000, 100000):
            db.write(a)
    print("BATCH RETURNED", flush=True)
    """
)


def _kill_mid_batch(tmp_path, script: str, db_path) -> None:
    code = tmp_path / "child.py"
    code.write_text(script)
    proc = subprocess.Popen(
        [sys.executable, str(code), str(db_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.strip())
            if line.strip() == "PARKED":
                break
        assert lines == ["COMMITTED", "PARKED"], (
            f"child did not reach the middle of the batch: {lines} {proc.stderr.read()}"
        )
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _integrity(db_path) -> str:
    con = sqlite3.connect(db_path)
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        con.close()


def test_sigkill_mid_batch_leaves_everything_before_and_nothing_of_the_batch(tmp_path):
    db_path = tmp_path / "kill.db"
    _kill_mid_batch(tmp_path, KILL_OURS, db_path)
    assert os.path.exists(str(db_path) + "-journal")  # the killed transaction left a hot journal ...
    assert _integrity(db_path) == "ok"  # ... which SQLite rolls back on the next open
    with DatabaseManager(db_path) as db:
        assert db.count() == 40
        assert db.count(source="committed") == 40
        assert db.count(source="interrupted") == 0
        assert db.ids() == list(range(1, 41))
        # and the database is writable again: the batch can simply be rerun
        db.add_structure(db.get(1)[0], {"source": "again"})
        assert db.count() == 40


def test_the_kill_harness_detects_partial_commits_of_plain_ase(tmp_path):
    """Control: ASE's own ``with db:`` commits part of the batch before the kill; the harness sees it."""
    db_path = tmp_path / "plain.db"
    _kill_mid_batch(tmp_path, KILL_PLAIN_ASE, db_path)
    assert _integrity(db_path) == "ok"
    import ase.db  # (a plain ASE database is not the project's: the manager would refuse to open it)

    assert ase.db.connect(db_path).count() > 40  # rows of the interrupted batch survived: not all-or-nothing


WRITER = textwrap.dedent(
    """
    import json, os, sys, time
    from ase import Atoms
    from mlip_autopipec.database import DatabaseManager

    path, name, offset, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    db = DatabaseManager(path, busy_timeout=120)
    while not os.path.exists(go):
        time.sleep(0.005)
    def s(i):
        return Atoms("Cu2", positions=[[0, 0, 0], [1.0 + 0.0001 * i, 1.2, 1.3]], cell=[4.0, 4.0, 4.0], pbc=True)
    spans, ids = [], []
    for batch in range(12):
        start = time.time()
        ids += db.add_structures([s(offset + 25 * batch + k) for k in range(25)], {"source": name})
        spans.append((start, time.time()))
    for k in range(10):  # single calls too
        ids.append(db.add_structure(s(offset + 10000 + k), {"source": name}))
    db.mark_failed(ids[0], "from " + name)
    print(json.dumps({"ids": ids, "spans": spans}))
    """
)


def _run_writers(tmp_path, offsets):
    code = tmp_path / "writer.py"
    code.write_text(WRITER)
    db_path = tmp_path / "shared.db"
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, str(code), str(db_path), f"w{i}", str(off), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, off in enumerate(offsets)
    ]
    time.sleep(1.0)  # let both import and open the database, then release them together
    go.touch()
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        outs.append(json.loads(out.strip().splitlines()[-1]))
    return db_path, outs


def test_two_processes_writing_at_once_lose_no_rows(tmp_path):
    db_path, (a, b) = _run_writers(tmp_path, [0, 50000])
    assert _integrity(db_path) == "ok"
    assert len(set(a["ids"])) == len(set(b["ids"])) == 310
    assert not set(a["ids"]) & set(b["ids"])
    # the writers really overlapped in time
    a_start, a_end = a["spans"][0][0], a["spans"][-1][1]
    b_start, b_end = b["spans"][0][0], b["spans"][-1][1]
    assert a_start < b_end and b_start < a_end
    with DatabaseManager(db_path) as db:
        assert db.count() == 620
        assert db.count(source="w0") == db.count(source="w1") == 310
        assert db.count(status="failed") == 2
        assert sorted(db.ids()) == sorted(a["ids"] + b["ids"])


def test_two_processes_adding_the_same_structures_store_each_once(tmp_path):
    db_path, (a, b) = _run_writers(tmp_path, [0, 0])
    assert _integrity(db_path) == "ok"
    assert a["ids"] == b["ids"]  # whoever came second got the first one's ids
    with DatabaseManager(db_path) as db:
        assert db.count() == 310
