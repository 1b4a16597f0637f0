"""Commented example configs shipped with the package (`mlip-autopipec init --example NAME`)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

EXAMPLES = {
    "cu-emt": "cu_emt.yaml",
    "si-qe": "si_qe.yaml",
    "si-qe-slurm": "si_qe_slurm.yaml",
    "cuau-emt": "cuau_emt.yaml",
    "si-qe-al": "si_qe_al.yaml",
    "cuau-fm": "cuau_fm.yaml",
}

#: files an example reads, relative to its config (written beside it by ``init --example NAME -o FILE``)
COMPANIONS = {
    "cuau-emt": ("cuau/Cu3Au_L12.cif",),
    "si-qe-al": ("si_qe_al/Si15_vacancy.cif",),
    "cuau-fm": ("cuau/Cu3Au_L12.cif",),
}


def _filename(name: str) -> str:
    try:
        return EXAMPLES[name]
    except KeyError:
        from mlip_autopipec.exceptions import ConfigurationError

        raise ConfigurationError(f"unknown example {name!r}; choose one of {', '.join(EXAMPLES)}") from None


def example_text(name: str) -> str:
    """The text of the example config ``name`` (one of :data:`EXAMPLES`)."""
    return resources.files(__package__).joinpath(_filename(name)).read_text()


def example_companions(name: str) -> dict[str, bytes]:
    """The files example ``name`` reads (structure files), by their path relative to the config."""
    _filename(name)
    return {rel: resources.files(__package__).joinpath(rel).read_bytes() for rel in COMPANIONS.get(name, ())}


def write_example(name: str, output: Path, overwrite: bool = False) -> list[Path]:
    """Write example ``name`` to ``output`` and the files it reads beside it; the paths written, config first.

    Refuses (FileExistsError naming the file) to replace an existing file unless ``overwrite``.
    """
    output = Path(output)
    files = {output: example_text(name).encode()}
    files.update({output.parent / rel: data for rel, data in example_companions(name).items()})
    if not overwrite:
        for path in files:
            if path.exists():
                raise FileExistsError(f"{path} exists (use --overwrite)")
    for path, data in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return list(files)
