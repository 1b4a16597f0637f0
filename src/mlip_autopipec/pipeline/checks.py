"""Checks a config can pass before anything runs (`mlip-autopipec validate`)."""

from __future__ import annotations

import shlex
import shutil

from mlip_autopipec.config.schemas.pipeline import PipelineConfig
from mlip_autopipec.exceptions import ConfigurationError
from mlip_autopipec.generator import build_seed, check_seeds


def preflight(cfg: PipelineConfig) -> list[str]:
    """Build every seed (and its variants: alloys, slabs) and check the oracle's and the trainer's requirements,
    the ACE basis included (built with pyace for the campaign's elements, no fit).

    Returns notes for the user; raises :class:`ConfigurationError` naming the
    field when the run could not work (an element the oracle cannot do, a
    missing pseudopotential or program).
    """
    notes = []
    notes.extend(check_seeds(cfg))
    elements = _campaign_elements(cfg)
    notes.append(f"elements of the campaign: {elements}")
    oracle = cfg.oracle
    if oracle.type == "emt":
        from mlip_autopipec.oracle.emt import EMT_ELEMENTS

        missing = [e for e in elements if e not in EMT_ELEMENTS]
        if missing:
            raise ConfigurationError(
                f"oracle: EMT has no parameters for {missing}; it covers {sorted(EMT_ELEMENTS)} (use type: espresso, gpaw or ase)"
            )
    elif oracle.type == "espresso":
        program = shlex.split(oracle.command)[0]
        if shutil.which(program) is None:
            raise ConfigurationError(f"oracle.command: {program!r} not found on PATH (install Quantum ESPRESSO, e.g. apt-get install quantum-espresso)")
        missing = [e for e in elements if e not in oracle.pseudopotentials]
        if missing:
            raise ConfigurationError(f"oracle.pseudopotentials: no pseudopotential given for {missing}")
        pseudo_dir = oracle.resolved_pseudo_dir()
        for element, name in oracle.pseudopotentials.items():
            if pseudo_dir is None or not (pseudo_dir / name).is_file():
                raise ConfigurationError(f"oracle.pseudopotentials.{element}: {name} not found in pseudo_dir {pseudo_dir}")
    notes.append(f"oracle: {oracle.type}; compute: {cfg.compute.type}")
    from mlip_autopipec.trainer.profile import PacemakerProfile

    profile = PacemakerProfile()
    if profile.find("pacemaker") is None:
        raise ConfigurationError("training: pacemaker not found; install python-ace==0.4.0rc1 (bash scripts/setup.sh does)")
    from mlip_autopipec.trainer.basis import check_basis

    check_basis(cfg.training, elements)
    if cfg.training.evaluator == "tensorpot" and not profile.has_tensorpotential():
        notes.append("training: tensorpotential is not installed, pacemaker will use the slower pyace backend")
    n_eos = round(cfg.generator.eos_fraction * (cfg.generator.pool_size - cfg.generator.n_defect_structures))
    if cfg.report.eos and n_eos < 5:
        notes.append(f"report: only {n_eos} equation-of-state points (eos_fraction × pool size); the EOS comparison needs 5")
    return notes


def _campaign_elements(cfg: PipelineConfig) -> list[str]:
    """Every element of every seed: its crystal, its alloy compositions and its adatoms."""
    elements: set[str] = set()
    for seed in cfg.seeds:
        elements.update(build_seed(seed.model_copy(update={"repeat": (1, 1, 1), "surface": None, "alloy": None})).get_chemical_symbols())
        if seed.alloy is not None:
            elements.update(el for comp in seed.alloy.compositions for el, x in comp.items() if x > 0)
        if seed.surface is not None and seed.surface.adatom_element:
            elements.add(seed.surface.adatom_element)
    return sorted(elements)
