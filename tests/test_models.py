"""Models against known answers: conjugate closed forms, quadrature, shrinkage.

Tolerances are in Monte Carlo standard errors (MCSE) estimated from the draws
themselves (arviz-stats, Vehtari et al. 2021). ``Z_TOL = 4``: for one comparison an
MCMC estimate is further than 4 MCSE from the truth with probability ~6e-5 under the
CLT; with a few dozen comparisons per run the chance of a false failure is ~1e-3, and
the seeds are fixed, so a failure means a real disagreement, not bad luck.
"""

from __future__ import annotations

import itertools

import arviz_stats as azs
import numpy as np
import pytest
import xarray as xr
from conftest import FAST, outcome_data
from scipy import integrate, stats
from scipy.special import expit

from bayes_dress.fitting import fit_outcome
from bayes_dress.models.beta_binomial import BetaBinomial
from bayes_dress.models.logit_normal import logit_normal_moments
from bayes_dress.spec.models import get_model_spec, resolve_priors
from bayes_dress.spec.priors import parse_prior

Z_TOL = 4.0
PROBS = (0.025, 0.25, 0.5, 0.75, 0.975)
BUNDLED_SUCCESS = ([1, 16], [6, 18])
BUNDLED_SEVERE = ([5, 1], [6, 18])


def _fit(model, counts, priors=None, settings=FAST):
    data = outcome_data(*counts, studies=["Joly2012", "Sim2022"][: len(counts[0])]
                        if len(counts[0]) <= 2 else None)
    resolved = resolve_priors(get_model_spec(model), priors or {})
    return fit_outcome(data, model=model, priors=resolved, settings=settings,
                       thresholds=(0.5,))


def assert_matches(draws: np.ndarray, exact, label: str) -> None:
    """Posterior mean and quantiles of ``draws`` (chain, draw) agree with ``exact``."""
    da = xr.DataArray(draws, dims=("chain", "draw"))
    mcse_mean = float(azs.mcse(da, method="mean"))
    assert abs(draws.mean() - exact.mean()) < Z_TOL * mcse_mean, label
    for p in PROBS:
        estimate = np.quantile(draws.reshape(-1), p)
        mcse = float(azs.mcse(da, method="quantile", prob=p))
        assert abs(estimate - exact.ppf(p)) < Z_TOL * mcse, f"{label} q{p}"


@pytest.mark.parametrize("counts", [BUNDLED_SUCCESS, BUNDLED_SEVERE])
def test_common_effect_matches_conjugate_beta(counts):
    """theta ~ Beta(2, 3) a priori -> Beta(2 + sum y, 3 + sum (n - y))."""
    fit = _fit("common_effect", counts, {"theta": "Beta(2, 3)"})
    y, n = map(np.asarray, counts)
    exact = stats.beta(2 + y.sum(), 3 + (n - y).sum())
    assert_matches(fit.tree["posterior"]["mean_rate"].values, exact, "common_effect")
    assert not fit.failures, [c.message() for c in fit.failures]


@pytest.mark.parametrize("counts", [BUNDLED_SUCCESS, BUNDLED_SEVERE])
def test_independent_matches_conjugate_beta(counts):
    """theta_i ~ Beta(1, 1) a priori -> Beta(1 + y_i, 1 + n_i - y_i), study by study."""
    fit = _fit("independent", counts)
    theta = fit.tree["posterior"]["theta"]
    for i, study in enumerate(theta["study"].values):
        exact = stats.beta(1 + counts[0][i], 1 + counts[1][i] - counts[0][i])
        assert_matches(theta.sel(study=study).values, exact, f"independent {study}")
    # A new study's rate under no pooling is its prior, whatever the data say.
    assert_matches(fit.tree["posterior"]["theta_new"].values, stats.beta(1, 1), "theta_new")


@pytest.mark.parametrize("model", ["beta_binomial", "logit_normal"])
@pytest.mark.parametrize("counts", [BUNDLED_SUCCESS, BUNDLED_SEVERE,
                                    ([1, 9, 14, 30, 3], [10, 20, 25, 40, 15])])
def test_hierarchical_study_rates_are_shrunk(model, counts):
    """Each study's rate lies between its no-pooling estimate and the pooled centre.

    The centre is the hierarchical model's own: m for the beta-binomial, invlogit(mu)
    for the logit-normal. (It is not the common-effect rate: that weights studies by
    size, while the population mean weights them nearly equally when they disagree.)
    Medians are compared with a margin of Z_TOL Monte Carlo standard errors of the
    hierarchical median, for studies that sit close to the centre.
    """
    hier = _fit(model, counts)
    alone = _fit("independent", counts).summary
    posterior = hier.tree["posterior"]
    centre = (posterior["m"].values if model == "beta_binomial"
              else expit(posterior["mu"].values))
    pooled_median = float(np.median(centre))
    theta = hier.tree["posterior"]["theta"]
    for study in theta["study"].values:
        draws = theta.sel(study=study)
        median = float(np.median(draws.values))
        margin = Z_TOL * float(azs.mcse(draws.drop_vars("study"), method="quantile",
                                        prob=0.5))
        alone_median = alone.loc[(alone["parameter"] == "theta")
                                 & (alone["study"] == study), "median"].item()
        lo, hi = sorted((alone_median, pooled_median))
        assert lo - margin <= median <= hi + margin, (model, study, lo, median, hi)


def test_logit_normal_moments_match_quadrature():
    """The quadrature mean and variance of invlogit(mu + tau Z) against adaptive quadrature.

    The reference splits the z axis where the sigmoid turns (z = -mu / tau) so that QUADPACK
    sees it even when it is steep. Variances are compared, not SDs: an SD near 0 carries
    the square root of rounding error (~1e-8) in either computation.
    """
    def reference(k, mu, tau):
        if tau == 0:
            return expit(mu) ** k
        def f(z):
            return expit(mu + tau * z) ** k * stats.norm.pdf(z)
        turn = -mu / tau
        if abs(turn) > 8:
            return integrate.quad(f, -np.inf, np.inf, epsabs=1e-15, limit=500)[0]
        edges = [-np.inf, turn - 1, turn + 1, np.inf]
        return sum(integrate.quad(f, a, b, epsabs=1e-15, epsrel=1e-13, limit=500)[0]
                   for a, b in itertools.pairwise(edges))

    for mu in (-4.0, -1.0, 0.0, 0.7, 3.0):
        for tau in (0.0, 0.05, 0.5, 1.0, 2.5, 5.0, 7.9, 8.1, 10.0, 40.0, 200.0, 5000.0):
            mean, sd = logit_normal_moments(mu, tau)
            exact_mean = reference(1, mu, tau)
            exact_var = reference(2, mu, tau) - exact_mean**2
            assert abs(mean - exact_mean) < 1e-11, (mu, tau)
            assert abs(sd**2 - exact_var) < 1e-11, (mu, tau)


def test_beta_binomial_study_rates_are_conditional_betas():
    """Given (m, phi), theta_i is drawn from Beta(m kappa + y_i, (1 - m) kappa + n_i - y_i)."""
    rng = np.random.default_rng(5)
    m, phi = np.full((1, 200_000), 0.3), np.full((1, 200_000), 0.5)
    events, totals = np.array([1, 16]), np.array([6, 18])
    derived = BetaBinomial().derived({"m": m, "phi": phi}, events, totals, rng, {})
    kappa = 1 / 0.5**2
    for i in range(2):
        exact = stats.beta(0.3 * kappa + events[i], 0.7 * kappa + totals[i] - events[i])
        draws = derived["theta"][0, :, i]
        # Independent draws: the MCSE of the mean is sd / sqrt(N).
        assert abs(draws.mean() - exact.mean()) < Z_TOL * exact.std() / np.sqrt(draws.size)
    assert np.allclose(derived["sd_rates"], np.sqrt(0.3 * 0.7 / (kappa + 1)))


def test_prior_draws_follow_the_priors():
    """The prior group holds draws from the stated priors (two-sample KS against SciPy)."""
    fit = _fit("logit_normal", BUNDLED_SUCCESS, {"mu": "Normal(-1, 0.5)",
                                                 "tau": "HalfCauchy(0.5)"})
    prior = fit.tree["prior"]
    for name, text in (("mu", "Normal(-1, 0.5)"), ("tau", "HalfCauchy(0.5)")):
        dist = parse_prior(text).frozen()
        assert stats.kstest(prior[name].values.reshape(-1), dist.cdf).pvalue > 1e-3


def test_improper_prior_has_no_prior_group():
    fit = _fit("beta_binomial", BUNDLED_SUCCESS, {"phi": "BDA3"})
    assert "prior" not in fit.tree.children
    assert any("improper" in note for note in fit.notes)
    assert fit.summary["prior_dominated"].isna().all()


@pytest.mark.slow
@pytest.mark.parametrize("model", ["beta_binomial", "logit_normal", "common_effect",
                                   "independent"])
def test_default_settings_do_not_diverge_on_bundled_data(model, bundled):
    """The documented defaults fit the bundled two-study data cleanly, every outcome."""
    from bayes_dress.fitting import run_fit
    from bayes_dress.spec.config import RunConfig

    result = run_fit(RunConfig(model=model))
    for fit in result.fits.values():
        divergences = int(fit.tree["sample_stats"]["diverging"].sum())
        assert divergences == 0, (model, fit.outcome)
        assert not fit.failures, [c.message() for c in fit.failures]
