"""The beta-binomial model: theta_i ~ Beta(m kappa, (1 - m) kappa), kappa = phi^-2.

NUTS samples (m, phi) under the marginal beta-binomial likelihood; each study rate is
then drawn exactly from its conditional posterior.
"""

from __future__ import annotations

import numpy as np

from bayes_dress.models.base import STUDY_DIM, Quantity, SingleOutcomeModel, rate


class BetaBinomial(SingleOutcomeModel):
    """theta_i ~ Beta(m kappa, (1 - m) kappa), kappa = phi^-2; y_i ~ Binomial(n_i, theta_i)."""

    name = "beta_binomial"
    quantities = (
        rate("mean_rate"), rate("theta_new"), Quantity("sd_rates", support="positive"),
        Quantity("m", support="unit", kind="parameter"),
        Quantity("phi", support="positive", kind="parameter"),
        Quantity("kappa", support="positive"), rate("theta", STUDY_DIM),
    )

    def build_likelihood(self, events, totals, priors, shared):
        import pymc as pm

        m = self.prior_variable("m", priors, shared)
        phi = self.prior_variable("phi", priors, shared)
        kappa = phi**-2
        pm.BetaBinomial("y", n=totals, alpha=m * kappa, beta=(1 - m) * kappa,
                        observed=events, dims=STUDY_DIM)

    def log_likelihood(self, draws, events, totals):
        from scipy import stats

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

MODEL = BetaBinomial()
