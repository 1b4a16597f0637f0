"""Checks a config must pass before anything is spent: `mlip-autopipec validate`, and `run` before its first step."""

from __future__ import annotations

import shlex
import shutil

from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.exceptions import ConfigurationError, MlipAutopipecError


def campaign_elements(cfg: PipelineConfig) -> list[str]:
    """Every element of every seed's variants (alloy substitutions included), sorted."""
    from mlip_autopipec.generator.campaign import seed_generator_config, seed_variants

    elements: set[str] = set()
    for seed in cfg.seeds:
        gen = seed_generator_config(seed, cfg.generator)
        for variant in seed_variants(seed, gen.seed):
            elements.update(variant.get_chemical_symbols())
    return sorted(elements)


def check_oracle(cfg: PipelineConfig, elements: list[str]) -> str:
    """Can the oracle do ``elements`` here (parameters, pseudopotentials, the program, the calculator)?

    Returns a note; raises :class:`ConfigurationError` naming the field.
    """
    oracle = cfg.oracle
    foreign = sorted(set(getattr(oracle, "magnetic_moments", {})) - set(elements))
    if foreign:
        raise ConfigurationError(
            f"oracle.magnetic_moments: {', '.join(foreign)} "
            f"{'is not an element' if len(foreign) == 1 else 'are not elements'} of the campaign (its elements: "
            f"{', '.join(elements)})"
        )
    if oracle.type == "emt":
        from mlip_autopipec.oracle.emt import EMT_ELEMENTS

        missing = [e for e in elements if e not in EMT_ELEMENTS]
        if missing:
            raise ConfigurationError(
                f"oracle: EMT has no parameters for {missing}; it covers {sorted(EMT_ELEMENTS)} "
                "(use type: espresso, gpaw or ase)"
            )
    elif oracle.type == "espresso":
        program = shlex.split(oracle.command)[0]
        if shutil.which(program) is None:
            raise ConfigurationError(
                f"oracle.command: {program!r} not found on PATH (install Quantum ESPRESSO, e.g. apt-get install "
                "quantum-espresso, or give its full path)"
            )
        missing = [e for e in elements if e not in oracle.pseudopotentials]
        if missing:
            raise ConfigurationError(f"oracle.pseudopotentials: no pseudopotential given for {missing}")
        pseudo_dir = oracle.resolved_pseudo_dir()
        for element, name in oracle.pseudopotentials.items():
            if pseudo_dir is None or not (pseudo_dir / name).is_file():
                raise ConfigurationError(
                    f"oracle.pseudopotentials.{element}: {name} not found in pseudo_dir {pseudo_dir} "
                    "(set oracle.pseudo_dir to the folder that holds it)"
                )
    elif oracle.type == "gpaw":
        from mlip_autopipec.oracle.gpaw import import_gpaw

        try:
            import_gpaw()
        except MlipAutopipecError as err:
            raise ConfigurationError(f"oracle.type: gpaw: {err}") from err
    elif oracle.type == "ase":
        from mlip_autopipec.oracle.generic import import_object

        try:
            import_object(oracle.calculator)
        except MlipAutopipecError as err:
            raise ConfigurationError(f"oracle.calculator: {err}") from err
    where = {step: cfg.compute_for(step).type for step in ("label", "fit", "explore")}
    return f"oracle: {oracle.type}; compute: " + ", ".join(f"{step} on {kind}" for step, kind in where.items())


def preflight(cfg: PipelineConfig) -> list[str]:
    """Build the seeds and check the oracle's and the trainer's requirements; nothing is labelled or written.

    Run by `validate` and by `run` before its first step.  Returns notes for
    the user; raises :class:`ConfigurationError` (or :class:`StructureError`
    for a seed, e.g. two atoms on one spot) naming the field when the run could
    not work: an element the oracle cannot do, a missing pseudopotential or
    program, a basis pacemaker cannot build.
    """
    from mlip_autopipec.generator import check_seeds
    from mlip_autopipec.trainer.basis import check_basis

    notes = check_seeds(cfg)
    elements = campaign_elements(cfg)
    notes.append(f"elements: {elements}")
    notes.append(check_oracle(cfg, elements))
    from mlip_autopipec.trainer.profile import PacemakerProfile

    profile = PacemakerProfile()
    if profile.find("pacemaker") is None:
        raise ConfigurationError(
            "training: pacemaker not found; install python-ace==0.4.0rc1 (bash scripts/setup.sh does)"
        )
    basis = check_basis(cfg.training, elements)
    if basis.functions:
        notes.append(
            f"training: basis builds ({basis.n_functions} candidate functions over {len(basis.functions)} block(s))"
        )
    if cfg.training.evaluator == "tensorpot" and not profile.has_tensorpotential():
        notes.append("training: tensorpotential is not installed, pacemaker will use the slower pyace backend")
    notes.extend(eos_notes(cfg))
    return notes


def eos_notes(cfg: PipelineConfig) -> list[str]:
    """A note per bulk seed whose share of the pool holds too few clean equation-of-state points for the report's
    EOS fit: the report then labels volumes of its own with the oracle.  Counted per seed, with the seed's own
    generator settings (its eos_fraction × its share of pool_size, as the generator plans them)."""
    if not cfg.report.eos:
        return []
    from mlip_autopipec.generator.campaign import seed_generator_config, seed_shares
    from mlip_autopipec.report.seeds import EOS_GRID_POINTS, MIN_EOS_POINTS, bulk_seeds

    bulk = {seed.name for seed in bulk_seeds(cfg)}
    notes = []
    shares = seed_shares([seed.weight for seed in cfg.seeds], cfg.generator.pool_size)
    for seed, share in zip(cfg.seeds, shares, strict=True):
        gen = seed_generator_config(seed, cfg.generator)
        n_eos = round(gen.eos_fraction * max(0, share - gen.n_defect_structures))
        if seed.name in bulk and n_eos < MIN_EOS_POINTS:
            notes.append(
                f"report: seed {seed.name}: only {n_eos} equation-of-state points in the pool (its eos_fraction × its "
                f"share); the EOS comparison needs {MIN_EOS_POINTS}, so the report labels {EOS_GRID_POINTS} volumes "
                "with the oracle"
            )
    return notes
