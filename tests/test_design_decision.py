"""Decision rules: parsing, RBesT semantics, probabilities of differences.

RBesT numbers from RBesT 1.9-0's rendered reference pages (gh-pages commit
f9309c457916fb2b7f8a34f4c49aa68c2134086f, built from release commit 30cf4cde):
reference/mixdiff.md, reference/decision2S.md, articles/introduction.md.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import integrate, special, stats

from bayes_dress.design import BetaMixture, Condition, Rule, parse_rule, prob_difference
from bayes_dress.errors import SpecError

AS_MAP = BetaMixture([0.4612914, 0.1917812, 0.1893896, 0.1575378],
                     [33.9513487, 19.4400089, 12.2692310, 2.2521243],
                     [103.0146367, 41.5205219, 55.9202833, 5.4812202])


def test_parse_rule_forms():
    r = parse_rule("P(theta > 0.3) > 0.95")
    assert r == Rule((Condition(0.95, 0.3, False),))
    r = parse_rule("P(theta <= 0.2) > 0.9 and P(theta > 0.05) > 0.5")
    assert r.two_sided and r.lower == (Condition(0.9, 0.2, True),)
    # '<' outer comparison: the complementary condition, strictness kept
    assert parse_rule("P(theta > 0.2) < 0.1") == Rule((Condition(0.9, 0.2, True),))
    # inner '<' reads as '<=', '>=' as '>'
    assert parse_rule("P(theta < 0.2) > 0.9") == parse_rule("P(theta <= 0.2) > 0.9")
    assert parse_rule("P(θ >= 0.2) > 0.9") == parse_rule("P(theta > 0.2) > 0.9")
    r = parse_rule("P(theta1 - theta2 > 0) > 0.975")
    assert r.two_sample and r.link == "identity"
    r = parse_rule("P(logit(theta1) - logit(theta2) > 0.5) > 0.9 & P(logit(theta1) - "
                   "logit(theta2) > 0) > 0.95")
    assert r.link == "logit" and len(r.conditions) == 2
    assert parse_rule("P(log(theta1) - log(theta2) > 1e-1) > 0.8").link == "log"


@given(p=st.floats(0.01, 0.99), q=st.floats(0.0, 1.0), lower=st.booleans())
def test_text_round_trip(p, q, lower):
    rule = Rule((Condition(p, q, lower),))
    assert parse_rule(rule.text()) == rule


@pytest.mark.parametrize("text,word", [
    ("", "empty"),
    ("P(theta > 0.3) >= 0.95", "strict"),
    ("P(x > 0.3) > 0.95", "cannot read"),
    ("P(theta > 0.3) > 1.5", "outside [0, 1]"),
    ("P(theta > 0.3) > 0.9 and P(theta1 - theta2 > 0) > 0.9", "mixes"),
    ("P(logit(theta1) - log(theta2) > 0) > 0.9", "cannot read"),
    ("__import__('os').system('true')", "cannot read"),
    ("P(theta > 1.3) > 0.9", "outside [0, 1]"),
])
def test_parse_errors_are_one_line(text, word):
    with pytest.raises(SpecError) as err:
        parse_rule(text)
    assert word in str(err.value) and "\n" not in str(err.value)


def test_strict_inequality_and_conjunction():
    post = BetaMixture.beta(2, 2)  # P(theta <= 0.5) = 0.5 exactly
    assert not Rule((Condition(0.5, 0.5, True),)).decide(post)
    assert Rule((Condition(0.4999, 0.5, True),)).decide(post)
    both = Rule((Condition(0.4, 0.5, True), Condition(0.6, 0.5, False)))
    assert not both.decide(post)
    np.testing.assert_allclose(both.probabilities(post), [0.5, 0.5])
    np.testing.assert_allclose(both.margins(post), np.log([0.5 / 0.4, 0.5 / 0.6]))
    # RBesT's decision1S(pc, qc, lower.tail) with vectors
    r = Rule.one_sample([0.9, 0.5], [0.3, 0.2], lower_tail=[False, True])
    assert r.conditions == (Condition(0.9, 0.3, False), Condition(0.5, 0.2, True))


def test_prob_difference_matches_rbest_pmixdiff():
    # reference/mixdiff.md, printed to 7 significant digits (RBesT integrates with
    # rel.tol ~1.2e-4, but its printed values are accurate to the printed digits here):
    # tolerance 5e-7.
    m1, m2 = BetaMixture.beta(11, 4), BetaMixture.beta(8, 7)
    assert prob_difference(m1, m2, 0, lower_tail=False) == pytest.approx(0.8817696, abs=5e-7)
    interval = prob_difference(m1, m2, 0.3) - prob_difference(m1, m2, 0)
    assert interval == pytest.approx(0.6005884, abs=5e-7)
    m1 = BetaMixture.beta(30, 50)
    m2 = BetaMixture([0.75, 0.25], [20, 1], [50, 1])
    assert prob_difference(m1, m2, 0) == pytest.approx(0.2467158, abs=5e-7)
    assert prob_difference(m1, m2, 0.2) == pytest.approx(0.9025757, abs=5e-7)


@pytest.mark.parametrize("link", ["identity", "logit", "log"])
@pytest.mark.parametrize("q", [-0.2, 0.0, 0.15])
def test_prob_difference_equals_double_integral(link, q):
    m1 = BetaMixture([0.6, 0.4], [3, 20], [9, 15])
    m2 = BetaMixture([0.2, 0.8], [1, 6], [1, 14])
    g = {"identity": lambda t: t, "logit": special.logit, "log": np.log}[link]

    def inner(t2):
        # P(g(theta1) <= q + g(theta2)) for theta1 ~ m1
        target = q + g(t2)
        x = {"identity": lambda v: v, "logit": special.expit, "log": np.exp}[link](target)
        return float(m1.cdf(np.clip(x, 0, 1))) * float(m2.pdf(t2))

    ref = integrate.quad(inner, 0, 1, limit=400, epsabs=1e-12, epsrel=1e-12)[0]
    assert prob_difference(m1, m2, q, link=link) == pytest.approx(ref, abs=1e-9)
    up = prob_difference(m1, m2, q, link=link, lower_tail=False)
    assert up == pytest.approx(1 - ref, abs=1e-9)


def test_two_sample_decisions_of_rbest_examples():
    # reference/decision2S.md: post1 <- postmix(mixbeta(c(1, 1, 1)), n = 40, r = 10),
    # post2 <- postmix(..., r = 18); decL2(post2, post1) 1, decL3(post2, post1) 0.
    u = BetaMixture.beta(1, 1)
    post1, post2 = u.postmix(10, 40), u.postmix(18, 40)
    dec_l2 = Rule.two_sample_rule([0.95, 0.5], [0, np.log(2)], lower_tail=False,
                                  link="logit")
    dec_l3 = Rule.two_sample_rule([0.95, 0.5], [0, np.log(3)], lower_tail=False,
                                  link="logit")
    assert dec_l2.decide(post2, post1)
    assert not dec_l3.decide(post2, post1)
    # articles/introduction.md: decision2S(0.95, 0, lower.tail = FALSE) with
    # treat_prior = mixbeta(c(1, 0.5, 1)): decision(postmix(treat, 24, 15),
    # postmix(map, 6, 3)) = 1; (14, 4) = 0; and with the robust MAP, r_placebo = 1,
    # r_treat = 14: pmixdiff(...) = 0.9917197, decision 1.
    dec = parse_rule("P(theta1 - theta2 > 0) > 0.95")
    treat = BetaMixture([1.0], [0.5], [1.0])
    assert dec.decide(treat.postmix(15, 24), AS_MAP.postmix(3, 6))
    assert not dec.decide(treat.postmix(14, 24), AS_MAP.postmix(4, 6))
    post_placebo = AS_MAP.robustify(0.2, mean=0.5).postmix(1, 6)
    post_treat = treat.postmix(14, 24)
    p = prob_difference(post_treat, post_placebo, 0, lower_tail=False)
    assert p == pytest.approx(0.9917197, abs=5e-7)
    assert dec.decide(post_treat, post_placebo)


def test_one_sample_rule_on_tabulated_posterior():
    from bayes_dress.design import TabulatedDensity

    eta = np.linspace(-25, 25, 1001)
    x = special.expit(eta)
    tab = TabulatedDensity(x, stats.beta(5, 10).cdf(x))
    rule = parse_rule("P(theta > 0.2) > 0.8")
    np.testing.assert_allclose(rule.probabilities(tab), [stats.beta(5, 10).sf(0.2)],
                               atol=1e-7)
    with pytest.raises(SpecError):
        parse_rule("P(theta1 - theta2 > 0) > 0.9").probabilities(tab, tab)
