"""Plots of a fit: a forest plot and prior-versus-posterior densities.

Drawn with matplotlib from the fit's DataTree, so they can be redrawn from a saved run
without refitting. Styles differ by marker and line style as well as colour, so the
figures read in grayscale.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from scipy import stats

from bayes_dress.models import STUDY_DIM

OUTCOME_LABELS = {"success": "Success (remission)", "severe_ae": "Severe adverse events"}


def clopper_pearson(events: np.ndarray, totals: np.ndarray, level: float = 0.95
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Exact (Clopper-Pearson) binomial confidence interval for each observed rate."""
    events, totals = np.asarray(events), np.asarray(totals)
    alpha = 1.0 - level
    lower = np.where(events > 0, stats.beta.ppf(alpha / 2, events, totals - events + 1), 0.0)
    upper = np.where(events < totals,
                     stats.beta.ppf(1 - alpha / 2, events + 1, totals - events), 1.0)
    return lower, upper


def _interval(values: np.ndarray) -> tuple[float, float, float]:
    lo, mid, hi = np.quantile(values.reshape(-1), [0.025, 0.5, 0.975])
    return float(lo), float(mid), float(hi)


def forest_data(tree) -> list[dict]:
    """The rows of a forest plot, top to bottom: what each row shows, as numbers."""
    posterior = tree["posterior"].to_dataset()
    observed = tree["observed_data"].to_dataset()["y"].values
    totals = tree["constant_data"].to_dataset()["n"].values
    studies = [str(s) for s in posterior[STUDY_DIM].values]
    lower, upper = clopper_pearson(observed, totals)
    rows = []
    for i, study in enumerate(studies):
        rows.append({"label": f"{study} ({observed[i]}/{totals[i]})", "kind": "observed",
                     "estimate": observed[i] / totals[i], "lower": lower[i],
                     "upper": upper[i]})
        lo, mid, hi = _interval(posterior["theta"].sel({STUDY_DIM: study}).values)
        rows.append({"label": f"{study}, model", "kind": "study", "estimate": mid,
                     "lower": lo, "upper": hi})
    for name, label in (("mean_rate", "Population mean"), ("theta_new", "New study")):
        lo, mid, hi = _interval(posterior[name].values)
        rows.append({"label": label, "kind": name, "estimate": mid, "lower": lo, "upper": hi})
    return rows


_STYLE = {
    "observed": dict(marker="s", color="0.55", linestyle="-", mfc="white"),
    "study": dict(marker="o", color="black", linestyle="-", mfc="black"),
    "mean_rate": dict(marker="D", color="black", linestyle="-", mfc="black"),
    "theta_new": dict(marker="D", color="black", linestyle="--", mfc="white"),
}


def plot_forest(result, path: Path) -> Path:
    """Forest plot: observed rates (exact 95% CI), model study rates, mean and new study."""
    fits = list(result.fits.values())
    fig, axes = plt.subplots(1, len(fits), figsize=(5.5 * len(fits), 0.45 * (
        2 * max(f.data.n_studies for f in fits) + 4) + 1.2), squeeze=False)
    for ax, fit in zip(axes[0], fits, strict=True):
        rows = forest_data(fit.tree)
        for y, row in enumerate(reversed(rows)):
            style = _STYLE[row["kind"]]
            ax.plot([row["lower"], row["upper"]], [y, y], color=style["color"],
                    linestyle=style["linestyle"], linewidth=1.6)
            ax.plot(row["estimate"], y, marker=style["marker"], color=style["color"],
                    mfc=style["mfc"], markersize=7, linestyle="none")
        ax.set_yticks(range(len(rows)), [r["label"] for r in reversed(rows)])
        ax.set_xlim(0, 1)
        ax.set_xlabel("rate (proportion of patients)")
        ax.axhline(1.5, color="0.8", linewidth=0.8)
        ax.set_title(f"{OUTCOME_LABELS.get(fit.outcome, fit.outcome)}\n{fit.model}",
                     fontsize=10)
        ax.grid(axis="x", color="0.9")
    fig.text(0.01, 0.005, "□ observed, exact 95% CI   ● model study rate, 95% CrI   "
             "◆ population mean, 95% CrI   ◇ - - new study, 95% predictive interval",
             fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _kde(values: np.ndarray, grid: np.ndarray) -> np.ndarray | None:
    values = values.reshape(-1)
    values = values[np.isfinite(values)]
    if np.ptp(values) == 0:
        return None
    return stats.gaussian_kde(values)(grid)


def plot_densities(result, path: Path) -> Path:
    """Posterior (solid) against prior (dashed) for the population quantities."""
    fits = list(result.fits.values())
    names = [n for n in ("mean_rate", "theta_new", "sd_rates", "phi", "tau")
             if n in fits[0].tree["posterior"].data_vars]
    fig, axes = plt.subplots(len(fits), len(names), figsize=(3.2 * len(names),
                                                             2.6 * len(fits)), squeeze=False)
    for row, fit in zip(axes, fits, strict=True):
        posterior = fit.tree["posterior"].to_dataset()
        prior = fit.tree["prior"].to_dataset() if "prior" in fit.tree.children else None
        for ax, name in zip(row, names, strict=True):
            post = posterior[name].values
            sources = [post] + ([prior[name].values] if prior is not None else [])
            lo = min(np.quantile(v, 0.005) for v in sources)
            hi = max(np.quantile(v, 0.995) for v in sources)
            grid = np.linspace(lo, hi, 200) if hi > lo else np.array([lo])
            density = _kde(post, grid)
            if density is None:
                ax.axvline(float(np.median(post)), color="black", label="posterior")
            else:
                ax.plot(grid, density, color="black", linestyle="-", label="posterior")
            prior_density = _kde(prior[name].values, grid) if prior is not None else None
            if prior_density is not None:
                ax.plot(grid, prior_density, color="0.45", linestyle="--", label="prior")
            ax.set_title(f"{fit.outcome}: {name}", fontsize=9)
            ax.set_yticks([])
        row[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_fit(result, directory: Path) -> list[Path]:
    """Every plot of a fit, written into ``directory``."""
    directory = Path(directory)
    return [plot_forest(result, directory / "forest.png"),
            plot_densities(result, directory / "densities.png")]
