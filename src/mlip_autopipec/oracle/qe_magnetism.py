"""pw.x and magnetism: a pseudopotential's valence charge, and the final moments in a pw.x output.

pw.x takes ``starting_magnetization`` as a fraction of the valence charge of each species (from -1, all
valence electrons spin down, to 1).  ASE's writer (:func:`ase.io.espresso.write_espresso_in`, ASE ≥ 3.29)
writes each atom's initial magnetic moment as it is (divided by one ``rescale_magmom_fac`` for all species),
and no longer reads the valence from the pseudopotential; so a moment in μB is divided here by the valence
charge of its pseudopotential (:func:`upf_valence`) before ASE writes it.

ASE reads the moments per site from the last column of pw.x's "Magnetic moment per site" block, which in
pw.x 6.x is the constraint column (always 0); :func:`parse_magnetic_moments` reads the ``magn`` values and the
cell's ``total magnetization`` instead (both in μB).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlip_autopipec.exceptions import OracleError

# UPF v2: an attribute of PP_HEADER; UPF v1: a line "   10.00000000000      Z valence"
_UPF2_VALENCE = re.compile(r'z_valence\s*=\s*"\s*([-+0-9.eEdD]+)\s*"', re.IGNORECASE)
_UPF1_VALENCE = re.compile(r"^\s*([-+0-9.eEdD]+)\s+Z\s+valence", re.IGNORECASE | re.MULTILINE)
_TOTAL = re.compile(r"^\s*total magnetization\s*=\s*([-+0-9.]+)\s*Bohr mag/cell", re.MULTILINE)
_SITE_HEADER = "Magnetic moment per site"
# pw.x 6.x: "atom:    1    charge:    8.7394    magn:    0.7071    constr:    0.0000"
# pw.x 7.x: "atom    1 (R=0.190)  charge= 14.4370  magn=  2.2866"
_SITE = re.compile(r"^\s*atom[:\s]+(\d+).*?\bmagn[:=]\s*([-+0-9.]+)")


def upf_valence(path: str | Path) -> float:
    """The valence charge (electrons) of a UPF pseudopotential file (format 1 or 2), from its header."""
    try:
        with open(path, errors="replace") as fh:
            head = fh.read(200_000)
    except OSError as err:
        raise OracleError(f"cannot read the pseudopotential {path}: {err}") from None
    found = _UPF2_VALENCE.search(head) or _UPF1_VALENCE.search(head)
    if found is None:
        raise OracleError(f"{path}: no valence charge (z_valence / 'Z valence') in its header")
    value = float(found.group(1).replace("d", "e").replace("D", "e"))
    if value <= 0:
        raise OracleError(f"{path}: valence charge {value} is not positive")
    return value


def starting_magnetization(moment_mu_b: float, valence: float) -> float:
    """pw.x's ``starting_magnetization`` of a species: its initial moment (μB) over its valence charge."""
    return moment_mu_b / valence


@dataclass(frozen=True)
class PwMagnetism:
    """The final moments of a spin-polarised pw.x run: per site (μB, integrated on atomic spheres) and of the cell."""

    magmoms: np.ndarray | None
    magmom: float | None


def parse_magnetic_moments(text: str, n_atoms: int) -> PwMagnetism:
    """The last ``total magnetization`` and per-site ``magn`` values of a pw.x output; None where absent."""
    totals = _TOTAL.findall(text)
    magmom = float(totals[-1]) if totals else None
    start = text.rfind(_SITE_HEADER)
    magmoms = None
    if start >= 0:
        sites: dict[int, float] = {}
        for line in text[start:].splitlines()[1:]:
            match = _SITE.match(line)
            if match:
                sites[int(match.group(1))] = float(match.group(2))
            elif line.strip() or sites:
                break
        if sorted(sites) == list(range(1, n_atoms + 1)):
            magmoms = np.array([sites[i] for i in range(1, n_atoms + 1)], dtype=float)
    return PwMagnetism(magmoms=magmoms, magmom=magmom)
