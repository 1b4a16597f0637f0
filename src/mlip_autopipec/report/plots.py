"""PNG figures of the report (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mlip_autopipec.fileio import atomic_path  # noqa: E402
from mlip_autopipec.report.validate import EOSComparison, ErrorMetrics, Predictions  # noqa: E402


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def _parity(ax, ref, pred, unit: str, title: str, groups: Sequence[str] | None = None) -> None:
    lo, hi = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
    pad = 0.05 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.6", lw=1)
    if groups is None or len(set(groups)) < 1:
        ax.scatter(ref, pred, s=8, alpha=0.6)
    else:
        labels = np.asarray(groups)
        for name in dict.fromkeys(groups):
            mask = labels == name
            ax.scatter(ref[mask], pred[mask], s=8, alpha=0.6, label=name)
        ax.legend(fontsize=7, markerscale=2)
    ax.set_xlabel(f"oracle ({unit})")
    ax.set_ylabel(f"potential ({unit})")
    ax.set_title(title)
    ax.set_aspect("equal", adjustable="datalim")


def parity_plots(
    p: Predictions, metrics: ErrorMetrics, directory: Path, groups: Sequence[str] | None = None
) -> list[Path]:
    """Energy-per-atom and force-component parity plots of the validation split, coloured by ``groups``
    (one name per structure: its seed or source) when given."""
    groups = list(groups) if groups else None
    force_groups = (
        None if groups is None else [g for g, n in zip(groups, p.natoms, strict=True) for _ in range(3 * int(n))]
    )
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    _parity(
        ax,
        p.energy_ref / p.natoms,
        p.energy_pred / p.natoms,
        "eV/atom",
        f"energy, validation: RMSE {metrics.energy_rmse_mev_per_atom:.2f} meV/atom",
        groups,
    )
    energy = _save(fig, directory / "parity_energy.png")
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    _parity(
        ax,
        p.forces_ref.ravel(),
        p.forces_pred.ravel(),
        "eV/Å",
        f"forces, validation: RMSE {metrics.force_rmse_mev_per_angstrom:.1f} meV/Å",
        force_groups,
    )
    forces = _save(fig, directory / "parity_forces.png")
    return [energy, forces]


def eos_plot(eos: EOSComparison, directory: Path, name: str = "eos.png", title: str = "") -> Path:
    """E(V) of the oracle and the potential with their Birch–Murnaghan fits."""
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    v = np.linspace(eos.volumes_per_atom.min(), eos.volumes_per_atom.max(), 200)
    for fit, pts, label, marker in (
        (eos.oracle, eos.oracle_energy_per_atom, "oracle", "o"),
        (eos.potential, eos.potential_energy_per_atom, "potential", "s"),
    ):
        if fit is None:
            ax.scatter(eos.volumes_per_atom, pts, marker=marker, label=f"{label}: no minimum in range")
            continue
        line = ax.plot(v, fit.energy(v), lw=1)[0]
        ax.scatter(
            eos.volumes_per_atom,
            pts,
            marker=marker,
            color=line.get_color(),
            label=f"{label}: a={fit.lattice_constant:.4f} Å, B={fit.bulk_modulus_gpa:.1f} GPa",
        )
    ax.set_xlabel("volume (Å³/atom)")
    ax.set_ylabel("energy (eV/atom)")
    if eos.potential is not None:
        ax.set_title(
            f"{title + ' ' if title else ''}EOS: Δa {eos.lattice_constant_error_percent:+.2f} %, "
            f"ΔB {eos.bulk_modulus_error_percent:+.1f} %"
        )
    ax.legend(fontsize=8)
    return _save(fig, directory / name)


def formation_plot(formation, directory: Path) -> Path:
    """Formation energy per atom against composition, oracle (open) and potential (filled), by seed
    (``formation.png``)."""
    a, b = formation.elements
    fig, ax = plt.subplots(figsize=(6, 4.2))
    groups = list(dict.fromkeys(pt.group for pt in formation.points))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, g in enumerate(groups):
        pts = [pt for pt in formation.points if pt.group == g]
        x = [pt.composition for pt in pts]
        c = colours[i % len(colours)]
        ax.scatter(
            x, [pt.oracle_ev_per_atom for pt in pts], facecolors="none", edgecolors=c, s=22, label=f"{g}: oracle"
        )
        ax.scatter(x, [pt.potential_ev_per_atom for pt in pts], color=c, marker="x", s=18, label=f"{g}: potential")
    ax.axhline(0.0, color="0.6", lw=1)
    ax.set_xlabel(f"fraction of {b} in {a}–{b}")
    ax.set_ylabel("formation energy (eV/atom)")
    ax.set_title(f"formation energies: RMSE {formation.rmse_mev_per_atom:.1f} meV/atom")
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, directory / "formation.png")


class CurvePoint(NamedTuple):
    """The validation force RMSE (meV/Å) after a fit, with the labelled structures it was fitted on."""

    n_labelled: int
    force_rmse_mev_per_angstrom: float
    generation: int
    label: str | None = None  # the annotation (default: g<generation>)


class GenerationHalts(NamedTuple):
    """How one generation's exploration ended: trajectories run, halted by γ, blown up."""

    generation: int
    trajectories: int
    gamma_halts: int
    blowups: int


def active_learning_plot(
    points: Sequence[CurvePoint], halts: Sequence[GenerationHalts], directory: Path
) -> Path | None:
    """Validation force RMSE against labelled structures, and halted trajectories per generation
    (``active_learning.png``).

    ``points``: one per fit (generation 0 is the fit active learning started
    from); ``halts``: one per explored generation.  None when there is nothing to draw.
    """
    if not points and not halts:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    if points:
        x = [p.n_labelled for p in points]
        y = [p.force_rmse_mev_per_angstrom for p in points]
        left.plot(x, y, "o-")
        if min(y) > 0 and max(y) / min(y) > 20:
            left.set_yscale("log")
        for p in points:
            left.annotate(
                p.label or f"g{p.generation}",
                (p.n_labelled, p.force_rmse_mev_per_angstrom),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=8,
            )
    left.set_xlabel("labelled structures")
    left.set_ylabel("validation force RMSE (meV/Å)")
    left.set_title("validation error after each fit")
    if halts:
        gens = [h.generation for h in halts]
        gamma = [h.gamma_halts for h in halts]
        blow = [h.blowups for h in halts]
        right.bar(gens, gamma, label="halted by γ")
        right.bar(gens, blow, bottom=gamma, label="blew up")
        totals = [h.trajectories for h in halts]
        right.plot(gens, totals, "k_", markersize=24, markeredgewidth=2, label="trajectories run")
        right.set_ylim(0, 1.25 * max(max(totals), 1))
        right.yaxis.get_major_locator().set_params(integer=True)
        right.legend(fontsize=8, loc="upper right")
    right.set_xlabel("generation")
    right.set_ylabel("trajectories")
    right.set_title("halts per generation")
    right.xaxis.get_major_locator().set_params(integer=True)
    return _save(fig, directory / "active_learning.png")
