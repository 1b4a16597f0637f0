"""The initial pool: a diverse, reproducible starting pool drawn from one seed structure, and its extxyz file.

:class:`InitialExplorer` draws the pool; :func:`write_pool` writes it.  The pool
mixes four kinds of structure, each recorded in ``atoms.info``:

* ``eos``: clean equation-of-state points, volumes evenly spaced across
  ``volume_range``, no rattle (a point that would fall on the input volume
  exactly is rattled instead, so that every structure differs from the input);
* ``isotropic``: a random volume in ``volume_range``, then rattled;
* ``anisotropic``: a random symmetric strain whose deviatoric part is bounded by
  ``max_anisotropic_strain`` and whose volume lies in ``volume_range``, then rattled;
* ``defect``: a vacancy, interstitial or antisite in a supercell, then rattled.

Atoms move with the cell (fractional coordinates kept), then get independent
Gaussian displacements.  Every draw is vectorised over the whole pool, and a
structure whose atoms come too close is drawn again.  A structure (the input or
a defect supercell) larger than ``max_atoms`` is refused before anything is drawn.

Example::

    from ase.build import bulk
    from mlip_autopipec.config import GeneratorConfig
    from mlip_autopipec.generator import InitialExplorer

    pool = InitialExplorer(GeneratorConfig(seed=1)).generate(bulk("Cu", cubic=True), 50)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import write

from mlip_autopipec.config.loader import require_config
from mlip_autopipec.config.schemas.generator import GeneratorConfig
from mlip_autopipec.exceptions import ConfigurationError, StructureError
from mlip_autopipec.fileio import atomic_path
from mlip_autopipec.generator import defects as defect_ops
from mlip_autopipec.generator import strain as strain_ops
from mlip_autopipec.generator.geometry import check_structure, min_distance_ok
from mlip_autopipec.generator.size import check_size

ProgressCallback = Callable[[int, int], None]
_CHUNK_FLOATS = 1_500_000  # ~12 MB of float64 per working array


class InitialExplorer:
    """Draws the starting pool described by a :class:`GeneratorConfig`."""

    def __init__(self, config: GeneratorConfig | None = None) -> None:
        self.config = (
            require_config(config, GeneratorConfig, "InitialExplorer") if config is not None else GeneratorConfig()
        )

    # ------------------------------------------------------------------ public
    def generate(self, input_structure: Atoms, count: int, progress: ProgressCallback | None = None) -> list[Atoms]:
        """Return ``count`` new structures derived from ``input_structure`` (which is left untouched).

        ``progress(done, total)`` is called as structures are finished.
        Raises :class:`StructureError` for bad input or when the distance guard
        rejects a structure ``max_draws_per_structure`` times, and
        :class:`ConfigurationError` for a structure larger than ``max_atoms``.
        """
        cfg = self.config
        if not isinstance(count, (int, np.integer)) or isinstance(count, bool) or count < 1:
            raise ConfigurationError(f"count must be a positive integer, got {count!r}")
        count = int(count)
        check_structure(input_structure, "input structure")
        if cfg.n_defect_structures > count:
            raise ConfigurationError(
                f"n_defect_structures ({cfg.n_defect_structures}) is larger than the pool size ({count})"
            )
        self._check_sizes(input_structure, count)
        rng = np.random.default_rng(cfg.seed)
        basis = strain_ops.periodic_basis(input_structure.cell, input_structure.pbc)
        k = basis.shape[1]
        if k == 3:
            basis = np.eye(3)  # bound strain components in the Cartesian frame
        self._check_can_differ(k)

        n_bulk = count - cfg.n_defect_structures
        plan = self._plan(n_bulk, k)
        pool = self._bulk_pool(input_structure, plan, basis, rng, progress, count)
        pool += self._defect_pool(input_structure, rng, progress, len(pool), count)
        return pool

    # ----------------------------------------------------------------- helpers
    def _check_sizes(self, atoms: Atoms, count: int) -> None:
        """Refuse an input or a defect supercell above ``max_atoms`` (the message estimates the pool's memory)."""
        cfg = self.config
        n_defects = cfg.n_defect_structures
        supercell = 0
        if n_defects:
            reps = defect_ops.supercell_repeats(atoms, cfg.defect_supercell_min_width)
            supercell = len(atoms) * int(np.prod(reps)) + 1  # + 1: an interstitial
        in_pool = (count - n_defects) * len(atoms) + n_defects * supercell
        check_size(len(atoms), cfg.max_atoms, in_pool, f"the structure {atoms.get_chemical_formula()}")
        check_size(supercell, cfg.max_atoms, in_pool, f"the defect supercell of {atoms.get_chemical_formula()}")

    def _check_can_differ(self, k: int) -> None:
        cfg = self.config
        lo, hi = cfg.volume_range
        strains = k > 0 and (lo != 1.0 or hi != 1.0 or cfg.max_anisotropic_strain > 0)
        if cfg.rattle_stdev == 0.0 and not strains and cfg.n_defect_structures == 0:
            raise ConfigurationError(
                "with rattle_stdev 0, volume_range [1, 1] and no anisotropic strain (or a non-periodic structure), "
                "no structure could differ from the input"
            )

    def _plan(self, n: int, k: int) -> list[str]:
        cfg = self.config
        if k == 0 or n == 0:
            return ["rattle"] * n
        n_eos = int(round(cfg.eos_fraction * n))
        n_aniso = min(n - n_eos, int(round(cfg.anisotropic_fraction * n)))
        return ["eos"] * n_eos + ["anisotropic"] * n_aniso + ["isotropic"] * (n - n_eos - n_aniso)

    def _draw(
        self, ops: list[str], eos_volumes: np.ndarray, k: int, basis: np.ndarray, natoms: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Volumes, deformation gradients, displacements and rattle widths for the structures ``ops``."""
        cfg = self.config
        lo, hi = cfg.volume_range
        n = len(ops)
        op = np.array(ops)
        volumes = rng.uniform(lo, hi, size=n) if k else np.ones(n)
        is_eos = op == "eos"
        volumes[is_eos] = eos_volumes
        strain_k = strain_ops.isotropic(volumes, k)
        aniso = op == "anisotropic"
        if aniso.any():
            strain_k[aniso] = strain_ops.anisotropic(rng, volumes[aniso], k, cfg.max_anisotropic_strain)
        deformation = strain_ops.embed(strain_k, basis)
        # Keep round-off in the cube root from nudging a volume past the bounds.
        margin = 1e-12 if hi - lo > 4e-12 * hi else 0.0
        shrink = np.clip(volumes, lo * (1 + margin), hi * (1 - margin)) / volumes if k else np.ones(n)
        deformation *= np.where(np.abs(shrink - 1) > 0, shrink ** (1.0 / max(k, 1)), 1.0)[:, None, None]
        stdev = np.full(n, cfg.rattle_stdev)
        # An equation-of-state point on the input's own volume would equal the input: rattle it.
        stdev[is_eos & (np.abs(volumes - 1.0) > 1e-9)] = 0.0
        displacement = rng.normal(size=(n, natoms, 3))
        displacement *= stdev[:, None, None]
        return volumes, deformation, displacement, stdev

    def _bulk_pool(
        self,
        atoms: Atoms,
        plan: list[str],
        basis: np.ndarray,
        rng: np.random.Generator,
        progress: ProgressCallback | None,
        total: int,
    ) -> list[Atoms]:
        """The strained and rattled members of the pool, drawn in chunks to bound the working memory."""
        n = len(plan)
        lo, hi = self.config.volume_range
        n_eos = plan.count("eos")
        eos_volumes = np.linspace(lo, hi, n_eos) if n_eos > 1 else np.full(n_eos, 0.5 * (lo + hi))
        chunk = max(1, _CHUNK_FLOATS // (3 * len(atoms)))
        pool: list[Atoms] = []
        for start in range(0, n, chunk):
            ops = plan[start : start + chunk]
            eos_v = eos_volumes[start : start + ops.count("eos")]  # the plan lists eos points first
            self._chunk(atoms, ops, eos_v, basis, rng, pool)
            if progress is not None:
                progress(len(pool), total)
        return pool

    def _chunk(
        self,
        atoms: Atoms,
        plan: list[str],
        eos_volumes: np.ndarray,
        basis: np.ndarray,
        rng: np.random.Generator,
        pool: list[Atoms],
    ) -> None:
        cfg = self.config
        k = basis.shape[1]
        volumes, deformation, displacement, stdev = self._draw(plan, eos_volumes, k, basis, len(atoms), rng)
        todo = np.arange(len(plan))
        for _attempt in range(cfg.max_draws_per_structure):
            ok = min_distance_ok(atoms, deformation[todo], displacement[todo], cfg.min_distance_fraction)
            ok &= _differs(deformation[todo], displacement[todo])
            todo = todo[~ok]
            if len(todo) == 0:
                break
            ops = [plan[i] for i in todo]
            eos_v = volumes[todo][np.array(ops) == "eos"]
            v, f, d, s = self._draw(ops, eos_v, k, basis, len(atoms), rng)
            volumes[todo], deformation[todo], displacement[todo], stdev[todo] = v, f, d, s
        else:
            self._give_up(atoms, len(todo), plan[todo[0]])

        # positions R Fᵀ + δ (fractional coordinates follow the cell), cell C Fᵀ
        displacement += np.einsum("ak,bjk->baj", atoms.positions, deformation)
        cells = np.einsum("ak,bjk->baj", np.asarray(atoms.cell), deformation)
        eye = np.eye(3)
        offset = len(pool)
        for b, op in enumerate(plan):
            new = atoms.copy()
            new.positions = displacement[b]
            new.cell.array[:] = cells[b]
            if op == "eos" and stdev[b] > 0:
                op = "eos_rattled"
            info = new.info
            info["operation"] = op
            info["volume_ratio"] = float(volumes[b])
            info["strain"] = deformation[b] - eye
            info["rattle_stdev"] = float(stdev[b])
            info["defect"] = "none"
            info["generator_seed"] = int(cfg.seed)
            info["pool_index"] = offset + b
            pool.append(new)

    def _defect_pool(
        self, atoms: Atoms, rng: np.random.Generator, progress: ProgressCallback | None, done: int, total: int
    ) -> list[Atoms]:
        cfg = self.config
        if cfg.n_defect_structures == 0:
            return []
        base = defect_ops.defect_supercell(atoms, cfg.defect_supercell_min_width)
        element = cfg.interstitial_element or atoms.get_chemical_symbols()[0]
        pool = []
        eye = np.eye(3)[None]
        for m in range(cfg.n_defect_structures):
            kind = cfg.defect_kinds[m % len(cfg.defect_kinds)]
            for _attempt in range(cfg.max_draws_per_structure):
                rng_seed = int(rng.integers(2**31))
                if kind == "vacancy":
                    defect = defect_ops.vacancies(base, 1, rng_seed)
                elif kind == "interstitial":
                    defect = defect_ops.interstitials(base, element, 1, rng_seed)
                else:
                    defect = defect_ops.antisites(base, 1, rng_seed)
                displacement = rng.normal(size=(1, len(defect), 3)) * cfg.rattle_stdev
                if min_distance_ok(defect, eye, displacement, cfg.min_distance_fraction)[0]:
                    break
            else:
                self._give_up(defect, 1, f"{kind} defect")
            defect.positions += displacement[0]
            info = defect.info
            info["operation"] = "defect"
            info["volume_ratio"] = 1.0
            info["strain"] = np.zeros((3, 3))
            info["rattle_stdev"] = float(cfg.rattle_stdev)
            info["generator_seed"] = int(cfg.seed)
            info["pool_index"] = done + m
            pool.append(defect)
            if progress is not None:
                progress(done + m + 1, total)
        return pool

    def _give_up(self, atoms: Atoms, n_left: int, op: str) -> None:
        cfg = self.config
        raise StructureError(
            f"{n_left} structure(s) ({op}) of {atoms.get_chemical_formula()} were still invalid after "
            f"{cfg.max_draws_per_structure} draws: two atoms closer than {cfg.min_distance_fraction} × the sum of "
            "their covalent radii, or no change from the input at all. Lower rattle_stdev, narrow volume_range or "
            "max_anisotropic_strain, or lower min_distance_fraction (and check that the input structure itself is "
            "sensible); with rattle_stdev 0, make sure volume_range excludes 1 or strain is allowed"
        )


def _differs(deformation: np.ndarray, displacement: np.ndarray) -> np.ndarray:
    """Which members of a batch change the input at all (strain or displacement above round-off)."""
    strained = np.abs(deformation - np.eye(3)).max(axis=(1, 2)) > 1e-12
    moved = np.abs(displacement).max(axis=(1, 2)) > 1e-12 if displacement.size else np.zeros(len(deformation), bool)
    return strained | moved


def write_pool(pool: list[Atoms], path: str | Path) -> Path:
    """Write ``pool`` to ``path`` as extended XYZ (provenance in each frame's ``info``), complete or not at all."""
    path = Path(path)
    with atomic_path(path) as tmp:
        write(tmp, pool, format="extxyz")
    return path
