"""The exact engine: against closed forms, its own grid refinement, and NUTS.

Closed forms are matched to 1e-6 (the engine tabulates Beta quantiles directly, so
only interpolation error remains). Grid convergence is checked as the engine reports
it: doubling the resolution changes no reported quantile by more than GRID_TOLERANCE.
NUTS is compared in units of its own Monte Carlo standard error (crosscheck.Z_BOUND).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import FAST, outcome_data
from scipy import integrate, special, stats

from bayes_dress.checks.crosscheck import Z_BOUND
from bayes_dress.engines.exact.integrators import GRID_TOLERANCE, _agq, exact_fit, log_rising
from bayes_dress.errors import ImproperPosteriorError
from bayes_dress.fitting import fit_outcome
from bayes_dress.spec.models import get_model_spec, resolve_priors

CLOSED_FORM_TOL = 1e-6
MODELS = ("beta_binomial", "logit_normal", "common_effect", "independent")
SYNTHETIC = {
    "zeros_but_one": ([0, 0, 3, 0], [12, 20, 15, 9]),
    "all_events": ([6, 18, 10], [6, 18, 10]),
    "single_study": ([4], [11]),
}


def _priors(model, overrides=None):
    return resolve_priors(get_model_spec(model), overrides or {})


def _fifty_studies():
    rng = np.random.default_rng(50)
    totals = rng.integers(3, 300, size=50)
    events = rng.binomial(totals, rng.beta(2, 6, size=50))
    return events, totals


@pytest.mark.parametrize("counts", [([1, 16], [6, 18]), ([5, 1], [6, 18]), ([0, 0], [5, 7])])
def test_common_effect_is_the_conjugate_beta(counts):
    data = outcome_data(*counts)
    fit = exact_fit(data, model="common_effect", priors=_priors("common_effect",
                                                               {"theta": "Beta(2, 3)"}))
    y, n = map(np.asarray, counts)
    exact = stats.beta(2 + y.sum(), 3 + (n - y).sum())
    marginal = fit.quantities["mean_rate"]
    p = np.array([0.001, 0.025, 0.25, 0.5, 0.75, 0.975, 0.999])
    assert np.max(np.abs(marginal.quantile(p) - exact.ppf(p))) < CLOSED_FORM_TOL
    assert abs(marginal.mean - exact.mean()) < CLOSED_FORM_TOL
    assert abs(marginal.sd - exact.std()) < CLOSED_FORM_TOL
    assert abs(marginal.prob_above(0.3) - exact.sf(0.3)) < CLOSED_FORM_TOL


def test_independent_rates_are_conjugate_betas_and_their_mean_a_convolution():
    data = outcome_data([1, 16], [6, 18])
    fit = exact_fit(data, model="independent", priors=_priors("independent"))
    p = np.array([0.025, 0.5, 0.975])
    for study, (y, n) in zip(data.studies, [(1, 6), (16, 18)], strict=True):
        exact = stats.beta(1 + y, 1 + n - y)
        assert np.max(np.abs(fit.studies[study].quantile(p) - exact.ppf(p))) < CLOSED_FORM_TOL
    # The mean of two independent rates: its CDF by adaptive quadrature.
    a, b = stats.beta(2, 6), stats.beta(17, 3)

    def cdf(x):
        return integrate.quad(lambda t: a.pdf(t) * b.cdf(2 * x - t), 0, 1, epsabs=1e-12)[0]

    for x in (0.4, 0.55, 0.7):
        mean_rate = fit.quantities["mean_rate"]
        assert abs(np.interp(x, mean_rate.x, mean_rate.cdf) - cdf(x)) < 1e-4


def test_non_beta_prior_on_the_unit_interval_by_quadrature():
    """Uniform(0.1, 0.9): the posterior is a Beta truncated to (0.1, 0.9)."""
    data = outcome_data([3], [10])
    fit = exact_fit(data, model="common_effect",
                    priors=_priors("common_effect", {"theta": "Uniform(0.1, 0.9)"}))
    beta = stats.beta(4, 8)
    lo, hi = beta.cdf(0.1), beta.cdf(0.9)
    for p in (0.025, 0.5, 0.975):
        exact = beta.ppf(lo + p * (hi - lo))
        assert abs(fit.quantities["mean_rate"].quantile(p) - exact) < 1e-5


def test_log_rising_is_stable_for_huge_arguments():
    """log Gamma(a + k) - log Gamma(a), against a direct sum of logs."""
    for a in (1e-3, 0.5, 3.0, 1e3, 1e5, 1e9, 1e15):
        for k in (0, 1, 5, 18, 200):
            direct = float(np.sum(np.log(a + np.arange(k))))
            assert abs(float(log_rising(np.array(a), k)) - direct) <= 1e-9 * max(1, abs(direct))


@pytest.mark.parametrize(("y", "n", "mu", "tau"), [(1, 6, 0.3, 1.4), (16, 18, 0.3, 1.4),
                                                   (0, 500, 0.0, 3.0), (250, 500, -2.0, 5.0),
                                                   (3, 10, 1.0, 1e-6), (0, 5, -4.0, 0.2)])
def test_logit_normal_study_likelihood_by_adaptive_quadrature(y, n, mu, tau):
    """∫ Binomial(y | n, invlogit(eta)) Normal(eta | mu, tau) d eta against QUADPACK.

    1e-7 on the log scale is a relative error of 1e-7 in a likelihood factor, far below
    what moves a reported quantile by 1e-4. The hardest case (no events in 500 patients,
    tau = 3: a heavy shoulder where the likelihood flattens) is at 1.7e-8 with 32 nodes.
    """
    log_lik = float(_agq(np.array(mu), np.array(tau), float(y), float(n)))

    def integrand(eta):
        return stats.binom.pmf(y, n, special.expit(eta)) * stats.norm.pdf(eta, mu, tau)

    lo, hi = mu - 12 * tau, mu + 12 * tau
    mode = special.logit((y + 0.5) / (n + 1))
    points = [p for p in (mode, mu) if lo < p < hi]
    exact = integrate.quad(integrand, lo, hi, points=points or None, epsabs=0,
                           epsrel=1e-12, limit=500)[0]
    assert abs(log_lik - np.log(exact)) < 1e-7


@pytest.mark.parametrize("model", ["beta_binomial", "logit_normal"])
@pytest.mark.parametrize("outcome", ["success", "severe_ae"])
def test_grid_refinement_changes_no_quantile_beyond_tolerance(model, outcome, bundled):
    from bayes_dress.data import select_outcome

    fit = exact_fit(select_outcome(bundled, outcome), model=model, priors=_priors(model))
    assert fit.grid_error < GRID_TOLERANCE


def test_bda3_with_all_zero_events_is_improper():
    data = outcome_data([0, 0, 0], [10, 12, 8])
    with pytest.raises(ImproperPosteriorError, match="does not integrate"):
        exact_fit(data, model="beta_binomial", priors=_priors("beta_binomial",
                                                               {"phi": "BDA3"}))


def test_bda3_with_one_informative_study_is_proper_but_heavy_tailed():
    """One study with 0 < y < n makes BDA3's posterior proper, barely: phi's density
    decays like 1/phi^2. The engine integrates it, and its own refinement check measures
    the cost of that tail honestly (~1e-3, relative, on phi's 97.5% quantile near 43;
    above GRID_TOLERANCE, so a fit flags it) instead of hiding it."""
    fit = exact_fit(outcome_data([0, 3], [10, 12]), model="beta_binomial",
                    priors=_priors("beta_binomial", {"phi": "BDA3"}))
    assert GRID_TOLERANCE < fit.grid_error < 5e-3
    phi = fit.quantities["phi"].quantile(np.array([0.025, 0.5, 0.975]))
    assert 0.1 < phi[0] < phi[1] < 5 < phi[2] < 100


def test_improper_posterior_stops_a_nuts_fit_before_sampling():
    data = outcome_data([0, 0], [10, 12])
    with pytest.raises(ImproperPosteriorError):
        fit_outcome(data, model="beta_binomial",
                    priors=_priors("beta_binomial", {"phi": "BDA3"}), settings=FAST,
                    thresholds=(0.5,))


def _agree(model, counts, studies=None, priors=None):
    data = outcome_data(*counts, studies=studies)
    fit = fit_outcome(data, model=model, priors=_priors(model, priors), settings=FAST,
                      thresholds=(0.5,))
    check = next(c for c in fit.checks if c.check == "reference_agreement")
    assert len(fit.comparison) >= 8
    assert check.passed, check.detail
    assert fit.comparison["z"].abs().max() <= Z_BOUND
    return fit


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("counts", [([1, 16], [6, 18]), ([5, 1], [6, 18])])
def test_nuts_agrees_with_exact_on_bundled_data(model, counts):
    _agree(model, counts, studies=["Joly2012", "Sim2022"])


@pytest.mark.slow
@pytest.mark.parametrize("model", ["beta_binomial", "logit_normal"])
@pytest.mark.parametrize("case", sorted(SYNTHETIC))
def test_nuts_agrees_with_exact_on_synthetic_tables(model, case):
    _agree(model, SYNTHETIC[case])


@pytest.mark.slow
@pytest.mark.parametrize("model", ["beta_binomial", "logit_normal"])
def test_nuts_agrees_with_exact_on_fifty_studies(model):
    _agree(model, _fifty_studies())


@pytest.mark.slow
def test_nuts_agrees_with_exact_under_bda3():
    _agree("beta_binomial", ([1, 16], [6, 18]), priors={"phi": "BDA3"})


@pytest.mark.slow
def test_pymc_sampler_agrees_with_exact_too():
    """PyMC's own NUTS (--sampler pymc) is held to the same check as nutpie."""
    import dataclasses

    data = outcome_data([1, 16], [6, 18], studies=["Joly2012", "Sim2022"])
    fit = fit_outcome(data, model="logit_normal", priors=_priors("logit_normal"),
                      settings=dataclasses.replace(FAST, name="pymc"), thresholds=(0.5,))
    assert not fit.failures, [c.message() for c in fit.failures]
    assert int(fit.tree["sample_stats"]["diverging"].sum()) == 0


def test_large_studies_converge_on_the_default_grid():
    """Study rates pinned by thousands of patients: the narrow-component smear follows
    how far each component's centre moves with m (almost not at all here), so the
    default grid agrees with a four-times finer one (a smear of the m-cell width made
    these intervals about twice too wide)."""
    data = outcome_data([250, 600, 1200], [5000, 8000, 20000])
    priors = _priors("beta_binomial")
    coarse = exact_fit(data, model="beta_binomial", priors=priors, check=False)
    fine = exact_fit(data, model="beta_binomial", priors=priors, points=257, check=False)
    p = np.array([0.025, 0.5, 0.975])
    for study in data.studies:
        assert np.max(np.abs(coarse.studies[study].quantile(p)
                             - fine.studies[study].quantile(p))) < GRID_TOLERANCE


def test_log_rising_needs_no_memory_for_huge_counts():
    """A total of 1e9 once allocated a 1e9-element range (GiBs); the power sums are now
    closed forms. Checked against log-gammas (exact enough where a is small) and, for
    a > 1e4 k, against the leading terms k log a + k (k - 1) / (2 a)."""
    k = 10**9
    a = np.array([3.0, 2.5e13])
    values = log_rising(a, k)
    direct = special.gammaln(a[0] + k) - special.gammaln(a[0])
    assert abs(values[0] - direct) < 1e-9 * abs(direct)
    leading = k * np.log(a[1]) + k * (k - 1) / (2 * a[1])
    assert abs(values[1] - leading) < 1e-6 * abs(leading)


def test_means_that_do_not_exist_are_reported_as_infinite():
    """Under BDA3 with one informative study phi's tail decays like 1/phi^2."""
    fit = exact_fit(outcome_data([3], [10]), model="beta_binomial",
                    priors=_priors("beta_binomial", {"phi": "BDA3"}), check=False)
    assert fit.quantities["phi"].mean == np.inf
    assert fit.quantities["kappa"].mean == np.inf


def test_nuts_runs_unchecked_when_the_grid_cannot_bound_a_proper_posterior():
    data = outcome_data([0, 0], [10, 12])
    fit = fit_outcome(data, model="logit_normal",
                      priors=_priors("logit_normal", {"mu": "Cauchy(0, 2.5)"}),
                      settings=FAST, thresholds=(0.5,))
    assert fit.reference is None and fit.comparison is None
    assert any("not checked against the exact engine" in note for note in fit.notes)
    assert "reference_agreement" not in {c.check for c in fit.checks}
