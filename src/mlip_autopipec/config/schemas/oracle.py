"""Settings of the Oracle (the reference calculator).

``OracleConfig`` is a discriminated union on ``type`` (``emt``, ``espresso``,
``gpaw``, ``ase``, ``foundation_model``); a mapping without ``type`` is the embedded default, EMT.
It is a plain alias of ``Annotated[Union[...], Discriminator]``: use it as a
field type, or validate a mapping at the door with
``mlip_autopipec.config.validate_config(OracleConfig, data)`` (errors are
:class:`ConfigurationError`).  Where the oracle runs (the compute models) is
:mod:`mlip_autopipec.compute.models`.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from mlip_autopipec.config.schemas.base import StrictModel, resolve_path
from mlip_autopipec.config.schemas.foundation import FoundationModelFields

DEFAULT_PSEUDO_DIR = Path("/usr/share/espresso/pseudo")

Scalar = bool | int | float | str


class _OracleBase(StrictModel):
    """Checks shared by every oracle: what counts as an implausible result, and when a run gives up."""

    max_force: float = Field(
        100.0,
        gt=0,
        description="A result with any force component magnitude above this (eV/Å) is implausible: the structure is "
        "marked failed.",
    )
    max_abs_energy_per_atom: float = Field(
        1.0e5,
        gt=0,
        description="A result whose |energy| per atom exceeds this (eV/atom) is implausible: the structure is marked "
        "failed.",
    )
    max_failure_fraction: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="Labelling stops with an error once the failed structures of a run exceed this share of the "
        "structures it was given (finished results are written first; the rest stay pending).",
    )


class EMTOracleConfig(_OracleBase):
    """ASE's effective-medium theory: instant, for Al, Cu, Ag, Au, Ni, Pd, Pt (and H, C, N, O); the embedded default."""

    type: Literal["emt"] = Field("emt", description="Oracle kind: ASE's EMT calculator.")


class _MagneticFields(StrictModel):
    """An initial magnetic moment per element, for the DFT oracles (pw.x, GPAW)."""

    magnetic_moments: dict[str, float] = Field(
        default_factory=dict,
        description="Initial magnetic moment per element (μB per atom), e.g. {'Ni': 0.6}; elements not named start "
        "at 0. Any non-zero moment makes the calculation spin-polarised (pw.x: nspin 2 and starting_magnetization "
        "per species, the moment as a fraction of the pseudopotential's valence charge; GPAW: the atoms' initial "
        "magnetic moments). The final moments (μB) are stored with the labels: per atom (magmoms) and of the cell "
        "(magmom). Keys must be elements of the campaign. Default: none (spin-unpolarised).",
        # left out of a dump when empty: the oracle section (and its fingerprint, recorded in the origin of every
        # database made before this field existed) reads as it did, so such a pw.x or GPAW run is not refused
        exclude_if=lambda moments: not moments,
    )

    @field_validator("magnetic_moments")
    @classmethod
    def _check_moments(cls, v: dict[str, float]) -> dict[str, float]:
        from ase.data import atomic_numbers

        bad = [el for el in v if el not in atomic_numbers]
        if bad:
            raise ValueError(f"not chemical symbols: {bad}")
        infinite = [el for el, m in v.items() if not math.isfinite(m)]
        if infinite:
            raise ValueError(f"the moments of {infinite} are not finite numbers")
        return v

    def spin_polarised(self) -> bool:
        """Whether any element starts with a non-zero moment."""
        return any(m != 0.0 for m in self.magnetic_moments.values())


_QE_NAMELISTS = ("control", "system", "electrons", "ions", "cell")
# Parameters the espresso oracle sets itself; an override in input_data would break it.
_QE_RESERVED = {"calculation", "tprnfor", "tstress", "pseudo_dir", "outdir", "prefix", "ntyp", "nat", "ibrav"}


class EspressoOracleConfig(_MagneticFields, _OracleBase):
    """Quantum ESPRESSO ``pw.x`` through ASE's Espresso calculator: one SCF per structure, forces and stress on."""

    type: Literal["espresso"] = Field("espresso", description="Oracle kind: Quantum ESPRESSO pw.x.")
    command: str = Field(
        "pw.x",
        min_length=1,
        description="How to start pw.x, split like a shell would (no shell is used): e.g. 'pw.x' or 'mpirun -np 4 "
        "pw.x'.",
    )
    pseudopotentials: dict[str, str] = Field(
        min_length=1,
        description="Pseudopotential file name per element, e.g. {'Si': 'Si.pbe-rrkj.UPF'}; looked up in pseudo_dir.",
    )
    pseudo_dir: Path | None = Field(
        None,
        description=f"Folder of the pseudopotential files; default {DEFAULT_PSEUDO_DIR} where it exists (Debian's "
        "quantum-espresso-data).",
    )
    ecutwfc: float = Field(30.0, gt=0, description="Plane-wave cutoff of the wavefunctions (Ry, pw.x's unit).")
    ecutrho: float | None = Field(
        None, gt=0, description="Cutoff of the charge density (Ry); default pw.x's, 4 × ecutwfc."
    )
    kspacing: float = Field(
        0.3,
        gt=0,
        description="Largest k-point spacing (Å⁻¹) with VASP's convention: n_i = max(1, ceil(2π·|b_i| / kspacing)), "
        "b_i the reciprocal vectors without 2π; 1 along non-periodic axes. ASE's own kspacing omits the 2π.",
    )
    occupations: Literal["smearing", "fixed"] = Field(
        "smearing", description="pw.x occupations: 'smearing' (metals, safe default) or 'fixed' (gapped systems)."
    )
    smearing: Literal["mv", "gaussian", "mp", "fd"] = Field(
        "mv",
        description="Smearing function with occupations='smearing': Marzari-Vanderbilt, Gaussian, Methfessel-Paxton "
        "or Fermi-Dirac.",
    )
    degauss: float = Field(
        0.01, gt=0, description="Smearing width (Ry); the healing ladder widens it on late attempts."
    )
    conv_thr: float = Field(1.0e-8, gt=0, description="SCF convergence threshold on the estimated energy error (Ry).")
    mixing_beta: float = Field(
        0.7, gt=0, le=1.0, description="Charge-density mixing factor of the first attempt (dimensionless)."
    )
    mixing_mode: Literal["plain", "TF", "local-TF"] = Field(
        "plain", description="Charge-density mixing mode of the first attempt."
    )
    electron_maxstep: int = Field(100, ge=1, description="Largest number of SCF iterations of the first attempt.")
    diagonalization: Literal["david", "cg", "ppcg", "paro"] = Field(
        "david", description="Diagonalisation algorithm of the first attempt."
    )
    input_data: dict[str, dict[str, Scalar]] = Field(
        default_factory=dict,
        description="Further pw.x parameters by namelist, e.g. {'system': {'nspin': 2}}; applied over the fields "
        "above, under the healing ladder's settings. calculation, tprnfor, tstress, pseudo_dir, outdir and prefix are "
        "set by the oracle and cannot be given.",
    )
    max_attempts: int = Field(
        4,
        ge=1,
        le=10,
        description="SCF attempts per structure: a non-converged SCF is retried with the next, safer rung of the "
        "healing ladder.",
    )
    env: dict[str, str] = Field(
        default_factory=lambda: {"OMP_NUM_THREADS": "1"},
        description="Environment variables set for pw.x on top of the worker's environment (default "
        "OMP_NUM_THREADS=1: one core per MPI rank).",
    )
    timeout_s: float | None = Field(
        None, gt=0, description="Wall-time limit of one pw.x run (s); a run past it is killed and the structure fails."
    )
    keep_scratch: bool = Field(
        False,
        description="Keep pw.x's scratch folder (wavefunctions, charge density) after a run; by default only the "
        "input and output text stay.",
    )

    @field_validator("pseudopotentials")
    @classmethod
    def _check_pseudos(cls, v: dict[str, str]) -> dict[str, str]:
        from ase.data import atomic_numbers

        bad = [el for el in v if el not in atomic_numbers]
        if bad:
            raise ValueError(f"not chemical symbols: {bad}")
        return v

    @field_validator("command")
    @classmethod
    def _check_command(cls, v: str) -> str:
        import shlex

        try:
            parts = shlex.split(v)
        except ValueError as err:
            raise ValueError(f"cannot split the command {v!r}: {err}") from None
        if not parts:
            raise ValueError("the command is empty")
        return v

    @field_validator("input_data")
    @classmethod
    def _check_input_data(cls, v: dict[str, dict[str, Scalar]]) -> dict[str, dict[str, Scalar]]:
        out: dict[str, dict[str, Scalar]] = {}
        for section, params in v.items():
            key = section.lower()
            if key not in _QE_NAMELISTS:
                raise ValueError(f"unknown pw.x namelist {section!r}; use one of {list(_QE_NAMELISTS)}")
            reserved = sorted(p for p in params if p.lower() in _QE_RESERVED)
            if reserved:
                raise ValueError(f"{section}: {reserved} are set by the oracle and cannot be overridden")
            out[key] = {p.lower(): val for p, val in params.items()}
        return out

    @model_validator(mode="after")
    def _check_magnetism(self) -> EspressoOracleConfig:
        unknown = sorted(el for el in self.magnetic_moments if el not in self.pseudopotentials)
        if unknown:
            raise ValueError(
                f"magnetic_moments: {unknown} have no pseudopotential (oracle.pseudopotentials has "
                f"{sorted(self.pseudopotentials)})"
            )
        system = self.input_data.get("system", {})
        if self.magnetic_moments and any(k.startswith("starting_magnetization") for k in system):
            raise ValueError(
                "input_data.system: give starting magnetisations as magnetic_moments (μB per element), not "
                "starting_magnetization, when magnetic_moments is set"
            )
        if self.spin_polarised() and system.get("nspin", 2) == 1:
            raise ValueError("input_data.system.nspin is 1, but magnetic_moments asks for a spin-polarised run")
        return self

    def resolve_paths(self, base: Path) -> EspressoOracleConfig:
        """A copy whose relative ``pseudo_dir`` is taken relative to ``base`` (the config file's folder)."""
        return self.model_copy(update={"pseudo_dir": resolve_path(self.pseudo_dir, base)})

    def resolved_pseudo_dir(self) -> Path | None:
        """The pseudopotential folder: the configured one, else the Debian default where it exists, else None."""
        if self.pseudo_dir is not None:
            return self.pseudo_dir
        return DEFAULT_PSEUDO_DIR if DEFAULT_PSEUDO_DIR.is_dir() else None


class GPAWOracleConfig(_MagneticFields, _OracleBase):
    """Plane-wave GPAW (the extra ``gpaw``, which scripts/setup.sh installs), with the same k-point convention."""

    type: Literal["gpaw"] = Field("gpaw", description="Oracle kind: GPAW in plane-wave mode.")
    ecut: float = Field(400.0, gt=0, description="Plane-wave cutoff (eV).")
    xc: str = Field(
        "PBE", min_length=1, description="Exchange-correlation functional, as GPAW names it (e.g. 'PBE', 'LDA')."
    )
    kspacing: float = Field(
        0.3,
        gt=0,
        description="Largest k-point spacing (Å⁻¹), VASP's convention n_i = max(1, ceil(2π·|b_i| / kspacing)); 1 "
        "along non-periodic axes.",
    )
    smearing: Literal["fermi-dirac", "marzari-vanderbilt", "methfessel-paxton"] = Field(
        "fermi-dirac", description="Occupation smearing function."
    )
    smearing_width: float = Field(0.1, ge=0, description="Smearing width (eV).")
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="Further GPAW keyword arguments (e.g. {'spinpol': True}), applied over the settings above.",
    )


_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*([.:][A-Za-z_]\w*)$")


class ASEOracleConfig(_OracleBase):
    """Any ASE calculator, by import path and keyword arguments (how VASP, CP2K or a Lennard-Jones toy plug in)."""

    type: Literal["ase"] = Field("ase", description="Oracle kind: an ASE calculator class given by import path.")
    calculator: str = Field(
        description="Import path of the calculator class (or factory), 'package.module.Class' or "
        "'package.module:Class', e.g. 'ase.calculators.lj.LennardJones'."
    )
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments for the calculator class.")
    set_directory: bool = Field(
        True,
        description="Point the calculator's 'directory' at the structure's own run folder (for file-based "
        "calculators).",
    )
    stress: bool = Field(
        True,
        description="Ask for the stress of fully periodic cells (set False for calculators that do not provide it).",
    )

    @field_validator("calculator")
    @classmethod
    def _check_path(cls, v: str) -> str:
        if not _IMPORT_PATH.match(v) or ("." not in v and ":" not in v):
            raise ValueError(f"{v!r} is not an import path like 'package.module.Class'")
        return v


class FoundationModelOracleConfig(_OracleBase, FoundationModelFields):
    """A universal interatomic potential whose weights ship inside its Python package (CHGNet, SevenNet).

    Labels with no DFT at all: an ACE distilled from it reproduces the foundation model.  Only weights inside the
    installed package are used; a version the package would download is refused here, before any work.
    """

    type: Literal["foundation_model"] = Field(
        "foundation_model", description="Oracle kind: a foundation model shipped inside its Python wheel."
    )


def _oracle_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("type", "emt")
    return getattr(value, "type", None)


OracleConfig = Annotated[
    Annotated[EMTOracleConfig, Tag("emt")]
    | Annotated[EspressoOracleConfig, Tag("espresso")]
    | Annotated[GPAWOracleConfig, Tag("gpaw")]
    | Annotated[ASEOracleConfig, Tag("ase")]
    | Annotated[FoundationModelOracleConfig, Tag("foundation_model")],
    Discriminator(
        _oracle_tag,
        custom_error_type="oracle_type",
        custom_error_message="unknown oracle type; the type must be one of emt, espresso, gpaw, ase, foundation_model",
    ),
]
"""An oracle's settings: a discriminated union on ``type``; a mapping without ``type`` is EMT."""
