"""The logit-normal (binomial-normal) model: logit(theta_i) = mu + tau z_i, non-centred.

Also home of :func:`logit_normal_moments`, the mean and SD of rates under a normal on
the logit scale, which the joint model and the exact engine use too.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from scipy import special
from scipy.special import expit

from bayes_dress.models.base import STUDY_DIM, Quantity, SingleOutcomeModel, rate

#: Half-width of the z range for logit-normal expectations: Normal mass beyond 9 SD is
#: 2e-19, below anything reported.
Z_HALF_WIDTH = 9.0
#: (largest tau, trapezoid step in z). The trapezoid rule on an analytic integrand has
#: error ~ exp(-2 pi^2 / (tau h)) (invlogit has poles at imaginary distance pi / tau in
#: z), so tau h <= 0.5 keeps it below 1e-17; the normal density's own term,
#: exp(-2 pi^2 / h^2), is 4e-35 at h = 0.5, so no step is coarser than that. Above the
#: last bucket the split rule of _large_tau_moments is used.
_TRAPEZOID_BUCKETS = ((1.0, 0.5), (2.0, 0.25), (8.0, 1 / 16))


@cache
def _trapezoid(step: float) -> tuple[np.ndarray, np.ndarray]:
    nodes = np.arange(-Z_HALF_WIDTH, Z_HALF_WIDTH + step / 2, step)
    weights = np.exp(-0.5 * nodes**2)
    return nodes, weights / weights.sum()


@cache
def _half_line_rule() -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on (0, 45], 20 nodes on each panel of width 1.5:
    exact to double precision for integrands as smooth as invlogit(-t) on that scale
    (invlogit(-45) = 3e-20 ends the range)."""
    x, w = np.polynomial.legendre.leggauss(20)
    edges = np.arange(0.0, 45.0 + 1e-9, 1.5)
    nodes = (edges[:-1, None] + (x[None, :] + 1) * 0.75).reshape(-1)
    return nodes, np.tile(w * 0.75, len(edges) - 1)


def _large_tau_moments(mu: np.ndarray, tau: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """E[f(X)] for f = invlogit and invlogit^2, X ~ Normal(mu, tau), tau large.

    For large tau, f(X) is almost the step 1[X > 0]; split it off exactly:
    E[f(X)] = P(X > 0) + ∫_{-inf}^0 f(t) p(t) dt - ∫_0^inf (1 - f(t)) p(t) dt, where p is
    the normal density. Both remainders decay like exp(-|t|) whatever tau is, so a fixed
    rule on |t| <= 45 integrates them; the normal factor is smooth on the scale tau.
    """
    t, w = _half_line_rule()
    mu, tau = mu[:, None], tau[:, None]

    def density(x):
        return np.exp(-0.5 * ((x - mu) / tau) ** 2) / (tau * np.sqrt(2 * np.pi))

    below, above = density(-t), density(t)
    left = expit(-t)  # f(-t) for f = invlogit; 1 - f(t) = invlogit(-t) as well
    step = special.ndtr(mu[:, 0] / tau[:, 0])
    mean = step + (below * left) @ w - (above * left) @ w
    # invlogit^2: f(-t) = invlogit(-t)^2 and 1 - f(t) = invlogit(-t) (1 + invlogit(t)).
    second = step + (below * left**2) @ w - (above * (left * (1 + expit(t)))) @ w
    return mean, second


def logit_normal_moments(mu, tau) -> tuple[np.ndarray, np.ndarray]:
    """Mean and SD of ``invlogit(mu + tau Z)``, ``Z ~ Normal(0, 1)``, by quadrature.

    Mean and variance to ~1e-12 for any tau (checked against adaptive quadrature in the
    tests); the variance is taken about the mean, so small SDs (tau -> 0) stay exact.
    """
    mu, tau = np.broadcast_arrays(np.asarray(mu, dtype=float), np.asarray(tau, dtype=float))
    flat_mu, flat_tau = mu.reshape(-1), tau.reshape(-1)
    mean = np.empty_like(flat_mu)
    variance = np.empty_like(flat_mu)
    todo = np.ones(flat_mu.shape, dtype=bool)
    for limit, step in _TRAPEZOID_BUCKETS:
        sel = todo & (flat_tau <= limit)
        if not sel.any():
            continue
        nodes, weights = _trapezoid(step)
        values = expit(flat_mu[sel, None] + flat_tau[sel, None] * nodes)
        mean[sel] = values @ weights
        variance[sel] = ((values - mean[sel, None]) ** 2) @ weights
        todo &= ~sel
    if todo.any():
        big_mean, big_second = _large_tau_moments(flat_mu[todo], flat_tau[todo])
        mean[todo], variance[todo] = big_mean, big_second - big_mean**2
    sd = np.sqrt(np.maximum(variance, 0.0))
    return mean.reshape(mu.shape), sd.reshape(mu.shape)


class LogitNormal(SingleOutcomeModel):
    """logit(theta_i) = mu + tau z_i, z_i ~ Normal(0, 1); y_i ~ Binomial(n_i, theta_i)."""

    name = "logit_normal"
    quantities = (
        rate("mean_rate"), rate("theta_new"), Quantity("sd_rates", support="positive"),
        Quantity("mu", kind="parameter"), Quantity("tau", support="positive", kind="parameter"),
        Quantity("z", (STUDY_DIM,), kind="latent"), rate("theta", STUDY_DIM),
    )

    def build_likelihood(self, events, totals, priors, shared):
        import pymc as pm

        mu = self.prior_variable("mu", priors, shared)
        tau = self.prior_variable("tau", priors, shared)
        z = pm.Normal("z", 0.0, 1.0, dims=STUDY_DIM)
        pm.Binomial("y", n=totals, logit_p=mu + tau * z, observed=events, dims=STUDY_DIM)

    def log_likelihood(self, draws, events, totals):
        from scipy import stats

        logit = draws["mu"][..., None] + draws["tau"][..., None] * draws["z"]
        return stats.binom.logpmf(events, totals, expit(logit))

    def derived(self, draws, events, totals, rng, priors):
        mu, tau, z = draws["mu"], draws["tau"], draws["z"]
        mean, sd = logit_normal_moments(mu, tau)
        return {
            "theta": expit(mu[..., None] + tau[..., None] * z),
            "mean_rate": mean,
            "theta_new": expit(mu + tau * rng.standard_normal(mu.shape)),
            "sd_rates": sd,
        }

MODEL = LogitNormal()
