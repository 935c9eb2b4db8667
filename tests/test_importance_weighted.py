"""Weighted-sample statistics with Monte Carlo standard errors, and PSIS
(posterior/weighted_stats.py, engines/importance/psis.py)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bayes_dress.engines.importance import psis
from bayes_dress.engines.importance.psis import gpdfit
from bayes_dress.posterior import weighted_stats as weighted


def test_uniform_weights_reduce_to_plain_statistics():
    rng = np.random.default_rng(0)
    x = rng.gamma(2.0, size=5000)
    lw = np.zeros(x.size)
    m = weighted.mean(x, lw)
    assert m.value == pytest.approx(x.mean())
    assert m.mcse == pytest.approx(x.std() / np.sqrt(x.size))
    assert m.ess == pytest.approx(x.size)
    assert weighted.sd(x, lw).value == pytest.approx(x.std())
    for p in (0.025, 0.5, 0.9):
        assert weighted.quantile(x, lw, p).value == pytest.approx(
            np.quantile(x, p, method="hazen"))
    assert weighted.cdf(x, lw, 2.0).value == pytest.approx(np.mean(x <= 2.0))
    assert weighted.prob_above(x, lw, 2.0).value == pytest.approx(np.mean(x > 2.0))
    assert weighted.prob_below(x, lw, 2.0).value == pytest.approx(np.mean(x < 2.0))
    assert weighted.weights_ess(lw) == pytest.approx(x.size)
    # unnormalised log weights are fine
    assert weighted.mean(x, lw + 123.0).value == pytest.approx(x.mean())


def test_weighted_values():
    x = np.array([0.0, 1.0, 2.0, 3.0])
    lw = np.log([0.1, 0.2, 0.3, 0.4])
    assert weighted.mean(x, lw).value == pytest.approx(2.0)
    assert weighted.variance(x, lw).value == pytest.approx(1.0)
    assert weighted.cdf(x, lw, 1.0).value == pytest.approx(0.3)
    assert weighted.probability(x >= 2, lw).value == pytest.approx(0.7)
    assert weighted.weights_ess(lw) == pytest.approx(1 / 0.3)
    # mid-point interpolation: cumulative mid-points 0.05, 0.2, 0.45, 0.8
    assert weighted.quantile(x, lw, 0.45).value == pytest.approx(2.0)
    assert weighted.quantile(x, lw, 0.625).value == pytest.approx(2.5)


def test_mcse_is_calibrated():
    """Importance sampling of N(1, 0.7^2) from a t5(0, 1.5) proposal, 400 repetitions of
    S = 2000: the z-scores (estimate - truth) / MCSE of a mean, an SD, quantiles, a CDF
    value and a tail probability have SD ~1 and mean ~0."""
    rng = np.random.default_rng(1)
    target, proposal = stats.norm(1.0, 0.7), stats.t(5, 0.0, 1.5)
    truth = {"mean": 1.0, "sd": 0.7, "q10": target.ppf(0.1), "q50": 1.0,
             "q90": target.ppf(0.9), "cdf": target.cdf(1.5), "tail": target.sf(2.0)}
    z = {k: [] for k in truth}
    for _ in range(400):
        x = proposal.rvs(size=2000, random_state=rng)
        lw = target.logpdf(x) - proposal.logpdf(x)
        est = {"mean": weighted.mean(x, lw), "sd": weighted.sd(x, lw),
               "cdf": weighted.cdf(x, lw, 1.5), "tail": weighted.prob_above(x, lw, 2.0)}
        est.update(zip(("q10", "q50", "q90"), weighted.quantiles(x, lw, [0.1, 0.5, 0.9]),
                       strict=True))
        for k, e in est.items():
            z[k].append(e.z_score(truth[k]))
    for k, v in z.items():
        v = np.array(v)
        assert 0.85 < v.std() < 1.15, (k, v.std())
        assert abs(v.mean()) < 0.2, (k, v.mean())


def test_quantile_ess_and_summary():
    rng = np.random.default_rng(2)
    x = rng.normal(size=4000)
    s = weighted.summary(x, np.zeros(4000))
    assert set(s) == {"mean", "sd", "q2.5", "q25", "q50", "q75", "q97.5"}
    assert 2000 < s["q50"].ess < 8000
    assert 0.01 < s["q50"].mcse < 0.04  # ~ sqrt(p(1-p)/S) / density = 0.0198


def test_bad_weights_are_refused():
    with pytest.raises(ValueError):
        weighted.mean([1.0, 2.0], [0.0, np.nan])
    with pytest.raises(ValueError):
        weighted.mean([1.0, 2.0], [-np.inf, -np.inf])
    with pytest.raises(ValueError):
        weighted.mean([1.0, 2.0, 3.0], [0.0, 0.0])
    with pytest.raises(ValueError):
        weighted.quantile([1.0, 2.0], [0.0, 0.0], 1.0)


@pytest.mark.parametrize("sigma", [0.5, 1.5, 3.0])
def test_psis_own_matches_arviz(sigma):
    rng = np.random.default_rng(3)
    lr = rng.normal(0.0, sigma, 8000)
    lw_a, k_a = psis(lr, backend="arviz")
    lw_o, k_o = psis(lr, backend="own")
    assert k_o == pytest.approx(k_a, abs=1e-10)
    np.testing.assert_allclose(lw_o, lw_a, atol=1e-10)


@pytest.mark.parametrize("k", [0.2, 0.5, 0.9])
def test_khat_recovers_a_pareto_tail(k):
    rng = np.random.default_rng(4)
    lr = np.log(stats.genpareto(k).rvs(size=20000, random_state=rng))
    _, khat = psis(lr)
    assert khat == pytest.approx(k, abs=0.12)


def test_psis_edge_cases():
    lw, k = psis(np.zeros(50))
    assert k == -np.inf and np.allclose(np.exp(lw), 1 / 50)
    lr = np.r_[np.random.default_rng(5).normal(size=1000), -np.inf]
    lw, _ = psis(lr)
    assert lw[-1] == -np.inf and np.isclose(np.exp(lw).sum(), 1.0)
    with pytest.raises(ValueError):
        psis(np.full(10, -np.inf))


def test_gpdfit_is_consistent():
    rng = np.random.default_rng(6)
    x = stats.genpareto(0.3, scale=2.0).rvs(size=5000, random_state=rng)
    k, sigma = gpdfit(x)
    assert k == pytest.approx(0.3, abs=0.06)
    assert sigma == pytest.approx(2.0, rel=0.1)
