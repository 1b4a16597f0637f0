"""D-optimal selection of MD candidates against the current active set (pyace's MaxVol, as ``pace_select``).

A candidate is selected when some of its atoms' B-basis projections enter the
maximum-volume active set built from the current active set plus all
candidates' atoms; candidates are ranked by how many of their atoms enter it.
Those already known (``exclude``) are dropped first, so they never take a slot.

Memory: the projections of all candidate atoms are held at once when they fit
(twice their size plus the active set) in ``memory_limit``; the selection then
runs in this process.  Otherwise ``pace_select`` runs in batches in a separate
process inside ``workdir``: pyace's batched MaxVol prints to stdout and writes
``interim_active_set.asi`` into the current directory, which must not happen
inside the driver.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ase import Atoms

from mlip_autopipec.exceptions import StructureError, TrainerError
from mlip_autopipec.trainer.failure import program_error
from mlip_autopipec.trainer.profile import PacemakerProfile
from mlip_autopipec.trainer.pyace_import import import_quietly

#: the candidate table (pandas, gzip pickle) handed to pace_select in batch mode
PACE_SELECT_INPUT = "candidates.pckl.gzip"
SELECTED_FILE = "selected.pkl.gz"
LOG_NAME = "pace_select.log"


@dataclass
class SelectionResult:
    """The chosen candidates (the caller's own Atoms objects, best first) and their indices in the input."""

    selected: list[Atoms] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)
    n_candidates: int = 0
    n_excluded: int = 0
    batched: bool = False


@dataclass(frozen=True)
class SelectionPlan:
    """How much memory (bytes) the selection needs and whether it must run in batches."""

    projections_bytes: int
    active_set_bytes: int
    memory_limit_bytes: int
    batch_size: int | None  # None: everything at once


def plan_selection(candidates: Sequence[Atoms], bbasis, memory_limit: float | None) -> SelectionPlan:
    """Memory needed for the candidates' projections with ``bbasis`` under ``memory_limit``
    (MB; None: 80 % of available)."""
    al = import_quietly("pyace.activelearning")
    sel = import_quietly("pyace.aceselect")
    nfuncs = al.compute_number_of_functions(bbasis)
    try:
        counts = al.count_number_total_atoms_per_species_type_aseatom(list(candidates), bbasis.elements_to_index_map)
    except KeyError as err:
        raise StructureError(
            f"candidate with species {err} that the potential does not know (it has {list(bbasis.elements_name)})"
        ) from None
    as_mem, proj_mem = sel.compute_required_memory(counts, bbasis.elements_name, nfuncs)
    mem_lim = sel.compute_mem_limit("auto") if memory_limit is None else int(memory_limit * 2**20)
    if 2 * proj_mem + as_mem < mem_lim:
        return SelectionPlan(int(proj_mem), int(as_mem), int(mem_lim), None)
    if mem_lim <= as_mem:
        raise TrainerError(
            f"selection memory limit {mem_lim / 2**20:.3g} MB is below the active set's own {as_mem / 2**20:.3g} MB"
        )
    batch = sel.compute_batch_size("auto", mem_lim, len(candidates), as_mem, proj_mem, False)
    if batch is None or batch < 1:
        raise TrainerError(
            f"selection memory limit {mem_lim / 2**20:.3g} MB is too small for even one candidate "
            f"({2 * proj_mem / len(candidates) / 2**20:.3g} MB each)"
        )
    return SelectionPlan(int(proj_mem), int(as_mem), int(mem_lim), int(batch))


def select_command(
    executable: str,
    candidates_file: str,
    potential_yaml: Path,
    active_set_asi: Path | None,
    max_new: int,
    memory_limit_bytes: int,
    gamma_tolerance: float,
    maxvol_iters: int,
    maxvol_refinement: int,
) -> list[str]:
    """The argument list of one batched ``pace_select`` run (pure)."""
    cmd = [executable, candidates_file, "-p", str(potential_yaml)]
    if active_set_asi is not None:
        cmd += ["-a", str(active_set_asi)]
    cmd += [
        "-m",
        str(max_new),
        "-o",
        SELECTED_FILE,
        "-b",
        "auto",
        "-g",
        repr(float(gamma_tolerance)),
        "-i",
        str(maxvol_iters),
        "-r",
        str(maxvol_refinement),
        "-mem",
        str(memory_limit_bytes),
    ]
    return cmd


def select_candidates(
    candidates: Sequence[Atoms],
    potential_yaml: str | Path,
    active_set_asi: str | Path | None,
    max_new: int,
    *,
    memory_limit: float | None = None,
    exclude: Callable[[Atoms], bool] | None = None,
    gamma_tolerance: float = 1.01,
    maxvol_iters: int = 300,
    maxvol_refinement: int = 2,
    workdir: str | Path | None = None,
    profile: PacemakerProfile | None = None,
    timeout: float | None = None,
) -> SelectionResult:
    """Pick at most ``max_new`` candidates by D-optimality against the active set ``active_set_asi``.

    ``exclude(atoms)`` returns True for a structure already known (e.g. the
    database's duplicate check); such candidates are skipped.  ``memory_limit``
    in MB (default 80 % of available memory); ``workdir`` holds the files of a
    batched run (default: a temporary folder); ``timeout`` in seconds.  Without
    an active set, the candidates are selected among themselves.
    """
    if max_new < 1:
        raise ValueError(f"max_new must be at least 1, got {max_new}")
    potential = Path(potential_yaml).resolve()
    if not potential.is_file() or not potential.name.endswith(".yaml"):
        raise TrainerError(f"selection needs the B-basis .yaml potential; not found or not .yaml: {potential}")
    asi = None if active_set_asi is None else Path(active_set_asi).resolve()
    if asi is not None and not asi.is_file():
        raise TrainerError(f"active set file not found: {asi}")

    kept = [i for i, atoms in enumerate(candidates) if exclude is None or not exclude(atoms)]
    result = SelectionResult(n_candidates=len(candidates), n_excluded=len(candidates) - len(kept))
    if not kept:
        return result
    pool = [candidates[i] for i in kept]

    basis = import_quietly("pyace.basis")
    try:
        bbasis = basis.ACEBBasisSet(str(potential))
    except RuntimeError as err:
        raise TrainerError(f"cannot load potential {potential}: {err}") from None
    plan = plan_selection(pool, bbasis, memory_limit)
    if plan.batch_size is None:
        order = _select_in_process(pool, bbasis, asi, max_new, plan, gamma_tolerance, maxvol_iters, maxvol_refinement)
    else:
        result.batched = True
        order = _select_with_pace_select(
            pool,
            potential,
            asi,
            max_new,
            plan,
            gamma_tolerance,
            maxvol_iters,
            maxvol_refinement,
            workdir,
            profile,
            timeout,
        )
    result.indices = [kept[k] for k in order[:max_new]]
    result.selected = [candidates[i] for i in result.indices]
    return result


def _select_in_process(pool, bbasis, asi, max_new, plan, gamma_tolerance, maxvol_iters, maxvol_refinement) -> list[int]:
    import pandas as pd

    al = import_quietly("pyace.activelearning")
    sel = import_quietly("pyace.aceselect")
    extra = None
    if asi is not None:
        try:
            extra = al.compute_A_active_inverse(
                al.load_active_inverse_set(str(asi))
            )  # the active set, from its inverse
        except (OSError, ValueError) as err:
            raise TrainerError(f"cannot read active set {asi}: {err}") from None
    df = pd.DataFrame({"ase_atoms": list(pool)})
    try:
        chosen = sel.select_structures_maxvol(
            df,
            bbasis,
            extra,
            "none",
            gamma_tolerance,
            max_new,
            maxvol_iters,
            maxvol_refinement,
            str(plan.memory_limit_bytes),
            False,
        )
    except ValueError as err:
        raise TrainerError(f"D-optimal selection of {len(pool)} candidates failed: {err}") from None
    return [int(i) for i in chosen.index]


def _select_with_pace_select(
    pool, potential, asi, max_new, plan, gamma_tolerance, maxvol_iters, maxvol_refinement, workdir, profile, timeout
) -> list[int]:
    import pandas as pd

    profile = profile or PacemakerProfile()
    profile.executable("pace_select")  # installed, or say how to install it before writing anything
    with tempfile.TemporaryDirectory(prefix="pace_select_") as tmp:
        folder = Path(workdir) if workdir is not None else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / SELECTED_FILE).unlink(missing_ok=True)
        pd.DataFrame({"ase_atoms": list(pool), "candidate_index": list(range(len(pool)))}).to_pickle(
            folder / PACE_SELECT_INPUT, compression="gzip"
        )
        args = select_command(
            "pace_select",
            PACE_SELECT_INPUT,
            potential,
            asi,
            max_new,
            plan.memory_limit_bytes,
            gamma_tolerance,
            maxvol_iters,
            maxvol_refinement,
        )[1:]
        log_path = folder / LOG_NAME
        run = profile.run("pace_select", args, cwd=folder, log_path=log_path, timeout_s=timeout)
        output = log_path.read_text(errors="replace") if log_path.is_file() else ""
        where = f"in {folder}" if workdir is not None else "(temporary folder)"
        kept_log = log_path if workdir is not None else None  # a temporary folder's log goes with it
        if not run.ok:
            raise program_error(f"{run.failure()}, selecting among {len(pool)} candidates", kept_log, output)
        selected_path = folder / SELECTED_FILE
        if not selected_path.is_file():
            raise program_error(f"pace_select finished without writing {SELECTED_FILE} {where}", kept_log, output)
        chosen = pd.read_pickle(selected_path)
        return [int(i) for i in chosen["candidate_index"]]
