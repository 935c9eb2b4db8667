"""Sampler diagnostics, checked after every fit and reported loudly.

Thresholds follow Vehtari et al. (2021, Bayesian Analysis 16:667-718) for R-hat and ESS
and Betancourt (2017, arXiv:1701.02434) for divergences, tree depth and E-BFMI.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import arviz_stats as azs
import numpy as np
import pandas as pd
import xarray as xr

RHAT_MAX = 1.01
#: ESS of at least 100 per chain makes R-hat and MCSE estimates themselves reliable.
ESS_PER_CHAIN_MIN = 100
EBFMI_MIN = 0.3

REMEDIES = {
    "divergences": "raise --target-accept (e.g. 0.99) or use a more informative "
                   "heterogeneity prior; divergent transitions mean part of the posterior "
                   "was not explored and estimates may be biased",
    "r_hat": "run longer (--tune, --draws); chains disagree about the posterior",
    "ess_bulk": "increase --draws; too few effective draws for stable estimates",
    "ess_tail": "increase --draws; too few effective draws for stable interval bounds",
    "tree_depth": "trajectories hit the maximum tree depth: the posterior is badly scaled; "
                  "reparameterise or use more informative priors",
    "ebfmi": "low energy fraction of missing information: heavy-tailed posterior; "
             "use a more informative heterogeneity prior or run longer",
}


@dataclass(frozen=True)
class Check:
    """One diagnostic check of one fit."""

    outcome: str
    check: str
    passed: bool
    value: float
    threshold: float
    detail: str
    remedy: str

    def message(self) -> str:
        return f"{self.outcome}: {self.detail}. Remedy: {self.remedy}"


def _stat(stats: xr.Dataset, *names: str) -> xr.DataArray | None:
    for name in names:
        if name in stats:
            return stats[name]
    return None


def check_fit(tree: xr.DataTree, summary: pd.DataFrame, *, outcome: str) -> list[Check]:
    """Run every check on a fit; failures have ``passed=False``.

    Quantities that are constant across draws (e.g. the common-effect model's zero
    between-study SD) have no R-hat or ESS and are skipped.
    """
    stats = tree["sample_stats"].to_dataset()
    chains = stats.sizes["chain"]
    total = stats.sizes["chain"] * stats.sizes["draw"]
    checks = []

    diverging = _stat(stats, "diverging")
    n_div = int(diverging.sum()) if diverging is not None else 0
    checks.append(Check(outcome, "divergences", n_div == 0, n_div, 0,
                        f"{n_div} divergent transition(s) in {total} draws",
                        REMEDIES["divergences"]))

    varying = summary[summary["sd"] > 0]

    def worst(column: str, fn) -> tuple[float, str]:
        values = varying[column].dropna()
        if values.empty:
            return float("nan"), ""
        idx = fn(values)
        row = varying.loc[idx]
        label = row["parameter"] + (f"[{row['study']}]" if row["study"] else "")
        return float(values.loc[idx]), label

    value, label = worst("r_hat", lambda v: v.idxmax())
    checks.append(Check(outcome, "r_hat", not value > RHAT_MAX, value, RHAT_MAX,
                        f"max R-hat {value:.3f} ({label}), threshold {RHAT_MAX}",
                        REMEDIES["r_hat"]))
    ess_min = ESS_PER_CHAIN_MIN * chains
    for column in ("ess_bulk", "ess_tail"):
        value, label = worst(column, lambda v: v.idxmin())
        checks.append(Check(outcome, column, not value < ess_min, value, ess_min,
                            f"min {column.replace('_', ' ')} {value:.0f} ({label}), "
                            f"threshold {ess_min}", REMEDIES[column]))

    saturated = _stat(stats, "maxdepth_reached", "reached_max_treedepth")
    n_sat = int(saturated.sum()) if saturated is not None else 0
    checks.append(Check(outcome, "tree_depth", n_sat == 0, n_sat, 0,
                        f"{n_sat} draw(s) hit the maximum tree depth",
                        REMEDIES["tree_depth"]))

    if "energy" in stats:
        ebfmi = np.atleast_1d(np.asarray(azs.bfmi(tree)["energy"]))
        low = float(np.min(ebfmi))
        checks.append(Check(outcome, "ebfmi", not low < EBFMI_MIN, low, EBFMI_MIN,
                            f"lowest E-BFMI across chains {low:.2f}, threshold {EBFMI_MIN}",
                            REMEDIES["ebfmi"]))
    return checks


def failures(checks: list[Check]) -> list[Check]:
    """The checks that failed."""
    return [c for c in checks if not c.passed]


def checks_to_records(checks: list[Check]) -> list[dict]:
    """JSON-ready records."""
    records = []
    for check in checks:
        record = asdict(check)
        record["value"] = None if not np.isfinite(record["value"]) else record["value"]
        records.append(record)
    return records
