"""The models: PyMC graphs, and the quantities every model reports.

Each model does two things and nothing else:

* :meth:`Model.build` returns a PyMC model for one outcome's counts. Data and prior
  arguments are ``pm.Data`` containers, so a compiled model can be re-run on new counts
  or new prior values (without recompiling).
* :meth:`Model.derived` turns draws of the sampled parameters into the reported
  quantities, with NumPy, for posterior and prior draws alike:

  ``theta[study]``  each study's rate (shrunk, for the hierarchical models)
  ``mean_rate``     the population mean rate E[theta]
  ``theta_new``     the rate in a new study (the predictive distribution)
  ``sd_rates``      the between-study SD of rates
  plus the model's own heterogeneity parameters (``phi`` and ``kappa``, or ``tau``).

Sampling, output and plotting live elsewhere.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from functools import cache

import numpy as np
from scipy import special, stats
from scipy.special import expit

from bayes_dress.data import OutcomeData
from bayes_dress.errors import SpecError, choices
from bayes_dress.priors import Prior

STUDY_DIM = "study"
#: Reported quantities shared by every model, in reporting order.
POPULATION_QUANTITIES = ("mean_rate", "theta_new", "sd_rates")
#: Half-width of the z range for logit-normal expectations: Normal mass beyond 9 SD is
#: 2e-19, below anything reported.
Z_HALF_WIDTH = 9.0
#: (largest tau, trapezoid step in z). The trapezoid rule on an analytic integrand has
#: error ~ exp(-2 pi^2 / (tau h)) (invlogit has poles at imaginary distance pi / tau in
#: z), so tau h <= 0.5 keeps it below 1e-17; the normal density's own term,
#: exp(-2 pi^2 / h^2), is 4e-35 at h = 0.5, so no step is coarser than that. Above the
#: last bucket the split rule of _large_tau_moments is used.
_TRAPEZOID_BUCKETS = ((1.0, 0.5), (2.0, 0.25), (8.0, 1 / 16))

Draws = Mapping[str, np.ndarray]
#: Parameter -> the prior families one compiled graph holds for it.
SharedFamilies = Mapping[str, tuple[str, ...]]


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


def _data_containers(data: OutcomeData):
    import pymc as pm

    events = pm.Data("events", data.events, dims=STUDY_DIM)
    totals = pm.Data("totals", data.totals, dims=STUDY_DIM)
    return events, totals


class Model(ABC):
    """A model of study-level event counts."""

    #: Name of the model spec in ``models/NAME.toml``.
    name: str
    #: Parameters the sampler draws (the posterior group holds them and the derived ones).
    sampled: tuple[str, ...]
    #: Sampled parameters with a study dimension.
    study_level: tuple[str, ...] = ()

    def coords(self, data: OutcomeData) -> dict[str, list[str]]:
        return {STUDY_DIM: list(data.studies)}

    @abstractmethod
    def build(self, data: OutcomeData, priors: Mapping[str, Prior], *,
              shared: SharedFamilies | None = None):
        """The PyMC model for ``data`` under ``priors``; ``shared`` maps a parameter to
        the prior families its graph holds (see :meth:`Prior.add_to_model`)."""

    def data_values(self, data: OutcomeData, priors: Mapping[str, Prior], *,
                    shared: SharedFamilies | None = None) -> dict:
        """Values of every ``pm.Data`` container, for re-running a compiled model."""
        values = {"events": data.events, "totals": data.totals}
        for name, prior in priors.items():
            values.update(prior.data_values(name, (shared or {}).get(name)))
        return values

    def prior_variable(self, name: str, priors: Mapping[str, Prior],
                       shared: SharedFamilies | None, **kwargs):
        """Add parameter ``name`` with its prior to the PyMC model in context."""
        return priors[name].add_to_model(name, shared=(shared or {}).get(name), **kwargs)

    def sampled_draws(self, posterior):
        """The sampled parameters (those present) in a saved posterior, an xarray
        Dataset that also holds the derived quantities: a parameter the derived ones
        repeat per study (the common-effect rate, stored as theta[study]) is taken once.
        """
        draws = {}
        for name in self.sampled:
            if name not in posterior:
                continue
            values = posterior[name]
            if STUDY_DIM in values.dims and name not in self.study_level:
                values = values.isel({STUDY_DIM: 0}, drop=True)
            draws[name] = values
        return type(posterior)(draws)

    def prior_draws(self, priors: Mapping[str, Prior], n_studies: int,
                    rng: np.random.Generator, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
        """Draws of the sampled parameters from their priors."""
        draws = {}
        for name in self.sampled:
            size = (*shape, n_studies) if name in self.study_level else shape
            draws[name] = (priors[name].draw(rng, size) if name in priors
                           else rng.standard_normal(size))
        return draws

    @abstractmethod
    def log_likelihood(self, draws: Draws, events: np.ndarray, totals: np.ndarray
                       ) -> np.ndarray:
        """Log-likelihood of each study's count at each draw, shape (..., study): the
        likelihood the sampler used (marginal over study rates where it integrates
        them out)."""

    @abstractmethod
    def derived(self, draws: Draws, events: np.ndarray, totals: np.ndarray,
                rng: np.random.Generator, priors: Mapping[str, Prior]) -> dict[str, np.ndarray]:
        """Reported quantities from draws of the sampled parameters.

        ``events`` and ``totals`` are the counts the draws are conditioned on; prior
        draws pass zeros, so conditional draws reduce to draws from the prior.
        """


class BetaBinomial(Model):
    """theta_i ~ Beta(m kappa, (1 - m) kappa), kappa = phi^-2; y_i ~ Binomial(n_i, theta_i)."""

    name = "beta_binomial"
    sampled = ("m", "phi")

    def build(self, data, priors, *, shared=None):
        import pymc as pm

        with pm.Model(coords=self.coords(data)) as model:
            events, totals = _data_containers(data)
            m = self.prior_variable("m", priors, shared)
            phi = self.prior_variable("phi", priors, shared)
            kappa = phi**-2
            pm.BetaBinomial("y", n=totals, alpha=m * kappa, beta=(1 - m) * kappa,
                            observed=events, dims=STUDY_DIM)
        return model

    def log_likelihood(self, draws, events, totals):
        kappa = draws["phi"][..., None] ** -2.0
        m = draws["m"][..., None]
        return stats.betabinom.logpmf(events, totals, m * kappa, (1 - m) * kappa)

    def derived(self, draws, events, totals, rng, priors):
        m, phi = draws["m"], draws["phi"]
        kappa = phi**-2.0
        # Beta parameters underflow to 0 in the far tails of phi; the smallest positive
        # double keeps NumPy's Beta sampler defined and changes nothing measurable.
        alpha = np.maximum(m * kappa, np.finfo(float).tiny)
        beta = np.maximum((1 - m) * kappa, np.finfo(float).tiny)
        theta = rng.beta(alpha[..., None] + events, beta[..., None] + (totals - events))
        return {
            "theta": theta,
            "mean_rate": m,
            "theta_new": rng.beta(alpha, beta),
            "sd_rates": np.sqrt(m * (1 - m) / (kappa + 1)),
            "kappa": kappa,
        }


class LogitNormal(Model):
    """logit(theta_i) = mu + tau z_i, z_i ~ Normal(0, 1); y_i ~ Binomial(n_i, theta_i)."""

    name = "logit_normal"
    sampled = ("mu", "tau", "z")
    study_level = ("z",)

    def build(self, data, priors, *, shared=None):
        import pymc as pm

        with pm.Model(coords=self.coords(data)) as model:
            events, totals = _data_containers(data)
            mu = self.prior_variable("mu", priors, shared)
            tau = self.prior_variable("tau", priors, shared)
            z = pm.Normal("z", 0.0, 1.0, dims=STUDY_DIM)
            pm.Binomial("y", n=totals, logit_p=mu + tau * z, observed=events, dims=STUDY_DIM)
        return model

    def log_likelihood(self, draws, events, totals):
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


class CommonEffect(Model):
    """One rate for all studies: y_i ~ Binomial(n_i, theta)."""

    name = "common_effect"
    sampled = ("theta",)

    def build(self, data, priors, *, shared=None):
        import pymc as pm

        with pm.Model(coords=self.coords(data)) as model:
            events, totals = _data_containers(data)
            theta = self.prior_variable("theta", priors, shared)
            pm.Binomial("y", n=totals, p=theta, observed=events, dims=STUDY_DIM)
        return model

    def log_likelihood(self, draws, events, totals):
        return stats.binom.logpmf(events, totals, draws["theta"][..., None])

    def derived(self, draws, events, totals, rng, priors):
        theta = draws["theta"]
        return {
            "theta": np.repeat(theta[..., None], len(totals), axis=-1),
            "mean_rate": theta,
            "theta_new": theta,
            "sd_rates": np.zeros_like(theta),
        }


class Independent(Model):
    """No pooling: theta_i ~ prior independently; y_i ~ Binomial(n_i, theta_i)."""

    name = "independent"
    sampled = ("theta",)
    study_level = ("theta",)

    def build(self, data, priors, *, shared=None):
        import pymc as pm

        with pm.Model(coords=self.coords(data)) as model:
            events, totals = _data_containers(data)
            theta = self.prior_variable("theta", priors, shared, dims=STUDY_DIM)
            pm.Binomial("y", n=totals, p=theta, observed=events, dims=STUDY_DIM)
        return model

    def log_likelihood(self, draws, events, totals):
        return stats.binom.logpmf(events, totals, draws["theta"])

    def derived(self, draws, events, totals, rng, priors):
        theta = draws["theta"]
        # No population here: the mean and SD describe the included studies' rates, and
        # a new study's rate is its prior, which no study informs.
        return {
            "mean_rate": theta.mean(axis=-1),
            "theta_new": priors["theta"].draw(rng, theta.shape[:-1]),
            "sd_rates": theta.std(axis=-1),
        }


MODELS: dict[str, Model] = {m.name: m for m in (BetaBinomial(), LogitNormal(),
                                                 CommonEffect(), Independent())}


def get_model(name: str) -> Model:
    """The model called ``name``; the error lists the valid names."""
    if name not in MODELS:
        raise SpecError(f"unknown model '{name}'; valid: {choices(MODELS)}")
    return MODELS[name]
