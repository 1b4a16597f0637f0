"""Commented example configs shipped with the package (`mlip-autopipec init --example NAME`)."""

from __future__ import annotations

from importlib import resources

EXAMPLES = {"cu-emt": "cu_emt.yaml", "si-qe": "si_qe.yaml", "si-qe-slurm": "si_qe_slurm.yaml"}


def example_text(name: str) -> str:
    """The text of the example config ``name`` (one of :data:`EXAMPLES`)."""
    try:
        filename = EXAMPLES[name]
    except KeyError:
        from mlip_autopipec.exceptions import ConfigurationError

        raise ConfigurationError(f"unknown example {name!r}; choose one of {', '.join(EXAMPLES)}") from None
    return resources.files(__package__).joinpath(filename).read_text()
