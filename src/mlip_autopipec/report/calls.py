"""How many oracle calls a run spent, counted in its database (``oracle_calls`` of ``summary.json``).

One call per structure the oracle labelled or failed on: the structures of the train and validation splits
(teacher rows of a foundation model and property rows never get a split), and the property rows the report's
oracle side wrote (:mod:`~mlip_autopipec.report.properties.store`; one row per structure it computed, a
structure found in the database reused instead).  Pending structures have cost nothing yet.
"""

from __future__ import annotations

from mlip_autopipec.database import DatabaseManager
from mlip_autopipec.database.metadata import PROPERTY, SPLIT_LABELS
from mlip_autopipec.records.foundation import OracleCalls


def oracle_calls(db: DatabaseManager) -> OracleCalls:
    """The oracle calls of the structures in ``db``: for training and validation, and for the report's properties."""
    training = sum(db.count(label=split, status=status) for split in SPLIT_LABELS for status in ("labelled", "failed"))
    properties = db.count(label=PROPERTY, status="labelled")
    return OracleCalls(training=training, properties=properties, total=training + properties)


__all__ = ["oracle_calls"]
