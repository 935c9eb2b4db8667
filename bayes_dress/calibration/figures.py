"""The calibration's figures: ECDF differences with simultaneous bands, and rank
histograms, one panel per quantity, drawn on :class:`matplotlib.figure.Figure` (no
pyplot state) and readable in grayscale (lines, fills and hatching, not colour).

Both are drawn from ``ranks.csv``-shaped tables and the bands of
:mod:`bayes_dress.calibration.uniformity`, so a saved calibration can be redrawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from bayes_dress.calibration.uniformity import Bands, ecdf_difference

MAX_COLUMNS = 4


@dataclass
class Panel:
    """One quantity's PIT values and what was concluded about them."""

    label: str
    pit: np.ndarray
    verdict: str
    #: Replications whose fit failed a diagnostic (included in ``pit``).
    n_failed: int = 0
    note: str = ""


def _grid(n: int, *, width: float, height: float) -> tuple[Figure, list]:
    cols = min(max(n, 1), MAX_COLUMNS)
    rows = -(-max(n, 1) // cols)
    fig = Figure(figsize=(width * cols, height * rows + 1.1), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True).reshape(-1)
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, list(axes[:n])


def _title(ax, panel: Panel) -> None:
    bad = panel.verdict != "calibrated"
    text = f"{panel.label}\n{panel.verdict.upper() if bad else panel.verdict}"
    ax.set_title(text, fontsize=9, fontweight="bold" if bad else "normal")


def ecdf_figure(panels: Sequence[Panel], bands: dict[int, Bands], *, display_level: float,
                verdict_level: float, title: str) -> Figure:
    """ECDF(u) - u of each quantity's PIT values, with the simultaneous band at
    ``display_level`` (gray) and at ``verdict_level`` (dashed: the verdict's)."""
    fig, axes = _grid(len(panels), width=2.9, height=2.3)
    limit = 0.0
    for ax, panel in zip(axes, panels, strict=True):
        pit = np.asarray(panel.pit, dtype=float)
        pit = pit[np.isfinite(pit)]
        if pit.size < 2 or pit.size not in bands:
            ax.text(0.5, 0.5, "not assessed", ha="center", va="center",
                    transform=ax.transAxes, fontsize=9)
            _title(ax, panel)
            continue
        band = bands[pit.size]
        z = np.concatenate([[0.0], band.eval_points, [1.0]])
        for level, style in ((display_level, "fill"), (verdict_level, "dashed")):
            lower, upper = band.band(level)
            lower = np.concatenate([[0.0], lower, [1.0]]) - z
            upper = np.concatenate([[0.0], upper, [1.0]]) - z
            if style == "fill":
                ax.fill_between(z, lower, upper, step="post", color="0.82", linewidth=0)
            else:
                ax.step(z, lower, where="post", color="0.3", linestyle="--", linewidth=0.9)
                ax.step(z, upper, where="post", color="0.3", linestyle="--", linewidth=0.9)
            limit = max(limit, float(np.max(np.abs(upper))), float(np.max(np.abs(lower))))
        x, y = ecdf_difference(pit)
        ax.plot(x, y, color="black", linewidth=1.3)
        limit = max(limit, float(np.max(np.abs(y))))
        ax.axhline(0, color="0.5", linewidth=0.6)
        ax.set_xlim(0, 1)
        ax.tick_params(labelsize=7)
        _title(ax, panel)
    for ax in axes:
        ax.set_ylim(-1.1 * limit if limit else -0.2, 1.1 * limit if limit else 0.2)
    for ax in axes[-MAX_COLUMNS:]:
        ax.set_xlabel("PIT u (normalised rank)", fontsize=8)
    for ax in axes[::MAX_COLUMNS]:
        ax.set_ylabel("ECDF(u) − u", fontsize=8)
    handles = [Line2D([], [], color="black", linewidth=1.3, label="ECDF difference"),
               Patch(color="0.82", label=f"{display_level:.0%} simultaneous band"),
               Line2D([], [], color="0.3", linestyle="--",
                      label=f"verdict band ({verdict_level:.2%} each, family-wise "
                            "over all quantities)")]
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=8,
               frameon=False)
    fig.suptitle(title, fontsize=10)
    return fig


def histogram_bins(n: int) -> int:
    """Bins of a rank histogram of ``n`` values: about 10 values a bin expected,
    between 2 and 20 bins (20 divides the unit interval evenly)."""
    return int(max(2, min(20, n // 10)))


def histogram_figure(panels: Sequence[Panel], *, title: str, level: float = 0.95
                     ) -> Figure:
    """Histogram of each quantity's PIT values (normalised ranks), with the count
    expected under uniformity and its pointwise ``level`` binomial range (gray)."""
    from scipy import stats

    fig, axes = _grid(len(panels), width=2.9, height=2.1)
    for ax, panel in zip(axes, panels, strict=True):
        pit = np.asarray(panel.pit, dtype=float)
        pit = pit[np.isfinite(pit)]
        _title(ax, panel)
        if pit.size < 2:
            ax.text(0.5, 0.5, "not assessed", ha="center", va="center",
                    transform=ax.transAxes, fontsize=9)
            continue
        bins = histogram_bins(pit.size)
        edges = np.linspace(0, 1, bins + 1)
        counts, _ = np.histogram(pit, bins=edges)
        low, high = stats.binom.interval(level, pit.size, 1 / bins)
        ax.axhspan(low, high, color="0.85", linewidth=0)
        ax.axhline(pit.size / bins, color="0.4", linestyle="--", linewidth=0.8)
        ax.bar(edges[:-1], counts, width=1 / bins, align="edge", facecolor="none",
               edgecolor="black", linewidth=0.8, hatch="//" if panel.verdict !=
               "calibrated" else None, zorder=3)
        ax.set_xlim(0, 1)
        ax.tick_params(labelsize=7)
    for ax in axes[-MAX_COLUMNS:]:
        ax.set_xlabel("PIT u (normalised rank)", fontsize=8)
    for ax in axes[::MAX_COLUMNS]:
        ax.set_ylabel("replications", fontsize=8)
    handles = [Patch(facecolor="none", edgecolor="black", label="replications per bin"),
               Line2D([], [], color="0.4", linestyle="--", label="expected if uniform"),
               Patch(color="0.85", label=f"{level:.0%} range of one bin (pointwise)"),
               Patch(facecolor="none", edgecolor="black", hatch="//",
                     label="miscalibrated quantity")]
    fig.legend(handles=handles, loc="outside lower center", ncol=4, fontsize=8,
               frameon=False)
    fig.suptitle(title, fontsize=10)
    return fig
