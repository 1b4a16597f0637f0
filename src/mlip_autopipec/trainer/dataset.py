"""What the trainer needs to know about a pacemaker dataset before the fit: its elements."""

from __future__ import annotations

from pathlib import Path

from mlip_autopipec.exceptions import TrainerError


def dataset_elements(path: str | Path) -> list[str]:
    """Sorted chemical symbols present in a pacemaker DataFrame (``.pckl.gzip``, column ``ase_atoms``)."""
    import pandas as pd

    path = Path(path)
    compression = "gzip" if path.name.endswith((".gzip", ".gz")) else "infer"
    try:
        df = pd.read_pickle(path, compression=compression)
    except FileNotFoundError:
        raise TrainerError(f"training dataset not found: {path}") from None
    except Exception as err:  # pickle, gzip and pandas raise many kinds
        raise TrainerError(
            f"cannot read the training dataset {path} as a pacemaker DataFrame: {type(err).__name__}: {err}"
        ) from err
    if "ase_atoms" not in getattr(df, "columns", ()):
        raise TrainerError(
            f"training dataset {path} has no 'ase_atoms' column (columns: {list(getattr(df, 'columns', []))})"
        )
    if len(df) == 0:
        raise TrainerError(f"training dataset {path} holds no structures")
    symbols: set[str] = set()
    for atoms in df["ase_atoms"]:
        symbols.update(atoms.get_chemical_symbols())
    return sorted(symbols)


__all__ = ["dataset_elements"]
