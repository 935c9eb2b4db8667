"""The design plots, one function each, from a :class:`~bayes_dress.design.study.DesignResult`.

Like the run's plots (:mod:`bayes_dress.plots.figures`) every figure is a
:class:`matplotlib.figure.Figure` (no pyplot state), reads in grayscale (priors differ by
line style and marker, not by colour alone) and has its axes labelled with units.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

RATE = "true response rate θ (proportion of patients)"
DENSITY = "density (per unit of rate)"
PSUCCESS = "P(success) (probability the rule decides success)"
#: Line style per prior: (color, linestyle, marker).
STYLES = {"robust MAP": ("black", "-", "o"), "MAP mixture": ("0.35", "--", "s"),
          "exact MAP": ("0.55", ":", "^"), "uniform": ("0.65", "-.", "D"),
          "MAP": ("0.35", "--", "s"), "draws": ("0.7", "-", None)}
TWO_ARM_STYLES = [("black", "-", "o"), ("0.35", "--", "s"), ("0.55", ":", "^"),
                  ("0.65", "-.", "D")]


def _style(label: str) -> tuple[str, str, str | None]:
    return STYLES.get(label, ("0.5", "-", None))


def _rate_axis(ax, label: str = RATE) -> None:
    ax.set_xlim(0, 1)
    ax.set_xlabel(label)
    ax.grid(color="0.92")


# ---------------------------------------------------------------------------- MAP
def map_figure(md, *, title: str) -> Figure:
    """The MAP prior (exact, or a histogram of its draws), its mixture approximation and
    the robust prior, with the ESS verdict in the corner."""
    fig = Figure(figsize=(7.2, 4.6), layout="constrained")
    ax = fig.subplots()
    theta = np.linspace(0.0005, 0.9995, 1999)
    curves = []
    if md.map.draws is not None:
        ax.hist(md.map.draws, bins=np.linspace(0, 1, 81), density=True, histtype="step",
                color="0.6", linewidth=1.0, label=f"NUTS draws ({md.map.draws.size:,})")
    if md.map.exact is not None:
        dens = md.map.exact.pdf(theta)
        curves.append(dens)
        ax.plot(theta, dens, color="black", linewidth=1.8, label="exact MAP (numerical "
                "integration)")
    dens = md.mixture.pdf(theta)
    curves.append(dens)
    ax.plot(theta, dens, color="0.3", linestyle="--", linewidth=1.5,
            label=f"mixture of {md.mixture.n_components} Beta (RBesT automixfit)")
    if md.robust is not md.mixture:
        dens = md.robust.pdf(theta)
        curves.append(dens)
        ax.plot(theta, dens, color="0.5", linestyle=":", linewidth=1.8,
                label=f"robust prior (weight {md.robust_spec.weight:g} on "
                      f"Beta({md.robust_spec.mean * (md.robust_spec.n + 1):g}, "
                      f"{(1 - md.robust_spec.mean) * (md.robust_spec.n + 1):g}))")
    # Densities that pile up at 0 or 1 would flatten everything else: cap the axis at
    # the largest value between 0.02 and 0.98.
    inner = (theta >= 0.02) & (theta <= 0.98)
    top = max(float(np.max(c[inner])) for c in curves) if curves else 1.0
    ax.set_ylim(0, 1.25 * top if np.isfinite(top) and top > 0 else 1.0)
    _rate_axis(ax, "rate in a new study θ (proportion of patients)")
    ax.set_ylabel(DENSITY)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left" if md.map.summary()["mean"] > 0.5
              else "upper right", frameon=False)
    level = md.verdict.level
    ess = md.ess["exact" if "exact" in md.ess else "mixture"]
    parts = []
    for method, result in ess.results.items():
        value = result.value
        if not np.isfinite(value) or (not result.reliable and (value < 0 or value >= 1e4)):
            parts.append(f"{method} undefined")
        else:
            parts.append(f"{method} {value:.3g}{'' if result.reliable else ' (unreliable)'}")
    ax.text(0.99, 0.02,
            f"ESS verdict: {level.upper()}\nESS (patients): " + ", ".join(parts),
            transform=ax.transAxes, ha="right", va="bottom", fontsize=8,
            bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "0.6"})
    return fig


# ---------------------------------------------------------------------------- OC
def oc_figure(trial, *, title: str, alpha: float, power: float) -> Figure:
    """P(success) against the true rate for each prior, with the targets."""
    fig = Figure(figsize=(7.2, 4.8), layout="constrained")
    ax = fig.subplots()
    marks = np.array([trial.null, trial.alternative])
    for label, curve in trial.oc.items():
        color, ls, marker = _style(label)
        ax.plot(trial.theta, curve, color=color, linestyle=ls, linewidth=1.6, label=label)
        ax.plot(marks, [trial.at(label, m) for m in marks], linestyle="none",
                marker=marker, color=color, mfc="white" if label == "uniform" else color,
                markersize=6)
    ax.axvline(trial.null, color="0.5", linewidth=0.8, linestyle="--")
    ax.axvline(trial.alternative, color="0.5", linewidth=0.8, linestyle="--")
    ax.axhline(alpha, color="0.4", linewidth=0.8, linestyle=(0, (1, 2)))
    ax.axhline(power, color="0.4", linewidth=0.8, linestyle=(0, (1, 2)))
    ax.text(0.005, alpha, f" type I error target {alpha:g}", va="bottom", fontsize=7)
    ax.text(0.005, power, f" power target {power:g}", va="bottom", fontsize=7)
    ax.text(trial.null, 1.01, f"null {trial.null:g}", ha="center", va="bottom", fontsize=7,
            transform=ax.get_xaxis_transform())
    ax.text(trial.alternative, 1.01, f"alternative {trial.alternative:g}", ha="center",
            va="bottom", fontsize=7, transform=ax.get_xaxis_transform())
    _rate_axis(ax)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel(PSUCCESS)
    ax.set_title(title, fontsize=10, pad=14)
    handles = [Line2D([], [], color=_style(k)[0], linestyle=_style(k)[1],
                      marker=_style(k)[2], mfc="white" if k == "uniform" else _style(k)[0],
                      label=k) for k in trial.oc]
    ax.legend(handles=handles, fontsize=8, loc="lower right", frameon=False)
    return fig


# ---------------------------------------------------------------------------- boundary
def boundary_figure(trial, *, title: str) -> Figure:
    """For every outcome y of the trial: the posterior probability of each condition
    (robust MAP and uniform prior) against its threshold, and below, the robust
    component's posterior weight and the prior-predictive p-value."""
    table = trial.conflict
    y = table.y
    fig = Figure(figsize=(7.2, 6.0), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    uniform = trial.boundaries["uniform"]
    for c, cond in enumerate(trial.rule.conditions):
        top.plot(y, table.probabilities[:, c], color="black", marker="o", markersize=4,
                 linewidth=1.2, label=f"{cond.text()}: robust MAP prior")
        if uniform.probabilities.size:
            top.plot(y, uniform.probabilities[:, c], color="0.55", marker="s", mfc="white",
                     markersize=4, linewidth=1.0, linestyle="--",
                     label=f"{cond.text()}: uniform prior")
        top.axhline(cond.prob, color="0.4", linewidth=0.8, linestyle=":")
    success = trial.boundary.success
    for yy in y[success]:
        top.axvspan(yy - 0.5, yy + 0.5, color="0.92", zorder=0, linewidth=0)
    top.set_ylabel("posterior probability of the condition")
    top.set_ylim(-0.02, 1.02)
    top.set_title(f"{title}\n{trial.boundary.describe()} (shaded)", fontsize=10)
    top.legend(fontsize=7, loc="center right", frameon=False)
    top.grid(color="0.92")
    if table.robust_weight is not None:
        bottom.plot(y, table.robust_weight, color="black", marker="o", markersize=4,
                    linewidth=1.2, label="posterior weight of the robust component")
    bottom.plot(y, table.p_value, color="0.45", marker="^", mfc="white", markersize=4,
                linewidth=1.0, linestyle="--", label="prior-predictive p-value of y")
    bottom.set_ylim(-0.02, 1.02)
    bottom.set_ylabel("probability")
    bottom.set_xlabel(f"responders y of n = {trial.n} patients")
    bottom.legend(fontsize=7, loc="upper center", frameon=False)
    bottom.grid(color="0.92")
    return fig


# ---------------------------------------------------------------------------- weights
def weight_map_figure(wm, *, title: str, chosen: float) -> Figure:
    """ESS and OC of the robust prior against the weight of its robust component."""
    fig = Figure(figsize=(9.0, 4.0), layout="constrained")
    left, right = fig.subplots(1, 2)
    # An ELIR that is negative, undefined or flagged is no number of patients: left out.
    usable = np.array([np.isfinite(v) and v >= 0 and not w for v, w in
                       zip(wm.ess_elir, wm.warnings, strict=True)])
    elir = np.where(usable, wm.ess_elir, np.nan)
    left.plot(wm.weights, elir, color="black", marker="o", markersize=4,
              label="ELIR" if usable.all() else
              f"ELIR (shown where defined: {int(usable.sum())} of {usable.size} weights)")
    left.plot(wm.weights, wm.ess_moment, color="0.5", marker="s", mfc="white",
              markersize=4, linestyle="--", label="moment")
    left.set_xlabel("weight of the robust component")
    left.set_ylabel("ESS (patients)")
    left.legend(fontsize=8, frameon=False)
    left.grid(color="0.92")
    if wm.type1 is not None:
        right.plot(wm.weights, wm.type1, color="black", marker="o", markersize=4,
                   label=f"P(success) at null {wm.theta0:g} (type I error)")
        right.plot(wm.weights, wm.power, color="0.5", marker="s", mfc="white",
                   markersize=4, linestyle="--",
                   label=f"P(success) at alternative {wm.theta1:g} (power)")
        right.set_ylim(-0.02, 1.02)
        right.legend(fontsize=8, frameon=False)
    right.set_xlabel("weight of the robust component")
    right.set_ylabel("probability")
    right.grid(color="0.92")
    for ax in (left, right):
        ax.axvline(chosen, color="0.4", linewidth=0.8, linestyle=":")
        ax.set_xlim(0, 1)
    fig.suptitle(title, fontsize=10)
    return fig


# ---------------------------------------------------------------------------- two endpoints
def two_endpoint_figure(safety, trial, *, title: str) -> Figure:
    """P(efficacy AND safety rules both decide success) over the two true rates."""
    fig = Figure(figsize=(7.0, 5.6), layout="constrained")
    ax = fig.subplots()
    x, y = safety.theta_eff, safety.theta_sae
    z = safety.grid.T  # rows: SAE rate, columns: response rate
    levels = [0.0, 0.05, 0.1, 0.2, 0.5, 0.8, 0.9, 1.0001]
    filled = ax.contourf(x, y, z, levels=levels, cmap="Greys", alpha=0.7)
    lines = ax.contour(x, y, z, levels=[0.05, 0.1, 0.2, 0.5, 0.8, 0.9], colors="black",
                       linewidths=0.8)
    ax.clabel(lines, fmt="%.2g", fontsize=7)
    points = [(trial.null, safety.acceptable, "o"), (trial.alternative, safety.acceptable, "s"),
              (trial.alternative, safety.unacceptable, "^"),
              (trial.null, safety.unacceptable, "D")]
    handles = []
    for tx, ty, marker in points:
        p = trial.at("robust MAP", tx) * safety.pass_probability(ty)
        ax.plot(tx, ty, marker=marker, color="black", mfc="white", markersize=8,
                linestyle="none")
        handles.append(Line2D([], [], marker=marker, color="black", mfc="white",
                              linestyle="none",
                              label=f"response {tx:g}, SAE {ty:g}: P(both) = {p:.2f}"))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("true response rate (proportion of patients)")
    ax.set_ylabel(f"true {safety.map_design.outcome} rate (proportion of patients)")
    ax.set_title(title, fontsize=10)
    ax.legend(handles=handles, fontsize=7, loc="upper left", frameon=True)
    cbar = fig.colorbar(filled, ax=ax)
    cbar.set_label("P(both rules decide success)")
    return fig


# ---------------------------------------------------------------------------- two arms
def two_arm_figure(two_arm, *, title: str) -> Figure:
    """Type I error (equal rates) and power (control at the MAP mean) of the two-arm
    designs."""
    fig = Figure(figsize=(9.5, 4.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    for (label, t1), style in zip(two_arm.type1.items(), TWO_ARM_STYLES, strict=False):
        color, ls, marker = style
        left.plot(two_arm.theta, t1, color=color, linestyle=ls, linewidth=1.5, label=label)
        right.plot(two_arm.delta, two_arm.power[label], color=color, linestyle=ls,
                   linewidth=1.5, label=label)
        d = two_arm.delta_for_power[label]
        if np.isfinite(d):
            right.plot(d, two_arm.target_power, marker=marker, color=color, mfc="white",
                       linestyle="none")
    left.set_xlabel("true rate in both arms θ (proportion of patients)")
    left.set_ylabel("type I error P(success | no difference)")
    left.set_xlim(0, 1)
    left.grid(color="0.92")
    left.legend(fontsize=8, frameon=False)
    right.axhline(two_arm.target_power, color="0.4", linewidth=0.8, linestyle=":")
    right.set_xlabel(f"δ = treatment − control rate (control {two_arm.control_mean:.3f})")
    right.set_ylabel("power P(success | δ)")
    right.set_ylim(-0.02, 1.02)
    right.grid(color="0.92")
    fig.suptitle(title, fontsize=10)
    return fig


# ---------------------------------------------------------------------------- scenarios
def _crit(row: dict):
    """The critical value of a scenario row: the upper tail's, else the lower's."""
    for key in ("upper_crit", "lower_crit"):
        value = row.get(key)
        if value is not None and not (isinstance(value, float) and np.isnan(value)):
            return value
    return np.nan


def scenario_figure(table, *, title: str, design_crit: int | None) -> Figure:
    """Per scenario: the MAP's mean and 95 % interval (filled marker: same ESS class as
    the design's; open: another class), and the decision boundary's critical value."""
    rows = [r for r in table.rows if r["status"] == "ok"]
    n = max(len(rows), 1)
    fig = Figure(figsize=(9.5, 0.28 * n + 1.8), layout="constrained")
    left, right = fig.subplots(1, 2, sharey=True, width_ratios=[3, 2])
    for i, row in enumerate(reversed(rows)):
        same = not row["level_changed"]
        left.plot([row["q2.5"], row["q97.5"]], [i, i], color="black", linewidth=1.2)
        left.plot(row["mean"], i, marker="o", color="black", mfc="black" if same else "white",
                  markersize=5)
        crit = _crit(row)
        right.plot(crit, i, marker="s", color="black",
                   mfc="white" if row["boundary_changed"] else "black", markersize=5)
    labels = [f"{r['scenario']} {r['label']}" for r in reversed(rows)]
    left.set_yticks(range(len(rows)), labels, fontsize=7)
    left.set_xlim(0, 1)
    left.set_xlabel("MAP prior: mean and 95% interval (rate, proportion)")
    left.grid(axis="x", color="0.92")
    if design_crit is not None:
        right.axvline(design_crit, color="0.5", linewidth=0.8, linestyle="--")
    right.set_xlabel("critical count y_c (patients; RBesT's convention)")
    right.xaxis.set_major_locator(MaxNLocator(integer=True))
    right.grid(axis="x", color="0.92")
    handles = [Line2D([], [], marker="o", color="black", linestyle="none",
                      label="same ESS class as the design"),
               Line2D([], [], marker="o", color="black", mfc="white", linestyle="none",
                      label="another ESS class"),
               Line2D([], [], marker="s", color="black", linestyle="none",
                      label="same boundary"),
               Line2D([], [], marker="s", color="black", mfc="white", linestyle="none",
                      label="boundary changes")]
    fig.legend(handles=handles, loc="outside lower center", ncols=4, fontsize=7,
               frameon=False)
    fig.suptitle(title, fontsize=10)
    return fig
