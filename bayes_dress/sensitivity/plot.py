"""The sensitivity forest plot: each scenario's estimate and 95% interval, per outcome."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

#: Quantities shown, left to right, with their axis titles.
PANELS = (("mean_rate", "Population mean rate"), ("theta_new", "New-study rate (predictive)"),
          ("sd_rates", "Between-study SD of rates"))


def sensitivity_forest_data(table: pd.DataFrame, outcome: str) -> pd.DataFrame:
    """The rows of one outcome's plot, top to bottom: scenario, label, status and, per
    quantity, the posterior median and 95% interval (NaN where a scenario was not fitted)."""
    rows = table[table["outcome"] == outcome]
    wide = rows.pivot_table(index="scenario", columns="quantity",
                            values=["median", "q2.5", "q97.5"], aggfunc="first",
                            dropna=False)
    wide.columns = [f"{q}:{stat}" for stat, q in wide.columns]
    info = rows.drop_duplicates("scenario").set_index("scenario")[
        ["label", "primary", "status", "varied"]]
    order = rows.drop_duplicates("scenario")["scenario"].tolist()
    return info.join(wide).loc[order].reset_index()


def plot_sensitivity_forest(table: pd.DataFrame, outcome: str, directory: Path, *,
                            name: str | None = None,
                            thresholds: Mapping[str, Sequence[float]] | None = None
                            ) -> list[Path]:
    """Draw one outcome's sensitivity forest plot as PNG and SVG in ``directory``.

    The primary analysis is drawn filled and bold with a shaded band across every panel;
    scenarios that failed a diagnostic are drawn hollow and marked, and scenarios that
    could not be fitted are listed with "not fitted" instead of an interval.
    ``thresholds`` (quantity -> rates) draws the headline thresholds as dotted lines, so
    the scenarios whose interval or median moves across one can be seen.
    """
    from bayes_dress.labels import outcome_label
    from bayes_dress.plots.figures import save

    data = sensitivity_forest_data(table, outcome)
    n = len(data)
    fig, axes = plt.subplots(1, len(PANELS), figsize=(13, 1.2 + 0.32 * n), sharey=True,
                             layout="constrained")
    y = np.arange(n)[::-1]
    primary_rows = data["primary"].astype(bool).to_numpy()
    for ax, (quantity, title) in zip(axes, PANELS, strict=True):
        mid = data.get(f"{quantity}:median", pd.Series(np.nan, index=data.index)).to_numpy(
            dtype=float)
        lo = data.get(f"{quantity}:q2.5", pd.Series(np.nan, index=data.index)).to_numpy(
            dtype=float)
        hi = data.get(f"{quantity}:q97.5", pd.Series(np.nan, index=data.index)).to_numpy(
            dtype=float)
        for i in range(n):
            if np.isnan(mid[i]):
                ax.text(0.5, y[i], "not fitted", ha="center", va="center", fontsize=8,
                        style="italic")
                continue
            ok = data["status"].iloc[i] == "ok"
            ax.hlines(y[i], lo[i], hi[i], color="black",
                      linewidth=2.5 if primary_rows[i] else 1.2,
                      linestyle="-" if ok else ":")
            ax.plot(mid[i], y[i], marker="D" if primary_rows[i] else "o",
                    markersize=7 if primary_rows[i] else 5,
                    markerfacecolor="black" if ok else "white", markeredgecolor="black")
        for i in np.flatnonzero(primary_rows):
            ax.axhspan(y[i] - 0.5, y[i] + 0.5, color="0.85", zorder=0)
            if not np.isnan(mid[i]):
                ax.axvline(mid[i], color="0.5", linestyle="--", linewidth=0.8, zorder=0)
        for threshold in (thresholds or {}).get(quantity, ()):
            ax.axvline(threshold, color="black", linestyle=":", linewidth=1.0, zorder=0)
            ax.annotate(f"{threshold:g}", (threshold, 1.0), xycoords=("data", "axes fraction"),
                        ha="center", va="bottom", fontsize=7)
        ax.set_xlim(0, 1 if quantity != "sd_rates" else 0.5)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("rate (proportion of patients)" if quantity != "sd_rates"
                      else "SD of study rates")
        ax.grid(axis="x", color="0.9")
    labels = [f"{row.scenario} {row.label}" + ("  [PRIMARY]" if row.primary else "")
              + ("" if row.status == "ok" else f"  [{row.status.upper()}]")
              for row in data.itertuples()]
    axes[0].set_yticks(y, labels, fontsize=8)
    axes[0].set_ylim(-0.7, n - 0.3)
    fig.suptitle(f"{outcome_label(outcome)}: posterior median and 95% interval per "
                 "scenario (diamond, shaded = primary; hollow, dotted = failed a "
                 "diagnostic; dotted vertical = headline threshold)", fontsize=10)
    return save(fig, directory, name or f"sensitivity_forest-{outcome}", dpi=110,
                bbox_inches="tight")
