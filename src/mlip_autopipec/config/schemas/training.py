"""Settings of the ACE fit: what pacemaker should fit, as plain validated data.

Every field maps onto one of pacemaker's real keys (python-ace 0.4.0rc1, named in the field's
description); :mod:`mlip_autopipec.trainer.template` writes them into pacemaker's ``input.yaml``
and holds the whole field-to-key table.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from ase.data import chemical_symbols
from pydantic import Field, field_validator, model_validator

from mlip_autopipec.config.schemas.base import StrictModel, resolve_path

# pacemaker's own defaults (pyace/data/input_template.yaml, UNARY block), used when the config gives none.
DEFAULT_NRADMAX_BY_ORDERS = [15, 6, 4, 3, 2, 2]
DEFAULT_LMAX_BY_ORDERS = [0, 3, 3, 2, 2, 1]
# pacemaker's template, one shape per element-combination block: a function mixing more species gets
# fewer radial and angular channels (a binary or ternary combination with the UNARY shape goes beyond
# pacemaker's precomputed white-list of basis functions).  UNARY also covers the (A, A) bonds of an
# alloy; ALL covers what no other block names (here: four and more species).
BLOCK_NAMES = ("UNARY", "BINARY", "TERNARY", "QUATERNARY", "ALL")
DEFAULT_BASIS_BLOCKS: dict[str, tuple[list[int], list[int]]] = {
    "UNARY": ([15, 6, 4, 3, 2, 2], [0, 3, 3, 2, 2, 1]),
    "BINARY": ([15, 6, 3, 2, 2, 1], [0, 3, 2, 1, 1, 0]),
    "TERNARY": ([15, 3, 3, 2, 1], [0, 2, 2, 1, 1]),
    "ALL": ([15, 3, 2, 1, 1], [0, 2, 2, 1, 1]),
}
BlockName = Literal["UNARY", "BINARY", "TERNARY", "QUATERNARY", "ALL"]


class EarlyStoppingConfig(StrictModel):
    """Stop the minimiser when the loss stops improving (pacemaker's early stopping)."""

    patience: int = Field(
        200,
        ge=1,
        description="Number of iterations over which the relative loss change is measured "
        "(fit.early_stopping_patience).",
    )
    min_relative_train_loss_per_iter: float | None = Field(
        None,
        gt=0.0,
        description="Stop when the train loss falls by less than this fraction per iteration over `patience` "
        "iterations (dimensionless, e.g. 5e-5); null: not used.",
    )
    min_relative_test_loss_per_iter: float | None = Field(
        None,
        gt=0.0,
        description="Stop when the test loss falls by less than this fraction per iteration over `patience` iterations "
        "(dimensionless, e.g. 1e-5; needs a test set); null: not used.",
    )

    @model_validator(mode="after")
    def _one_threshold(self) -> EarlyStoppingConfig:
        if self.min_relative_train_loss_per_iter is None and self.min_relative_test_loss_per_iter is None:
            raise ValueError(
                "early_stopping needs min_relative_train_loss_per_iter or min_relative_test_loss_per_iter "
                "(or leave early_stopping out to switch it off)"
            )
        return self


class BasisBlock(StrictModel):
    """The shape of the basis functions of one element-combination block (pacemaker's potential.functions.<BLOCK>)."""

    nradmax_by_orders: list[int] = Field(
        description="Largest radial index n for each body order 1, 2, 3, ...; the first entry is nradbase."
    )
    lmax_by_orders: list[int] = Field(
        description="Largest angular index l for each body order 1, 2, 3, ...; same length."
    )

    @model_validator(mode="after")
    def _same_length(self) -> BasisBlock:
        n, lm = self.nradmax_by_orders, self.lmax_by_orders
        if not 1 <= len(n) <= len(DEFAULT_NRADMAX_BY_ORDERS) or len(n) != len(lm):
            raise ValueError(
                f"nradmax_by_orders ({n}) and lmax_by_orders ({lm}) need the same length, 1 to "
                f"{len(DEFAULT_NRADMAX_BY_ORDERS)} (one entry per body order)"
            )
        if any(x < 1 for x in n) or any(x < 0 for x in lm):
            raise ValueError("nradmax_by_orders entries must be >= 1 and lmax_by_orders entries >= 0")
        return self


class TrainingConfig(StrictModel):
    """How pacemaker fits the ACE potential (python-ace 0.4.0rc1)."""

    # --- the spec's fields -------------------------------------------------------------------------
    batch_size: int = Field(
        100, gt=0, description="Structures per batch when the loss is evaluated (backend.batch_size)."
    )
    max_num_epochs: int = Field(
        500,
        gt=0,
        description="Maximum number of minimiser iterations (fit.maxiter); per ladder step when ladder fitting.",
    )
    energy_weight: float = Field(
        0.7,
        ge=0.0,
        description="Relative weight of the energy (eV/atom) term of the loss; with force_weight it sets "
        "pacemaker's fit.loss.kappa = force_weight / (energy_weight + force_weight).",
    )
    force_weight: float = Field(
        0.3, ge=0.0, description="Relative weight of the force (eV/Å) term of the loss; see energy_weight."
    )
    cutoff: float = Field(
        6.0,
        gt=0.0,
        description="Radial cutoff (Å) of every bond, potential.bonds.ALL.rcut; also the neighbour-list cutoff.",
    )
    ladder_step: list[int | float] = Field(
        default_factory=list,
        description="Ladder (hierarchical basis extension) fitting, fit.ladder_step: [] = off (single-shot fit); "
        "[n] adds n functions per step (integer >= 1); [fraction] adds that share (0 < fraction < 1) of the current "
        "basis; [n, fraction] adds the larger of the two. A single number is read as a one-element list.",
    )
    ladder_type: Literal["body_order", "power_order"] = Field(
        "body_order",
        description="Order in which ladder fitting adds functions (fit.ladder_type); used only with ladder_step.",
    )
    # --- basis -------------------------------------------------------------------------------------
    number_of_functions_per_element: int = Field(
        300, gt=0, description="Upper limit on the number of basis functions per element (potential.functions)."
    )
    npot: Literal["FinnisSinclairShiftedScaled", "FinnisSinclair"] = Field(
        "FinnisSinclairShiftedScaled", description="Embedding function form (potential.embeddings.ALL.npot)."
    )
    fs_parameters: list[float] = Field(
        default_factory=lambda: [1.0, 1.0, 1.0, 0.5],
        description="Embedding parameters, a (coefficient, exponent) pair per density, so 2 x ndensity numbers "
        "(potential.embeddings.ALL.fs_parameters).",
    )
    ndensity: int = Field(
        2, ge=1, description="Number of atomic densities in the embedding (potential.embeddings.ALL.ndensity)."
    )
    radial_basis: Literal["SBessel", "ChebExpCos", "ChebPow", "ChebLinear"] = Field(
        "SBessel", description="Radial basis functions (potential.bonds.ALL.radbase)."
    )
    radial_parameters: list[float] = Field(
        default_factory=lambda: [5.25],
        description="Parameters of the radial basis (potential.bonds.ALL.radparameters; for SBessel one number, "
        "pacemaker's default 5.25).",
    )
    nradmax_by_orders: list[int] | None = Field(
        None,
        description="Largest radial index n for each body order 1, 2, 3, ... "
        "(potential.functions.ALL.nradmax_by_orders); "
        "the first entry is the number of radial basis functions nradbase. null: pacemaker's "
        f"{DEFAULT_NRADMAX_BY_ORDERS}, "
        "cut to the length of lmax_by_orders when that is given.",
    )
    lmax_by_orders: list[int] | None = Field(
        None,
        description="Largest angular index l for each body order 1, 2, 3, ... "
        "(potential.functions.ALL.lmax_by_orders); "
        f"same length as nradmax_by_orders. null: pacemaker's {DEFAULT_LMAX_BY_ORDERS}, cut to the length of "
        "nradmax_by_orders when that is given.",
    )
    max_order: int | None = Field(
        None,
        ge=1,
        description="Highest body order kept: nradmax_by_orders and lmax_by_orders (and every block of basis_blocks) "
        "are cut to this many entries; null: their full length.",
    )
    basis_blocks: dict[BlockName, BasisBlock] | None = Field(
        None,
        description="Basis shape per element-combination block (potential.functions.UNARY, BINARY, TERNARY, "
        "QUATERNARY, ALL): functions of one species, of two, ... ALL covers the combinations no other block names. "
        "A block given here replaces the default block of that name. Default (neither nradmax_by_orders nor "
        "lmax_by_orders given): pacemaker's template, "
        f"{ {k: {'nradmax_by_orders': v[0], 'lmax_by_orders': v[1]} for k, v in DEFAULT_BASIS_BLOCKS.items()} }; "
        "with nradmax_by_orders/lmax_by_orders given, their shape is the ALL block (every combination) instead.",
    )
    # --- loss and minimiser ------------------------------------------------------------------------
    l1_coeff: float = Field(
        1e-8, ge=0.0, description="L1 regularisation of the coefficients (fit.loss.L1_coeffs, dimensionless)."
    )
    l2_coeff: float = Field(
        1e-8, ge=0.0, description="L2 regularisation of the coefficients (fit.loss.L2_coeffs, dimensionless)."
    )
    optimizer: Literal["BFGS", "L-BFGS-B"] = Field(
        "BFGS", description="scipy minimiser used by pacemaker (fit.optimizer)."
    )
    evaluator: Literal["tensorpot", "pyace"] = Field(
        "tensorpot",
        description="pacemaker backend (backend.evaluator): tensorpot (TensorFlow, fast) or pyace (C++, no "
        "TensorFlow); tensorpot falls back to pyace with a warning when tensorpotential is not installed.",
    )
    display_step: int = Field(
        50,
        ge=1,
        description="Every this many iterations pacemaker prints full statistics and evaluates the test set "
        "(backend.display_step).",
    )
    early_stopping: EarlyStoppingConfig | None = Field(
        None, description="Stop on a stalled loss; null: run max_num_epochs iterations."
    )
    # --- data --------------------------------------------------------------------------------------
    test_size: float = Field(
        0.1,
        ge=0.0,
        lt=1.0,
        description="Share of the dataset pacemaker holds out as its test set (data.test_size); 0: no test split "
        "(e.g. when the pipeline validates on its own validation split).",
    )
    reference_energies: dict[str, float] | Literal["auto"] | None = Field(
        None,
        description="Single-atom reference energies (eV) subtracted from the total energy (data.reference_energy): "
        "a map element -> eV, or 'auto' (least-squares fit by pacemaker); null: use the dataset's energy_corrected "
        "column as it is.",
    )
    repulsion: Literal["auto", "none"] = Field(
        "auto",
        description="Inner-core repulsion: 'auto' adds a ZBL core below the shortest distance in the data "
        "(fit.repulsion: auto); 'none' leaves it out.",
    )
    seed: int = Field(42, description="Random seed of pacemaker (train/test split, initial coefficients).")
    # --- continue from an earlier fit ----------------------------------------------------------------
    initial_potential: Path | None = Field(
        None,
        description="A pacemaker potential (.yaml, e.g. an earlier output_potential.yaml) to start from; null: start "
        "from scratch.",
    )
    initial_potential_mode: Literal["continue", "extend"] = Field(
        "continue",
        description="'continue': refit the initial potential's own basis from its coefficients (potential.filename; "
        "the basis fields above are not used); 'extend': grow it towards the basis described above by ladder fitting "
        "(potential.initial_potential).",
    )
    timeout_s: float | None = Field(
        None, gt=0.0, description="Wall-clock limit of one pacemaker run (s); null: no limit."
    )

    # --- validation --------------------------------------------------------------------------------
    @field_validator("ladder_step", mode="before")
    @classmethod
    def _ladder_scalar_to_list(cls, v: Any) -> Any:
        if v is None:
            return []
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return [v]
        if isinstance(v, (list, tuple)):
            for item in v:
                if isinstance(item, bool) or not isinstance(item, (int, float)):
                    raise ValueError(f"ladder_step entries must be numbers, got {item!r}")
        return v

    @field_validator("ladder_step")
    @classmethod
    def _check_ladder_step(cls, v: list[int | float]) -> list[int | float]:
        # Exactly what pyace.basisextension.get_actual_ladder_step accepts: up to two entries,
        # at most one integer >= 1 (functions added per step) and one 0 < fraction < 1.
        if len(v) > 2:
            raise ValueError(f"ladder_step takes at most two entries ([n] or [n, fraction]), got {v}")
        steps: list[int] = []
        fractions: list[float] = []
        for item in v:
            if isinstance(item, bool) or not math.isfinite(item):
                raise ValueError(f"ladder_step entries must be numbers, got {item!r}")
            if 0.0 < item < 1.0:
                fractions.append(float(item))
            elif item >= 1 and float(item).is_integer():
                steps.append(int(item))
            else:
                raise ValueError(
                    f"ladder_step entry {item!r} is neither an integer >= 1 (functions added per step) "
                    "nor a fraction strictly between 0 and 1 (share of the current basis added per step)"
                )
        if len(steps) > 1 or len(fractions) > 1:
            raise ValueError(f"ladder_step takes one integer and/or one fraction ([n, fraction]), got {v}")
        return [*steps, *fractions]

    @field_validator("fs_parameters", "radial_parameters")
    @classmethod
    def _finite(cls, v: list[float]) -> list[float]:
        if not v or not all(math.isfinite(x) for x in v):
            raise ValueError(f"must be a non-empty list of finite numbers, got {v}")
        return v

    @field_validator("reference_energies")
    @classmethod
    def _check_reference_energies(cls, v: dict[str, float] | str | None) -> dict[str, float] | str | None:
        if isinstance(v, dict):
            unknown = [el for el in v if el not in chemical_symbols[1:]]
            if unknown:
                raise ValueError(f"reference_energies: unknown chemical symbol(s) {unknown}")
            bad = [el for el, e in v.items() if not math.isfinite(e)]
            if bad:
                raise ValueError(f"reference_energies must be finite (eV), not for {bad}")
        return v

    @model_validator(mode="after")
    def _check_consistency(self) -> TrainingConfig:
        if self.energy_weight + self.force_weight <= 0.0:
            raise ValueError(
                "energy_weight and force_weight are both zero: the loss would be empty; make at least one positive"
            )
        if not (math.isfinite(self.energy_weight) and math.isfinite(self.force_weight) and math.isfinite(self.cutoff)):
            raise ValueError("energy_weight, force_weight and cutoff must be finite")
        if len(self.fs_parameters) != 2 * self.ndensity:
            raise ValueError(
                f"fs_parameters needs 2 x ndensity = {2 * self.ndensity} numbers (a coefficient and an exponent per "
                f"density), got {len(self.fs_parameters)}: {self.fs_parameters}"
            )
        for name in ("nradmax_by_orders", "lmax_by_orders"):
            given = getattr(self, name)
            if given is not None and not 1 <= len(given) <= len(DEFAULT_NRADMAX_BY_ORDERS):
                raise ValueError(
                    f"{name} needs 1 to {len(DEFAULT_NRADMAX_BY_ORDERS)} entries (one per body order), got {given}"
                )
        if self.nradmax_by_orders is not None and self.lmax_by_orders is not None:
            if len(self.nradmax_by_orders) != len(self.lmax_by_orders):
                raise ValueError(
                    f"nradmax_by_orders ({self.nradmax_by_orders}) and lmax_by_orders ({self.lmax_by_orders}) "
                    "must have the same length (one entry per body order)"
                )
        nradmax, lmax = self._full_orders()
        if any(n < 1 for n in nradmax) or any(lm < 0 for lm in lmax):
            raise ValueError("nradmax_by_orders entries must be >= 1 and lmax_by_orders entries >= 0")
        if self.max_order is not None and self.max_order > len(nradmax):
            raise ValueError(
                f"max_order = {self.max_order} exceeds the {len(nradmax)} body orders given in "
                "nradmax_by_orders/lmax_by_orders"
            )
        return self

    # --- derived values ----------------------------------------------------------------------------
    def _full_orders(self) -> tuple[list[int], list[int]]:
        nradmax, lmax = self.nradmax_by_orders, self.lmax_by_orders
        if nradmax is None and lmax is None:
            return list(DEFAULT_NRADMAX_BY_ORDERS), list(DEFAULT_LMAX_BY_ORDERS)
        if nradmax is None:
            return DEFAULT_NRADMAX_BY_ORDERS[: len(lmax)], list(lmax)  # type: ignore[arg-type]
        if lmax is None:
            return list(nradmax), DEFAULT_LMAX_BY_ORDERS[: len(nradmax)]
        return list(nradmax), list(lmax)

    @property
    def orders(self) -> tuple[list[int], list[int]]:
        """(nradmax_by_orders, lmax_by_orders), defaults filled in, cut to max_order (the ALL block when given)."""
        nradmax, lmax = self._full_orders()
        n = self.max_order or len(nradmax)
        return nradmax[:n], lmax[:n]

    def resolve_paths(self, base: Path) -> TrainingConfig:
        """Return a copy whose relative ``initial_potential`` is taken relative to ``base``."""
        return self.model_copy(update={"initial_potential": resolve_path(self.initial_potential, base)})


__all__ = ["DEFAULT_BASIS_BLOCKS", "BasisBlock", "EarlyStoppingConfig", "TrainingConfig"]
