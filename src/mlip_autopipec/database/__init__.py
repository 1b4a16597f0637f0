"""The structure database ("Memory"): structures, labels and provenance on ASE's database.

    from mlip_autopipec.database import DatabaseManager, StructureMetadata
"""

from mlip_autopipec.database.manager import FAILED, LABELLED, PENDING, STATUSES, DatabaseManager, SplitCounts, StoredStructure
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
