"""The phonon figure: band structure and DOS of the oracle and the potential on one plot (matplotlib PNG)."""

from __future__ import annotations

from pathlib import Path

from mlip_autopipec.fileio import atomic_path
from mlip_autopipec.report.properties.phonons import PhononResult, band_path


def phonon_plot(oracle: PhononResult | None, potential: PhononResult | None, path: str | Path, title: str = "") -> Path:
    """Bands along ASE's standard path (left) and total DOS (right); oracle solid black, potential dashed red.

    Both are drawn on the oracle's path (the same reduced q-points), so the curves
    line up even when the two lattice constants differ slightly.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref = oracle or potential
    if ref is None:
        raise ValueError("phonon_plot needs at least one phonon result")
    bp = band_path(ref)
    x, xticks, labels = bp.get_linear_kpoint_axis()
    ticks: list[tuple[float, str]] = []
    for xt, lab in zip(xticks, labels, strict=True):  # a break in the path puts two labels at one x: show them as "K|U"
        lab = r"$\Gamma$" if lab == "G" else lab
        if ticks and abs(ticks[-1][0] - xt) < 1e-9:
            ticks[-1] = (xt, f"{ticks[-1][1]}|{lab}")
        else:
            ticks.append((xt, lab))
    fig, (ax_b, ax_d) = plt.subplots(
        1, 2, figsize=(9, 4.5), sharey=True, gridspec_kw={"width_ratios": [3, 1], "wspace": 0.05}
    )
    styles = (
        ("oracle", oracle, dict(color="black", lw=1.4)),
        ("potential", potential, dict(color="tab:red", lw=1.2, ls="--")),
    )
    for name, res, style in styles:
        if res is None:
            continue
        f = res.frequencies_at(bp.kpts)
        for band in range(f.shape[1]):
            ax_b.plot(x, f[:, band], label=name if band == 0 else None, **style)
        ax_d.plot(res.dos, res.dos_frequencies_thz, **style)
    for xt in xticks:
        ax_b.axvline(xt, color="0.8", lw=0.6)
    ax_b.axhline(0.0, color="0.6", lw=0.6)
    ax_b.set_xticks([t for t, _ in ticks], [lab for _, lab in ticks])
    ax_b.set_xlim(x[0], x[-1])
    ax_b.set_ylabel("frequency (THz)")
    ax_b.legend(loc="lower right", fontsize=8)
    ax_d.set_xlabel("DOS (states/THz)")
    ax_d.set_xlim(left=0)
    if title:
        fig.suptitle(title)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


__all__ = ["phonon_plot"]
