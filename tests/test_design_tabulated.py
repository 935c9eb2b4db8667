"""The exact-MAP holder: a distribution on (0, 1) known as a tabulated CDF."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

from bayes_dress.design import BetaMixture, TabulatedDensity
from bayes_dress.errors import SpecError


def beta_table(a: float, b: float, *, step: float = 0.05, logpdf: bool = False):
    eta = np.arange(-30, 30 + step / 2, step)
    x = np.concatenate([[0.0], special.expit(eta), [1.0]])
    cdf = np.concatenate([[0.0], special.betainc(a, b, special.expit(eta)), [1.0]])
    lp = None
    if logpdf:
        with np.errstate(divide="ignore"):
            lp = stats.beta(a, b).logpdf(x)
    return TabulatedDensity(x, cdf, logpdf=lp)


@pytest.mark.parametrize("logpdf", [False, True])
def test_beta_table_reproduces_the_beta(logpdf):
    a, b = 3.0, 7.0
    tab = beta_table(a, b, logpdf=logpdf)
    ref = stats.beta(a, b)
    assert tab.mean() == pytest.approx(ref.mean(), abs=1e-8)
    assert tab.sd() == pytest.approx(ref.std(), abs=1e-8)
    x = np.linspace(0.001, 0.999, 301)
    np.testing.assert_allclose(tab.cdf(x), ref.cdf(x), rtol=0, atol=1e-7)
    # density from the interpolant: 4th-order accurate away from the far tails
    x = np.linspace(0.02, 0.8, 40)
    np.testing.assert_allclose(tab.pdf(x), ref.pdf(x), rtol=1e-4)
    p = np.array([1e-6, 0.025, 0.5, 0.975, 1 - 1e-6])
    np.testing.assert_allclose(tab.quantile(p), ref.ppf(p), rtol=1e-6)
    np.testing.assert_allclose(tab.cdf(tab.quantile(p)), p, rtol=1e-10)


def test_quadrature_integrates_against_the_table():
    tab = beta_table(2.5, 4.0)
    theta, w = tab.quadrature(breaks=[0.3])
    assert w.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(np.diff(theta) > 0)
    # the indicator theta <= 0.3 is integrated exactly (split at the break)
    assert w[theta <= 0.3].sum() == pytest.approx(float(tab.cdf(0.3)), abs=1e-13)
    assert np.dot(w, theta**2) == pytest.approx(stats.beta(2.5, 4).moment(2), abs=1e-8)
    # predictive distribution vs the beta-binomial
    np.testing.assert_allclose(tab.predictive_pmf(12), stats.betabinom(12, 2.5, 4).pmf(
        np.arange(13)), atol=1e-8)


def test_edge_masses_and_support():
    eta = np.linspace(-6, 6, 601)
    x = special.expit(eta)
    cdf = 0.05 + 0.9 * special.betainc(3, 5, x)
    tab = TabulatedDensity(x, cdf)
    lo, hi = tab.edge_masses
    assert lo == pytest.approx(0.05 + 0.9 * special.betainc(3, 5, x[0]))
    assert hi == pytest.approx(0.05 + 0.9 * special.betaincc(3, 5, x[-1]))
    assert float(tab.cdf(x[0] * 0.5)) == 0.0
    assert float(tab.cdf(x[0])) == pytest.approx(lo)
    assert float(tab.cdf(x[-1])) == 1.0
    theta, w = tab.quadrature()
    assert theta[0] == x[0] and w[0] == pytest.approx(lo)
    assert theta[-1] == x[-1] and w[-1] == pytest.approx(hi)


def test_from_pdf():
    x = special.expit(np.linspace(-20, 20, 801))
    tab = TabulatedDensity.from_pdf(x, 3.0 * stats.beta(4, 9).pdf(x))
    assert tab.normalising_constant == pytest.approx(3.0, rel=1e-8)
    assert tab.mean() == pytest.approx(4 / 13, abs=1e-8)
    assert tab.has_logpdf


def test_sampling_is_reproducible():
    tab = beta_table(3, 7)
    a = tab.sample(5000, np.random.default_rng(3))
    np.testing.assert_array_equal(a, tab.sample(5000, np.random.default_rng(3)))
    assert stats.kstest(a, stats.beta(3, 7).cdf).pvalue > 1e-3


def test_posterior_of_a_table_equals_the_conjugate_update():
    from bayes_dress.design import parse_rule
    from bayes_dress.design.oc import PosteriorEvaluator

    a, b, n = 3.0, 7.0, 40
    rule = parse_rule("P(theta > 0.3) > 0.9 and P(theta <= 0.5) > 0.5")
    tab_ev = PosteriorEvaluator(beta_table(a, b, logpdf=True), rule)
    mix_ev = PosteriorEvaluator(BetaMixture.beta(a, b), rule)
    y = np.arange(n + 1)
    # limited by the table (logit step 0.05): its CDF is interpolated to ~4e-8
    np.testing.assert_allclose(tab_ev.probabilities(n, y), mix_ev.probabilities(n, y),
                               rtol=0, atol=2e-7)
    np.testing.assert_allclose(tab_ev.posterior_means(n, y), mix_ev.posterior_means(n, y),
                               rtol=0, atol=5e-7)


def test_invalid_tables():
    x = np.linspace(0.1, 0.9, 5)
    for args in ((x, [0, 0.5, 0.4, 0.8, 1.0]), (x[::-1], np.linspace(0, 1, 5)),
                 (x, [0.1, 0.2]), ([0.0, 1.0], [0.0, 1.0]), (x, [0, 0.1, 0.2, 0.3, 1.5])):
        with pytest.raises(SpecError) as err:
            TabulatedDensity(*args)
        assert "\n" not in str(err.value)
