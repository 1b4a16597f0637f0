"""The active set of a B-basis potential: ``pace_activeset`` on the training data.

γ (the extrapolation grade) needs the B-basis ``.yaml`` potential plus its active
set inverse (``.asi``), never the ``.yace``.  ``pace_activeset`` writes the
``.asi`` next to the potential, named by replacing ``.yaml`` with ``.asi`` in the
path it is given; it is run in the potential's folder with the bare file name,
so a folder whose name contains ".yaml" cannot misdirect it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mlip_autopipec.exceptions import TrainerError
from mlip_autopipec.trainer.failure import program_error
from mlip_autopipec.trainer.profile import PacemakerProfile

LOG_NAME = "pace_activeset.log"
_BATCH_NEEDS_ALL_ATOMS = "Error-based selection of atoms in batch mode is not implemented"
_SUMMARY = re.compile(
    r"Element:\s*(\w+),\s*Active set inv\. shape:\s*\((\d+),\s*(\d+)\),\s*gamma_max:\s*([0-9.eE+-]+|nan|inf)"
)


@dataclass(frozen=True)
class ActiveSetSummary:
    """What ``pace_activeset`` reports for one element."""

    element: str
    n_functions: int
    gamma_max: float


def asi_path_for(potential_yaml: Path) -> Path:
    """Where ``pace_activeset`` puts the active set of ``potential_yaml`` (``X.yaml`` → ``X.asi``)."""
    return potential_yaml.with_name(potential_yaml.name.replace(".yaml", ".asi"))


def activeset_command(
    executable: str,
    potential_name: str,
    datasets: Sequence[Path],
    *,
    all_atoms: bool = False,
    memory_limit: float | None = None,
) -> list[str]:
    """The argument list of one ``pace_activeset`` run (pure).

    ``memory_limit`` is in MB (default: pace_activeset's own, 80 % of the available
    memory); a limit too small for one batch makes it work in batches, which it
    only allows together with ``all_atoms``.
    """
    cmd = [executable, potential_name]
    for ds in datasets:
        cmd += ["-d", str(ds)]
    if all_atoms:
        cmd.append("-a")
    if memory_limit is not None:
        cmd += ["-m", str(int(memory_limit * 2**20))]
    return cmd


def parse_activeset_log(text: str) -> dict[str, ActiveSetSummary]:
    """Per element, the active set size and the largest γ of the training data over it, from pace_activeset's output."""
    out: dict[str, ActiveSetSummary] = {}
    for m in _SUMMARY.finditer(text):
        out[m.group(1)] = ActiveSetSummary(element=m.group(1), n_functions=int(m.group(3)), gamma_max=float(m.group(4)))
    return out


_UNDER_DETERMINED = "Insufficient atomic environments to determine active set"


def build_active_set(
    potential_yaml: str | Path,
    datasets: str | Path | Sequence[str | Path],
    *,
    profile: PacemakerProfile | None = None,
    all_atoms: bool = False,
    memory_limit: float | None = None,
    timeout: float | None = None,
) -> Path:
    """Run ``pace_activeset`` for ``potential_yaml`` on the training ``datasets`` (.pckl.gzip); return the
    ``.asi`` path.

    By default only atoms whose force error is not an outlier (pace_activeset's
    Q3 + 1.5 IQR rule) enter the active set; ``all_atoms`` takes every atom.
    ``memory_limit`` in MB, ``timeout`` in seconds.  The tool's output goes to
    ``pace_activeset.log`` beside the potential.  Failures raise
    :class:`TrainerError` naming the potential in one sentence with the program's own
    error line (the output's tail goes to the run log).
    ``profile`` is the trainer's :class:`PacemakerProfile` (its ``pace_activeset``
    entry and environment); default: the program beside the running Python, then on PATH.
    """
    potential = Path(potential_yaml).resolve()
    if not potential.name.endswith(".yaml"):
        # pace_activeset would write the active set over the potential itself
        raise TrainerError(
            f"{potential}: the active set needs the B-basis potential as a .yaml file (not .yace or another name)"
        )
    if not potential.is_file():
        raise TrainerError(f"potential file not found: {potential}")
    if isinstance(datasets, (str, Path)):
        datasets = [datasets]
    dataset_paths = [Path(d).resolve() for d in datasets]
    if not dataset_paths:
        raise TrainerError(f"no training dataset given for the active set of {potential}")
    for ds in dataset_paths:
        if not ds.is_file():
            raise TrainerError(f"training dataset not found: {ds} (active set of {potential})")

    profile = profile or PacemakerProfile()
    args = activeset_command(
        "pace_activeset", potential.name, dataset_paths, all_atoms=all_atoms, memory_limit=memory_limit
    )[1:]
    asi = asi_path_for(potential)
    asi.unlink(missing_ok=True)  # a stale file must not pass for this run's result
    log_path = potential.parent / LOG_NAME
    run = profile.run("pace_activeset", args, cwd=potential.parent, log_path=log_path, timeout_s=timeout)
    output = log_path.read_text(errors="replace") if log_path.is_file() else ""
    if not run.ok and not all_atoms and _UNDER_DETERMINED in output:
        # a minority element (a few Au atoms among Cu) may have fewer environments below the force-error cut than
        # basis functions: every atom of the training data then enters the active set
        return build_active_set(
            potential, dataset_paths, profile=profile, all_atoms=True, memory_limit=memory_limit, timeout=timeout
        )
    if not run.ok:
        hint = ""
        if _UNDER_DETERMINED in output:
            hint = (
                "an element has fewer atomic environments in the training data than basis functions per element: "
                "give it more structures (a seed's weight or repeat) or lower training.number_of_functions_per_element"
            )
        if _BATCH_NEEDS_ALL_ATOMS in output:
            hint = (
                "the memory limit forces batches, which pace_activeset allows only with all_atoms=True: "
                "raise the limit or set all_atoms"
            )
        raise program_error(f"{run.failure()}, building the active set of {potential}", log_path, output, hint=hint)
    if not asi.is_file():
        raise program_error(f"pace_activeset finished but wrote no active set {asi}", log_path, output)
    return asi
