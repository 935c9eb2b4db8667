"""Tidy tables from a posterior: the summary of every quantity and tail probabilities.

Every row of ``summary.csv`` carries the engine's own error (``mcse_mean``: Monte Carlo
error, 0 for exact integration) and convergence figures next to the estimate, and,
where prior draws exist, how far the data moved the prior: ``prior_mass_in_ci95`` is the
prior probability of the posterior's 95% interval. It is 0.95 when the posterior is the
prior, falls as the data rule out prior values, and, unlike a ratio of widths or
variances, does not change when a quantity is re-expressed (phi and kappa = phi^-2 get
the same value).

Only the :class:`~bayes_dress.posterior.base.Posterior` interface is used: the tables
are the same whichever engine computed the posterior.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bayes_dress.posterior.base import Posterior

#: A quantity whose posterior 95% interval still holds this much prior mass is reported
#: as prior-dominated: the data ruled out at most a fifth of the prior beyond its own
#: 5% tails (0.95 would mean the data changed nothing).
PRIOR_DOMINATED_MASS = 0.75

SUMMARY_COLUMNS = ["analysis", "outcome", "parameter", "study", "mean", "sd", "q2.5",
                   "median", "q97.5", "hdi95_lower", "hdi95_upper", "mcse_mean", "ess_bulk",
                   "ess_tail", "r_hat", "prior_q2.5", "prior_q97.5", "prior_mass_in_ci95",
                   "prior_dominated"]
PROBABILITY_COLUMNS = ["analysis", "outcome", "quantity", "threshold", "probability", "mcse"]
#: Quantities whose tail probabilities every fit reports.
TAIL_QUANTITIES = ("mean_rate", "theta_new")


def summarize(posterior: Posterior, *, analysis: str, prior: Posterior | None = None
              ) -> pd.DataFrame:
    """Posterior summary table, one row per reported quantity (and outcome, and study).

    Parameters
    ----------
    posterior : Posterior
    analysis : str
        Written in the ``analysis`` column.
    prior : Posterior, optional
        Prior draws, for the prior columns (none when a prior is improper).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SUMMARY_COLUMNS`.
    """
    keys = list(posterior.keys)
    if not keys:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    q = posterior.quantile(keys, [0.025, 0.5, 0.975])
    hdi = posterior.hdi(keys, 0.95)
    convergence = posterior.convergence(keys)
    frame = pd.DataFrame({
        "analysis": analysis,
        "outcome": [k[1] for k in keys], "parameter": [k[0] for k in keys],
        "study": [k[2] for k in keys],
        "mean": posterior.mean(keys), "sd": posterior.sd(keys),
        "q2.5": q[0], "median": q[1], "q97.5": q[2],
        "hdi95_lower": hdi[:, 0], "hdi95_upper": hdi[:, 1],
        "mcse_mean": convergence["mcse_mean"], "ess_bulk": convergence["ess_bulk"],
        "ess_tail": convergence["ess_tail"], "r_hat": convergence["r_hat"],
    })
    prior_columns = _prior_columns(prior, keys, q[0], q[2])
    for column in ("prior_q2.5", "prior_q97.5", "prior_mass_in_ci95", "prior_dominated"):
        frame[column] = prior_columns[column]
    return frame[SUMMARY_COLUMNS]


def _prior_columns(prior: Posterior | None, keys, lower, upper) -> dict:
    n = len(keys)
    out = {"prior_q2.5": np.full(n, np.nan), "prior_q97.5": np.full(n, np.nan),
           "prior_mass_in_ci95": np.full(n, np.nan),
           "prior_dominated": pd.array([pd.NA] * n, dtype="boolean")}
    if prior is None:
        return out
    have = [i for i, k in enumerate(keys) if prior.has(k)]
    if not have:
        return out
    have_keys = [keys[i] for i in have]
    pq = prior.quantile(have_keys, [0.025, 0.975])
    mass = prior.interval_mass(have_keys, lower[have], upper[have])
    for j, i in enumerate(have):
        lo, hi = pq[0, j], pq[1, j]
        out["prior_q2.5"][i], out["prior_q97.5"][i] = lo, hi
        if hi <= lo:  # a constant, such as the common-effect model's zero SD of rates
            continue
        out["prior_mass_in_ci95"][i] = mass[j]
        out["prior_dominated"][i] = bool(mass[j] >= PRIOR_DOMINATED_MASS)
    return out


def tail_probabilities(posterior: Posterior, *, analysis: str, thresholds: Sequence[float],
                       quantities: Sequence[str] = TAIL_QUANTITIES) -> pd.DataFrame:
    """P(quantity > threshold) for each outcome, with its Monte Carlo standard error
    (sqrt(p (1 - p) / ESS) with the ESS of the indicator; 0 for exact integration)."""
    pairs = [(key, t) for name in quantities for key in posterior.keys_of(name=name)
             if not key[2] for t in thresholds]
    # Outcome by outcome, as the reader expects: all of one outcome's rows together.
    outcomes = list(dict.fromkeys(k[1] for k in posterior.keys))
    pairs.sort(key=lambda pair: outcomes.index(pair[0][1]))
    if not pairs:
        return pd.DataFrame(columns=PROBABILITY_COLUMNS)
    p, mcse = posterior.prob_above([k for k, _ in pairs], [t for _, t in pairs])
    return pd.DataFrame({"analysis": analysis, "outcome": [k[1] for k, _ in pairs],
                         "quantity": [k[0] for k, _ in pairs],
                         "threshold": [t for _, t in pairs], "probability": p,
                         "mcse": mcse})[PROBABILITY_COLUMNS]
