"""Pareto-smoothed importance sampling (Vehtari, Simpson, Gelman, Yao & Gabry 2024,
JMLR 25(72)): smoothed log weights and the Pareto k-hat diagnostic.

Uses arviz-stats' implementation (``arviz_stats.base.array_stats.psislw``, which takes
the *negated* log ratios, as its LOO callers pass them) when it imports; otherwise the
same algorithm here: fit a generalized Pareto distribution to the largest
``min(S / 5, 3 sqrt(S))`` weights (Zhang & Stephens 2009 with the weakly informative
prior on k of arviz/loo) and replace them by the expected order statistics of the fit,
truncated at the largest raw weight.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

#: k-hat above this: the importance-sampling estimate is not trustworthy (Vehtari et
#: al. 2024 use min(1 - 1/log10(S), 0.7); 0.7 is the S-independent ceiling).
KHAT_THRESHOLD = 0.7


def psis(log_ratios: np.ndarray, *, backend: str = "auto") -> tuple[np.ndarray, float]:
    """Pareto-smooth the log importance ratios of one sample.

    Parameters
    ----------
    log_ratios : (S,) array
        Unnormalised log weights; ``-inf`` entries (zero weight) are allowed.
    backend : "auto", "arviz" or "own"

    Returns
    -------
    log_weights : (S,) array
        Smoothed log weights, normalised (``logsumexp == 0``).
    khat : float
        Estimated Pareto shape of the weight distribution's right tail; ``-inf`` when
        every weight is the same (no tail to fit).
    """
    lr = np.asarray(log_ratios, dtype=float)
    if lr.ndim != 1:
        raise ValueError("psis takes one sample, a 1-D array")
    if np.any(np.isnan(lr)) or np.any(lr == np.inf):
        raise ValueError("log ratios must not be NaN or +inf")
    finite = np.isfinite(lr)
    if not finite.any():
        raise ValueError("every importance weight is zero")
    if np.ptp(lr[finite]) == 0.0:
        out = np.where(finite, 0.0, -np.inf)
        return out - logsumexp(out), -np.inf
    if backend in ("auto", "arviz"):
        try:
            from arviz_stats.base import array_stats
        except ImportError:
            if backend == "arviz":
                raise
        else:
            # arviz-stats cannot take -inf: smooth the finite part (a zero weight stays
            # zero, and its draws are not in the tail).
            lw = np.full(lr.shape, -np.inf)
            smoothed, khat = array_stats.psislw(-lr[finite])
            lw[finite] = smoothed
            return lw - logsumexp(lw), float(khat)
    return _psis_own(lr)


def _psis_own(lr: np.ndarray) -> tuple[np.ndarray, float]:
    finite = np.isfinite(lr)
    out = np.full(lr.shape, -np.inf)
    x = lr[finite] - lr[finite].max()
    n = x.size
    tail = int(min(np.floor(0.2 * n), np.floor(3.0 * np.sqrt(n))))
    if tail < 5:
        out[finite] = x
        return out - logsumexp(out), np.inf
    order = np.argsort(x)
    tail_ids = order[n - tail:]
    cutoff = x[order[n - tail - 1]]
    tail_w = np.exp(x[tail_ids])
    khat, sigma = gpdfit(tail_w - np.exp(cutoff))
    if np.isfinite(khat):
        p = (np.arange(tail) + 0.5) / tail
        smoothed = np.exp(cutoff) + _gp_quantile(p, khat, sigma)
        smoothed = np.minimum(smoothed, tail_w.max())
        x = x.copy()
        x[tail_ids] = np.log(smoothed)
    out[finite] = x
    return out - logsumexp(out), float(khat)


def gpdfit(x: np.ndarray) -> tuple[float, float]:
    """Generalized Pareto fit to positive exceedances ``x`` (any order): Zhang &
    Stephens' empirical Bayes estimate, with the k prior of arviz/loo (a pseudo-sample
    of 10 at k = 0.5). Returns ``(k, sigma)``."""
    x = np.sort(np.asarray(x, dtype=float))
    n = x.size
    prior_bs, prior_k = 3.0, 10.0
    m_est = 30 + int(np.sqrt(n))
    xstar = x[int(n / 4 + 0.5) - 1]
    if xstar <= x[0]:
        return np.nan, np.nan
    b = 1.0 - np.sqrt(m_est / (np.arange(1, m_est + 1) - 0.5))
    b /= prior_bs * xstar
    b += 1.0 / x[-1]
    k = np.mean(np.log1p(-b[:, None] * x), axis=1)
    log_lik = n * (np.log(-b / k) - k - 1.0)
    weights = np.exp(log_lik - logsumexp(log_lik))
    keep = weights >= 10 * np.finfo(float).eps
    weights, b = weights[keep], b[keep]
    weights /= weights.sum()
    b_post = np.sum(b * weights)
    k_post = np.mean(np.log1p(-b_post * x))
    sigma = -k_post / b_post
    k_post = (n * k_post + prior_k * 0.5) / (n + prior_k)
    return float(k_post), float(sigma)


def _gp_quantile(p, k, sigma):
    if k == 0.0:
        return -sigma * np.log1p(-p)
    return sigma * np.expm1(-k * np.log1p(-p)) / k
