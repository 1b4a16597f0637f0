"""Plane-wave GPAW as an oracle (an optional extra: ``pip install 'mlip-autopipec[gpaw]'``).

GPAW is imported only when a calculation runs, so the package works without
it; a missing GPAW is an :class:`OracleError` with install advice.  The k-point
mesh follows the same density convention as the espresso oracle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
    "GPAW is not installed in this environment: install the optional extra with `pip install 'mlip-autopipec[gpaw]'` "
    "(GPAW needs libxc and a C compiler; see https://gpaw.readthedocs.io/install.html), then run `gpaw install-data` "
    "for the PAW setups, or use the espresso oracle"
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


class GPAWOracle(Oracle):
    """Labels with GPAW in plane-wave mode; energy, forces and (fully periodic cells) stress."""

    kind = "gpaw"
    config: GPAWOracleConfig

    def _compute(self, atoms: Atoms, directory: Path | None) -> LabelResult:
        GPAW = import_gpaw()
        params = gpaw_parameters(self.config, atoms, directory)
        atoms.calc = GPAW(**params)
        try:
            energy, forces, stress = results_from_calculator(atoms, fully_periodic(atoms))
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
        )
