"""Independent rates (no pooling): each study's rate has its own prior (a comparator)."""

from __future__ import annotations

from bayes_dress.models.base import STUDY_DIM, Quantity, SingleOutcomeModel, rate


class Independent(SingleOutcomeModel):
    """No pooling: theta_i ~ prior independently; y_i ~ Binomial(n_i, theta_i)."""

    name = "independent"
    quantities = (
        rate("mean_rate"), rate("theta_new"), Quantity("sd_rates", support="positive"),
        Quantity("theta", (STUDY_DIM,), support="unit", kind="parameter"),
    )

    def build_likelihood(self, events, totals, priors, shared):
        import pymc as pm

        self.prior_variable("theta", priors, shared, dims=STUDY_DIM)
        pm.Binomial("y", n=totals, p=pm.modelcontext(None)["theta"], observed=events,
                    dims=STUDY_DIM)

    def log_likelihood(self, draws, events, totals):
        from scipy import stats

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

MODEL = Independent()
