"""Typed configuration: pydantic models validated once, at the edge."""

from mlip_autopipec.config.loader import load_config, read_yaml, validate_config
from mlip_autopipec.config.schemas.active_learning import ActiveLearningConfig
from mlip_autopipec.config.schemas.generator import GeneratorConfig
from mlip_autopipec.config.schemas.oracle import ComputeConfig, OracleConfig
from mlip_autopipec.config.schemas.structure import StructureConfig
from mlip_autopipec.config.schemas.training import TrainingConfig

__all__ = [
    "ActiveLearningConfig",
    "ComputeConfig",
    "GeneratorConfig",
    "OracleConfig",
    "StructureConfig",
    "TrainingConfig",
    "load_config",
    "read_yaml",
    "validate_config",
]
