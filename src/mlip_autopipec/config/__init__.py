"""Typed configuration: pydantic models validated once, at the edge (:func:`load_config`, :func:`validate_config`).

Everything past this package takes these models, never raw mappings.  The compute models live in
:mod:`mlip_autopipec.compute.models` (below this package) and are re-exported here.
"""

from mlip_autopipec.compute.models import (
    ComputeConfig,
    DaskComputeConfig,
    LocalComputeConfig,
    PBSComputeConfig,
    SlurmComputeConfig,
)
from mlip_autopipec.config.loader import load_config, read_yaml, require_config, validate_config
from mlip_autopipec.config.schemas.active_learning import ActiveLearningConfig
from mlip_autopipec.config.schemas.generator import GeneratorConfig
from mlip_autopipec.config.schemas.oracle import (
    ASEOracleConfig,
    EMTOracleConfig,
    EspressoOracleConfig,
    FoundationModelOracleConfig,
    GPAWOracleConfig,
    OracleConfig,
)
from mlip_autopipec.config.schemas.pipeline import DatabaseConfig, PipelineConfig, ReportConfig
from mlip_autopipec.config.schemas.structure import StructureConfig
from mlip_autopipec.config.schemas.training import TrainingConfig

__all__ = [
    "ASEOracleConfig",
    "ActiveLearningConfig",
    "ComputeConfig",
    "DaskComputeConfig",
    "DatabaseConfig",
    "EMTOracleConfig",
    "EspressoOracleConfig",
    "FoundationModelOracleConfig",
    "GPAWOracleConfig",
    "GeneratorConfig",
    "LocalComputeConfig",
    "OracleConfig",
    "PBSComputeConfig",
    "PipelineConfig",
    "ReportConfig",
    "SlurmComputeConfig",
    "StructureConfig",
    "TrainingConfig",
    "load_config",
    "read_yaml",
    "require_config",
    "validate_config",
]
