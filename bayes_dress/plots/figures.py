"""Drawing: one function per plot, from the numbers of :mod:`bayes_dress.plots.data`.

Every figure reads in grayscale: kinds of estimate differ by marker, fill and line style,
not by colour alone. Figures are built on :class:`matplotlib.figure.Figure` (no pyplot
state), except the rank plots, which arviz-plots draws.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from bayes_dress.labels import quantity_label

RATE_LABEL = "rate (proportion of patients)"
FOREST_STYLE = {
    "observed": {"marker": "s", "color": "0.45", "linestyle": "-", "mfc": "white",
                 "label": "observed events/total, exact 95% CI"},
    "study": {"marker": "o", "color": "black", "linestyle": "-", "mfc": "black",
              "label": "model study rate, 95% CrI"},
    "mean_rate": {"marker": "D", "color": "black", "linestyle": "-", "mfc": "black",
                  "label": "population mean rate, 95% CrI"},
    "theta_new": {"marker": "D", "color": "black", "linestyle": "--", "mfc": "white",
                  "label": "new study rate, 95% predictive interval"},
}


def _grid(n: int, *, max_cols: int, width: float, height: float) -> tuple[Figure, list]:
    cols = min(n, max_cols)
    rows = -(-n // cols)
    fig = Figure(figsize=(width * cols, height * rows + 0.9), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).reshape(-1)
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, list(axes[:n])


def forest_figure(data: dict, *, title: str) -> Figure:
    """Forest plot of :func:`~bayes_dress.plots.data.forest_data`, top to bottom.

    Up to a few dozen studies: two rows per study (observed, model). Beyond: a
    caterpillar plot, one line per study sorted by model rate, the observed rate as a
    small open square, and a label on every k-th study only, so it reads at a thousand
    studies and its size stays bounded.
    """
    studies, population = data["studies"], data["population"]
    if data["caterpillar"]:
        return _caterpillar_figure(studies, population, title=title)
    rows = []
    for s in studies:
        rows.append({"kind": "observed", "label": s["label"], "estimate": s["observed"],
                     "lower": s["observed_lower"], "upper": s["observed_upper"]})
        rows.append({"kind": "study", "label": f"{s['study']}, model",
                     "estimate": s["estimate"], "lower": s["lower"], "upper": s["upper"]})
    rows += population
    fig = Figure(figsize=(7.0, 0.42 * len(rows) + 2.2), layout="constrained")
    ax = fig.subplots()
    for y, row in enumerate(reversed(rows)):
        style = FOREST_STYLE[row["kind"]]
        ax.plot([row["lower"], row["upper"]], [y, y], color=style["color"],
                linestyle=style["linestyle"], linewidth=1.6)
        ax.plot(row["estimate"], y, marker=style["marker"], color=style["color"],
                mfc=style["mfc"], markersize=7, linestyle="none")
    ax.set_yticks(range(len(rows)), [r["label"] for r in reversed(rows)])
    ax.axhline(len(population) - 0.5, color="0.7", linewidth=0.8)  # studies above
    _forest_axes(fig, ax, len(rows), title)
    return fig


def _forest_axes(fig: Figure, ax, n_rows: int, title: str) -> None:
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.7, n_rows - 0.3)
    ax.set_xlabel(RATE_LABEL)
    ax.grid(axis="x", color="0.9")
    ax.set_title(title, fontsize=10)
    handles = [Line2D([], [], marker=s["marker"], color=s["color"], mfc=s["mfc"],
                      linestyle=s["linestyle"], label=s["label"])
               for s in FOREST_STYLE.values()]
    fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize=8,
               frameon=False)


#: Labels on a caterpillar plot's y axis, at most.
CATERPILLAR_LABELS = 40


def _caterpillar_figure(studies: list[dict], population: list[dict], *, title: str
                        ) -> Figure:
    n = len(studies)
    fig = Figure(figsize=(7.0, 9.0), layout="constrained")
    ax = fig.subplots()
    y = np.arange(n)[::-1] + len(population) + 1
    estimate = np.array([s["estimate"] for s in studies])
    lower = np.array([s["lower"] for s in studies])
    upper = np.array([s["upper"] for s in studies])
    observed = np.array([s["observed"] for s in studies])
    width = max(0.15, min(1.2, 300.0 / n))
    ax.hlines(y, lower, upper, color="black", linewidth=width, rasterized=True)
    ax.plot(estimate, y, marker="o", color="black", markersize=max(0.8, min(4.0, 120 / n)),
            linestyle="none", rasterized=True)
    ax.plot(observed, y, marker="s", color="0.45", mfc="white",
            markersize=max(0.8, min(4.0, 120 / n)), linestyle="none", rasterized=True)
    for i, row in enumerate(population):
        style = FOREST_STYLE[row["kind"]]
        yy = len(population) - 1 - i
        ax.plot([row["lower"], row["upper"]], [yy, yy], color=style["color"],
                linestyle=style["linestyle"], linewidth=1.6)
        ax.plot(row["estimate"], yy, marker=style["marker"], color=style["color"],
                mfc=style["mfc"], markersize=7, linestyle="none")
    step = max(1, int(np.ceil(n / CATERPILLAR_LABELS)))
    ticks = list(y[::step]) + list(range(len(population)))
    labels = ([s["label"] for s in studies[::step]]
              + [r["label"] for r in reversed(population)])
    ax.set_yticks(ticks, labels, fontsize=6 if n > 100 else 7)
    ax.axhline(len(population) + 0.5, color="0.7", linewidth=0.8)
    _forest_axes(fig, ax, n + len(population) + 1, title)
    ax.set_ylabel(f"{n} studies, sorted by model rate"
                  + (f" (every {step}th labelled)" if step > 1 else ""), fontsize=8)
    return fig


def _axis_label(name: str, bounds: tuple[float, float]) -> str:
    # A rate's gloss gives way to its unit: one parenthesis per label.
    if bounds == (0.0, 1.0):
        return f"{quantity_label(name, short=True)} (proportion of patients)"
    return quantity_label(name)


def prior_posterior_figure(panels: list[dict], *, title: str) -> Figure:
    """Prior (dashed, grey) against posterior (solid, black) densities, one panel each."""
    fig, axes = _grid(len(panels), max_cols=3, width=3.6, height=2.8)
    for ax, panel in zip(axes, panels, strict=True):
        if panel["posterior"] is None:  # constant draws: a point mass
            ax.axvline(panel["posterior_interval"][1], color="black", label="posterior")
        else:
            grid, density = panel["posterior"]
            ax.plot(grid, density, color="black", linewidth=1.8, label="posterior")
            ax.fill_between(grid, density, color="0.85")
        if panel["prior"] is not None:
            grid, density = panel["prior"]
            ax.plot(grid, density, color="0.35", linestyle="--", linewidth=1.4,
                    label="prior")
        if panel["note"]:
            ax.text(0.5, 0.97, panel["note"], transform=ax.transAxes, ha="center",
                    va="top", fontsize=7, style="italic", wrap=True)
        name = panel["parameter"] + (f" [{panel['study']}]" if panel["study"] else "")
        if panel.get("outcome_label"):
            name = f"{panel['outcome_label']}: {name}"
        ax.set_title(f"{name}\nprior: {panel['prior_spec']}", fontsize=8)
        ax.set_xlim(*panel["window"])
        ax.set_ylim(bottom=0)
        ax.set_xlabel(_axis_label(panel["parameter"], panel["bounds"]), fontsize=8)
        ax.set_yticks([])
        ax.set_ylabel("density", fontsize=8)
    _figure_legend(fig, axes)
    fig.suptitle(title, fontsize=10)
    return fig


def _figure_legend(fig: Figure, axes: list) -> None:
    """One legend below the panels, so it never covers a curve or a note."""
    handles = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    fig.legend(list(handles.values()), list(handles), loc="outside lower center",
               ncol=len(handles), fontsize=8, frameon=False)


def ppc_figure(data: dict, *, title: str) -> Figure:
    """Per study (few studies): replicated-count distributions (bars) with the observed
    count (black line). Many studies: the distribution of the per-study mid-p
    predictive p-values, histogram and ECDF against the uniform."""
    rows = data["rows"]
    if not data["panels"]:
        return _ppc_summary_figure(rows, title=title)
    fig, axes = _grid(len(rows), max_cols=4, width=3.4, height=2.7)
    for ax, row in zip(axes, rows, strict=True):
        ax.bar(row["counts"], row["pmf"], width=0.8, color="0.8", edgecolor="0.4",
               label="replicated counts y_rep")
        ax.axvline(row["observed"], color="black", linewidth=2.2,
                   label="observed count y")
        ax.plot(row["observed"], max(row["pmf"]) * 1.08, marker="v", color="black",
                markersize=8, linestyle="none")
        ax.set_title(f"{row['label']}\nP(y_rep ≤ y) = {row['p_le']:.2f}, "
                     f"P(y_rep ≥ y) = {row['p_ge']:.2f}", fontsize=8)
        ax.set_xlabel(f"events out of n = {row['total']}", fontsize=8)
        ax.set_ylabel("probability", fontsize=8)
        ax.set_xlim(-0.6, row["total"] + 0.6)
    _figure_legend(fig, axes)
    fig.suptitle(title, fontsize=10)
    return fig


def _ppc_summary_figure(rows: list[dict], *, title: str) -> Figure:
    values = np.sort(np.array([r["mid_p"] for r in rows]))
    n = len(values)
    fig = Figure(figsize=(9.0, 3.8), layout="constrained")
    left, right = fig.subplots(1, 2)
    left.hist(values, bins=np.linspace(0, 1, 21), color="0.8", edgecolor="0.3")
    left.axhline(n / 20, color="black", linestyle="--", linewidth=1, label="uniform")
    left.set_xlabel("per-study predictive p-value (mid-p)", fontsize=8)
    left.set_ylabel("studies", fontsize=8)
    left.legend(fontsize=8, frameon=False)
    ecdf = (np.arange(n) + 1) / n
    right.step(values, ecdf - values, where="post", color="black", linewidth=1.2,
               label="ECDF − uniform")
    # A 95% simultaneous band for the ECDF of n uniform values (Kolmogorov-Smirnov).
    band = 1.358 / np.sqrt(n)
    right.fill_between([0, 1], -band, band, color="0.9", label="95% band (KS)")
    right.axhline(0, color="0.5", linewidth=0.8)
    right.set_xlim(0, 1)
    right.set_xlabel("p", fontsize=8)
    right.set_ylabel("ECDF − uniform", fontsize=8)
    right.legend(fontsize=8, frameon=False, loc="lower right")
    fig.suptitle(title, fontsize=10)
    return fig


def benefit_risk_figure(data: dict, *, title: str) -> Figure:
    """New-study success rate against new-study SAE rate, with quadrant probabilities
    (and, for a joint model, the independence contours dashed)."""
    fig = Figure(figsize=(6.2, 6.0), layout="constrained")
    ax = fig.subplots()
    if data.get("contours") is not None:
        grid_x, grid_y, joint, independent, levels, independent_levels = data["contours"]
        ax.contour(grid_x, grid_y, joint, levels=levels, colors="black", linewidths=1.2)
        ax.contour(grid_x, grid_y, independent, levels=independent_levels, colors="0.35",
                   linewidths=1.0, linestyles="--")
        ax.plot([], [], color="black", linewidth=1.2,
                label="joint model: 50% and 90% regions")
        ax.plot([], [], color="0.35", linewidth=1.0, linestyle="--",
                label="if independent (rho = 0)")
        ax.legend(loc="center right", fontsize=7, frameon=True)
    ax.scatter(data["x"], data["y"], s=4, color="0.3", alpha=0.25, linewidths=0,
               rasterized=True)  # thousands of points: a bitmap layer keeps the SVG small
    a, b = data["benefit_threshold"], data["risk_threshold"]
    ax.axvline(a, color="black", linestyle="--", linewidth=1.2)
    ax.axhline(b, color="black", linestyle=":", linewidth=1.5)
    for quadrant in data["quadrants"]:
        x = 0.98 if quadrant["benefit_above"] else 0.02
        y = 0.02 if quadrant["risk_below"] else 0.98
        favourable = quadrant["benefit_above"] and quadrant["risk_below"]
        ax.text(x, y, f"{quadrant['label']}\nP = {quadrant['probability']:.2f}",
                transform=ax.transAxes, ha="right" if x > 0.5 else "left",
                va="bottom" if y < 0.5 else "top", fontsize=8,
                fontweight="bold" if favourable else "normal",
                bbox={"facecolor": "white", "edgecolor": "black" if favourable else "0.6",
                      "linewidth": 1.5 if favourable else 0.8})
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel(f"new-study success rate: {RATE_LABEL}")
    ax.set_ylabel(f"new-study severe-AE rate: {RATE_LABEL}")
    ax.set_title(title, fontsize=10)
    return fig


def acceptability_figure(data: dict, *, title: str) -> Figure:
    """P(net clinical benefit > 0) against the harm weight, per level (new study: black,
    population mean: grey), the joint model solid with ±2 MCSE, independence dashed."""
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.subplots()
    styles = {"new study": ("black", "o"), "population mean": ("0.5", "s")}
    for curve in data["curves"]:
        color, marker = styles.get(curve["level"], ("black", "^"))
        w, p = curve["weight"], curve["probability"]
        ax.plot(w, p, color=color, marker=marker, markersize=4, linewidth=1.6,
                label=f"{curve['level']}" + (" (joint model)" if data["correlated"] else ""))
        if data["correlated"]:
            band = 2 * np.nan_to_num(curve["mcse"])
            ax.fill_between(w, p - band, p + band, color=color, alpha=0.15, linewidth=0)
            ax.plot(w, curve["independent"], color=color, linestyle="--", linewidth=1.1,
                    label=f"{curve['level']}, if independent")
    for level in (0.5, 0.95):
        ax.axhline(level, color="0.75", linewidth=0.8, linestyle=":")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("harm weight w (benefit events one harm event is worth)", fontsize=8)
    ax.set_ylabel("P(p_success − w · p_harm > 0)", fontsize=8)
    ax.legend(fontsize=7, frameon=False)
    ax.set_title(title, fontsize=10)
    return fig


#: Per chain: a gray level and a line style, so chains read apart in grayscale.
CHAIN_COLORS = ["black", "0.55", "0.3", "0.7"]
CHAIN_STYLES = ["-", "--", ":", "-."]
RANK_YLABEL = "ECDF − uniform"
#: Columns of a trace panel (about its width in pixels): a chain longer than this is
#: drawn as the lowest and highest draw of each column (see :func:`trace_envelope`).
TRACE_POINTS = 500


def trace_envelope(x: np.ndarray, values: np.ndarray, columns: int = TRACE_POINTS
                   ) -> tuple[np.ndarray, np.ndarray]:
    """A chain drawn at screen resolution: for each of ``columns`` runs of consecutive
    draws, its lowest and its highest draw, in the order they occur. The line covers
    exactly the band the full chain would paint at that width (a stuck stretch or a
    single excursion stays visible), with at most 2 x ``columns`` points."""
    n = len(values)
    if n <= 2 * columns:
        return x, values
    edges = np.linspace(0, n, columns + 1).astype(int)
    at_low = np.array([a + np.argmin(values[a:b]) for a, b in itertools.pairwise(edges)])
    at_high = np.array([a + np.argmax(values[a:b]) for a, b in itertools.pairwise(edges)])
    shown = np.sort(np.c_[at_low, at_high], axis=1).reshape(-1)  # in draw order
    return x[shown], values[shown]


def _chain_styles(n: int) -> tuple[list[str], list[str]]:
    return ([CHAIN_COLORS[i % len(CHAIN_COLORS)] for i in range(n)],
            [CHAIN_STYLES[i % len(CHAIN_STYLES)] for i in range(n)])


def _trace_rows(draws: xr.Dataset) -> list[tuple[str, np.ndarray]]:
    """(label, chain x draw array) per scalar quantity; study-level ones per study."""
    rows = []
    for name, da in draws.data_vars.items():
        extra = [d for d in da.dims if d not in ("chain", "draw")]
        if not extra:
            rows.append((name, da.transpose("chain", "draw").values))
            continue
        stacked = da.stack(__item__=extra).transpose("__item__", "chain", "draw")
        for i, item in enumerate(stacked["__item__"].values):
            key = ", ".join(map(str, item)) if isinstance(item, tuple) else str(item)
            rows.append((f"{name}[{key}]", stacked.values[i]))
    return rows


def trace_figure(draws: xr.Dataset, *, title: str) -> Figure:
    """Trace of each sampled parameter: one row per parameter, one column per chain.

    Side by side (shared y axis per row) instead of overlaid, so chains stay apart in
    grayscale however many draws they have.
    """
    from matplotlib.ticker import MaxNLocator

    rows = _trace_rows(draws)
    chains = [str(c) for c in draws["chain"].values]
    fig = Figure(figsize=(1.2 + 2.6 * len(chains), 0.9 + 1.5 * len(rows)),
                 layout="constrained")
    axes = fig.subplots(len(rows), len(chains), squeeze=False, sharex=True, sharey="row")
    x = draws["draw"].values
    for r, (label, values) in enumerate(rows):
        for c, chain in enumerate(chains):
            ax = axes[r, c]
            ax.plot(*trace_envelope(x, values[c]), color="black", linewidth=0.4)
            ax.axhline(np.median(values), color="0.6", linewidth=0.8, linestyle="--")
            ax.tick_params(labelsize=7)
            # Few ticks: each costs a text layout per file, and eight panels share them.
            ax.xaxis.set_major_locator(MaxNLocator(3))
            ax.yaxis.set_major_locator(MaxNLocator(4))
            if r == 0:
                ax.set_title(f"chain {chain}", fontsize=8)
            if r == len(rows) - 1:
                ax.set_xlabel("draw", fontsize=8)
        axes[r, 0].set_ylabel(label, fontsize=8)
    fig.suptitle(title, fontsize=10)
    return fig


def rank_figure(draws: xr.Dataset, *, title: str) -> Figure:
    """Fractional-rank Δ-ECDF per chain, with the multi-chain uniformity test (arviz-plots).

    Chains that sample the same distribution give lines near zero; the p-value in each
    panel tests that. The test assumes independent draws: pass draws thinned to about
    their effective sample size (:func:`bayes_dress.plots.data.thin_to_ess`).
    """
    import arviz_plots as azp
    from matplotlib.ticker import MaxNLocator

    colors, styles = _chain_styles(draws.sizes["chain"])
    pc = azp.plot_rank(xr.DataTree.from_dict({"posterior": draws}), backend="matplotlib",
                       aes={"color": ["chain"], "linestyle": ["chain"]}, color=colors,
                       linestyle=styles, visuals={"remove_axis": False})
    pc.add_legend("chain", loc="outside right upper")
    fig = pc.get_viz("figure")
    fig.suptitle(title, fontsize=10)
    fig.set_layout_engine("constrained")
    for ax in fig.axes:
        if not ax.get_title():  # the legend's axes, if any
            continue
        ax.axhline(0, color="0.8", linewidth=0.8, zorder=0)
        ax.set_ylabel(RANK_YLABEL, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(3))
        ax.yaxis.set_major_locator(MaxNLocator(4))
        for line in ax.lines:
            line.set_rasterized(True)  # long chains: a bitmap layer keeps the SVG small
    return fig


def close(fig: Figure) -> None:
    """Release a figure (arviz-plots registers its figures with pyplot)."""
    import matplotlib.pyplot as plt

    plt.close(fig)


def save(fig: Figure, directory: Path, name: str, *, dpi: int,
         bbox_inches: str | None = None) -> list[Path]:
    """Write ``fig`` as NAME.png and NAME.svg in ``directory``, then release it.

    A fixed hash salt and no date make the SVG byte-identical when a figure is redrawn.
    """
    import matplotlib

    paths = [directory / f"{name}.png", directory / f"{name}.svg"]
    with matplotlib.rc_context({"svg.hashsalt": "bayes-dress"}):
        fig.savefig(paths[0], dpi=dpi, bbox_inches=bbox_inches)
        # The layout the PNG was drawn with is the SVG's too: laying out again (text
        # extents, for every axis) would cost as much as the first drawing.
        fig.set_layout_engine("none")
        fig.savefig(paths[1], bbox_inches=bbox_inches, metadata={"Date": None})
    close(fig)
    return paths
