"""Decision boundaries, operating characteristics and probability of success, one- and
two-arm, against brute force and RBesT.

RBesT references (RBesT 1.9-0, release commit 30cf4cde1e2a744b3550d10b33b4e7bcd78e7b69):
tests/testthat/test-decision1S_boundary.R, test-oc1S.R, test-decision2S_boundary.R with
its snapshot tests/testthat/_snaps/decision2S_boundary.md; articles/introduction.md as
rendered on gh-pages (commit f9309c457916fb2b7f8a34f4c49aa68c2134086f).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, optimize, special, stats

from bayes_dress.design import (
    BetaMixture,
    Design1S,
    Design2S,
    Rule,
    TabulatedDensity,
    boundary1s,
    boundary2s,
    oc1s,
    oc2s,
    parse_rule,
    pos1s,
    pos2s,
)
from bayes_dress.errors import SpecError

AS_MAP = BetaMixture([0.4612914, 0.1917812, 0.1893896, 0.1575378],
                     [33.9513487, 19.4400089, 12.2692310, 2.2521243],
                     [103.0146367, 41.5205219, 55.9202833, 5.4812202])


# ---------------------------------------------------------------------------- one arm
def test_boundary_matches_rbest_binomial_tests():
    # test-decision1S_boundary.R "decision1S_boundary works for binomial outcome":
    # prior mixbeta(rob = c(0.2, 2, 2), inf = c(0.8, 5, 5)), n = 50:
    #   decision1S(0.95, 0.6, lower.tail = TRUE) -> 24; decision1S(0.6, 0.6, FALSE) -> 31.
    prior = BetaMixture([0.2, 0.8], [2, 5], [2, 5])
    b = boundary1s(prior, 50, Rule.one_sample(0.95, 0.6, lower_tail=True))
    assert b.rbest() == 24 and b.lower_crit == 24 and b.describe().endswith("of 50")
    b = boundary1s(prior, 50, Rule.one_sample(0.6, 0.6, lower_tail=False))
    assert b.rbest() == 31 and b.y_success == (32, 50)
    # "Mixed lower.tail usage": the two-sided boundary is the pair of one-sided ones.
    lower = boundary1s(prior, 50, Rule.one_sample(0.5, 0.7, lower_tail=True)).rbest()
    upper = boundary1s(prior, 50, Rule.one_sample(0.6, 0.5, lower_tail=False)).rbest()
    both = boundary1s(prior, 50, Rule.one_sample([0.5, 0.6], [0.7, 0.5],
                                                 lower_tail=[True, False]))
    assert both.rbest() == {"lower_or_equal_than": lower, "higher_than": upper}
    # test-oc1S.R "Mixed lower.tail usage works for binomial OC calculation"
    theta = np.linspace(0, 1, 50)
    lo = oc1s(prior, 50, Rule.one_sample(0.5, 0.7, lower_tail=True), theta)
    up = oc1s(prior, 50, Rule.one_sample(0.6, 0.5, lower_tail=False), theta)
    np.testing.assert_allclose(oc1s(prior, 50, both.rule, theta), lo - (1 - up), atol=1e-14)


def test_uniform_prior_type1_error_like_rbest():
    # test-oc1S.R "Binary type I error rate": uniform prior, n = 1000,
    # decision1S(0.95, 0.4, lower.tail = TRUE): OC(0.4) within 1e-2 of alpha = 0.05, and
    # the critical values bracket the decision (test_critical_discrete).
    u = BetaMixture.beta(1, 1)
    for lower in (True, False):
        rule = Rule.one_sample(0.95, 0.4, lower_tail=lower)
        b = boundary1s(u, 1000, rule)
        crit = b.rbest()
        post = lambda r: u.postmix(r, 1000)  # noqa: E731
        if lower:
            assert rule.decide(post(crit - 1)) and rule.decide(post(crit))
            assert not rule.decide(post(crit + 1))
            assert abs(oc1s(u, 1000, rule, 0.4) - 0.05) < 1e-2
        else:
            assert not rule.decide(post(crit - 1)) and not rule.decide(post(crit))
            assert rule.decide(post(crit + 1))
        assert 0 <= oc1s(u, 1000, rule, [0.0, 1.0]).min() <= 1


def _posterior_probs_by_quad(pdf, n, q, lower):
    """P(theta <= q | y) (or > q) for y = 0..n by adaptive quadrature (quad_vec)."""
    y = np.arange(n + 1)

    def kernel(t):
        return pdf(t) * stats.binom.pmf(y, n, t)

    opts = {"epsabs": 0, "epsrel": 1e-11, "limit": 400}
    left = integrate.quad_vec(kernel, 0, q, **opts)[0]
    right = integrate.quad_vec(kernel, q, 1, **opts)[0]
    return (left if lower else right) / (left + right)


def _table(mix):
    eta = np.linspace(-30, 30, 1201)
    x = np.concatenate([[0.0], special.expit(eta), [1.0]])
    with np.errstate(divide="ignore"):
        lp = mix.logpdf(x)
    return TabulatedDensity(x, np.concatenate([[0], mix.cdf(x[1:-1]), [1]]), logpdf=lp)


@pytest.mark.parametrize("kind", ["mixture", "tabulated"])
def test_boundary_and_oc_against_brute_force(kind):
    mix = AS_MAP.robustify(0.2)
    prior = mix if kind == "mixture" else _table(mix)
    n = 30
    rule = parse_rule("P(theta > 0.2) > 0.8 and P(theta <= 0.6) > 0.9")
    b = boundary1s(prior, n, rule)
    probs = np.column_stack([_posterior_probs_by_quad(mix.pdf, n, c.threshold, c.lower_tail)
                             for c in rule.conditions])
    # the tabulated prior is limited by its interpolation (logit step 0.05)
    np.testing.assert_allclose(b.probabilities, probs, rtol=0,
                               atol=1e-9 if kind == "mixture" else 1e-6)
    brute = np.all(probs > np.array([c.prob for c in rule.conditions]), axis=1)
    np.testing.assert_array_equal(b.success, brute)
    theta = np.linspace(0, 1, 101)
    direct = np.array([sum(stats.binom.pmf(y, n, t) for y in range(n + 1) if brute[y])
                       for t in theta])
    np.testing.assert_allclose(oc1s(prior, n, rule, theta, boundary=b), direct, atol=1e-12)


def test_bisection_equals_full_enumeration():
    rule = parse_rule("P(theta > 0.25) > 0.9")
    for prior in (AS_MAP, _table(AS_MAP)):
        for n in (1, 7, 40, 151):
            full = boundary1s(prior, n, rule)
            fast = boundary1s(prior, n, rule, method="bisect")
            np.testing.assert_array_equal(full.success, fast.success)
            assert full.rbest() == fast.rbest() and full.monotone


def test_never_and_always():
    u = BetaMixture.beta(1, 1)
    never = boundary1s(u, 5, parse_rule("P(theta > 0.9) > 0.99"))
    assert never.never and not never.always and never.rbest() == 5  # RBesT: n for upper
    assert never.describe().startswith("the rule never")
    always = boundary1s(u, 5, parse_rule("P(theta > 0.0001) > 0.5"))
    assert always.always and always.rbest() == -1  # RBesT: -1 (always) for upper tail
    lower_never = boundary1s(u, 5, parse_rule("P(theta <= 0.01) > 0.99"))
    assert lower_never.never and lower_never.rbest() == -1
    np.testing.assert_array_equal(oc1s(u, 5, never.rule, [0.2, 0.9]), [0, 0])
    np.testing.assert_array_equal(oc1s(u, 5, always.rule, [0.2, 0.9]), [1, 1])


def test_pos_is_the_predictive_average_of_the_oc():
    rule = parse_rule("P(theta > 0.3) > 0.9")
    design = Design1S(AS_MAP.robustify(0.1), 60, rule)
    design_prior = BetaMixture([0.5, 0.5], [4, 9], [8, 9])
    ref = integrate.quad(lambda t: float(design.oc(t)) * float(design_prior.pdf(t)), 0, 1,
                         limit=200, epsabs=1e-12)[0]
    assert design.pos(design_prior) == pytest.approx(ref, abs=1e-9)
    assert pos1s(design.prior, 60, rule, _table(design_prior)) == pytest.approx(ref, abs=1e-7)
    # a point-like design prior gives the OC
    sharp = BetaMixture.beta(0.4 * 1e6, 0.6 * 1e6)
    assert design.pos(sharp) == pytest.approx(float(design.oc(0.4)), abs=1e-3)


def test_oc_of_a_large_grid_is_vectorised():
    rule = parse_rule("P(theta > 0.3) > 0.95")
    theta = np.linspace(0, 1, 1001)
    oc = oc1s(AS_MAP, 200, rule, theta)
    assert oc.shape == (1001,) and np.all(np.diff(oc) >= -1e-15)
    with pytest.raises(SpecError):
        oc1s(AS_MAP, 200, rule, [1.5])
    with pytest.raises(SpecError):
        oc1s(AS_MAP, 20, parse_rule("P(theta1 - theta2 > 0) > 0.9"), theta)


# ---------------------------------------------------------------------------- two arms
def test_boundary2s_matches_rbest_snapshot():
    # test-decision2S_boundary.R "works for binomial outcome" and its snapshot
    # (_snaps/decision2S_boundary.md): priorT <- mixbeta(c(1, 1, 2)),
    # priorP <- mixbeta(c(1, 10, 40)), decision2S_boundary(priorP, priorT, 20, 20, crit)(0:20)
    prior_t, prior_p = BetaMixture.beta(1, 2), BetaMixture.beta(10, 40)
    success = Rule.two_sample_rule([0.95, 0.5], [0, 0.2], lower_tail=False)
    futility = Rule.two_sample_rule(0.90, 0.2, lower_tail=True)
    y2 = np.arange(21)
    got = boundary2s(prior_p, prior_t, 20, 20, success).rbest(y2)
    np.testing.assert_array_equal(got, [6, 9, 12, 15, 18] + [-1] * 16)
    got = boundary2s(prior_p, prior_t, 20, 20, futility).rbest(y2)
    np.testing.assert_array_equal(got, [1, 3, 5, 8, 10, 13, 15, 18] + [20] * 13)
    # "Mixed lower.tail usage ... binomial": the mixed rule's parts equal the single ones
    lower = boundary2s(prior_p, prior_t, 20, 20,
                       Rule.two_sample_rule(0.5, 0.7, lower_tail=True)).rbest(y2)
    upper = boundary2s(prior_p, prior_t, 20, 20,
                       Rule.two_sample_rule(0.6, 0.5, lower_tail=False)).rbest(y2)
    mixed = boundary2s(prior_p, prior_t, 20, 20, Rule.two_sample_rule(
        [0.5, 0.6], [0.7, 0.5], lower_tail=[True, False])).rbest(y2)
    np.testing.assert_array_equal(mixed["lower_or_equal_than"], lower)
    np.testing.assert_array_equal(mixed["higher_than"], upper)


def test_as_vignette_design_numbers():
    # articles/introduction.md: theta_control = mean(map); find_delta (uniroot, default
    # tol ~1.2e-4) for 80 % power, printed to 3 decimals:
    #   non-robust 0.302, uniform 24:24 0.341, robust 0.368, uniform 0.529.
    # Tolerance: 5e-4 (rounding) + 1.5e-4 (uniroot) = 6.5e-4.
    dec = parse_rule("P(theta1 - theta2 > 0) > 0.95")
    treat, uni = BetaMixture([1.0], [0.5], [1.0]), BetaMixture.beta(1, 1)
    robust = AS_MAP.robustify(0.2, mean=0.5)
    mc = AS_MAP.mean()
    designs = {0.302: Design2S(treat, AS_MAP, 24, 6, dec),
               0.341: Design2S(uni, uni, 24, 24, dec),
               0.368: Design2S(treat, robust, 24, 6, dec),
               0.529: Design2S(uni, uni, 24, 6, dec)}
    for ref, d in designs.items():
        delta = optimize.brentq(lambda x, d=d: float(d.oc(mc + x, mc)) - 0.8, 0, 1 - mc,
                                xtol=1e-10)
        assert delta == pytest.approx(ref, abs=6.5e-4)
    # "the decision will always be negative if there are less than 10 events in the
    # treatment group ... under a non-robust prior and assuming 15 events in the
    # treatment group, three (or less) placebo events would be needed for success"
    flipped = parse_rule("P(theta1 - theta2 <= 0) > 0.95")
    y2 = np.arange(25)
    for p1, p2 in ((AS_MAP, treat), (robust, treat), (uni, uni)):
        crit = boundary2s(p1, p2, 6, 24, flipped).rbest(y2)
        assert np.all(crit[:10] == -1) and np.all(crit[10:] >= 0)
    assert boundary2s(AS_MAP, treat, 6, 24, flipped).rbest([15])[0] == 3


def test_oc2s_against_brute_force():
    p1 = BetaMixture([0.7, 0.3], [2, 1], [3, 1])
    p2 = AS_MAP.robustify(0.2)
    n1, n2 = 12, 8
    rule = parse_rule("P(theta1 - theta2 > 0.05) > 0.8")
    dec = np.array([[rule.decide(p1.postmix(y1, n1), p2.postmix(y2, n2))
                     for y2 in range(n2 + 1)] for y1 in range(n1 + 1)])
    b = boundary2s(p1, p2, n1, n2, rule)
    y1 = np.arange(n1 + 1)[:, None]
    np.testing.assert_array_equal(b.success(y1, np.arange(n2 + 1)[None, :]), dec)
    t1 = np.array([0.1, 0.4, 0.6, 0.9])
    t2 = np.array([0.2, 0.2, 0.3, 0.5])
    ref = [sum(stats.binom.pmf(a, n1, u) * stats.binom.pmf(c, n2, v)
               for a in range(n1 + 1) for c in range(n2 + 1) if dec[a, c])
           for u, v in zip(t1, t2, strict=True)]
    np.testing.assert_allclose(oc2s(p1, p2, n1, n2, rule, t1, t2), ref, atol=1e-12)
    # PoS under design priors, brute force over both predictives
    d1, d2 = BetaMixture.beta(6, 6), BetaMixture.beta(3, 9)
    pm1, pm2 = d1.preddist(n1).pmf_all(), d2.preddist(n2).pmf_all()
    ref = float(np.sum(np.outer(pm1, pm2) * dec))
    assert pos2s(p1, p2, n1, n2, rule, d1, d2) == pytest.approx(ref, abs=1e-12)


def test_oc2s_eps_restriction():
    rule = parse_rule("P(logit(theta1) - logit(theta2) > 0) > 0.9")
    full = Design2S(BetaMixture.beta(1, 1), AS_MAP, 150, 120, rule)
    approx = Design2S(BetaMixture.beta(1, 1), AS_MAP, 150, 120, rule, eps=1e-6)
    t1, t2 = np.array([0.3, 0.45]), np.array([0.25, 0.25])
    np.testing.assert_allclose(approx.oc(t1, t2), full.oc(t1, t2), atol=2e-6)
    assert approx.boundary(np.arange(10, 20)).y2.size == 10
    with pytest.warns(UserWarning, match="Large sample space"):
        Design2S(BetaMixture.beta(1, 1), AS_MAP, 5000, 5000, rule)
    with pytest.raises(SpecError):
        Design2S(BetaMixture.beta(1, 1), AS_MAP, 10, 10, parse_rule("P(theta > 0.1) > 0.5"))


def test_no_design_module_is_named_as_a_public_function():
    """Importing a submodule binds it on the package: a module named like a function
    the package exports would replace that function for every later import."""
    import pkgutil

    import bayes_dress.design as design

    modules = {m.name for m in pkgutil.iter_modules(design.__path__)}
    assert not modules & set(design.__all__)
