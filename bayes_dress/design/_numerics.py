"""Small numerical building blocks shared by the design modules (no public API).

Everything here is deterministic and vectorised: log-space binomial and beta-binomial
mass functions, Beta log densities that are exact at the bounds, and the per-component
quadrature rule on the logit scale that the ESS and two-sample modules integrate with.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from scipy import special

#: Largest |logit| the quadrature rules go to: expit(-700) ~ 1e-304, still a normal float.
LOGIT_CAP = 700.0


def as_float_array(values, name: str) -> np.ndarray:
    """A 1-D float array copy of ``values`` (raises SpecError naming ``name``)."""
    from bayes_dress.errors import SpecError

    try:
        arr = np.atleast_1d(np.asarray(values, dtype=float)).copy()
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{name} must be numbers, got {values!r}") from exc
    if arr.ndim != 1:
        raise SpecError(f"{name} must be one-dimensional")
    return arr


def log_beta_pdf(x, a, b):
    """log Beta(x | a, b), broadcasting; exact 0 * log 0 = 0 at the bounds."""
    x = np.asarray(x, dtype=float)
    return (special.xlogy(a - 1.0, x) + special.xlog1py(b - 1.0, -x)
            - special.betaln(a, b))


def log_beta_pdf_logit(eta, a, b):
    """log of the Beta(a, b) density of theta at ``theta = expit(eta)`` (theta scale)."""
    log_t = special.log_expit(eta)
    log_1mt = special.log_expit(-eta)
    return (a - 1.0) * log_t + (b - 1.0) * log_1mt - special.betaln(a, b)


def log_binom_coef(n, k):
    """log C(n, k), broadcasting."""
    return special.gammaln(n + 1.0) - special.gammaln(k + 1.0) - special.gammaln(n - k + 1.0)


def log_betabinom_pmf(r, n, a, b):
    """log BetaBinomial(r | n, a, b), as RBesT's ``dBetaBinomial(log = TRUE)``."""
    return (log_binom_coef(n, r) + special.betaln(a + r, b + n - r) - special.betaln(a, b))


def log_binom_pmf(y, n, theta):
    """log Binomial(y | n, theta), exact at theta in {0, 1}."""
    theta = np.asarray(theta, dtype=float)
    return (log_binom_coef(n, y) + special.xlogy(y, theta) + special.xlog1py(n - y, -theta))


def beta_cdf(a, b, x, *, lower_tail: bool = True):
    """P(theta <= x) (``lower_tail``) or P(theta > x) for Beta(a, b), each tail computed
    directly so that probabilities near 1 keep their small complement."""
    x = np.clip(np.asarray(x, dtype=float), 0.0, 1.0)
    return special.betainc(a, b, x) if lower_tail else special.betaincc(a, b, x)


@cache
def _gauss_legendre(order: int) -> tuple[np.ndarray, np.ndarray]:
    nodes, weights = np.polynomial.legendre.leggauss(order)
    nodes.setflags(write=False)
    weights.setflags(write=False)
    return nodes, weights


def gauss_legendre(order: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [-1, 1] (cached, read-only)."""
    return _gauss_legendre(int(order))


def beta_logit_location(a, b):
    """Centre and spread of a Beta(a, b) on the logit scale (digamma/trigamma)."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    centre = special.digamma(a) - special.digamma(b)
    spread = np.sqrt(special.polygamma(1, a) + special.polygamma(1, b))
    return centre, spread


def beta_logit_rule(a, b, *, nodes: int = 129, tail: float = 1e-17, log: bool = False):
    """Quadrature for E[g(theta)] under each Beta(a, b) of an array of components.

    The integral is taken on the logit scale, eta = c + s * sinh(t) with c, s the logit
    centre and spread of the component, and the trapezoid rule on a uniform grid in t
    between the component's ``tail`` and ``1 - tail`` quantiles (capped at
    |eta| <= LOGIT_CAP). The sinh map resolves the peak with steps of a small fraction of
    ``s`` while reaching far into slowly decaying tails, and the trapezoid rule on it
    converges geometrically for the smooth integrands used here. Weights are renormalised
    to sum to 1 per component, so the rule is exact for constants.

    Parameters
    ----------
    a, b : array_like
        Beta parameters, broadcast to a common shape ``S``.
    nodes : int
        Nodes per component.
    tail : float
        Probability left out in each tail; 0 chooses limits for integrands that grow like
        1/theta and 1/(1 - theta) (the ELIR's): out to where theta^(a-1) (1-theta)^(b-1)
        has fallen by e^-45 beyond the bulk, at most |eta| = LOGIT_CAP.
    log : bool
        Return log weights (for integrands too large for the plain weights).

    Returns
    -------
    eta, weights : ndarray
        Arrays of shape ``S + (nodes,)``: logit-scale nodes and probability weights (or
        their logs).
    """
    a, b = np.broadcast_arrays(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    centre, spread = beta_logit_location(a, b)
    if tail > 0:
        with np.errstate(divide="ignore"):
            lo = special.logit(special.betaincinv(a, b, tail))
            hi = special.logit(special.betaincinv(a, b, 1.0 - tail))
    else:
        # Integrands growing like 1/theta and 1/(1 - theta): the weighted integrand decays
        # like exp((a - 1) eta) on the left and exp(-(b - 1) eta) on the right; go out to
        # where that has fallen by e^-45 from the peak region (at most LOGIT_CAP).
        centre0, spread0 = beta_logit_location(a, b)
        with np.errstate(divide="ignore"):
            lo = centre0 - 8 * spread0 - 45.0 / np.maximum(a - 1.0, 0.0)
            hi = centre0 + 8 * spread0 + 45.0 / np.maximum(b - 1.0, 0.0)
    lo = np.clip(np.nan_to_num(lo, nan=-LOGIT_CAP, neginf=-LOGIT_CAP), -LOGIT_CAP, LOGIT_CAP)
    hi = np.clip(np.nan_to_num(hi, nan=LOGIT_CAP, posinf=LOGIT_CAP), -LOGIT_CAP, LOGIT_CAP)
    lo = np.minimum(lo, centre - 8 * spread)
    hi = np.maximum(hi, centre + 8 * spread)
    lo = np.maximum(lo, -LOGIT_CAP)
    hi = np.minimum(hi, LOGIT_CAP)
    t_lo = np.arcsinh((lo - centre) / spread)
    t_hi = np.arcsinh((hi - centre) / spread)
    frac = np.linspace(0.0, 1.0, nodes)
    t = t_lo[..., None] + (t_hi - t_lo)[..., None] * frac
    eta = centre[..., None] + spread[..., None] * np.sinh(t)
    log_jac = np.log(spread)[..., None] + np.log(np.cosh(t))
    # Beta density on the logit scale: theta^a (1 - theta)^b / B(a, b).
    log_dens = (a[..., None] * special.log_expit(eta) + b[..., None] * special.log_expit(-eta)
                - special.betaln(a, b)[..., None])
    trap = np.ones(nodes)
    trap[[0, -1]] = 0.5
    log_w = log_dens + log_jac + np.log(trap)
    log_w -= special.logsumexp(log_w, axis=-1, keepdims=True)
    return (eta, log_w) if log else (eta, np.exp(log_w))


def logsumexp(values, axis=None, keepdims: bool = False):
    """``scipy.special.logsumexp`` that returns -inf (not nan) for all -inf input."""
    values = np.asarray(values, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = special.logsumexp(values, axis=axis, keepdims=keepdims)
    return out
