"""The whole run's configuration: one YAML file with a section per pipeline step."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from mlip_autopipec.config.schemas.base import StrictModel
from mlip_autopipec.config.schemas.generator import GeneratorConfig
from mlip_autopipec.config.schemas.structure import StructureConfig


class PipelineConfig(StrictModel):
    """Everything a run needs.  Relative file paths inside sections are relative to the config file;
    ``workdir`` is relative to the directory the command is started from."""

    workdir: Path = Field(Path("runs/default"), description="Work directory of the run: database, calculations, fits, report and log.")
    structure: StructureConfig = Field(description="The seed crystal.")
    generator: GeneratorConfig = Field(default_factory=GeneratorConfig, description="How the starting pool is drawn.")

    def resolve_paths(self, base: Path) -> "PipelineConfig":
        """Return a copy with the sections' relative file paths taken relative to ``base`` (the config's folder)."""
        return self.model_copy(update={"structure": self.structure.resolve_paths(base)})
