"""Typed configuration: pydantic models validated once, at the edge."""

from mlip_autopipec.config.loader import load_config, read_yaml, validate_config
from mlip_autopipec.config.schemas.generator import GeneratorConfig
from mlip_autopipec.config.schemas.structure import StructureConfig

__all__ = ["GeneratorConfig", "StructureConfig", "load_config", "read_yaml", "validate_config"]
