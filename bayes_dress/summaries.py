"""Tidy tables from a fit: posterior summaries and tail probabilities.

Every row of ``summary.csv`` carries its Monte Carlo error (``mcse_mean``) and
convergence figures next to the estimate, and, where prior draws exist, how far the
data moved the prior: ``prior_mass_in_ci95`` is the prior probability of the posterior's
95% interval. It is 0.95 when the posterior is the prior, falls as the data rule out
prior values, and, unlike a ratio of widths or variances, does not change when a
quantity is re-expressed (phi and kappa = phi^-2 get the same value).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr
from arviz_stats.base import array_stats

from bayes_dress import mcmc_stats
from bayes_dress.models import POPULATION_QUANTITIES, STUDY_DIM

SAMPLE_DIMS = ("chain", "draw")
#: Tail ESS is the smaller ESS of the 5% and 95% quantiles (arviz-stats' default).
TAIL_PROB = (0.05, 0.95)
#: A quantity whose posterior 95% interval still holds this much prior mass is reported
#: as prior-dominated: the data ruled out at most a fifth of the prior beyond its own
#: 5% tails (0.95 would mean the data changed nothing).
PRIOR_DOMINATED_MASS = 0.75
#: Sampled quantities that are not reported (the logit-normal's standardised effects).
UNREPORTED = ("z",)

SUMMARY_COLUMNS = ["outcome", "parameter", "study", "mean", "sd", "q2.5", "median",
                   "q97.5", "hdi95_lower", "hdi95_upper", "mcse_mean", "ess_bulk",
                   "ess_tail", "r_hat", "prior_q2.5", "prior_q97.5", "prior_mass_in_ci95",
                   "prior_dominated"]


def reported_variables(posterior: xr.Dataset) -> list[str]:
    """Reported quantities in reading order: population, heterogeneity, study rates."""
    names = [v for v in posterior.data_vars if v not in UNREPORTED]
    first = [v for v in POPULATION_QUANTITIES if v in names]
    last = [v for v in names if STUDY_DIM in posterior[v].dims]
    return first + [v for v in names if v not in first and v not in last] + last


def _values(da: xr.DataArray) -> list[tuple[str, np.ndarray]]:
    """(study label, draws) pairs; the label is empty for population-level quantities."""
    if STUDY_DIM in da.dims:
        return [(str(s), da.sel({STUDY_DIM: s}).values) for s in da[STUDY_DIM].values]
    return [("", da.values)]


def _columns(posterior: xr.Dataset, names: Sequence[str]
             ) -> tuple[list[tuple[str, str]], np.ndarray]:
    """Every reported scalar as a column of one (chain, draw, k) array, with its
    (parameter, study) label, so that each statistic is one vectorised call."""
    labels, columns = [], []
    for name in names:
        for study, draws in _values(posterior[name]):
            labels.append((name, study))
            columns.append(draws)
    return labels, np.stack(columns, axis=-1)


def summarize(tree: xr.DataTree, *, outcome: str) -> pd.DataFrame:
    """Posterior summary table, one row per quantity (and study).

    Parameters
    ----------
    tree : xarray.DataTree
        A fit with a ``posterior`` group and, optionally, a ``prior`` group.
    outcome : str
        Written in the ``outcome`` column.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SUMMARY_COLUMNS`.
    """
    posterior = tree["posterior"].to_dataset()
    names = reported_variables(posterior)
    prior = tree["prior"].to_dataset() if "prior" in tree.children else None
    labels, draws = _columns(posterior, names)
    # arviz-stats' ESS, R-hat and MCSE estimators, on all quantities at once
    # (mcmc_stats). Constant quantities (a common-effect model's zero SD of rates)
    # have no R-hat (NaN).
    ess_bulk, rhat = mcmc_stats.ess_bulk_and_rhat(draws)
    ess_tail = mcmc_stats.ess_tail(draws, TAIL_PROB)
    mcse = mcmc_stats.mcse_mean(draws)
    flat = draws.reshape(-1, draws.shape[-1])
    hdi = array_stats.hdi(flat, 0.95, axis=0)
    q = np.quantile(flat, [0.025, 0.5, 0.975], axis=0)
    mean, sd = flat.mean(axis=0), flat.std(axis=0, ddof=1)
    prior_draws = {}
    if prior is not None:
        for name in names:
            if name in prior:
                prior_draws.update({(name, study): d for study, d in _values(prior[name])})
    rows = []
    for k, (name, study) in enumerate(labels):
        row = {
            "outcome": outcome, "parameter": name, "study": study,
            "mean": mean[k], "sd": sd[k], "q2.5": q[0, k], "median": q[1, k],
            "q97.5": q[2, k], "hdi95_lower": hdi[k, 0], "hdi95_upper": hdi[k, 1],
            "mcse_mean": mcse[k], "ess_bulk": ess_bulk[k], "ess_tail": ess_tail[k],
            "r_hat": rhat[k],
        }
        row.update(_prior_columns(prior_draws.get((name, study)), q[:, k]))
        rows.append(row)
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def _prior_columns(prior_draws: np.ndarray | None, posterior_q: np.ndarray) -> dict:
    if prior_draws is None:
        return {"prior_q2.5": np.nan, "prior_q97.5": np.nan, "prior_mass_in_ci95": np.nan,
                "prior_dominated": pd.NA}
    prior_draws = prior_draws.reshape(-1)
    lo, hi = np.quantile(prior_draws, [0.025, 0.975])
    if hi <= lo:  # a constant, such as the common-effect model's zero SD of rates
        return {"prior_q2.5": lo, "prior_q97.5": hi, "prior_mass_in_ci95": np.nan,
                "prior_dominated": pd.NA}
    mass = float(np.mean((prior_draws >= posterior_q[0]) & (prior_draws <= posterior_q[2])))
    return {"prior_q2.5": lo, "prior_q97.5": hi, "prior_mass_in_ci95": mass,
            "prior_dominated": mass >= PRIOR_DOMINATED_MASS}


def tail_probabilities(tree: xr.DataTree, *, outcome: str,
                       thresholds: Sequence[float],
                       quantities: Sequence[str] = ("mean_rate", "theta_new")
                       ) -> pd.DataFrame:
    """P(quantity > threshold) with its Monte Carlo standard error.

    The MCSE is sqrt(p (1 - p) / ESS) with the bulk ESS of the indicator.
    """
    posterior = tree["posterior"].to_dataset()
    pairs = [(name, t) for name in quantities for t in thresholds]
    indicators = np.stack([(posterior[name].values > t).astype(float) for name, t in pairs],
                          axis=-1)
    p = indicators.mean(axis=(0, 1))
    # The bulk ESS of an indicator is its ESS for the mean: its rank scores take two
    # values, a shifted and scaled copy of the indicator.
    ess = mcmc_stats.ess_mean(indicators)
    mcse = np.where((p > 0) & (p < 1), np.sqrt(p * (1.0 - p) / ess), 0.0)
    rows = [{"outcome": outcome, "quantity": name, "threshold": t, "probability": p[k],
             "mcse": mcse[k]} for k, (name, t) in enumerate(pairs)]
    return pd.DataFrame(rows, columns=["outcome", "quantity", "threshold", "probability",
                                       "mcse"])


def summarize_exact(exact, *, outcome: str, prior: xr.Dataset | None = None,
                    order: Sequence[str] = ()) -> pd.DataFrame:
    """The summary table of an exact-engine fit, in the same columns as :func:`summarize`.

    There is no Monte Carlo error (``mcse_mean`` is 0) and no chain to diagnose (ESS
    and R-hat are empty). ``order`` lists the quantities in reporting order.
    """
    rows = []
    items = [(name, "", m) for name, m in exact.quantities.items()]
    items += [("theta", study, m) for study, m in exact.studies.items()]
    rank = {name: i for i, name in enumerate(order)}
    items.sort(key=lambda item: (rank.get(item[0], len(rank)), item[1]))
    seen = set()
    for name, study, marginal in items:
        if (name, study) in seen or (name == "theta" and not study and exact.studies):
            continue
        seen.add((name, study))
        q = np.asarray(marginal.quantile(np.array([0.025, 0.5, 0.975])), dtype=float)
        lo, hi = marginal.hdi(0.95)
        row = {"outcome": outcome, "parameter": name, "study": study,
               "mean": marginal.mean, "sd": marginal.sd, "q2.5": q[0], "median": q[1],
               "q97.5": q[2], "hdi95_lower": lo, "hdi95_upper": hi, "mcse_mean": 0.0,
               "ess_bulk": np.nan, "ess_tail": np.nan, "r_hat": np.nan}
        prior_draws = None
        if prior is not None and name in prior:
            da = prior[name]
            prior_draws = (da.sel({STUDY_DIM: study}) if study else da).values
        row.update(_prior_columns(prior_draws, q))
        rows.append(row)
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def exact_tail_probabilities(exact, *, outcome: str, thresholds: Sequence[float],
                             quantities: Sequence[str] = ("mean_rate", "theta_new")
                             ) -> pd.DataFrame:
    """P(quantity > threshold) from the exact engine (no Monte Carlo error)."""
    rows = [{"outcome": outcome, "quantity": name, "threshold": t,
             "probability": exact.quantities[name].prob_above(t), "mcse": 0.0}
            for name in quantities for t in thresholds]
    return pd.DataFrame(rows, columns=["outcome", "quantity", "threshold", "probability",
                                       "mcse"])
