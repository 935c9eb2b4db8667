"""A posterior made of draws (with their chains): a sampler's, or prior draws.

Every reported scalar is one column of a (chain, draw, key) array built once, so that
each statistic is one vectorised call: means and quantiles with NumPy, ESS, R-hat and
Monte Carlo errors with arviz-stats' estimators (:mod:`bayes_dress.posterior.mcmc_stats`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property

import numpy as np
import xarray as xr

from bayes_dress.posterior import mcmc_stats
from bayes_dress.posterior.base import Key, Posterior

SAMPLE_DIMS = ("chain", "draw")
OUTCOME_DIM = "outcome"
STUDY_DIM = "study"
#: Population quantities shared by every model, read first.
FIRST = ("mean_rate", "theta_new", "sd_rates")
#: Tail ESS is the smaller ESS of the 5% and 95% quantiles (arviz-stats' default).
TAIL_PROB = (0.05, 0.95)


def variable_keys(dataset: xr.Dataset, name: str, outcomes: Sequence[str]
                  ) -> list[tuple[Key, dict]]:
    """(key, selection) of every scalar of variable ``name``: its outcome is its
    ``outcome`` coordinate, else the analysis's one outcome, else "" (across outcomes)."""
    array = dataset[name]
    outcome_values = ([str(o) for o in array[OUTCOME_DIM].values]
                      if OUTCOME_DIM in array.dims else [None])
    study_values = ([str(s) for s in array[STUDY_DIM].values]
                    if STUDY_DIM in array.dims else [None])
    default = outcomes[0] if len(outcomes) == 1 else ""
    found = []
    for outcome in outcome_values:
        for study in study_values:
            selection = {}
            if outcome is not None:
                selection[OUTCOME_DIM] = outcome
            if study is not None:
                selection[STUDY_DIM] = study
            found.append(((name, default if outcome is None else outcome, study or ""),
                          selection))
    return found


def reading_order(keys: Sequence[Key], outcomes: Sequence[str]) -> list[Key]:
    """Per outcome: the population quantities, then the others, then study-level ones;
    quantities across outcomes last."""
    rank = {o: i for i, o in enumerate(outcomes)}

    def order(key: Key):
        name, outcome, study = key
        group = 0 if name in FIRST else 2 if study else 1
        first = FIRST.index(name) if name in FIRST else len(FIRST)
        return (rank.get(outcome, len(rank)), group, first)

    return sorted(keys, key=order)  # stable: within a group, the variables' own order


class DrawsPosterior(Posterior):
    """Draws of an analysis's quantities, shape (chain, draw, ...) per variable.

    Parameters
    ----------
    dataset : xarray.Dataset
        The draws (a DataTree's ``posterior`` or ``prior`` group).
    outcomes : sequence of str
        The analysis's outcomes (names a variable without an outcome dimension).
    variables : sequence of str, optional
        The reported variables; default every variable of ``dataset``.
    exclude : iterable of Key
        Keys not to report (a study's rate for an outcome it does not report).
    """

    kind = "draws"

    def __init__(self, dataset: xr.Dataset, *, outcomes: Sequence[str],
                 variables: Sequence[str] | None = None, exclude=()):
        self.dataset = dataset
        self.outcomes = tuple(outcomes)
        names = [v for v in (variables or dataset.data_vars) if v in dataset.data_vars]
        excluded = set(exclude)
        found = [(k, sel) for name in names for k, sel in variable_keys(dataset, name,
                                                                        self.outcomes)
                 if k not in excluded]
        selections = dict(found)
        self._keys = tuple(reading_order([k for k, _ in found], self.outcomes))
        self._selections = selections

    @property
    def keys(self) -> tuple[Key, ...]:
        return self._keys

    @cached_property
    def columns(self) -> np.ndarray:
        """Every key's draws as one (chain, draw, key) array."""
        columns = []
        for key in self._keys:
            array = self.dataset[key[0]]
            selection = self._selections[key]
            if selection:
                array = array.sel(selection)
            columns.append(array.transpose(*SAMPLE_DIMS).values)
        if not columns:
            return np.empty((0, 0, 0))
        return np.stack(columns, axis=-1).astype(float)

    def _take(self, keys: Sequence[Key]) -> np.ndarray:
        index = self._index
        return self.columns[..., [index[k] for k in keys]]

    def draws(self, key: Key) -> np.ndarray:
        """One key's draws, shape (chain, draw)."""
        return self.columns[..., self._index[key]]

    @property
    def joint_draws(self) -> xr.Dataset:
        return self.dataset

    def to_groups(self) -> dict:
        return {"posterior": self.dataset}

    @property
    def n_draws(self) -> int:
        return int(self.columns.shape[0] * self.columns.shape[1])

    # -- statistics ----------------------------------------------------------------------
    def _flat(self, keys: Sequence[Key]) -> np.ndarray:
        values = self._take(keys)
        return values.reshape(-1, values.shape[-1])

    def mean(self, keys):
        return self._flat(keys).mean(axis=0)

    def sd(self, keys):
        flat = self._flat(keys)
        if flat.shape[0] < 2:
            return np.zeros(flat.shape[1])
        # A constant (a parameter fixed by its prior) is exactly 0, not the rounding
        # error of its mean (1e-16), which would make it look like a varying quantity.
        return np.where(np.ptp(flat, axis=0) == 0, 0.0, flat.std(axis=0, ddof=1))

    def quantile(self, keys, probs):
        return np.quantile(self._flat(keys), list(probs), axis=0)

    def hdi(self, keys, prob=0.95):
        from arviz_stats.base import array_stats

        return array_stats.hdi(self._flat(keys), prob, axis=0)

    def cdf(self, key, x):
        # The fraction of draws <= x, by binary search in the sorted draws: the same
        # counts as comparing every draw with every x, in O((n + m) log n).
        values = np.sort(self.draws(key).reshape(-1))
        x = np.asarray(x, dtype=float)
        p = np.searchsorted(values, x, side="right") / values.size
        return np.where(np.isnan(x), np.nan, p)

    def interval_mass(self, keys, lower, upper):
        flat = self._flat(keys)
        lower, upper = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
        return ((flat >= lower) & (flat <= upper)).mean(axis=0)

    def prob_above(self, keys, thresholds):
        values = self._take(keys)
        indicators = (values > np.asarray(thresholds, dtype=float)).astype(float)
        p = indicators.mean(axis=(0, 1))
        # The bulk ESS of an indicator is its ESS for the mean: its rank scores take two
        # values, a shifted and scaled copy of the indicator.
        ess = mcmc_stats.ess_mean(indicators)
        mcse = np.where((p > 0) & (p < 1), np.sqrt(p * (1.0 - p) / ess), 0.0)
        return p, mcse

    # -- errors --------------------------------------------------------------------------
    def mean_error(self, keys):
        return mcmc_stats.mcse_mean(self._take(keys))

    def quantile_prob_error(self, keys, probs):
        probs = np.asarray(list(probs), dtype=float)
        ess = mcmc_stats.ess_quantile(self._take(keys), list(probs))
        return np.sqrt(probs[:, None] * (1 - probs[:, None]) / ess)

    def quantile_errors(self, keys, probs) -> tuple[np.ndarray, np.ndarray]:
        """(MCSE of each quantile in value units, its ESS), each (len(probs), len(keys))."""
        values = self._take(keys)
        ess = mcmc_stats.ess_quantile(values, list(probs))
        return mcmc_stats.mcse_quantile(values, list(probs), ess=ess), ess

    def cdf_error(self, key, x):
        p = self.cdf(key, x)
        indicators = (self.draws(key)[..., None]
                      <= np.asarray(x, dtype=float).reshape(-1)).astype(float)
        ess = mcmc_stats.ess_mean(indicators).reshape(np.shape(p))
        return np.where((p > 0) & (p < 1), np.sqrt(p * (1 - p) / ess), 0.0)

    def convergence(self, keys):
        values = self._take(keys)
        ess_bulk, r_hat = mcmc_stats.ess_bulk_and_rhat(values)
        return {"mcse_mean": mcmc_stats.mcse_mean(values), "ess_bulk": ess_bulk,
                "ess_tail": mcmc_stats.ess_tail(values, TAIL_PROB), "r_hat": r_hat}

    # -- plots ---------------------------------------------------------------------------
    def sample(self, key, n, rng):
        values = self.draws(key).reshape(-1)
        return rng.choice(values, n, replace=n > values.size)

    def expectation(self, key, function: Callable[[np.ndarray], np.ndarray]):
        return np.asarray(function(self.draws(key).reshape(-1))).mean(axis=-1)

    def density(self, key, *, bounds, window):
        return bounded_density(self.draws(key), bounds=bounds, window=window)


def bounded_density(values: np.ndarray, *, bounds: tuple[float, float],
                    window: tuple[float, float], grid_len: int = 256
                    ) -> tuple[np.ndarray, np.ndarray] | None:
    """A kernel density that respects a quantity's bounds, on a display window.

    The KDE is arviz-stats' (binned Gaussian with reflection at the edges of its range),
    so at a true bound (a rate at 0 or 1, a scale at 0) the density is reflected instead
    of leaking past it. Where the window cuts a tail that goes on, the KDE range is
    extended by a quarter of the window, so its reflection falls outside what is shown.
    Densities are scaled by the fraction of draws in that range, so they stay densities
    of the whole distribution.

    Returns
    -------
    (grid, density) or None
        None when the draws are (nearly) constant: no density to draw.
    """
    import arviz_stats as azs

    values = np.asarray(values, dtype=float).reshape(-1)
    values = values[np.isfinite(values)]
    lo, hi = window
    pad = 0.25 * (hi - lo)
    kde_lo = lo if lo <= bounds[0] else lo - pad
    kde_hi = hi if hi >= bounds[1] else hi + pad
    kept = values[(values >= kde_lo) & (values <= kde_hi)]
    if kept.size < 2 or np.ptp(kept) <= 1e-12 * max(1.0, hi - lo):
        return None
    # The default bandwidth's Sheather-Jones root search divides by zero on its way for
    # flat samples (a uniform prior); Silverman's rule is the fallback if it fails.
    for bw in ("experimental", "silverman"):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            grid, density, _ = azs.kde(kept, custom_lims=(kde_lo, kde_hi), bw=bw,
                                       bound_correction=True, grid_len=grid_len)
        if np.isfinite(density).all():
            break
    density = density * kept.size / values.size
    shown = (grid >= lo) & (grid <= hi)
    return grid[shown], density[shown]
