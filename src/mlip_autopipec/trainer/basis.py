"""Check an ACE basis before any oracle call: build its functions with pyace in-process, without fitting.

pacemaker only finds out at fit time (after every structure is labelled) that a
basis shape goes beyond its precomputed white-list of basis functions for some
element combination.  :func:`check_basis` builds the same function blocks with
pyace's own code (``pyace.multispecies_basisextension``), block by block, in
well under a second for up to four elements, and turns that failure into a
:class:`ConfigurationError` naming the config field that set the shape.

Reference energies: the fit uses the energies as the database exports them
(``energy_corrected`` = oracle energy minus the database's per-element
references, 0 by default), so the potential predicts the oracle's own energies
and formation energies need no correction.  ``training.reference_energies:
auto`` (pacemaker's least-squares per-element shift) is available; the potential
then predicts energies shifted by that per-element constant, which
:func:`potential_reference_energies` reads back from the fitted potential.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mlip_autopipec.config.schemas.training import TrainingConfig
from mlip_autopipec.exceptions import ConfigurationError, TrainerError
from mlip_autopipec.trainer.template import block_source, check_elements, potential_section

_NARY_BLOCK = {1: "UNARY", 2: "BINARY", 3: "TERNARY", 4: "QUATERNARY"}


@dataclass(frozen=True)
class BasisCheck:
    """What :func:`check_basis` built: the elements and the candidate functions per species block.

    ``functions`` counts every function the shape allows, before pacemaker keeps
    ``number_of_functions_per_element`` of them per element.
    """

    elements: tuple[str, ...]
    functions: dict[str, int]

    @property
    def n_functions(self) -> int:
        return sum(self.functions.values())


def _block_of(key: tuple[str, ...], blocks: dict) -> str:
    """The config block whose shape pacemaker applies to the species block ``key``."""
    nary = _NARY_BLOCK.get(len(set(key)))
    return nary if nary is not None and nary in blocks else "ALL"


def check_basis(training: TrainingConfig, elements: Sequence[str]) -> BasisCheck:
    """Build every species block of ``training``'s basis for ``elements`` (pyace, no fit); raise on a bad shape.

    Raises :class:`ConfigurationError` naming the field (e.g.
    ``training.basis_blocks.BINARY``) when a shape goes beyond pacemaker's
    white-list, or when a combination has no shape at all.  With
    ``initial_potential`` in mode ``continue`` the basis comes from that file and
    nothing is built.
    """
    potential = potential_section(training, check_elements(elements))
    if "filename" in potential:
        return BasisCheck(tuple(sorted(set(elements))), {})
    try:
        from pyace.multispecies_basisextension import create_species_block, generate_blocks_specifications_dict

        white_list = _white_list()
    except ImportError as err:  # the trainer needs python-ace anyway
        raise TrainerError(f"cannot check the ACE basis: python-ace (pyace) is not importable: {err}") from err

    blocks = {k: v for k, v in potential["functions"].items() if k != "number_of_functions_per_element"}
    config = {k: potential[k] for k in ("deltaSplineBins", "elements", "embeddings", "bonds")}
    config["functions"] = blocks
    specs = generate_blocks_specifications_dict(config)
    missing = [
        key for key in _all_keys(potential["elements"]) if key not in specs or "nradmax_by_orders" not in specs[key]
    ]
    if missing:
        raise ConfigurationError(
            f"training.basis_blocks: no basis shape for the element combination(s) {[' '.join(k) for k in missing]}; "
            "give an ALL block or the block of that many species"
        )
    ndensity = training.ndensity
    counts: dict[str, int] = {}
    for key, spec in specs.items():
        try:
            block = create_species_block(list(key), spec, ndensity, "zero", white_list)
        except ValueError as err:
            if "white-list" not in str(err):
                raise ConfigurationError(f"pyace cannot build the basis block {' '.join(key)}: {err}") from err
            name = _block_of(key, blocks)
            shape = blocks[name]
            raise ConfigurationError(
                f"{block_source(training, name)}: the basis shape nradmax_by_orders {shape['nradmax_by_orders']}, "
                f"lmax_by_orders {shape['lmax_by_orders']} is too big for the {len(set(key))}-species combination "
                f"{' '.join(key)} (pacemaker: 'Specified potential shape is too big and goes beyond the precomputed "
                f"BBasisFunc white-list'); use smaller entries for that block, e.g. pacemaker's template "
                "(leave nradmax_by_orders/lmax_by_orders out) or set training.basis_blocks"
            ) from err
        counts[" ".join(key)] = len(block.funcspecs)
    return BasisCheck(tuple(potential["elements"]), counts)


@functools.cache
def _white_list() -> dict:
    """pacemaker's precomputed white-list of basis functions (read once per process, ~0.1 s)."""
    import pickle

    from pyace.multispecies_basisextension import default_mus_ns_uni_to_rawlsLS_np_rank_filename

    with open(default_mus_ns_uni_to_rawlsLS_np_rank_filename, "rb") as f:
        return pickle.load(f)


def _all_keys(elements: Sequence[str]) -> list[tuple[str, ...]]:
    from pyace.multispecies_basisextension import generate_all_species_keys

    return [tuple(k) for k in generate_all_species_keys(sorted(elements))]


def potential_reference_energies(potential_yaml: str | Path) -> dict[str, float] | None:
    """The per-element reference energies (eV) pacemaker subtracted before the fit, from its output potential.

    ``None`` when the fit used the dataset's energies as they are.  A potential
    fitted with references predicts ``E - sum_i e_ref(element_i)``; add them back
    to compare with the oracle.
    """
    import yaml

    path = Path(potential_yaml)
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise TrainerError(f"cannot read the potential {path}: {err}") from err
    raw = (doc.get("metadata") or {}).get("reference_energy") if isinstance(doc, dict) else None
    if raw is None:
        return None
    value = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(value, dict):
        return None
    return {str(k): float(v) for k, v in value.items()}


__all__ = ["BasisCheck", "check_basis", "potential_reference_energies"]
