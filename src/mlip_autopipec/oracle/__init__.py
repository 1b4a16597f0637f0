"""The Oracle: energy, forces and stress of a structure, from EMT, pw.x, GPAW, any ASE calculator or a foundation model.

``make_oracle(config)`` builds one from an ``OracleConfig`` model;
``oracle.label(atoms, directory)`` returns a :class:`LabelResult`;
``label_pending(db, oracle, compute)`` labels every pending structure of a
database on Dask workers.  A script that runs ``label_pending`` on a local
cluster needs the ``if __name__ == "__main__":`` guard (see
:mod:`mlip_autopipec.oracle.labelling`).
"""

from mlip_autopipec.oracle.base import AttemptRecord, LabelFailed, LabelResult, Oracle, kpoint_mesh
from mlip_autopipec.oracle.factory import make_oracle
from mlip_autopipec.oracle.labelling import LabellingSummary, LabelOutcome, label_one, label_pending

__all__ = [
    "AttemptRecord",
    "LabelFailed",
    "LabelOutcome",
    "LabelResult",
    "LabellingSummary",
    "Oracle",
    "kpoint_mesh",
    "label_one",
    "label_pending",
    "make_oracle",
]
