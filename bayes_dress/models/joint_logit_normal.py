"""The joint logit-normal model of two outcomes with correlated study effects.

For study i, logit(p_i1) = mu_1 + tau_1 z_i1 and logit(p_i2) = mu_2 + tau_2 (rho z_i1 +
sqrt(1 - rho^2) z_i2), non-centred, z ~ Normal(0, I): the bivariate binomial-logit-normal
model of diagnostic meta-analysis (Chu and Cole 2006), here for two outcomes of single-arm
studies (benefit and harm). Reported per outcome as the univariate models report (study
rates, mean rate, new-study rate, SD of rates) plus rho; the new-study rates of the two
outcomes are drawn jointly, so benefit-risk statements carry the correlation.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from bayes_dress.models.base import OUTCOME_DIM, STUDY_DIM, Model, Quantity, rate
from bayes_dress.models.logit_normal import logit_normal_moments


def correlated(z: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """The second outcome's standardised effect: rho z_1 + sqrt(1 - rho^2) z_2, for z of
    shape (..., 2, ...) with the outcome on axis ``-2`` (study last) or ``-1``."""
    return rho * z[0] + np.sqrt(np.maximum(1.0 - rho * rho, 0.0)) * z[1]


class JointLogitNormal(Model):
    """Two outcomes, correlated logit-normal study effects."""

    name = "joint_logit_normal"
    quantities = (
        rate("mean_rate", OUTCOME_DIM), rate("theta_new", OUTCOME_DIM),
        Quantity("sd_rates", (OUTCOME_DIM,), "positive"),
        Quantity("mu", (OUTCOME_DIM,), kind="parameter"),
        Quantity("tau", (OUTCOME_DIM,), "positive", kind="parameter"),
        Quantity("rho", (), "correlation", kind="parameter"),
        Quantity("z", (OUTCOME_DIM, STUDY_DIM), kind="latent"),
        rate("theta", OUTCOME_DIM, STUDY_DIM),
    )

    def build(self, data, priors, *, shared=None):
        import pymc as pm
        import pytensor.tensor as pt

        with pm.Model(coords=self.coords(data)) as model:
            events, totals = self.data_containers(data)
            mu = self.prior_variable("mu", priors, shared, dims=OUTCOME_DIM)
            tau = self.prior_variable("tau", priors, shared, dims=OUTCOME_DIM)
            rho = self.prior_variable("rho", priors, shared)
            z = pm.Normal("z", 0.0, 1.0, dims=(OUTCOME_DIM, STUDY_DIM))
            second = rho * z[0] + pt.sqrt(1.0 - rho * rho) * z[1]
            logit = pt.stack([mu[0] + tau[0] * z[0], mu[1] + tau[1] * second])
            pm.Binomial("y", n=totals, logit_p=logit, observed=events,
                        dims=(OUTCOME_DIM, STUDY_DIM))
        return model

    def _logits(self, draws) -> np.ndarray:
        mu, tau, rho, z = draws["mu"], draws["tau"], draws["rho"], draws["z"]
        z1, z2 = z[..., 0, :], z[..., 1, :]
        r = rho[..., None]
        second = r * z1 + np.sqrt(np.maximum(1.0 - r * r, 0.0)) * z2
        return np.stack([mu[..., 0, None] + tau[..., 0, None] * z1,
                         mu[..., 1, None] + tau[..., 1, None] * second], axis=-2)

    def log_likelihood(self, draws, events, totals):
        from scipy import stats

        return stats.binom.logpmf(events, totals, expit(self._logits(draws)))

    def derived(self, draws, events, totals, rng, priors):
        mu, tau, rho = draws["mu"], draws["tau"], draws["rho"]
        mean, sd = logit_normal_moments(mu, tau)
        new = rng.standard_normal((2, *rho.shape))
        second = rho * new[0] + np.sqrt(np.maximum(1.0 - rho * rho, 0.0)) * new[1]
        theta_new = np.stack([expit(mu[..., 0] + tau[..., 0] * new[0]),
                              expit(mu[..., 1] + tau[..., 1] * second)], axis=-1)
        return {"theta": expit(self._logits(draws)), "mean_rate": mean, "sd_rates": sd,
                "theta_new": theta_new}


MODEL = JointLogitNormal()
