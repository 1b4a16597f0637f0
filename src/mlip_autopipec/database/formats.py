"""Training-set files: pacemaker's gzipped DataFrame and ASE's extended XYZ, written atomically.

Writers take an iterable of :class:`ExportRecord` and stream it: the extended
XYZ writer holds one structure at a time; the pacemaker writer holds exactly
one copy of the data (the DataFrame it must pickle).  Both write to a hidden
temporary file in the target directory and rename it into place only when it
is complete, so a reader never sees half a file under the final name.

Metadata travels in ``atoms.info``: ``db_id``, ``source``, ``generation``,
``labels`` (list of str), ``parent_id`` (when set) and ``provenance`` (dict).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from mlip_autopipec.exceptions import DatabaseError
from mlip_autopipec.fileio import atomic_path

PACEMAKER_SUFFIX = ".pckl.gzip"
EXTXYZ_SUFFIXES = (".xyz", ".extxyz")
#: gzip level of the pacemaker file: level 1 is ~5x faster than pandas' default 9 on float data
#: and the file is only a few percent larger; pandas reads either the same way.
GZIP_LEVEL = 1
#: pickle protocol of the pacemaker file: 4, as pacemaker's own save_dataframe writes (and a little faster than 5)
PICKLE_PROTOCOL = 4
_EXTXYZ_LABEL_SEP = ","


class ExportRecord(NamedTuple):
    """One labelled structure on its way to a file (energy in eV, forces in eV/Å, stress in eV/Å^3, Voigt;
    the final magnetic moments per atom in μB when the oracle was spin-polarised)."""

    atoms: Atoms
    energy: float
    forces: np.ndarray
    stress: np.ndarray | None
    name: str
    info: dict[str, Any]
    magmoms: np.ndarray | None = None


def dataset_format(path: str | os.PathLike) -> str:
    """``'pacemaker'`` or ``'extxyz'`` from the file name; :class:`DatabaseError` for anything else."""
    name = Path(path).name.lower()
    if name.endswith(PACEMAKER_SUFFIX):
        return "pacemaker"
    if name.endswith(EXTXYZ_SUFFIXES):
        return "extxyz"
    raise DatabaseError(
        f"{path}: unknown dataset format; use a name ending in {PACEMAKER_SUFFIX} (pacemaker) or "
        f"{' / '.join(EXTXYZ_SUFFIXES)} (extended XYZ)"
    )


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[str]:
    """:func:`mlip_autopipec.fileio.atomic_path`, refusing a missing directory (an export never creates folders)."""
    target = Path(path)
    if not target.parent.is_dir():
        raise DatabaseError(f"{target}: the directory {target.parent} does not exist")
    with atomic_path(target, make_parents=False) as tmp:
        yield str(tmp)


def energy_corrected(numbers: np.ndarray, energy: float, reference_by_z: np.ndarray) -> float:
    """``energy`` minus the per-atom reference energies of its atoms (eV), as pace_collect computes it."""
    return float(energy - reference_by_z[numbers].sum())


def reference_table(reference_energies: dict[str, float] | None) -> np.ndarray:
    """Reference energy (eV per atom) indexed by atomic number; elements not given count 0."""
    from ase.data import atomic_numbers

    table = np.zeros(119)
    for symbol, value in (reference_energies or {}).items():
        if symbol not in atomic_numbers or atomic_numbers[symbol] == 0:
            raise DatabaseError(f"reference_energies: {symbol!r} is not a chemical element")
        value = float(value)
        if not np.isfinite(value):
            raise DatabaseError(f"reference_energies: the value for {symbol} is not finite ({value})")
        table[atomic_numbers[symbol]] = value
    return table


def write_pacemaker(
    path: str | os.PathLike, records: Iterable[ExportRecord], reference_energies: dict[str, float] | None
) -> int:
    """Write pacemaker's DataFrame (``name``, ``energy``, ``energy_corrected``, ``forces``, ``ase_atoms``,
    and ``stress`` when any record has one) as a gzipped pickle; return the number of structures.

    ``ase_atoms`` carry ``info`` (the metadata) but no calculator: energy, forces
    and stress live in their columns, so the data is held and stored once.
    """
    import pandas as pd

    table = reference_table(reference_energies)
    names: list[str] = []
    energies: list[float] = []
    corrected: list[float] = []
    forces: list[np.ndarray] = []
    stresses: list[np.ndarray | None] = []
    structures: list[Atoms] = []
    for rec in records:
        names.append(rec.name)
        energies.append(rec.energy)
        corrected.append(energy_corrected(rec.atoms.numbers, rec.energy, table))
        forces.append(rec.forces)
        stresses.append(rec.stress)
        rec.atoms.info = rec.info
        structures.append(rec.atoms)
    if not structures:
        raise DatabaseError(f"{path}: nothing to write")
    columns: dict[str, Any] = {
        "name": names,
        "energy": energies,
        "energy_corrected": corrected,
        "forces": forces,
        "ase_atoms": structures,
    }
    if any(s is not None for s in stresses):
        columns["stress"] = stresses
    df = pd.DataFrame(columns)
    del names, energies, corrected, forces, stresses, structures
    with atomic_output(path) as tmp:
        _pickle_gzip(df, tmp)
    return len(df)


def _pickle_gzip(obj: Any, path: str) -> None:
    """``pickle.dump(obj)`` into a gzip file, as ``DataFrame.to_pickle(compression="gzip")`` writes it,
    but compressing in a second thread: zlib releases the GIL, so pickling and compressing overlap
    (the compression is a third of the export's time)."""
    import gzip
    import pickle
    import queue
    import threading

    chunks: queue.Queue = queue.Queue(maxsize=16)
    failure: list[BaseException] = []

    def compress() -> None:
        try:
            with gzip.open(path, "wb", compresslevel=GZIP_LEVEL) as gz:
                while (chunk := chunks.get()) is not None:
                    gz.write(chunk)
        except BaseException as exc:  # handed to the main thread
            failure.append(exc)
            while chunks.get() is not None:  # keep draining so the producer never blocks
                pass

    class _Sink:
        def write(self, data: Any) -> int:
            if failure:
                raise failure[0]
            if not isinstance(data, bytes):
                data = memoryview(data).tobytes()  # a view into pickle's buffer: copy before handing over
            chunks.put(data)
            return len(data)

    worker = threading.Thread(target=compress, name="pickle-gzip", daemon=True)
    worker.start()
    try:
        pickle.dump(obj, _Sink(), protocol=PICKLE_PROTOCOL)
    finally:
        chunks.put(None)
        worker.join()
    if failure:
        raise failure[0]


def _extxyz_info(info: dict[str, Any]) -> dict[str, Any]:
    """Metadata as extended XYZ can carry it: no None, no empty strings, labels joined, provenance as JSON."""
    out: dict[str, Any] = {}
    for key, value in info.items():
        if value is None:
            continue
        if key == "labels":
            if value:
                out[key] = _EXTXYZ_LABEL_SEP.join(value)
        elif key == "provenance":
            if value:
                out[key] = json.dumps(_jsonable(value), allow_nan=True)
        else:
            out[key] = value
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_extxyz(path: str | os.PathLike, records: Iterable[ExportRecord]) -> int:
    """Write extended XYZ (energy, forces, stress, metadata in the comment line), one structure at a time."""
    from ase.io.extxyz import write_xyz  # takes any iterable of Atoms (ase.io.write is typed for sequences)

    count = 0

    def frames() -> Iterator[Atoms]:
        nonlocal count
        for rec in records:
            atoms = rec.atoms
            atoms.info = _extxyz_info(rec.info)
            atoms.calc = SinglePointCalculator(
                atoms, energy=rec.energy, forces=rec.forces, stress=rec.stress, magmoms=rec.magmoms
            )
            count += 1
            yield atoms

    with atomic_output(path) as tmp:
        with open(tmp, "w") as out:
            write_xyz(out, frames())
        if count == 0:
            raise DatabaseError(f"{path}: nothing to write")
    return count


def _info_from_extxyz(info: dict[str, Any]) -> dict[str, Any]:
    out = dict(info)
    for key in ("db_id", "generation", "parent_id"):
        if key in out and isinstance(out[key], (int, np.integer)):
            out[key] = int(out[key])
    if "labels" in out:
        out["labels"] = [x for x in str(out["labels"]).split(_EXTXYZ_LABEL_SEP) if x]
    else:
        out.setdefault("labels", [])
    prov = out.get("provenance")
    if isinstance(prov, str):
        out["provenance"] = json.loads(prov)
    return out


def read_dataset(path: str | os.PathLike) -> list[Atoms]:
    """Read a pacemaker ``.pckl.gzip`` or an extended XYZ file.

    Every structure comes back with a single-point calculator holding its
    energy (eV), forces (eV/Å) and, when known, stress (eV/Å^3), and its
    metadata in ``info``.

    Warning: a ``.pckl.gzip`` is a Python pickle; loading one runs code chosen by
    whoever wrote the file.  Load only files you trust.
    """
    p = Path(path)
    kind = dataset_format(p)
    if not p.is_file():
        raise DatabaseError(f"{p}: no such dataset file")
    if kind == "extxyz":
        from ase.io import read

        try:
            images = read(p, index=":", format="extxyz")
        except Exception as exc:  # ASE raises many kinds for malformed files
            raise DatabaseError(f"{p}: not a readable extended XYZ file: {exc}") from exc
        out = []
        for i, atoms in enumerate(images):
            atoms.info = _info_from_extxyz(atoms.info)
            if atoms.calc is None or "energy" not in atoms.calc.results:
                raise DatabaseError(f"{p}: frame {i} has no energy")
            out.append(atoms)
        return out
    return _read_pacemaker(p)


def _read_pacemaker(p: Path) -> list[Atoms]:
    import pandas as pd

    try:
        df = pd.read_pickle(p, compression="gzip")
    except Exception as exc:
        raise DatabaseError(f"{p}: not a readable gzipped pandas pickle: {exc}") from exc
    missing = [c for c in ("ase_atoms", "energy", "forces") if c not in getattr(df, "columns", ())]
    if missing:
        raise DatabaseError(f"{p}: not a pacemaker dataset, missing columns {missing}")
    has_stress = "stress" in df.columns
    stress_col = df["stress"] if has_stress else [None] * len(df)
    out = []
    for i, (atoms, energy, forces, stress) in enumerate(
        zip(df["ase_atoms"], df["energy"], df["forces"], stress_col, strict=True)
    ):
        if not isinstance(atoms, Atoms):
            raise DatabaseError(f"{p}: row {i}: ase_atoms is a {type(atoms).__name__}, not an ase.Atoms")
        stress = None if stress is None or (np.ndim(stress) == 0 and np.isnan(stress)) else stress
        atoms.calc = SinglePointCalculator(atoms, energy=float(energy), forces=np.asarray(forces, float), stress=stress)
        atoms.info.setdefault("labels", [])
        out.append(atoms)
    return out
