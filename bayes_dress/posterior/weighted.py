"""A posterior made of weighted draws (importance sampling), with their Monte Carlo error.

Each key has its draws and log weights (the hyperparameters share one set of weights;
a study's quantities have their own, see :mod:`bayes_dress.engines.importance`). The
statistics and their standard errors are those of a self-normalised importance sampler
(:mod:`bayes_dress.posterior.weighted_stats`). There are no chains: convergence figures
(R-hat, bulk and tail ESS) are NaN; the engine's reliability is its Pareto k-hat.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from bayes_dress.posterior import weighted_stats as stats
from bayes_dress.posterior.base import Key, Posterior
from bayes_dress.posterior.draws import bounded_density


class WeightedPosterior(Posterior):
    """Weighted draws per key.

    Parameters
    ----------
    samples : mapping of Key to (values, log_weights)
        Both (S,), in reading order.
    """

    kind = "weighted draws"

    def __init__(self, samples: Mapping[Key, tuple[np.ndarray, np.ndarray]]):
        self.samples = {k: (np.asarray(v, dtype=float), np.asarray(lw, dtype=float))
                        for k, (v, lw) in samples.items()}

    @property
    def keys(self):
        return tuple(self.samples)

    def _each(self, keys, function):
        return np.array([function(*self.samples[k]) for k in keys], dtype=float)

    def mean(self, keys):
        return self._each(keys, lambda x, lw: stats.mean(x, lw).value)

    def sd(self, keys):
        return self._each(keys, lambda x, lw: stats.sd(x, lw).value)

    def quantile(self, keys, probs):
        probs = list(probs)
        out = np.empty((len(probs), len(keys)))
        for j, key in enumerate(keys):
            for i, estimate in enumerate(stats.quantiles(*self.samples[key], probs)):
                out[i, j] = estimate.value
        return out

    def hdi(self, keys, prob=0.95):
        """The shortest interval holding ``prob`` of the weighted mass."""
        out = []
        for key in keys:
            x, lw = self.samples[key]
            grid = np.linspace(0.0, 1.0 - prob, 201)
            lower = np.array([q.value for q in stats.quantiles(x, lw, list(grid))])
            upper = np.array([q.value for q in stats.quantiles(x, lw, list(grid + prob))])
            best = int(np.argmin(upper - lower))
            out.append((lower[best], upper[best]))
        return np.array(out, dtype=float).reshape(-1, 2)

    def cdf(self, key, x):
        values, lw = self.samples[key]
        x = np.asarray(x, dtype=float)
        return np.array([stats.cdf(values, lw, float(v)).value for v in x.reshape(-1)]
                        ).reshape(x.shape)

    def prob_above(self, keys, thresholds):
        found = [stats.prob_above(*self.samples[k], float(t))
                 for k, t in zip(keys, thresholds, strict=True)]
        return (np.array([e.value for e in found]), np.array([e.mcse for e in found]))

    def mean_error(self, keys):
        return self._each(keys, lambda x, lw: stats.mean(x, lw).mcse)

    def quantile_prob_error(self, keys, probs):
        out = np.empty((len(list(probs)), len(keys)))
        for j, key in enumerate(keys):
            values, lw = self.samples[key]
            for i, q in enumerate(stats.quantiles(values, lw, list(probs))):
                out[i, j] = stats.cdf(values, lw, q.value).mcse
        return out

    def cdf_error(self, key, x):
        values, lw = self.samples[key]
        x = np.asarray(x, dtype=float)
        return np.array([stats.cdf(values, lw, float(v)).mcse for v in x.reshape(-1)]
                        ).reshape(x.shape)

    def convergence(self, keys):
        nan = np.full(len(keys), np.nan)
        return {"mcse_mean": self.mean_error(keys), "ess_bulk": nan, "ess_tail": nan.copy(),
                "r_hat": nan.copy()}

    def sample(self, key, n, rng):
        values, lw = self.samples[key]
        return rng.choice(values, n, p=stats.normalised_weights(lw))

    def expectation(self, key, function: Callable[[np.ndarray], np.ndarray]):
        values, lw = self.samples[key]
        return np.asarray(function(values)) @ stats.normalised_weights(lw)

    def density(self, key, *, bounds, window):
        rng = np.random.default_rng(0)
        return bounded_density(self.sample(key, 8000, rng), bounds=bounds, window=window)

    def to_groups(self) -> dict:
        raise TypeError("a weighted (importance-sampling) posterior is a reference only and "
                        "is not saved")
