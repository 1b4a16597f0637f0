"""Build a seed structure from its configuration (a structure file, or ``ase.build.bulk``), checked and storable.

A file is anything ASE reads (CIF, POSCAR, extxyz, ...).  What ASE attaches that
the database cannot store is converted or dropped: a CIF's ``Spacegroup`` object
becomes ``spacegroup_number``/``spacegroup_symbol``, its ``occupancy`` map and
``spacegroup_kinds`` array are dropped (after the checks below), and any other
``info`` value that is not plain data is dropped.  Only the atoms, positions,
cell, pbc and the per-atom arrays the database keeps survive.

A file is refused, with a sentence naming it, when

* a CIF site is partially occupied (``_atom_site_occupancy`` < 1): an ordered
  structure is needed, e.g. a special quasirandom structure of the alloy;
* a CIF lists a site twice (the site itself, or a symmetry image of another
  site): ASE merges such sites silently, so the file would be read with atoms
  missing (see :func:`cif_listed_atoms` for how this is found);
* two atoms overlap: closer than ``max(0.5 Å, 0.5 × the sum of their covalent radii)``.
  This is how a duplicated atom in a POSCAR or extxyz file is found: ASE reads
  those files atom by atom and merges nothing, so the duplicate is still there.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.data import covalent_radii
from ase.io import read
from ase.neighborlist import neighbor_list

from mlip_autopipec.config.schemas.structure import StructureConfig
from mlip_autopipec.exceptions import StructureError
from mlip_autopipec.generator.geometry import check_structure

OVERLAP_DISTANCE = 0.5  # Å: two atoms closer than this are one atom written twice
OVERLAP_FRACTION = 0.5  # ... or closer than this fraction of the sum of their covalent radii
_KEPT_ARRAYS = ("numbers", "positions", "initial_magmoms", "initial_charges", "masses", "tags", "momenta")

__all__ = ["build_seed", "check_overlaps", "check_seed", "cif_listed_atoms", "read_structure_file", "storable"]


def build_seed(config: StructureConfig) -> Atoms:
    """Return the seed structure described by ``config``: read or built, repeated, checked, storable."""
    if config.file is not None:
        atoms = read_structure_file(config.file, config.index)
        where = f"seed file {config.file}"
    else:
        kwargs: dict[str, Any] = {
            "crystalstructure": config.lattice,
            "a": config.a,
            "c": config.c,
            "cubic": config.cubic,
        }
        try:
            atoms = bulk(str(config.element), **{k: v for k, v in kwargs.items() if v is not None})
        except Exception as err:
            raise StructureError(f"ase.build.bulk cannot build {config.element!r} with {kwargs}: {err}") from err
        where = f"seed structure {atoms.get_chemical_formula()}"
    info = dict(atoms.info)
    atoms = atoms.repeat(config.repeat)
    atoms.info = info
    atoms.calc = None
    check_structure(atoms, where)
    return atoms


def check_seed(config: StructureConfig) -> str:
    """Build the seed once for a preflight check; return a one-line description, raise StructureError on a bad seed."""
    atoms = build_seed(config)
    source = f"file {config.file}" if config.file is not None else f"ase.build.bulk({config.element!r})"
    return f"{atoms.get_chemical_formula()} ({len(atoms)} atoms, volume {atoms.get_volume():.2f} Å³) from {source}"


def read_structure_file(path: str | Path, index: int = 0) -> Atoms:
    """Read frame ``index`` of an ASE-readable structure file, check it and make it storable (see module doc)."""
    path = Path(path)
    if not path.is_file():
        raise StructureError(f"seed structure file not found: {path}")
    is_cif = _is_cif(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ASE warns about CIF details; the checks below speak instead
            atoms = read(path, index=index)
    except Exception as err:  # ASE raises many kinds for unreadable files
        raise StructureError(f"cannot read the seed structure from {path}: {type(err).__name__}: {err}") from err
    if not isinstance(atoms, Atoms):
        raise StructureError(f"cannot read the seed structure from {path}: frame {index} is not one structure")
    where = f"seed file {path}"
    if is_cif:
        _check_cif_sites(path, index, atoms, where)
    check_structure(atoms, where)
    check_overlaps(atoms, where)
    out = storable(atoms)
    out.info["seed_file"] = path.name
    return out


def storable(atoms: Atoms) -> Atoms:
    """A copy of ``atoms`` without a calculator, whose ``info`` and arrays the database can store."""
    from mlip_autopipec.database.metadata import normalize_provenance

    out = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    for name in _KEPT_ARRAYS[2:]:
        if name in atoms.arrays:
            out.arrays[name] = np.array(atoms.arrays[name])
    info: dict = {}
    for key, value in atoms.info.items():
        if key == "spacegroup" and hasattr(value, "no"):
            info["spacegroup_number"] = int(value.no)
            info["spacegroup_symbol"] = str(value.symbol)
            continue
        if key in ("occupancy", "unit_cell"):
            continue
        try:
            info[key] = normalize_provenance(value, key)
        except Exception:  # not plain data: an object ASE attached; drop it
            continue
    out.info = info
    return out


def check_overlaps(
    atoms: Atoms, where: str, distance: float = OVERLAP_DISTANCE, fraction: float = OVERLAP_FRACTION
) -> None:
    """Raise :class:`StructureError` when two atoms are closer than ``max(distance, fraction × covalent radii sum)``."""
    if len(atoms) < 2 and not atoms.pbc.any():
        return
    radii = covalent_radii[atoms.numbers]
    cutoff = max(distance, fraction * 2.0 * radii.max()) + 1e-9
    i, j, d = neighbor_list("ijd", atoms, cutoff)
    if len(i) == 0:
        return
    limit = np.maximum(distance, fraction * (radii[i] + radii[j]))
    close = d < limit
    if not close.any():
        return
    k = int(np.flatnonzero(close)[np.argmin(d[close])])
    a, b = int(i[k]), int(j[k])
    n_pairs = int(np.count_nonzero(close & (i <= j)))
    symbols = atoms.get_chemical_symbols()
    same = "the same atom and its periodic image" if a == b else f"atoms {a} ({symbols[a]}) and {b} ({symbols[b]})"
    raise StructureError(
        f"{where}: {same} are {d[k]:.3f} Å apart, closer than {limit[k]:.2f} Å "
        f"(max({distance} Å, {fraction} × the sum of covalent radii)); {n_pairs} such pair(s): "
        "overlapping or duplicated atoms. Fix the file (a duplicated site, a wrong cell, or positions in the wrong "
        "units)"
    )


def _is_cif(path: Path) -> bool:
    if path.suffix.lower() in (".cif", ".mmcif"):
        return True
    try:
        from ase.io.formats import filetype

        return filetype(str(path), guess=False) == "cif"
    except Exception:
        return False


def _check_cif_sites(path: Path, index: int, atoms: Atoms, where: str) -> None:
    """Refuse partial occupancies and sites ASE merged away (a site listed twice, or on another's symmetry image)."""
    from ase.io.cif import parse_cif

    try:
        blocks = [b for b in parse_cif(str(path)) if b.has_structure()]
        block = blocks[index]
    except Exception:  # ASE read it; a parse failure here is not the user's problem to see twice
        return
    labels = [str(x) for x in (block.get("_atom_site_label") or [])]
    occupancies = block.get("_atom_site_occupancy")
    if occupancies is not None:
        partial = [
            (labels[n] if n < len(labels) else f"site {n + 1}", float(o))
            for n, o in enumerate(occupancies)
            if _number(o) < 1.0 - 1e-3
        ]
        if partial:
            shown = ", ".join(f"{label} ({occ:g})" for label, occ in partial[:8])
            raise StructureError(
                f"{where}: partially occupied site(s) {shown}: a seed must be an ordered structure. Give the "
                "parent lattice with an `alloy` composition (random occupations) instead, or an ordered supercell"
            )
    listed, names = cif_listed_atoms(block)
    if len(listed) != len(atoms):
        _refuse_merged_sites(listed, names, len(atoms), where)


def cif_listed_atoms(block: Any) -> tuple[Atoms, list[str]]:
    """Every atom a CIF block's ``_atom_site_`` loop describes, none merged, and the sites' labels.

    The array ``cif_site`` of the returned atoms is each atom's row in the loop (an index into the labels).

    ASE's reader expands the listed sites by the space group
    (``ase.spacegroup.crystal``) and merges a site that lies within 1e-3
    (fractional) of an earlier site or one of its symmetry images; without an
    occupancy column it does so silently.  So a P1 file that lists one atom
    twice reads as one atom fewer, and neither its ``info`` nor its arrays show
    it.  Here each listed site is expanded on its own, with the same
    ``Spacegroup.equivalent_sites`` ASE uses (which removes only a site's own
    coinciding images, as on a special position): the result has every atom the
    file lists.  Compared with what ASE read, the difference is the atoms ASE
    merged; the distances within it name the sites.

    ``block`` is an ``ase.io.cif.CIFBlock`` (from ``ase.io.cif.parse_cif``).
    """
    sites = block.get_unsymmetrized_structure()
    labels = [str(x) for x in (block.get("_atom_site_label") or [])]
    names = [labels[k] if k < len(labels) else f"{sym}{k + 1}" for k, sym in enumerate(sites.get_chemical_symbols())]
    if sites.cell.rank < 3:  # no cell: ASE applies no symmetry and merges nothing
        sites.arrays["cif_site"] = np.arange(len(sites))
        return sites, names
    spacegroup = block.get_spacegroup(True)
    numbers, scaled, site_of = [], [], []
    for k, position in enumerate(sites.get_scaled_positions(wrap=False)):
        orbit, _kinds = spacegroup.equivalent_sites([position], onduplicates="keep")
        numbers += [sites.numbers[k]] * len(orbit)
        scaled.append(orbit)
        site_of += [k] * len(orbit)
    listed = Atoms(numbers=numbers, cell=sites.cell, pbc=True)
    listed.set_scaled_positions(np.concatenate(scaled))
    listed.arrays["cif_site"] = np.array(site_of)
    return listed, names


def _refuse_merged_sites(listed: Atoms, names: list[str], n_read: int, where: str) -> None:
    """The sentence for a CIF whose listed sites ASE merged: the closest pair of sites, the atom counts."""
    i, j, d = neighbor_list("ijd", listed, OVERLAP_DISTANCE)
    site = listed.arrays["cif_site"]
    pairs = sorted((float(dist), int(site[a]), int(site[b])) for a, b, dist in zip(i, j, d, strict=True) if a < b)
    named = ""
    if pairs:
        dist, first, second = pairs[0]
        named = (
            f" (sites {names[first]} and {names[second]} are {dist:.3f} Å apart: the same atom written twice, "
            "or a symmetry image of another site)"
        )
    raise StructureError(
        f"{where}: its _atom_site_ loop lists {len(names)} sites that make {len(listed)} atoms, but some of "
        f"them fall on the same place{named} and ASE merged them silently: it read only {n_read} atoms. "
        "Remove the duplicated site(s) from the file"
    )


def _number(text) -> float:
    """A CIF number, without its standard uncertainty: '0.50(2)' -> 0.5."""
    if isinstance(text, (int, float)):
        return float(text)
    try:
        return float(str(text).split("(")[0])
    except ValueError:
        return 1.0
