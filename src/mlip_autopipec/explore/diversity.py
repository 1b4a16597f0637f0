"""Choosing the structures the oracle computes among many candidates, for what they add: farthest points in a
space of ACE descriptors, or D-optimality (MaxVol) of their atoms in ACE's basis (``pace_select``).

The basis is the training section's (its shape, cutoff and radial functions) built by pyace with no fit
(:func:`write_basis`): the *linear* B-basis projections, which the D-optimal selection and these descriptors
use, do not depend on the fitted coefficients, so no potential is needed before the oracle's first call.

* :func:`structure_descriptors`: per structure and species, the mean and the standard deviation over its atoms
  of their B-basis projections, with the species' fractions (a species absent: zeros);
* :func:`farthest_points`: greedy farthest-point sampling in those descriptors, standardised per component,
  starting from the structure nearest their centre (or from those already chosen);
* :func:`shortest_contacts`: per element pair, the structure holding the pair's shortest distance;
* :func:`choose`: those first, then ``fps``, or ``pace_select``
  (:func:`~mlip_autopipec.explore.select.select_candidates` among the candidates themselves) topped up by
  farthest points when the active set is held by fewer structures.

Why the shortest contacts always go in: pacemaker's ``repulsion: auto`` puts a ZBL core below the shortest
distance of each element pair in the training data (``r_in``).  A pool that misses the candidates' shortest
contacts raises that wall above distances the model's own MD reached.  (It cannot lower it below them: on the Cu
benchmark the candidates' shortest contact was 2.107 Å, a 1300 K test frame held a pair at 2.048 Å, and the first
fit's force RMSE on that condition was 8,291 meV/Å against 4.6–18.3 on the others; active learning's MD then
finds such contacts.)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list

from mlip_autopipec.config.schemas.training import TrainingConfig
from mlip_autopipec.exceptions import TrainerError
from mlip_autopipec.trainer.pyace_import import import_quietly
from mlip_autopipec.trainer.template import check_elements, potential_section

log = logging.getLogger("mlip_autopipec")

BASIS_FILE = "basis.yaml"


def write_basis(training: TrainingConfig, elements: Sequence[str], path: Path) -> Path:
    """The training section's ACE basis for ``elements`` as an unfitted potential ``.yaml`` at ``path``; with an
    ``initial_potential`` continued as it is, that file.  Returns the file's path."""
    potential = potential_section(training, check_elements(elements))
    if "filename" in potential:
        return Path(potential["filename"])
    pyace = import_quietly("pyace")
    try:
        bconf = pyace.create_multispecies_basis_config(potential)
    except (ValueError, RuntimeError, KeyError) as err:
        raise TrainerError(f"pyace cannot build the training section's basis for {list(elements)}: {err}") from err
    path.parent.mkdir(parents=True, exist_ok=True)
    bconf.save(str(path))
    return path


def structure_descriptors(structures: Sequence[Atoms], basis_yaml: Path) -> np.ndarray:
    """One row per structure: per species of the basis, the species' fraction and the mean and standard deviation
    of its atoms' linear B-basis projections (zeros for a species the structure lacks)."""
    al = import_quietly("pyace.activelearning")
    basis = import_quietly("pyace.basis").ACEBBasisSet(str(basis_yaml))
    projections, where = al.compute_B_projections(basis, list(structures), return_structure_ind_dict=True)
    n = len(structures)
    blocks = []
    for species in sorted(projections):
        proj, owner = np.asarray(projections[species]), np.asarray(where[species], dtype=int)
        counts = np.bincount(owner, minlength=n).astype(float)
        sums = np.zeros((n, proj.shape[1]))
        squares = np.zeros((n, proj.shape[1]))
        np.add.at(sums, owner, proj)
        np.add.at(squares, owner, proj**2)
        safe = np.maximum(counts, 1.0)[:, None]
        mean = sums / safe
        std = np.sqrt(np.maximum(squares / safe - mean**2, 0.0))
        sizes = np.array([len(a) for a in structures], dtype=float)
        blocks += [(counts / sizes)[:, None], mean, std]
    return np.hstack(blocks)


def farthest_points(descriptors: np.ndarray, n: int, chosen: Sequence[int] = ()) -> list[int]:
    """``n`` rows of ``descriptors`` (or all, if fewer), greedily each the farthest from those chosen before, in
    Euclidean distance after standardising each component (constant ones dropped).  ``chosen`` are taken as
    already chosen (not returned); without them the first is the row nearest the centre."""
    x = np.asarray(descriptors, dtype=float)
    spread = x.std(axis=0)
    x = (x[:, spread > 1e-12] - x.mean(axis=0)[spread > 1e-12]) / spread[spread > 1e-12]
    picked: list[int] = []
    if chosen:
        nearest = np.min([np.linalg.norm(x - x[c], axis=1) for c in chosen], axis=0)
    else:
        first = int(np.argmin(np.linalg.norm(x, axis=1)))
        picked.append(first)
        nearest = np.linalg.norm(x - x[first], axis=1)
    nearest[list(chosen)] = -1.0
    while len(picked) < min(n, len(x) - len(set(chosen))):
        nxt = int(np.argmax(nearest))
        picked.append(nxt)
        nearest = np.minimum(nearest, np.linalg.norm(x - x[nxt], axis=1))
        nearest[nxt] = -1.0
    return picked


def shortest_contacts(structures: Sequence[Atoms], cutoff: float) -> list[int]:
    """Indices of the structures holding, per element pair, the shortest interatomic distance (within
    ``cutoff``, Å) of all ``structures``: one per pair, each once, in the pairs' order (a pair with no contact
    within ``cutoff`` has none)."""
    best: dict[tuple[int, int], tuple[float, int]] = {}
    for k, atoms in enumerate(structures):
        i, j, d = neighbor_list("ijd", atoms, cutoff, self_interaction=False)
        z = atoms.numbers
        low, high = np.minimum(z[i], z[j]), np.maximum(z[i], z[j])
        for a, b in {(int(a), int(b)) for a, b in zip(low, high, strict=True)}:
            r = float(d[(low == a) & (high == b)].min())
            if (a, b) not in best or r < best[(a, b)][0]:
                best[(a, b)] = (r, k)
    picked: list[int] = []
    for pair in sorted(best):
        if best[pair][1] not in picked:
            picked.append(best[pair][1])
    return picked


def choose(
    structures: Sequence[Atoms],
    n: int,
    method: Literal["fps", "pace_select"],
    training: TrainingConfig,
    workdir: Path,
) -> list[int]:
    """Indices of ``n`` of ``structures`` (all when fewer) for the oracle: the :func:`shortest_contacts` first,
    then by ``method`` (see the module's note); ``workdir`` holds the basis and pace_select's files."""
    if n >= len(structures):
        return list(range(len(structures)))
    elements = sorted({s for a in structures for s in a.get_chemical_symbols()})
    basis = write_basis(training, elements, workdir / BASIS_FILE)
    picked = shortest_contacts(structures, training.cutoff)[:n]
    if method == "pace_select":
        from mlip_autopipec.explore.select import select_candidates

        chosen = select_candidates(structures, basis, None, n, workdir=workdir / "pace_select").indices
        contacts = len(picked)
        picked += [i for i in chosen if i not in picked][: n - len(picked)]
        log.info(
            "selection: %d shortest contact(s), then %d of %d candidates by pace_select (D-optimal in the basis)",
            contacts,
            len(picked) - contacts,
            len(structures),
        )
    if len(picked) < n:
        more = farthest_points(structure_descriptors(structures, basis), n - len(picked), chosen=picked)
        picked += more
    return picked


__all__ = ["BASIS_FILE", "choose", "farthest_points", "shortest_contacts", "structure_descriptors", "write_basis"]
