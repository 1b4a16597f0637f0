"""The structure database ("Memory"): structures, labels and provenance on ASE's database.

    from mlip_autopipec.database import DatabaseManager, StructureMetadata

One job per module:

=================  ====================================================================
``manager``        :class:`DatabaseManager`, the facade: argument checks, delegation
``location``       where a database lives: ``is_url``, ``resolve_location``, ``database_file``;
                   campaigns (``campaign_of``, ``default_campaign``); ``redact_url``
``storage``        opening a file or URL, transactions, the settings store; ALL the SQL
                   into ASE's tables, and the SQLite / PostgreSQL branch (one schema
                   per campaign, a per-campaign write lock)
``campaigns``      a server campaign named after its work directory belongs to that directory;
                   one driver per campaign (``CampaignDriverLock``)
``ownership``      the project's mark (schema version); refusing another program's database;
                   what made the database (``Origin``: config fingerprints, work directory)
``schema``         key names, statuses, ``StoredStructure``, ``SplitCounts``
``queries``        filters, ids, counts, structures as records
``insert``         validating and adding structures, finding duplicates
``labels``         labels, failures and the train/validation split
``teacher``        teacher rows: a foundation model's labels, apart from the oracle's
``export``         labelled rows to the writers of ``formats``
``formats``        pacemaker ``.pckl.gzip`` and extended XYZ, written atomically, read back
``metadata``       :class:`StructureMetadata` and provenance checks
``validation``     checks of structures and labels before they are stored
``fingerprint``    the duplicate index and the content hash of the split
=================  ====================================================================
"""

from mlip_autopipec.database.manager import (
    FAILED,
    LABELLED,
    PENDING,
    STATUSES,
    DatabaseManager,
    SplitCounts,
    StoredStructure,
)
from mlip_autopipec.database.metadata import StructureMetadata

__all__ = [
    "DatabaseManager",
    "StructureMetadata",
    "StoredStructure",
    "SplitCounts",
    "STATUSES",
    "PENDING",
    "LABELLED",
    "FAILED",
]
