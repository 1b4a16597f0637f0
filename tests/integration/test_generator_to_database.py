"""The spec's integration test: generate 10 structures, add them to the database, the count is 10."""

from __future__ import annotations

from ase.build import bulk

from mlip_autopipec.config import GeneratorConfig
from mlip_autopipec.database import DatabaseManager, StructureMetadata
from mlip_autopipec.generator import InitialExplorer


def test_generated_structures_are_stored_with_their_provenance(tmp_path):
    seed = bulk("Cu", "fcc", a=3.6, cubic=True)
    pool = InitialExplorer(GeneratorConfig(seed=1)).generate(seed, 10)
    with DatabaseManager(tmp_path / "gen.db") as db:
        ids = db.add_structures(pool, StructureMetadata(source="initial_random", generation=0))
        assert db.count() == 10
        assert len(set(ids)) == 10
        assert db.count(status="pending") == 10
        assert db.add_structures(pool, StructureMetadata(source="initial_random")) == ids  # a rerun adds nothing
        assert db.count() == 10
        for sid, atoms in zip(ids, pool, strict=True):
            stored, meta = db.get(sid)
            assert meta.provenance["operation"] == atoms.info["operation"]
            assert stored.get_volume() == atoms.get_volume()
