"""Active learning: explore with the fitted potential, catch extrapolation with γ, label what is new, refit.

One generation g = 1, 2, ... runs five steps, each recorded in
``state.json["active_learning"]["generations"]`` when it finishes:

``active_set``
    ``pace_activeset`` on the current training data and the current fit's
    B-basis ``.yaml``; the ``.asi`` lies beside the potential in its fit folder.
``explored``
    Molecular dynamics with ``PyACECalculator`` and γ, one Dask task per
    trajectory (:func:`~mlip_autopipec.explore.md.run_trajectory`), for every
    condition of :func:`~mlip_autopipec.explore.md.md_conditions` ×
    ``trajectories_per_condition``.  The first trajectory of every condition
    starts from the seed crystal, the others from labelled structures of the
    database (point defects and other structures alternating, drawn afresh each
    generation).  Trajectory ``i`` of generation ``g`` is seeded with
    ``SeedSequence([seed, g, i])``.  The candidates are saved to
    ``al/gen_<g>/candidates.xyz`` and every trajectory's outcome to
    ``al/gen_<g>/trajectories.json``, so a resumed run never explores again.
``selected``
    D-optimal selection (:func:`~mlip_autopipec.explore.select.select_candidates`)
    against the active set, skipping candidates already in the database, at most
    ``max_new_per_generation`` and no more than the oracle budget left.  The
    selected structures are added to the database as pending, all in one
    transaction, with ``generation=g`` and ``parent_id`` = the database id of the
    trajectory's start structure (none for the seed crystal).  Sources: a
    halting frame and its rattled copies keep ``"md_halt"``; a frame sampled
    with gamma_select ≤ γ < gamma_halt gets ``"active_learning_iter_<g>"``.
    Their split (train / validation) is drawn on arrival as for every structure.
``labelled``
    ``label_pending`` with the run's oracle on the same Dask client.
``fitted``
    Export, refit (from the previous potential when ``continue_from_previous``)
    with :func:`~mlip_autopipec.pipeline.fits.fit_or_reuse` (tag ``gen<g>``), and
    the validation RMSE of the new potential with ``PyACECalculator``.

Stop rules, checked in this order: a generation whose trajectories all ran their
full length without a γ halt or a blow-up ("converged": its potential is
final, nothing is labelled); ``max_generations`` generations done; the oracle
budget ``max_oracle_calls`` spent (oracle calls = structures added by active
learning, labelled, failed or pending); a generation that found nothing new to
label.  The reason is logged and stored in ``state.json`` as ``stop_reason``.

Resume: a killed run, started again, skips every finished step: exploration is
read back from its files, a selection already in the database (structures with
``generation=g``) is not made again, labelling only touches pending
structures, and fits are reused by their content key.  The record of the
initial fit is kept, so later generations continue from the same potentials.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from mlip_autopipec.config.schemas.active_learning import ActiveLearningConfig
from mlip_autopipec.database import StructureMetadata
from mlip_autopipec.exceptions import StructureError, TrainerError
from mlip_autopipec.explore.activeset import asi_path_for, build_active_set
from mlip_autopipec.explore.md import SOURCE_HALT, MDCondition, TrajectoryResult, md_conditions, run_trajectory
from mlip_autopipec.trainer.pyace_import import import_pyace_calculator
from mlip_autopipec.explore.select import select_candidates
from mlip_autopipec.fileio import atomic_path
from mlip_autopipec.pipeline.fits import fit_or_reuse, load_fit, mark_latest
from mlip_autopipec.pipeline.state import read_state, section_fingerprints, write_state
from mlip_autopipec.trainer.pace import TrainingResult

log = logging.getLogger("mlip_autopipec")

STATE_KEY = "active_learning"
STEPS = ("active_set", "explored", "selected", "labelled", "fitted")
CANDIDATES_FILE = "candidates.xyz"
TRAJECTORIES_FILE = "trajectories.json"
SEED_LABEL = "seed"


def sampled_source(generation: int) -> str:
    """The source of a structure sampled from the exploration of ``generation`` (halting ones keep "md_halt")."""
    return f"active_learning_iter_{generation}"


def generation_dir(workdir: Path, generation: int) -> Path:
    """``workdir/al/gen_<g>``: the candidates and trajectory records of one generation."""
    return Path(workdir) / "al" / f"gen_{generation}"


# --------------------------------------------------------------------------- what is already stored
def stored_already(db) -> Callable[[Atoms], bool]:
    """``known(atoms)``: True when the database already holds ``atoms`` (within its duplicate tolerance).

    A structure the database would refuse (non-finite positions, ...) also
    counts as known, so it is never selected.
    """

    def known(atoms: Atoms) -> bool:
        try:
            return db.find_duplicate(atoms) is not None
        except StructureError as err:
            log.warning("active learning: candidate skipped: %s", err)
            return True

    return known


# --------------------------------------------------------------------------- state.json bookkeeping
class _Book:
    """The ``active_learning`` part of ``state.json``, written after every finished step."""

    def __init__(self, ctx):
        self.ctx = ctx
        state = read_state(ctx.workdir) or {}
        self.data: dict[str, Any] = dict(state.get(STATE_KEY) or {})
        self.data.setdefault("generations", [])
        self.training = section_fingerprints(ctx.config)["training"]

    def row(self, generation: int, create: bool = False) -> dict[str, Any] | None:
        for row in self.data["generations"]:
            if row["generation"] == generation:
                return row
        if not create:
            return None
        row = {"generation": generation, "step": None, "training": self.training}
        self.data["generations"].append(row)
        self.data["generations"].sort(key=lambda r: r["generation"])
        return row

    def save(self) -> None:
        write_state(self.ctx.workdir, self.ctx.config, extra={STATE_KEY: self.data})
        self.ctx.notes[STATE_KEY] = self.data

    def stop(self, reason: str) -> None:
        self.data["stop_reason"] = reason
        self.save()
        log.info("active learning stopped: %s", reason)


def _done(row: dict[str, Any] | None, step: str) -> bool:
    return row is not None and row.get("step") in STEPS and STEPS.index(row["step"]) >= STEPS.index(step)


def resumed_initial_fit(ctx) -> TrainingResult | None:
    """The fit active learning started from, when a previous run of this work directory recorded one.

    On a resumed run the pipeline's first fit would otherwise be made again on
    every labelled structure, those of active learning included; the pipeline
    can take this one instead (None: no record, or the training settings changed).
    """
    al = (read_state(ctx.workdir) or {}).get(STATE_KEY) or {}
    initial = al.get("initial") or {}
    if initial.get("training") != section_fingerprints(ctx.config)["training"]:
        return None
    return load_fit(initial.get("fit_dir"))


# --------------------------------------------------------------------------- validation errors
def validation_errors(ctx, fit: TrainingResult) -> dict[str, Any]:
    """Energy (meV/atom) and force (meV/Å) RMSE of ``fit`` on the labelled validation split (empty dict: no split)."""
    from mlip_autopipec.report.validate import energy_shift, error_metrics, predict

    structures = [rec.atoms for rec in ctx.db.select(label="validation", status="labelled")]
    if not structures:
        return {}
    calc = import_pyace_calculator()(str(fit.potential_yace))
    m = error_metrics(predict(structures, calc, energy_shift(fit.reference_energy)))
    return {
        "n_validation": m.n_structures,
        "validation_energy_rmse_mev_per_atom": m.energy_rmse_mev_per_atom,
        "validation_force_rmse_mev_per_angstrom": m.force_rmse_mev_per_angstrom,
    }


# --------------------------------------------------------------------------- exploration
def start_structures(ctx, generation: int, seed: int) -> list[tuple[str, Atoms]]:
    """Where trajectories start: the seed crystal first, then labelled database structures.

    Point defects (provenance operation "defect") and the other structures
    alternate, each group shuffled with ``SeedSequence([seed, generation])``;
    labels are ``"seed"`` or the database id.
    """
    from mlip_autopipec.generator import build_seed

    defects: list[tuple[str, Atoms]] = []
    others: list[tuple[str, Atoms]] = []
    for rec in ctx.db.select(status="labelled"):
        group = defects if rec.metadata.provenance.get("operation") == "defect" else others
        group.append((str(rec.id), rec.atoms))
    rng = np.random.default_rng(np.random.SeedSequence([seed & 0xFFFFFFFF, generation]))
    defects = [defects[i] for i in rng.permutation(len(defects))]
    others = [others[i] for i in rng.permutation(len(others))]
    mixed: list[tuple[str, Atoms]] = []
    for k in range(max(len(defects), len(others))):
        mixed.extend(group[k] for group in (defects, others) if k < len(group))
    return [(SEED_LABEL, build_seed(ctx.config.structure)), *mixed]


def trajectory_plan(
    settings: ActiveLearningConfig, starts: list[tuple[str, Atoms]], generation: int
) -> list[tuple[MDCondition, str, Atoms, int]]:
    """(condition, start label, start structure, seed) of every trajectory of a generation (pure).

    Replica 0 of each condition starts from ``starts[0]`` (the seed crystal);
    replicas 1, 2, ... take the other starts in turn (the seed crystal again
    when there are none).  Trajectory ``i`` gets the seed ``SeedSequence([seed, generation, i])``.
    """
    plan = []
    others = starts[1:] or starts[:1]
    k = 0
    i = 0
    for condition in md_conditions(settings):
        for replica in range(settings.trajectories_per_condition):
            if replica == 0:
                label, atoms = starts[0]
            else:
                label, atoms = others[k % len(others)]
                k += 1
            seq = np.random.SeedSequence([settings.seed & 0xFFFFFFFF, generation, i])
            plan.append((condition, label, atoms, int(seq.generate_state(1, dtype=np.uint32)[0])))
            i += 1
    return plan


def _trajectory_record(label: str, r: TrajectoryResult) -> dict[str, Any]:
    return {
        "condition": r.condition.label,
        "ensemble_used": r.ensemble_used,
        "start": label,
        "seed": r.seed,
        "n_atoms": r.n_atoms,
        "n_steps": r.n_steps,
        "n_steps_done": r.n_steps_done,
        "stop": r.stop,
        "reason": r.reason,
        "max_gamma": r.max_gamma,
        "n_candidates": len(r.candidates),
        "wall_time_s": r.wall_time,
    }


def explore(ctx, client, fit: TrainingResult, asi: Path, generation: int) -> tuple[list[Atoms], list[dict[str, Any]]]:
    """Run every trajectory of ``generation`` on the Dask ``client``; return the candidates and one record per trajectory.

    Candidates come in plan order (trajectory by trajectory), so the same
    seeds give the same candidate list however the tasks are scheduled.
    """
    from distributed import as_completed

    from mlip_autopipec.progress import progress_bar

    settings: ActiveLearningConfig = ctx.config.active_learning
    plan = trajectory_plan(settings, start_structures(ctx, generation, settings.seed), generation)
    futures = {}
    for i, (condition, label, atoms, seed) in enumerate(plan):
        fut = client.submit(
            run_trajectory, atoms, str(fit.potential_yaml), str(asi), condition, settings, seed,
            label=label, pure=False, key=f"md-g{generation}-{i}-{condition.label}",
        )  # fmt: skip
        futures[fut.key] = (i, fut)
    results: list[TrajectoryResult | None] = [None] * len(plan)
    errors: dict[int, str] = {}
    done = 0
    try:
        with progress_bar(f"exploring (generation {generation})", total=len(plan), enabled=ctx.progress) as update:
            for fut in as_completed([f for _, f in futures.values()], loop=client.loop):
                i, _ = futures[fut.key]
                condition, label, _atoms, _seed = plan[i]
                try:
                    results[i] = fut.result()
                except StructureError as err:  # a start structure the potential cannot evaluate: skip that trajectory
                    errors[i] = str(err)
                    log.warning("active learning: trajectory %d (%s from %s) not run: %s", i, condition.label, label, err)
                except Exception as err:
                    raise TrainerError(
                        f"exploration trajectory {i} ({condition.label}, start {label}, generation {generation}) failed: "
                        f"{type(err).__name__}: {err}"
                    ) from err
                fut.release()
                done += 1
                halted = sum(1 for r in results if r is not None and r.halted)
                update(done, extra=f"halted {halted}")
    finally:
        unfinished = [f for _, f in futures.values() if not f.done()]
        if unfinished:  # an error or Ctrl-C: no trajectory goes on running on the cluster
            with contextlib.suppress(Exception):
                client.cancel(unfinished)
    candidates: list[Atoms] = []
    records: list[dict[str, Any]] = []
    for i, ((condition, label, _atoms, _seed), r) in enumerate(zip(plan, results)):
        if r is None:
            records.append({"condition": condition.label, "start": label, "stop": "error", "reason": errors.get(i, ""), "n_candidates": 0})
            continue
        records.append(_trajectory_record(label, r))
        candidates.extend(r.candidates)
    return candidates, records


def write_candidates(path: Path, candidates: list[Atoms]) -> None:
    """Save the candidates (extended XYZ with their provenance in ``info``), atomically."""
    from ase.io import write

    with atomic_path(path) as tmp:
        if candidates:
            write(tmp, candidates, format="extxyz")
        else:
            tmp.write_text("")


def read_candidates(path: Path) -> list[Atoms]:
    from ase.io import read

    if path.stat().st_size == 0:
        return []
    return list(read(path, index=":", format="extxyz"))


def _parent_id(atoms: Atoms) -> int | None:
    start = atoms.info.get("md_start")
    if isinstance(start, (int, np.integer)) and int(start) >= 1:
        return int(start)
    if isinstance(start, str) and start.isdigit() and int(start) >= 1:
        return int(start)
    return None


def candidate_metadata(atoms: Atoms, generation: int) -> StructureMetadata:
    """Where a selected candidate came from: "md_halt" for halting frames and their copies, else active_learning_iter_<g>."""
    source = SOURCE_HALT if atoms.info.get("source") == SOURCE_HALT else sampled_source(generation)
    return StructureMetadata(source=source, generation=generation, parent_id=_parent_id(atoms))


# --------------------------------------------------------------------------- the loop
class _LazyClient:
    """A Dask client for the run's compute config, started on first use and closed at the end."""

    def __init__(self, compute):
        self.compute = compute
        self._stack = contextlib.ExitStack()
        self._client = None

    def __call__(self):
        if self._client is None:
            from mlip_autopipec.oracle.compute import dask_client

            self._client = self._stack.enter_context(dask_client(self.compute))
        return self._client

    def close(self) -> None:
        self._stack.close()


@contextlib.contextmanager
def _timed(row: dict[str, Any], key: str) -> Iterator[None]:
    t0 = time.perf_counter()
    try:
        yield
    finally:
        row[key] = row.get(key, 0.0) + time.perf_counter() - t0


def oracle_calls_used(db) -> int:
    """Structures added by active learning (generation ≥ 1): each costs one oracle call."""
    return db.count() - db.count(generation=0)


def run_active_learning(ctx, fit: TrainingResult) -> TrainingResult:
    """Run (or continue) active learning from ``fit``; return the final potential's fit.

    ``ctx`` is the pipeline's :class:`~mlip_autopipec.pipeline.run.RunContext`
    (its ``config.active_learning`` is the :class:`ActiveLearningConfig`).
    Progress is written to ``state.json["active_learning"]`` after every step
    and set as ``ctx.notes["active_learning"]`` for the report.
    """
    settings: ActiveLearningConfig | None = ctx.config.active_learning
    if settings is None:
        return fit
    book = _Book(ctx)
    recorded = resumed_initial_fit(ctx)
    if recorded is not None:
        fit = recorded
    else:
        book.data["initial"] = {
            "fit_dir": str(fit.output_dir),
            "training": book.training,
            "n_labelled_total": ctx.db.count(status="labelled"),
            **validation_errors(ctx, fit),
        }
        book.save()
    client = _LazyClient(ctx.config.compute)
    try:
        fit = _generations(ctx, settings, book, fit, client)
    finally:
        client.close()
    mark_latest(ctx.workdir, fit)
    book.save()
    return fit


def _generations(ctx, settings: ActiveLearningConfig, book: _Book, fit: TrainingResult, client: _LazyClient) -> TrainingResult:
    g = 0
    while True:
        g += 1
        row = book.row(g)
        if _done(row, "fitted"):
            done_fit = load_fit(row.get("fit_dir"))
            if done_fit is not None and row.get("training") == book.training:
                fit = done_fit
                continue
            if done_fit is None:
                row["step"] = "labelled"  # the fit's files are gone: fit again
            else:
                log.warning(
                    "active learning: the training settings changed since generation %d; continuing from the current fit", g
                )
                continue
        if row is None or not _done(row, "explored"):
            if g > settings.max_generations:
                book.stop(f"max_generations ({settings.max_generations}) reached")
                return fit
            used = oracle_calls_used(ctx.db)
            if settings.max_oracle_calls is not None and used >= settings.max_oracle_calls:
                book.stop(f"max_oracle_calls ({settings.max_oracle_calls}) spent: {used} oracle calls by active learning")
                return fit
        row = book.row(g, create=True)
        book.data.pop("stop_reason", None)
        gen_dir = generation_dir(ctx.workdir, g)
        gen_dir.mkdir(parents=True, exist_ok=True)
        asi = asi_path_for(Path(fit.potential_yaml))
        if _done(row, "explored") and not _done(row, "selected") and not (gen_dir / CANDIDATES_FILE).is_file():
            log.warning("active learning: %s is missing: exploring generation %d again", gen_dir / CANDIDATES_FILE, g)
            row["step"] = "active_set"

        # 1. active set (exploration and selection need it)
        if not _done(row, "selected") and (not _done(row, "active_set") or not asi.is_file()):
            with _timed(row, "active_set_s"):
                asi = build_active_set(fit.potential_yaml, ctx.workdir / "data" / "train.pckl.gzip")
            row["active_set"] = str(asi)
            if not _done(row, "active_set"):
                row["step"] = "active_set"
            book.save()

        # 2. explore
        if not _done(row, "explored"):
            with _timed(row, "explore_s"):
                candidates, records = explore(ctx, client(), fit, asi, g)
            write_candidates(gen_dir / CANDIDATES_FILE, candidates)
            with atomic_path(gen_dir / TRAJECTORIES_FILE) as tmp:
                tmp.write_text(json.dumps(records, indent=1))
            gamma_halts = sum(1 for r in records if r.get("stop") == "gamma")
            blowups = sum(1 for r in records if r.get("stop") == "blowup")
            row.update(
                trajectories=len(records),
                completed=sum(1 for r in records if r.get("stop") == "completed"),
                not_started=sum(1 for r in records if r.get("stop") == "error"),
                candidates=len(candidates),
                halts=gamma_halts + blowups,
                gamma_halts=gamma_halts,
                blowups=blowups,
                max_gamma=max((r.get("max_gamma", 0.0) for r in records), default=0.0),
                step="explored",
            )
            book.save()
            log.info(
                "active learning generation %d: %d trajectories, %d halted by γ, %d blew up, %d candidates, largest γ %.3g",
                g, len(records), gamma_halts, blowups, len(candidates), row["max_gamma"],
            )  # fmt: skip
        if row.get("halts", 0) == 0:
            n, skipped = row.get("trajectories", 0), row.get("not_started", 0)
            if skipped == n:
                raise TrainerError(
                    f"active learning generation {g}: none of the {n} exploration trajectories could start "
                    f"(see the log and {gen_dir / TRAJECTORIES_FILE})"
                )
            book.stop(
                f"converged: all {n - skipped} trajectories of generation {g} ran their full {settings.n_steps} steps at every "
                "condition without a γ halt or a blow-up" + (f" ({skipped} could not start)" if skipped else "")
            )
            return fit

        # 3. select
        if not _done(row, "selected"):
            already = ctx.db.ids(generation=g)
            if already:  # killed after the selection was stored: it is in the database
                ids = already
            else:
                with _timed(row, "select_s"):
                    ids = _select_and_store(ctx, settings, fit, asi, g, gen_dir, row)
            row["selected"] = len(set(ids))
            row["selected_md_halt"] = ctx.db.count(generation=g, source=SOURCE_HALT)
            row["step"] = "selected"
            book.save()
        if row.get("selected", 0) == 0:
            book.stop(
                f"nothing new to label in generation {g}: {row.get('candidates', 0)} candidates, "
                f"{row.get('excluded', 0)} already in the database"
            )
            return fit

        # 4. label
        if not _done(row, "labelled"):
            from mlip_autopipec.oracle import label_pending

            with _timed(row, "label_s"):
                if ctx.db.count(status="pending"):
                    label_pending(ctx.db, ctx.config.oracle, client(), workdir=ctx.workdir / "oracle", progress=ctx.progress)
                ctx.db.assign_split(ctx.config.database.validation_fraction, ctx.config.database.split_seed)
            row["labelled"] = ctx.db.count(generation=g, status="labelled")
            row["failed"] = ctx.db.count(generation=g, status="failed")
            row["oracle_calls_total"] = oracle_calls_used(ctx.db)
            row["step"] = "labelled"
            book.save()

        # 5. refit
        from mlip_autopipec.pipeline.run import step_export

        with _timed(row, "fit_s"):
            train, validation = step_export(ctx)
            previous = fit if settings.continue_from_previous else None
            fit = fit_or_reuse(ctx, train, validation, previous=previous, tag=f"gen{g}")
        row.update(fit_dir=str(fit.output_dir), n_labelled_total=ctx.db.count(status="labelled"), training=book.training)
        row.update(validation_errors(ctx, fit))
        row["step"] = "fitted"
        book.save()
        rmse = row.get("validation_force_rmse_mev_per_angstrom")
        log.info(
            "active learning generation %d: %d selected, %d labelled, %d failed; refit %s; validation force RMSE %s",
            g, row["selected"], row["labelled"], row["failed"], fit.output_dir.name,
            "n/a" if rmse is None else f"{rmse:.1f} meV/Å",
        )  # fmt: skip


def _select_and_store(ctx, settings: ActiveLearningConfig, fit: TrainingResult, asi: Path, g: int, gen_dir: Path, row) -> list[int]:
    candidates = read_candidates(gen_dir / CANDIDATES_FILE)
    max_new = settings.max_new_per_generation
    if settings.max_oracle_calls is not None:
        max_new = min(max_new, settings.max_oracle_calls - oracle_calls_used(ctx.db))
    if not candidates or max_new < 1:
        row["excluded"] = 0
        return []
    result = select_candidates(
        candidates, fit.potential_yaml, asi, max_new,
        memory_limit=settings.selection_memory_limit, exclude=stored_already(ctx.db), workdir=gen_dir / "select",
    )  # fmt: skip
    row["excluded"] = result.n_excluded
    if not result.selected:
        return []
    for atoms, index in zip(result.selected, result.indices):
        atoms.info["al_candidate_index"] = int(index)
    metas = [candidate_metadata(atoms, g) for atoms in result.selected]
    return ctx.db.add_structures(result.selected, metas)
