"""Use mlip-autopipec as a library: generate a pool, store it, label it on local Dask workers.

    .venv/bin/python examples/label_library.py

Dask starts its worker processes by *spawn*, which imports this script again in
every worker: everything that does work must sit under the
``if __name__ == "__main__":`` guard, or each worker would start the run again.
(The `mlip-autopipec` command needs no such care.)
"""

from ase.build import bulk

from mlip_autopipec.config import EMTOracleConfig, GeneratorConfig, LocalComputeConfig
from mlip_autopipec.database import DatabaseManager, StructureMetadata
from mlip_autopipec.generator import InitialExplorer
from mlip_autopipec.oracle import label_pending

if __name__ == "__main__":
    pool = InitialExplorer(GeneratorConfig(seed=1)).generate(bulk("Cu", cubic=True).repeat(2), 20)
    with DatabaseManager("label_library.db") as db:
        db.add_structures(pool, StructureMetadata(source="initial_random", generation=0))
        summary = label_pending(db, EMTOracleConfig(), LocalComputeConfig(n_workers=2))
        print(f"labelled {len(summary.labelled)}, failed {len(summary.failed)}; {db.count(status='labelled')} labelled in the database")
