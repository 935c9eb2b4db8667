"""A posterior known as its marginals: one tabulated CDF per quantity (the exact engine).

Each :class:`Marginal` is a scalar posterior, exact up to the integrator's numerical
tolerance: its CDF tabulated on increasing points and interpolated monotonically (or a
SciPy distribution where the posterior is in closed form). There are no joint draws:
quantities cannot be combined draw by draw, only each on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import xarray as xr
from scipy.interpolate import PchipInterpolator

from bayes_dress.posterior.base import Key, Posterior

#: The group of a saved fit that holds exact marginals.
MARGINALS_GROUP = "marginals"
#: Quantile points used for expectations and densities over a marginal: the midpoint
#: rule on the probability scale.
EXPECTATION_NODES = 4000


@dataclass
class Marginal:
    """A scalar posterior: CDF tabulated at increasing ``x``, plus mean and SD.

    ``mean`` is ``inf`` where the posterior mean does not exist (kappa under a prior with
    positive density at phi = 0, for instance).
    """

    x: np.ndarray
    cdf: np.ndarray
    mean: float
    sd: float
    #: A frozen SciPy distribution when the posterior is known in closed form.
    dist: object | None = field(default=None, repr=False)
    _inverse: PchipInterpolator | None = field(default=None, repr=False)
    _forward: PchipInterpolator | None = field(default=None, repr=False)

    def __post_init__(self):
        cdf = np.clip(np.maximum.accumulate(self.cdf), 0.0, 1.0)
        keep = np.concatenate([[True], np.diff(cdf) > 1e-15])
        self.x, self.cdf = np.asarray(self.x)[keep], cdf[keep]

    @classmethod
    def point(cls, value: float) -> Marginal:
        """All mass at ``value`` (the common-effect model's zero SD of rates)."""
        return cls.closed_form(_PointMass(value))

    @classmethod
    def closed_form(cls, dist) -> Marginal:
        p = np.linspace(0.0, 1.0, 2001)
        return cls(dist.ppf(p), p, float(dist.mean()), float(dist.std()), dist=dist)

    def quantile(self, p):
        p = np.asarray(p, dtype=float)
        if self.dist is not None:
            return self.dist.ppf(p)
        if len(self.x) < 3:
            return np.interp(p, self.cdf, self.x)
        if self._inverse is None:
            self._inverse = PchipInterpolator(self.cdf, self.x, extrapolate=False)
        values = self._inverse(np.clip(p, self.cdf[0], self.cdf[-1]))
        return np.where(p <= self.cdf[0], self.x[0], np.where(p >= self.cdf[-1],
                                                               self.x[-1], values))

    def cdf_at(self, x):
        """The CDF at ``x`` (exact for a closed form, else monotone interpolation)."""
        x = np.asarray(x, dtype=float)
        if self.dist is not None:
            return self.dist.cdf(x)
        if len(self.x) < 3:
            return np.interp(x, self.x, self.cdf)
        if self._forward is None:
            self._forward = PchipInterpolator(self.x, self.cdf, extrapolate=False)
        inside = self._forward(np.clip(x, self.x[0], self.x[-1]))
        return np.clip(np.where(x < self.x[0], 0.0, np.where(x >= self.x[-1], 1.0, inside)),
                       0.0, 1.0)

    def prob_above(self, threshold: float) -> float:
        return float(1.0 - self.cdf_at(threshold))

    def hdi(self, prob: float = 0.95) -> tuple[float, float]:
        """Shortest interval holding ``prob``: a search over its lower tail probability."""
        lower_tail = np.linspace(0.0, 1.0 - prob, 801)
        width = self.quantile(lower_tail + prob) - self.quantile(lower_tail)
        best = int(np.argmin(width))
        return float(self.quantile(lower_tail[best])), float(self.quantile(
            lower_tail[best] + prob))


class _PointMass:
    """A degenerate distribution with the SciPy methods Marginal uses."""

    def __init__(self, value: float):
        self.value = float(value)

    def ppf(self, p):
        return np.full(np.shape(p), self.value)

    def cdf(self, x):
        return np.where(np.asarray(x, dtype=float) >= self.value, 1.0, 0.0)

    def sf(self, x):
        return 1.0 - self.cdf(x)

    def mean(self):
        return self.value

    def std(self):
        return 0.0




class MarginalsPosterior(Posterior):
    """An exact posterior: a :class:`Marginal` per key.

    Parameters
    ----------
    marginals : mapping of Key to Marginal
        In reading order.
    tolerance : float
        The integrator's numerical tolerance on any reported value: the standard error
        its numbers are compared with.
    """

    kind = "marginals"

    def __init__(self, marginals: Mapping[Key, Marginal], *, tolerance: float):
        self.marginals = dict(marginals)
        self.tolerance = float(tolerance)

    @property
    def keys(self):
        return tuple(self.marginals)

    def mean(self, keys):
        return np.array([self.marginals[k].mean for k in keys], dtype=float)

    def sd(self, keys):
        return np.array([self.marginals[k].sd for k in keys], dtype=float)

    def quantile(self, keys, probs):
        probs = np.asarray(list(probs), dtype=float)
        values = [np.asarray(self.marginals[k].quantile(probs), dtype=float) for k in keys]
        return np.stack(values, axis=1) if values else np.empty((len(probs), 0))

    def hdi(self, keys, prob=0.95):
        return np.array([self.marginals[k].hdi(prob) for k in keys], dtype=float).reshape(-1, 2)

    def cdf(self, key, x):
        return np.asarray(self.marginals[key].cdf_at(x), dtype=float)

    def prob_above(self, keys, thresholds):
        p = np.array([self.marginals[k].prob_above(t) for k, t in zip(keys, thresholds,
                                                                       strict=True)])
        return p, np.zeros_like(p)

    def mean_error(self, keys):
        return np.full(len(keys), self.tolerance)

    def quantile_prob_error(self, keys, probs):
        return np.full((len(list(probs)), len(keys)), self.tolerance)

    def cdf_error(self, key, x):
        """The tolerance carried to the probability scale: the CDF's change over x +-
        tolerance, at least the tolerance itself (large where the density spikes)."""
        x = np.asarray(x, dtype=float)
        below, above = self.cdf(key, x - self.tolerance), self.cdf(key, x + self.tolerance)
        return np.maximum((above - below) / 2, self.tolerance)

    def convergence(self, keys):
        nan = np.full(len(keys), np.nan)
        return {"mcse_mean": np.zeros(len(keys)), "ess_bulk": nan, "ess_tail": nan.copy(),
                "r_hat": nan.copy()}

    def to_groups(self) -> dict:
        return {MARGINALS_GROUP: self._dataset()}

    def _dataset(self) -> xr.Dataset:
        keys = list(self.marginals)
        variables = {
            "name": ("quantity", np.array([k[0] for k in keys], dtype=str)),
            "outcome": ("quantity", np.array([k[1] for k in keys], dtype=str)),
            "study": ("quantity", np.array([k[2] for k in keys], dtype=str)),
            "mean": ("quantity", np.array([self.marginals[k].mean for k in keys])),
            "sd": ("quantity", np.array([self.marginals[k].sd for k in keys])),
        }
        for i, key in enumerate(keys):
            marginal = self.marginals[key]
            variables[f"x_{i}"] = (f"point_{i}", np.asarray(marginal.x, dtype=float))
            variables[f"cdf_{i}"] = (f"point_{i}", np.asarray(marginal.cdf, dtype=float))
        dataset = xr.Dataset(variables)
        dataset.attrs.update(tolerance=self.tolerance,
                             description="exact marginal posteriors: per quantity its CDF "
                                         "tabulated at increasing points (x_i, cdf_i)")
        return dataset

    def nodes(self, key: Key, n: int = EXPECTATION_NODES) -> np.ndarray:
        """The quantiles at (i + 0.5) / n: a quadrature of the marginal with equal
        weights (the midpoint rule on the probability scale)."""
        return np.asarray(self.marginals[key].quantile((np.arange(n) + 0.5) / n), dtype=float)

    def sample(self, key, n, rng):
        return np.asarray(self.marginals[key].quantile(rng.uniform(size=n)), dtype=float)

    def expectation(self, key, function: Callable[[np.ndarray], np.ndarray]):
        return np.asarray(function(self.nodes(key))).mean(axis=-1)

    def density(self, key, *, bounds, window):
        """The derivative of the CDF, by differences on a grid over the window: exact
        up to the tabulation, no kernel smoothing."""
        marginal = self.marginals[key]
        if marginal.sd == 0:  # a point mass (the common-effect model's zero SD of rates)
            return None
        lo, hi = window
        edges = np.linspace(lo, hi, 257)
        cdf = np.asarray(marginal.cdf_at(edges), dtype=float)
        if cdf[-1] - cdf[0] <= 0:
            return None
        centres = 0.5 * (edges[1:] + edges[:-1])
        return centres, np.diff(cdf) / np.diff(edges)


def marginal_keys(marginals: Mapping[Key, Marginal], order: Sequence[Key]) -> list[Key]:
    """The keys of ``marginals`` in the order of ``order`` (others last)."""
    rank = {k: i for i, k in enumerate(order)}
    return sorted(marginals, key=lambda k: rank.get(k, len(rank)))
