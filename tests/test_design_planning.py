"""Sample-size search, two-endpoint designs, the prior-data conflict table, the robust
weight map and the exact-vs-mixture approximation check."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

from bayes_dress.design import (
    BetaMixture,
    TabulatedDensity,
    TwoEndpointDesign,
    automixfit,
    boundary1s,
    check_approximation,
    conflict_table,
    ess_elir,
    fit_beta_mixture_exact,
    oc1s,
    parse_rule,
    predictive_p_values,
    sample_size,
    weight_map,
)
from bayes_dress.errors import SpecError

AS_MAP = BetaMixture([0.4612914, 0.1917812, 0.1893896, 0.1575378],
                     [33.9513487, 19.4400089, 12.2692310, 2.2521243],
                     [103.0146367, 41.5205219, 55.9202833, 5.4812202])


def _brute_oc(prior, n, rule, theta):
    success = [rule.decide(prior.postmix(y, n)) for y in range(n + 1)]
    return sum(stats.binom.pmf(y, n, theta) for y in range(n + 1) if success[y])


@pytest.mark.parametrize("alpha", [0.05, 0.1])
def test_sample_size_against_brute_force(alpha):
    prior = BetaMixture.beta(1, 1)
    rule = parse_rule("P(theta > 0.2) > 0.95")
    res = sample_size(prior, rule, theta0=0.2, theta1=0.4, alpha=alpha, power=0.8, n_min=5,
                      n_max=70)
    t1 = np.array([_brute_oc(prior, n, rule, 0.2) for n in range(5, 71)])
    pw = np.array([_brute_oc(prior, n, rule, 0.4) for n in range(5, 71)])
    np.testing.assert_allclose(res.type1, t1, atol=1e-12)
    np.testing.assert_allclose(res.power, pw, atol=1e-12)
    meets = (t1 <= alpha) & (pw >= 0.8)
    np.testing.assert_array_equal(res.meets, meets)
    ns = np.arange(5, 71)
    assert res.smallest == ns[meets][0]
    assert res.all_larger_meet == bool(meets[np.argmax(meets):].all())
    if alpha == 0.05:
        # the binomial saw-tooth: n = 36 meets both, 37 does not
        assert res.smallest == 36 and not res.all_larger_meet and res.stable_from is None
        assert "not every larger n" in res.describe()
    else:
        last_fail = ns[~meets][-1]
        assert res.stable_from == last_fail + 1


def test_sample_size_with_a_tabulated_prior_uses_bisection_correctly():
    eta = np.linspace(-30, 30, 1201)
    x = special.expit(eta)
    tab = TabulatedDensity(x, AS_MAP.cdf(x), logpdf=AS_MAP.logpdf(x))
    rule = parse_rule("P(theta > 0.2) > 0.9")
    a = sample_size(tab, rule, theta0=0.2, theta1=0.35, alpha=0.2, power=0.7, n_max=40)
    b = sample_size(AS_MAP, rule, theta0=0.2, theta1=0.35, alpha=0.2, power=0.7, n_max=40)
    assert a.critical == b.critical
    with pytest.raises(SpecError):
        sample_size(AS_MAP, rule, theta0=0.2, theta1=0.35, alpha=0.2, power=0.7, n_min=10,
                    n_max=5)


def test_two_endpoint_design():
    eff_prior, sae_prior = AS_MAP.robustify(0.2), BetaMixture.beta(1, 9)
    eff_rule = parse_rule("P(theta > 0.2) > 0.9")
    sae_rule = parse_rule("P(theta > 0.25) < 0.1")  # = P(theta <= 0.25) > 0.9
    design = TwoEndpointDesign(40, eff_prior, eff_rule, sae_prior, sae_rule)
    te, ts = np.array([0.2, 0.35, 0.5]), np.array([0.05, 0.15, 0.3])
    grid = design.oc(te, ts)
    assert grid.shape == (3, 3)
    # independence given the rates: brute force over both counts
    for i, a in enumerate(te):
        for j, b in enumerate(ts):
            ref = _brute_oc(eff_prior, 40, eff_rule, a) * _brute_oc(sae_prior, 40, sae_rule, b)
            assert grid[i, j] == pytest.approx(ref, abs=1e-12)
    pos = design.pos(BetaMixture.beta(6, 10), BetaMixture.beta(2, 18))
    pe = float(np.dot(BetaMixture.beta(6, 10).preddist(40).pmf_all(),
                      design.boundaries[0].success))
    ps = float(np.dot(BetaMixture.beta(2, 18).preddist(40).pmf_all(),
                      design.boundaries[1].success))
    assert pos == pytest.approx(pe * ps, abs=1e-14)


def test_conflict_table():
    prior = AS_MAP.robustify(0.2)
    rule = parse_rule("P(theta > 0.25) > 0.8")
    table = conflict_table(prior, 24, rule)
    b = boundary1s(prior, 24, rule)
    np.testing.assert_array_equal(table.decision, b.success)
    for y in (0, 6, 20):
        post = prior.postmix(y, 24)
        assert table.robust_weight[y] == pytest.approx(post.weight_of("robust"), abs=1e-12)
        assert table.probabilities[y, 0] == pytest.approx(float(post.sf(0.25)), abs=1e-12)
        assert table.posterior_mean[y] == pytest.approx(post.mean(), abs=1e-12)
    assert table.prior_robust_weight == pytest.approx(0.2)
    # the robust weight rises with conflict (many responders against a MAP near 0.25)
    assert table.robust_weight[24] > 0.99 > table.robust_weight[6]
    # p-values by brute force: mass of outcomes at most as likely
    pmf = prior.preddist(24).pmf_all()
    for y in range(25):
        ref = pmf[pmf <= pmf[y] * (1 + 1e-7)].sum()
        assert table.p_value[y] == pytest.approx(ref, abs=1e-14)
    assert table.p_value.max() == pytest.approx(1.0)
    np.testing.assert_allclose(table.p_lower, np.cumsum(pmf), atol=1e-14)
    rows = table.rows()
    assert len(rows) == 25 and "robust_weight" in rows[0] and "p_value" in rows[0]
    # no robust component: no robust weights
    assert conflict_table(AS_MAP, 10, rule).robust_weight is None


def test_predictive_p_values_of_a_symmetric_pmf():
    p = predictive_p_values(np.array([0.1, 0.2, 0.4, 0.2, 0.1]))
    np.testing.assert_allclose(p, [0.2, 0.6, 1.0, 0.6, 0.2])


def test_weight_map():
    rule = parse_rule("P(theta > 0.25) > 0.9")
    wm = weight_map(AS_MAP, n=30, rule=rule, theta0=0.25, theta1=0.45)
    assert wm.weights[0] == 0 and wm.weights[-1] == 1 and wm.weights.size == 21
    assert wm.ess_elir[0] == pytest.approx(ess_elir(AS_MAP).value, rel=1e-12)
    # RBesT introduction vignette: round(ess(robustify(map, 0.2, 0.5))) = 27
    assert round(wm.ess_elir[4]) == 27 and wm.weights[4] == pytest.approx(0.2)
    assert wm.ess_elir[-1] == pytest.approx(0.0, abs=1e-9)  # Beta(1, 1): ELIR 0
    assert wm.ess_moment[-1] == pytest.approx(2.0)
    for i in (0, 10, 20):
        p = AS_MAP.robustify(wm.weights[i]) if 0 < wm.weights[i] < 1 else None
        if p is not None:
            assert wm.type1[i] == pytest.approx(float(oc1s(p, 30, rule, 0.25)), abs=1e-14)
    assert len(wm.rows()) == 21
    with pytest.raises(SpecError):
        weight_map(AS_MAP, n=30)


def test_approximation_check():
    eta = np.linspace(-30, 30, 1201)
    x = special.expit(eta)
    exact = TabulatedDensity(x, AS_MAP.cdf(x), logpdf=AS_MAP.logpdf(x))
    rule = parse_rule("P(theta > 0.2) > 0.8")
    good = automixfit(exact).mixture
    check = check_approximation(exact, good, n=40, rule=rule)
    assert not check.matters and check.cdf_max_diff < 0.01 and check.oc_max_diff < 0.01
    assert set(check.ess_diff) == {"elir", "moment", "morita"}
    # a one-component approximation is visibly worse
    poor = fit_beta_mixture_exact(exact, 1).mixture
    check = check_approximation(exact, poor, n=40, rule=rule)
    assert check.matters and any("CDFs differ" in f for f in check.flags)
    assert check.oc_exact.shape == (1001,)
