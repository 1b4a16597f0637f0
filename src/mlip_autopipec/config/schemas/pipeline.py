"""The whole run's configuration: one YAML file with a section per pipeline step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from mlip_autopipec.compute.models import ComputeConfig, LocalComputeConfig, step_compute_config
from mlip_autopipec.config.schemas.active_learning import ActiveLearningConfig
from mlip_autopipec.config.schemas.base import StrictModel
from mlip_autopipec.config.schemas.foundation import FoundationModelConfig
from mlip_autopipec.config.schemas.generator import GeneratorConfig
from mlip_autopipec.config.schemas.oracle import EMTOracleConfig, OracleConfig
from mlip_autopipec.config.schemas.report_properties import ReportPropertiesConfig, report_with_cost_defaults
from mlip_autopipec.config.schemas.structure import SeedConfig, StructureConfig
from mlip_autopipec.config.schemas.training import TrainingConfig


class DatabaseConfig(StrictModel):
    """Where the structures live and how they are split into train and validation sets."""

    path: str = Field(
        "structures.db",
        description="ASE database: a SQLite file name (relative to the work directory), or a PostgreSQL URL without "
        "the password (postgresql://user@host:5432/db): libpq reads the password from the PGPASSWORD environment "
        "variable or a ~/.pgpass line (host:port:db:user:password, mode 0600). A password in the URL is refused: "
        "the config is copied into state.json and is often committed.",
    )
    campaign: str | None = Field(
        None,
        # a PostgreSQL name needing no quotes (as database.location.CAMPAIGN_PATTERN)
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="With a PostgreSQL URL: the campaign this run reads and writes, one PostgreSQL schema of the "
        "database. Runs with different campaigns never see each other's structures; runs (or people) naming the same "
        "campaign share its structures and labels, and may write at once. Lower-case letters, digits and '_'. Default "
        "(null): the work directory's name, made such a name. Not used with a SQLite file (the file is the campaign).",
    )
    validation_fraction: float = Field(
        0.1,
        ge=0.0,
        lt=1.0,
        description="Share of the labelled structures kept out of training for validation (dimensionless).",
    )
    split_seed: int = Field(
        0,
        description="Seed of the train/validation split. Changing it (or validation_fraction) splits the stored "
        "structures anew in place, with no oracle call; each keeps its previous split in split_history.",
    )

    @field_validator("campaign")
    @classmethod
    def _not_a_system_schema(cls, value: str | None) -> str | None:
        if value is not None and (value.startswith("pg_") or value == "information_schema"):
            raise ValueError(
                "names starting with 'pg_' (and information_schema) belong to PostgreSQL itself; choose another"
            )
        return value

    @model_validator(mode="before")
    @classmethod
    def _no_password_in_url(cls, data: Any) -> Any:
        # before validation, on the whole section: the error then shows the section, not the URL with its password
        path = data.get("path") if isinstance(data, dict) else None
        if isinstance(path, str) and "://" in path:
            from urllib.parse import urlsplit

            try:
                password = urlsplit(path).password
            except ValueError:
                password = None
            if password is not None:
                raise ValueError(
                    "path: the URL holds a password; remove it from the config (it would be copied into state.json and "
                    "logs) and give it in the PGPASSWORD environment variable or a ~/.pgpass line instead"
                )
        return data


class ReportConfig(StrictModel):
    """What the report checks; the targets are printed as pass/fail beside the measured figures."""

    eos: bool = Field(
        True, description="Compare the potential's equation of state of the seed crystal with the oracle's."
    )
    target_force_rmse_mev_per_angstrom: float = Field(
        15.0, gt=0, description="Quality bar: validation force RMSE (meV/Å)."
    )
    target_energy_rmse_mev_per_atom: float | None = Field(
        None, gt=0, description="Quality bar: validation energy RMSE (meV/atom); null: not checked."
    )
    target_lattice_constant_error_percent: float = Field(
        0.5, gt=0, description="Quality bar: |lattice constant error| (%) against the oracle."
    )
    target_bulk_modulus_error_percent: float = Field(
        5.0, gt=0, description="Quality bar: |bulk modulus error| (%) against the oracle."
    )
    properties: ReportPropertiesConfig = Field(
        default_factory=ReportPropertiesConfig,
        description="Materials properties of each bulk seed with the oracle and the potential (elastic constants, "
        "vacancy, surfaces, phonons, MD stability); the oracle's results are cached in the database, never trained on.",
    )


def _same_seed(structure: Any, seeds: Any) -> bool:
    """True when ``seeds`` is exactly the one seed ``structure`` stands for (as in a dumped config)."""
    if not isinstance(seeds, list) or len(seeds) != 1:
        return False
    try:
        spec = structure.model_dump(exclude_unset=True) if isinstance(structure, StructureConfig) else structure
        mine = SeedConfig.model_validate(spec).model_dump()
        given = seeds[0] if isinstance(seeds[0], SeedConfig) else SeedConfig.model_validate(seeds[0])
        return mine == given.model_dump()
    except (ValueError, TypeError):
        return False


class PipelineConfig(StrictModel):
    """Everything a run needs.  Relative file paths inside sections are relative to the config file;
    ``workdir`` is relative to the directory the command is started from."""

    workdir: Path = Field(
        Path("runs/default"), description="Work directory of the run: database, calculations, fits, report and log."
    )
    structure: StructureConfig | None = Field(
        None, description="The seed crystal of a one-seed campaign (shorthand for a `seeds` list with this one entry)."
    )
    seeds: list[SeedConfig] = Field(
        default_factory=list,
        description="The campaign's seeds (phases, compositions, surfaces), each with its share of the starting pool; "
        "filled from `structure` when only that is given.",
    )
    generator: GeneratorConfig = Field(default_factory=GeneratorConfig, description="How the starting pool is drawn.")
    oracle: OracleConfig = Field(
        default_factory=EMTOracleConfig, description="What computes energies, forces and stresses (default: EMT)."
    )
    compute: ComputeConfig = Field(
        default_factory=LocalComputeConfig,
        description="Where the heavy steps run (labelling, fits, exploration MD), unless `compute_label`, "
        "`compute_fit` or `compute_explore` says otherwise: local worker processes (default), a Dask scheduler "
        "address, or SLURM/PBS jobs.",
    )
    compute_label: ComputeConfig | None = Field(
        None,
        description="Where the labelling (the oracle's calculations) runs, when not on `compute`; batch jobs named "
        "mlip-label by default.",
    )
    compute_fit: ComputeConfig | None = Field(
        None,
        description="Where the pacemaker fits run, when not on `compute`: local (in the driver's process, the default "
        "with a local `compute`), a Dask scheduler, or one SLURM/PBS job per fit (its own cores, memory, walltime, "
        "queue/partition and GPUs through job_extra_directives, e.g. ['--gres=gpu:1']; jobs, processes and "
        "lifetime_margin_s are set for a fit: one job, one worker, no early leave); batch jobs named mlip-fit by "
        "default.",
    )
    compute_explore: ComputeConfig | None = Field(
        None,
        description="Where active learning's MD trajectories run, when not on `compute`; batch jobs named mlip-explore "
        "by default.",
    )
    database: DatabaseConfig = Field(
        default_factory=DatabaseConfig, description="The structure database and the train/validation split."
    )
    training: TrainingConfig = Field(default_factory=TrainingConfig, description="The pacemaker fit.")
    report: ReportConfig = Field(default_factory=ReportConfig, description="Validation and the quality bar.")
    active_learning: ActiveLearningConfig | None = Field(
        None, description="Active learning after the first fit; null: stop after the first fit."
    )
    foundation_model: FoundationModelConfig | None = Field(
        None,
        description="A foundation model (CHGNet, SevenNet) shipped inside its wheel that works before the oracle: "
        "explores, labels candidates as a teacher and chooses what the oracle computes; null: no foundation model.",
    )

    @model_validator(mode="before")
    @classmethod
    def _structure_is_one_seed(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        structure, seeds = data.get("structure"), data.get("seeds")
        if structure is not None and seeds:
            if _same_seed(structure, seeds):  # a dumped config (state.json) carries both: the seeds were made from it
                return data
            raise ValueError("give `structure` (one seed) or `seeds` (a list), not both")
        if structure is None and not seeds:
            raise ValueError("the campaign needs `seeds` (a list of structures) or `structure` (one seed)")
        if structure is not None:
            spec = structure.model_dump(exclude_unset=True) if isinstance(structure, StructureConfig) else structure
            data = {**data, "seeds": [spec]}
        return data

    @model_validator(mode="before")
    @classmethod
    def _property_defaults_by_cost(cls, data: Any) -> Any:
        """With a DFT oracle, the report's costly properties (vacancy, surfaces, phonons) are off unless set."""
        if not isinstance(data, dict):
            return data
        report = data.get("report", {})
        filled = report_with_cost_defaults(report, data.get("oracle"))
        return data if filled is report else {**data, "report": filled}

    @model_validator(mode="after")
    def _unique_seed_names(self) -> PipelineConfig:
        names = [str(s.name) for s in self.seeds]  # set by SeedConfig for every seed
        doubled = sorted({n for n in names if names.count(n) > 1})
        if doubled:
            raise ValueError(f"seed names must differ; give each seed a `name`: {doubled} appear more than once")
        return self

    @model_validator(mode="after")
    def _teacher_ace_needs_active_learning(self) -> PipelineConfig:
        fm = self.foundation_model
        if fm is not None and fm.explore_with_teacher_ace and self.active_learning is None:
            raise ValueError(
                "foundation_model.explore_with_teacher_ace needs an active_learning section (its conditions, "
                "gamma_select/gamma_halt and MD settings drive the teacher ACE's exploration)"
            )
        return self

    def compute_for(self, step: str) -> ComputeConfig:
        """The compute of ``step`` ('label', 'fit' or 'explore'): its own section, else `compute`, with the step's
        job name and, for a fit, one job of one worker (:func:`~mlip_autopipec.compute.models.step_compute_config`)."""
        own = getattr(self, f"compute_{step}", None)
        return step_compute_config(own if own is not None else self.compute, step)

    def resolve_paths(self, base: Path) -> PipelineConfig:
        """A copy whose sections' relative file paths are taken relative to ``base`` (the config's folder).

        Each section resolves its own paths (``StrictModel.resolve_paths``); this only asks every one.
        """
        update: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, StrictModel):
                update[name] = value.resolve_paths(base)
            elif isinstance(value, (list, tuple)) and any(isinstance(v, StrictModel) for v in value):
                update[name] = type(value)(v.resolve_paths(base) if isinstance(v, StrictModel) else v for v in value)
        return self.model_copy(update=update)
