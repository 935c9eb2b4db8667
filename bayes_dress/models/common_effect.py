"""The common-effect model: one rate for all studies, no heterogeneity (a comparator)."""

from __future__ import annotations

import numpy as np

from bayes_dress.models.base import STUDY_DIM, Quantity, SingleOutcomeModel, rate


class CommonEffect(SingleOutcomeModel):
    """One rate for all studies: y_i ~ Binomial(n_i, theta)."""

    name = "common_effect"
    # theta is sampled as one rate and reported once per study (all equal).
    quantities = (
        rate("mean_rate"), rate("theta_new"), Quantity("sd_rates", support="positive"),
        Quantity("theta", (STUDY_DIM,), support="unit", kind="parameter", sampled_dims=()),
    )

    def build_likelihood(self, events, totals, priors, shared):
        import pymc as pm

        theta = self.prior_variable("theta", priors, shared)
        pm.Binomial("y", n=totals, p=theta, observed=events, dims=STUDY_DIM)

    def log_likelihood(self, draws, events, totals):
        from scipy import stats

        return stats.binom.logpmf(events, totals, draws["theta"][..., None])

    def derived(self, draws, events, totals, rng, priors):
        theta = draws["theta"]
        return {
            "theta": np.repeat(theta[..., None], len(totals), axis=-1),
            "mean_rate": theta,
            "theta_new": theta,
            "sd_rates": np.zeros_like(theta),
        }

MODEL = CommonEffect()
