"""Where CHGNet's and SevenNet's packages keep the weights their wheels ship, found without importing them.

Only these files may be used: a model version whose weights are not inside the
installed package (sevenn downloads some at run time) is refused in one sentence,
before any work.  Importing the packages (and torch) is left to the oracle, on the
workers; this module only looks at files.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

#: the model version each package ships and loads by default
DEFAULT_VERSIONS = {"chgnet": "0.3.0", "sevenn": "7net-0"}

#: sevenn 0.13 (``sevenn/_const.py``): its single-fidelity pretrained models by the name its calculator takes, and
#: their checkpoints under ``sevenn/pretrained_potentials/``; sevenn downloads a missing one at run time
SEVENN_CHECKPOINTS = {
    "7net-0": "SevenNet_0__11Jul2024/checkpoint_sevennet_0.pth",
    "7net-0_22may2024": "SevenNet_0__22May2024/checkpoint_sevennet_0.pth",
    "7net-l3i5": "SevenNet_l3i5/checkpoint_l3i5.pth",
    "7net-omat": "SevenNet_omat/checkpoint_sevennet_omat.pth",
}

INSTALL_ADVICE = "install the extra with `pip install 'mlip-autopipec[fm]'` (bash scripts/setup.sh does)"


def package_dir(package: str) -> Path | None:
    """The folder of an installed top-level package (found without importing it), or None."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def package_version(package: str) -> str:
    """The installed distribution's version, e.g. ``0.4.2``; ``unknown`` without metadata."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def chgnet_weights(root: Path) -> dict[str, Path]:
    """CHGNet's shipped versions: each folder of ``chgnet/pretrained/`` (its name is the version ``CHGNet.load``
    takes) with its one checkpoint."""
    out: dict[str, Path] = {}
    folder = root / "pretrained"
    for sub in sorted(folder.iterdir()) if folder.is_dir() else []:
        files = sorted(sub.glob("*.pth.tar"))
        if len(files) == 1:
            out[sub.name] = files[0]
    return out


def sevenn_weights(root: Path) -> dict[str, Path]:
    """SevenNet's shipped versions: the known checkpoints present under ``sevenn/pretrained_potentials/``."""
    folder = root / "pretrained_potentials"
    return {name: folder / rel for name, rel in SEVENN_CHECKPOINTS.items() if (folder / rel).is_file()}


def shipped_weights(name: str, version: str) -> Path:
    """The checkpoint file of model ``name`` (``chgnet`` or ``sevenn``) at ``version`` inside its installed package.

    Raises ValueError in one sentence when the package is missing, or the version is unknown or not shipped
    (a version the package would download).
    """
    root = package_dir(name)
    if root is None:
        raise ValueError(
            f"the foundation model {name} needs the package {name}, which is not installed: {INSTALL_ADVICE}"
        )
    shipped = chgnet_weights(root) if name == "chgnet" else sevenn_weights(root)
    if version in shipped:
        return shipped[version]
    listed = ", ".join(shipped) or "none"
    if name == "sevenn" and version in SEVENN_CHECKPOINTS:
        raise ValueError(
            f"sevenn {package_version(name)} does not ship the weights of {version!r} in its package (it would "
            f"download them, and only weights inside the installed package are used); shipped versions: {listed}"
        )
    raise ValueError(f"{name} {package_version(name)} has no model version {version!r}; shipped versions: {listed}")
