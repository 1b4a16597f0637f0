"""Fitting ACE potentials with pacemaker (python-ace)."""

from mlip_autopipec.trainer.pace import PacemakerRunner, PaceRunner, TrainingResult
from mlip_autopipec.trainer.parsing import FitProgress, TrainingMetrics
from mlip_autopipec.trainer.profile import PacemakerProfile

__all__ = ["FitProgress", "PaceRunner", "PacemakerProfile", "PacemakerRunner", "TrainingMetrics", "TrainingResult"]
