"""Plane-wave GPAW as an oracle (the extra ``gpaw``, which ``scripts/setup.sh`` builds and installs).

GPAW is imported only when a calculation runs, so the package works without
it; a missing GPAW is an :class:`OracleError` with install advice.  The k-point
mesh follows the same density convention as the espresso oracle.  Its PAW
setups come from the ``gpaw-data`` package, which GPAW finds by itself.

Magnetism: the config's ``magnetic_moments`` (μB per element) become the atoms'
initial magnetic moments, which make GPAW spin-polarised; the final moments
(μB, per atom and of the cell) come back with the labels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from mlip_autopipec.config.schemas.oracle import GPAWOracleConfig
from mlip_autopipec.exceptions import OracleError
from mlip_autopipec.oracle.base import (
    LabelFailed,
    LabelResult,
    Oracle,
    fully_periodic,
    kpoint_mesh,
    output_tail,
    results_from_calculator,
)

GPAW_TXT = "gpaw.txt"
INSTALL_ADVICE = (
    "GPAW is not installed in this environment: `bash scripts/setup.sh` builds it (as root it installs Debian's "
    "libxc-dev, libopenblas-dev and libopenmpi-dev first), or by hand: apt-get install libxc-dev libopenblas-dev "
    "libopenmpi-dev, then `pip install -e '.[gpaw]'` (gpaw and its PAW setups, gpaw-data); or use the espresso oracle"
)


def import_gpaw() -> Any:
    """The GPAW calculator class, or :class:`OracleError` with install advice."""
    try:
        from gpaw import GPAW
    except ImportError as err:
        raise OracleError(f"{INSTALL_ADVICE} ({err})") from None
    return GPAW


def gpaw_parameters(config: GPAWOracleConfig, atoms: Atoms, directory: Path | None) -> dict[str, Any]:
    """Keyword arguments for ``gpaw.GPAW``: plane waves at ``ecut`` eV, the k-mesh of ``kspacing``, smearing in eV."""
    params: dict[str, Any] = {
        "mode": {"name": "pw", "ecut": config.ecut},
        "xc": config.xc,
        "kpts": {"size": kpoint_mesh(atoms, config.kspacing), "gamma": True},
        "occupations": {"name": config.smearing, "width": config.smearing_width},
        "txt": str(directory / GPAW_TXT) if directory is not None else None,
    }
    params.update(config.parameters)
    return params


def initial_moments(config: GPAWOracleConfig, atoms: Atoms) -> np.ndarray | None:
    """Each atom's initial magnetic moment (μB) from ``magnetic_moments``; None when no element has one."""
    if not config.spin_polarised():
        return None
    return np.array([config.magnetic_moments.get(el, 0.0) for el in atoms.get_chemical_symbols()], dtype=float)


def final_moments(atoms: Atoms) -> tuple[np.ndarray | None, float | None]:
    """The final moments (μB) per atom and of the cell from the attached GPAW calculator; None if unpolarised."""
    calc = atoms.calc
    if calc is None or calc.get_number_of_spins() != 2:
        return None, None
    return np.array(calc.get_magnetic_moments(), dtype=float), float(calc.get_magnetic_moment())


class GPAWOracle(Oracle):
    """Labels with GPAW in plane-wave mode; energy, forces, (fully periodic cells) stress, and magnetic moments."""

    kind = "gpaw"
    config: GPAWOracleConfig

    def _compute(self, atoms: Atoms, directory: Path | None) -> LabelResult:
        GPAW = import_gpaw()
        params = gpaw_parameters(self.config, atoms, directory)
        moments = initial_moments(self.config, atoms)
        if moments is not None:
            atoms.set_initial_magnetic_moments(moments)
        atoms.calc = GPAW(**params)
        try:
            energy, forces, stress = results_from_calculator(atoms, fully_periodic(atoms))
            magmoms, magmom = final_moments(atoms)
        except Exception as err:
            text = (
                Path(params["txt"]).read_text(errors="replace")
                if params.get("txt") and Path(params["txt"]).is_file()
                else ""
            )
            raise LabelFailed(
                f"GPAW failed: {type(err).__name__}: {err}", output_tail=output_tail(text), directory=str(directory)
            ) from err
        return LabelResult(
            energy=energy,
            forces=forces,
            stress=stress,
            command=f"gpaw.GPAW({params})",
            directory=str(directory) if directory else None,
            magmoms=magmoms,
            magmom=magmom,
        )
