"""EM fits of Beta mixtures to draws and to exact densities; automixfit."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

from bayes_dress.design import (
    BetaMixture,
    TabulatedDensity,
    automixfit,
    fit_beta_mixture,
    fit_beta_mixture_exact,
    kolmogorov_distance,
)
from bayes_dress.errors import SpecError

AS_MAP = BetaMixture([0.4612914, 0.1917812, 0.1893896, 0.1575378],
                     [33.9513487, 19.4400089, 12.2692310, 2.2521243],
                     [103.0146367, 41.5205219, 55.9202833, 5.4812202])


def mixture_table(mix: BetaMixture) -> TabulatedDensity:
    eta = np.linspace(-30, 30, 1201)
    x = np.concatenate([[0.0], special.expit(eta), [1.0]])
    with np.errstate(divide="ignore"):
        lp = mix.logpdf(x)
    return TabulatedDensity(x, np.concatenate([[0.0], mix.cdf(x[1:-1]), [1.0]]), logpdf=lp)


def test_exact_fit_recovers_a_known_mixture():
    truth = BetaMixture([0.6, 0.4], [20, 3], [60, 9])
    fit = fit_beta_mixture_exact(mixture_table(truth), 2)
    assert fit.converged and fit.target == "exact" and fit.df == 5
    np.testing.assert_allclose(fit.mixture.weights, truth.weights, rtol=1e-2)
    np.testing.assert_allclose(fit.mixture.a, truth.a, rtol=2e-2)
    np.testing.assert_allclose(fit.mixture.b, truth.b, rtol=2e-2)
    assert fit.ks < 1e-3
    # a single Beta target is fitted exactly by one component (the M-step is exact)
    one = fit_beta_mixture_exact(mixture_table(BetaMixture.beta(7, 3)), 1)
    assert one.mixture.a[0] == pytest.approx(7, rel=1e-5)
    assert one.mixture.b[0] == pytest.approx(3, rel=1e-5)


def test_exact_automixfit_is_deterministic_and_ordered_by_aic():
    tab = mixture_table(AS_MAP)
    f1 = automixfit(tab)
    f2 = automixfit(tab)
    assert [m.n_components for m in f1.models] == [m.n_components for m in f2.models]
    for m1, m2 in zip(f1.models, f2.models, strict=True):
        assert m1.mixture == m2.mixture  # bit for bit
        assert m1.loglik == m2.loglik
    aics = [m.aic(6) for m in f1.models]
    assert aics == sorted(aics) and len(aics) == 4
    assert sorted(m.n_components for m in f1.models) == [1, 2, 3, 4]
    assert f1.best.ks < 0.005
    assert f1.mixture.weights[0] == max(f1.mixture.weights)  # sorted by weight
    assert all(m.n_obs == 4000 for m in f1.models)
    assert np.all(f1.mixture.a > 1) and np.all(f1.mixture.b > 1)


def test_draws_fit_matches_its_target():
    x = AS_MAP.sample(4000, np.random.default_rng(20240501))
    fit = automixfit(x)
    assert fit.best.target == "draws" and fit.best.n_obs == 4000
    # AIC with k = 6, df = 3 Nc - 1 (RBesT's automixfit)
    for m in fit.models:
        assert m.aic() == pytest.approx(-2 * m.loglik + 6 * (3 * m.n_components - 1))
    # the fitted mixture is close to the generating one
    assert kolmogorov_distance(fit.mixture, mixture_table(AS_MAP)) < 0.02
    # deterministic given the draws
    again = automixfit(x)
    assert again.mixture == fit.mixture


def test_kolmogorov_distance_of_draws_equals_scipy():
    mix = BetaMixture([0.7, 0.3], [5, 2], [10, 8])
    x = stats.beta(4, 9).rvs(size=500, random_state=np.random.default_rng(2))
    ref = stats.kstest(x, lambda t: mix.cdf(t)).statistic
    assert kolmogorov_distance(mix, x) == pytest.approx(ref, rel=1e-12)


def test_integer_weights_equal_repeated_draws():
    rng = np.random.default_rng(5)
    x = stats.beta(3, 8).rvs(size=300, random_state=rng)
    counts = rng.integers(1, 4, size=x.size)
    a = fit_beta_mixture(x, 2, weights=counts)
    b = fit_beta_mixture(np.repeat(x, counts), 2)
    np.testing.assert_allclose(a.mixture.a, b.mixture.a, rtol=1e-3)
    np.testing.assert_allclose(a.mixture.weights, b.mixture.weights, rtol=1e-3)


def test_constraint_and_unconstrained_fit():
    # A U-shaped target: constrained components stay at a, b >= 1 (finite ELIR),
    # unconstrained ones may go below 1.
    x = stats.beta(0.5, 0.7).rvs(size=2000, random_state=np.random.default_rng(11))
    con = fit_beta_mixture(x, 2)
    assert np.all(con.mixture.a >= 1) and np.all(con.mixture.b >= 1)
    free = fit_beta_mixture(x, 1, constrain_gt1=False)
    assert free.mixture.a[0] < 1 and free.mixture.b[0] < 1
    assert free.mixture.a[0] == pytest.approx(0.5, rel=0.15)


def test_draws_at_the_bounds_and_bad_input():
    x = np.concatenate([[0.0, 1.0], stats.beta(2, 5).rvs(size=200, random_state=1)])
    fit = fit_beta_mixture(x, 1)
    assert np.isfinite(fit.loglik)
    with pytest.raises(SpecError):
        fit_beta_mixture([0.5, 1.2], 1)
    with pytest.raises(SpecError):
        automixfit(x, n_components=(2, 1))
    with pytest.raises(SpecError):
        fit_beta_mixture(x, 0)
