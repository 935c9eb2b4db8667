"""Summaries of a weighted sample, each with its Monte Carlo standard error.

For draws ``x_s`` from a proposal with self-normalised importance weights ``w_s``
(summing to 1), an expectation ``E[h(x)]`` is estimated by ``sum_s w_s h(x_s)``, with the
delta-method standard error of the self-normalised estimator

    MCSE = sqrt( sum_s w_s^2 (h(x_s) - estimate)^2 )

(asymptotically exact for independent draws when the weights have finite variance,
which a defensive mixture proposal guarantees; with Pareto-smoothed weights it is the
standard the PSIS literature uses). Everything here takes *log* weights, normalised or
not, and works for any weighted sample: importance sampling, or MCMC draws with
uniform weights (then the MCSEs ignore autocorrelation: use MCMC tools for those).

* mean, variance and SD with MCSE;
* CDF at a value and tail probabilities with MCSE (``h`` an indicator);
* quantiles: the weighted quantile (inverse of the weighted ECDF, interpolated between
  mid-points of the weight steps) with an MCSE from the probability scale: with
  ``sigma_F`` the MCSE of the CDF at the quantile,
  ``(Q(p + 2 sigma_F) - Q(p - 2 sigma_F)) / 4`` (no density estimate needed; the same
  idea as the ``posterior`` package's quantile MCSE; the +-2 sigma window steadies the
  slope: with +-1 the z-scores of tail quantiles had SD 1.1 at S = 2000, with +-2 SD
  0.98-1.04 at S = 2000 and 0.9-1.0 at S = 16000, in 400-1500 repetitions);
* an effective sample size per quantity: ``Var(h) / MCSE^2`` (for a quantile:
  ``p (1 - p) / sigma_F^2``), and the weights' ``1 / sum w_s^2``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

#: Half-width, in MCSEs of the CDF, of the window over which a quantile's MCSE is taken.
QUANTILE_WINDOW = 2.0


@dataclass(frozen=True)
class Estimate:
    """A Monte Carlo estimate: value, its standard error, and the effective sample size
    of the quantity (``nan`` where not defined)."""

    value: float
    mcse: float
    ess: float = np.nan

    def z_score(self, reference: float) -> float:
        """(value - reference) / mcse."""
        return (self.value - reference) / self.mcse if self.mcse > 0 else (
            0.0 if self.value == reference else np.copysign(np.inf, self.value - reference))

    def __iter__(self):
        return iter((self.value, self.mcse))


def normalised_weights(log_weights) -> np.ndarray:
    """Weights summing to one from (unnormalised) log weights."""
    lw = np.asarray(log_weights, dtype=float)
    if lw.ndim != 1 or lw.size == 0:
        raise ValueError("log weights must be a non-empty 1-D array")
    if np.any(np.isnan(lw)) or np.any(lw == np.inf):
        raise ValueError("log weights must not be NaN or +inf")
    total = logsumexp(lw)
    if not np.isfinite(total):
        raise ValueError("every weight is zero")
    return np.exp(lw - total)


def _pair(x, log_weights):
    x = np.asarray(x, dtype=float)
    w = normalised_weights(log_weights)
    if x.shape != w.shape:
        raise ValueError(f"values {x.shape} and weights {w.shape} differ in shape")
    return x, w


def weights_ess(log_weights) -> float:
    """Effective sample size of the weights, ``1 / sum w_s^2`` (Kish)."""
    w = normalised_weights(log_weights)
    return float(1.0 / np.sum(w * w))


def _expectation(h, w) -> Estimate:
    value = float(np.sum(w * h))
    dev = h - value
    var_mc = float(np.sum(w * w * dev * dev))
    var_h = float(np.sum(w * dev * dev))
    mcse = np.sqrt(var_mc)
    ess = var_h / var_mc if var_mc > 0 else np.nan
    return Estimate(value, mcse, ess)


def mean(x, log_weights) -> Estimate:
    """Weighted mean and its MCSE."""
    x, w = _pair(x, log_weights)
    return _expectation(x, w)


def variance(x, log_weights) -> Estimate:
    """Weighted variance ``sum w (x - m)^2`` and its MCSE (delta method, the estimated
    mean's own error included to first order)."""
    x, w = _pair(x, log_weights)
    m = np.sum(w * x)
    v = float(np.sum(w * (x - m) ** 2))
    dev = (x - m) ** 2 - v
    var_mc = float(np.sum(w * w * dev * dev))
    var_h = float(np.sum(w * dev * dev))
    return Estimate(v, np.sqrt(var_mc), var_h / var_mc if var_mc > 0 else np.nan)


def sd(x, log_weights) -> Estimate:
    """Weighted standard deviation with MCSE ``MCSE(var) / (2 sd)``."""
    v = variance(x, log_weights)
    s = np.sqrt(v.value)
    return Estimate(float(s), v.mcse / (2.0 * s) if s > 0 else np.nan, v.ess)


def cdf(x, log_weights, at: float) -> Estimate:
    """``P(X <= at)`` with MCSE."""
    x, w = _pair(x, log_weights)
    return _expectation((x <= at).astype(float), w)


def prob_above(x, log_weights, threshold: float) -> Estimate:
    """``P(X > threshold)`` with MCSE."""
    x, w = _pair(x, log_weights)
    return _expectation((x > threshold).astype(float), w)


def prob_below(x, log_weights, threshold: float) -> Estimate:
    """``P(X < threshold)`` with MCSE."""
    x, w = _pair(x, log_weights)
    return _expectation((x < threshold).astype(float), w)


def probability(event, log_weights) -> Estimate:
    """Probability of any event given as a boolean array over the draws (e.g. a joint
    event ``(rate1 > a) & (rate2 < b)``), with MCSE."""
    event = np.asarray(event, dtype=bool)
    _, w = _pair(event.astype(float), log_weights)
    return _expectation(event.astype(float), w)


class _SortedSample:
    """Sorted draws with mid-point cumulative weights, for quantiles."""

    def __init__(self, x, w):
        order = np.argsort(x, kind="stable")
        self.x = x[order]
        self.w = w[order]
        cum = np.cumsum(self.w)
        self.mid = cum - 0.5 * self.w

    def quantile(self, p):
        return np.interp(p, self.mid, self.x)


def quantile(x, log_weights, prob: float) -> Estimate:
    """Weighted quantile with MCSE (see the module docstring)."""
    return quantiles(x, log_weights, [prob])[0]


def quantiles(x, log_weights, probs) -> list[Estimate]:
    """Weighted quantiles at several probabilities (one sort)."""
    x, w = _pair(x, log_weights)
    sample = _SortedSample(x, w)
    out = []
    for p in np.atleast_1d(np.asarray(probs, dtype=float)):
        if not 0.0 < p < 1.0:
            raise ValueError(f"quantile probability must be in (0, 1), not {p}")
        q = float(sample.quantile(p))
        ind = (x <= q).astype(float)
        sigma_f = float(np.sqrt(np.sum(w * w * (ind - p) ** 2)))
        lo = float(sample.quantile(max(p - QUANTILE_WINDOW * sigma_f, 0.0)))
        hi = float(sample.quantile(min(p + QUANTILE_WINDOW * sigma_f, 1.0)))
        ess = p * (1.0 - p) / sigma_f**2 if sigma_f > 0 else np.nan
        out.append(Estimate(q, (hi - lo) / (2.0 * QUANTILE_WINDOW), ess))
    return out


def summary(x, log_weights, probs=(0.025, 0.25, 0.5, 0.75, 0.975)) -> dict[str, Estimate]:
    """Mean, SD and quantiles of one quantity, each an :class:`Estimate`."""
    out = {"mean": mean(x, log_weights), "sd": sd(x, log_weights)}
    for p, est in zip(probs, quantiles(x, log_weights, probs), strict=True):
        out[f"q{100 * p:g}"] = est
    return out
