"""label_pending with the foundation_model oracle (the real CHGNet 0.3.0) on a real two-process Dask LocalCluster.

Each worker loads the model once, for its first structure, and reuses it: the count of loads is read in every
worker process through ``client.run``.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from ase.build import bulk

from mlip_autopipec.config import FoundationModelOracleConfig
from mlip_autopipec.database import DatabaseManager, StructureMetadata
from mlip_autopipec.oracle import label_pending
from mlip_autopipec.oracle.foundation import model_loads

pytestmark = pytest.mark.slow


def test_chgnet_labels_a_pool_on_two_workers_loading_the_model_once_in_each(tmp_path):
    from distributed import Client, LocalCluster

    pool = []
    for i in range(6):
        atoms = bulk("Cu", "fcc", a=3.63 * (0.98 + 0.01 * i)).repeat((2, 1, 1))
        atoms.rattle(0.05, seed=i)
        pool.append(atoms)
    db = DatabaseManager(tmp_path / "pool.db")
    ids = db.add_structures(pool, StructureMetadata(source="test_pool"))
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        summary = label_pending(
            db, FoundationModelOracleConfig(name="chgnet"), client, workdir=tmp_path / "runs", progress=False
        )
        loads = client.run(model_loads)  # {worker address: {model: loads}}, read in each worker process
        pids = client.run(os.getpid)
    assert sorted(summary.labelled) == ids and summary.failed == {}
    assert db.count(status="labelled") == 6
    used = set()
    for rec in db.select():
        info = rec.label_info
        assert info["oracle"] == "foundation_model" and info["oracle_model"] == "chgnet"
        assert info["oracle_model_version"] == "0.3.0" and info["oracle_model_package"] == "chgnet 0.4.2"
        assert abs(rec.atoms.get_potential_energy() / 2 + 4.1) < 0.3
        assert np.all(np.isfinite(rec.atoms.get_forces())) and np.abs(rec.atoms.get_stress()).max() > 0
        used.add(int(info["oracle_worker"].rsplit(":", 1)[1]))
    per_worker = {pids[addr]: counts for addr, counts in loads.items()}
    assert used <= set(per_worker) and len(per_worker) == 2
    for pid, counts in per_worker.items():
        assert counts == ({"chgnet 0.3.0 threads=1": 1} if pid in used else {}), (pid, counts, used)
