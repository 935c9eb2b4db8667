"""Checks of every fit, reported loudly: sampler diagnostics, an integrator's measured
error, importance-sampling reliability.

Which checks apply follows from the evidence an engine returns (a sampler's statistics,
a grid error, importance weights), not from the engine's name. Thresholds follow
Vehtari et al. (2021, Bayesian Analysis 16:667-718) for R-hat and ESS, Betancourt (2017,
arXiv:1701.02434) for divergences, tree depth and E-BFMI, and Vehtari et al. (2024, JMLR
25:72) for Pareto k-hat.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import xarray as xr

from bayes_dress.labels import key_text

RHAT_MAX = 1.01
#: ESS of at least 100 per chain makes R-hat and MCSE estimates themselves reliable.
ESS_PER_CHAIN_MIN = 100
EBFMI_MIN = 0.3
#: Pareto k-hat above which importance weights are unreliable.
KHAT_MAX = 0.7

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
    "grid_error": "the posterior is too sharp, heavy-tailed or discontinuous for the grid "
                  "to resolve at this tolerance; check with the NUTS engine",
    "importance_khat": "the importance weights are heavy-tailed, so the reference is not "
                       "reliable: the comparison with it is not a check of the sampler",
}


@dataclass(frozen=True)
class Check:
    """One diagnostic check of one fit (``analysis``: the analysis's name, its outcome
    for a single-outcome analysis)."""

    analysis: str
    check: str
    passed: bool
    value: float
    threshold: float
    detail: str
    remedy: str

    def message(self) -> str:
        return f"{self.analysis}: {self.detail}. Remedy: {self.remedy}"


def _stat(stats: xr.Dataset, *names: str) -> xr.DataArray | None:
    for name in names:
        if name in stats:
            return stats[name]
    return None


def check_fit(evidence: dict, summary: pd.DataFrame, *, analysis: str) -> list[Check]:
    """Every check the evidence of a fit allows; failures have ``passed=False``."""
    checks = []
    if "sample_stats" in evidence:
        checks += sampler_checks(evidence["sample_stats"], summary, analysis=analysis)
    if evidence.get("has_grid"):
        checks.append(grid_check(evidence["grid_error"], evidence["grid_tolerance"],
                                 evidence.get("grid_points"), analysis=analysis))
    if "importance" in evidence:
        checks.append(importance_check(evidence["importance"], analysis=analysis))
    return checks


def grid_check(grid_error: float, tolerance: float, points: int | None, *,
               analysis: str) -> Check:
    """The exact engine's measured error: pass within its tolerance; a grid error not
    measured (NaN) is reported as such, never as a pass."""
    if not np.isfinite(grid_error):
        return Check(analysis, "grid_error", True, float("nan"), tolerance,
                     "grid error not measured (no refinement for this fit)", "")
    return Check(analysis, "grid_error", grid_error <= tolerance, grid_error, tolerance,
                 f"largest change of a reported quantile when the grid resolution doubles "
                 f"({points} points per axis): {grid_error:.1e}, tolerance {tolerance:g}",
                 REMEDIES["grid_error"])


def importance_check(importance: dict, *, analysis: str) -> Check:
    """Pareto k-hat of importance weights (a reference engine's reliability)."""
    khat = float(importance.get("khat", np.nan))
    ess = importance.get("ess", np.nan)
    return Check(analysis, "importance_khat", not khat > KHAT_MAX, khat, KHAT_MAX,
                 f"Pareto k-hat of the importance weights {khat:.2f} (ESS {ess:.0f}), "
                 f"threshold {KHAT_MAX}", REMEDIES["importance_khat"])


def sampler_checks(stats: xr.Dataset, summary: pd.DataFrame, *, analysis: str
                   ) -> list[Check]:
    """A sampler's checks: divergences, R-hat, ESS, tree depth, E-BFMI.

    Quantities that are constant across draws (e.g. the common-effect model's zero
    between-study SD) have no R-hat or ESS and are skipped.
    """
    outcome = analysis
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
        several = bool(row.get("analysis", "")) and row["outcome"] != row["analysis"]
        label = key_text(row["parameter"], row["study"] or "",
                         (row["outcome"] or "across outcomes") if several else "")
        return float(values.loc[idx]), label

    value, label = worst("r_hat", lambda v: v.idxmax())
    checks.append(Check(outcome, "r_hat", not value > RHAT_MAX, value, RHAT_MAX,
                        f"max R-hat {value:.3f} ({label}), threshold {RHAT_MAX}",
                        REMEDIES["r_hat"]))
    ess_min = ESS_PER_CHAIN_MIN * chains
    for column in ("ess_bulk", "ess_tail"):
        value, label = worst(column, lambda v: v.idxmin())
        checks.append(Check(outcome, column, not value < ess_min, value, ess_min,
                            f"min {column.replace('_', ' ').replace('ess', 'ESS')} "
                            f"{value:.0f} ({label}), "
                            f"threshold {ess_min}", REMEDIES[column]))

    saturated = _stat(stats, "maxdepth_reached", "reached_max_treedepth")
    n_sat = int(saturated.sum()) if saturated is not None else 0
    checks.append(Check(outcome, "tree_depth", n_sat == 0, n_sat, 0,
                        f"{n_sat} draw(s) hit the maximum tree depth",
                        REMEDIES["tree_depth"]))

    if "energy" in stats:
        import arviz_stats as azs

        ebfmi = np.atleast_1d(np.asarray(azs.bfmi(xr.DataTree.from_dict(
            {"sample_stats": stats}))["energy"]))
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
