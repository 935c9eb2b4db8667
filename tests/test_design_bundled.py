"""The bundled IVIG-in-DRESS success counts give a MAP prior with no usable information,
and the design code says so.

The counts are the primary success rows of data/outcomes.csv: Joly2012 1/6 and Sim2022
16/18. The MAP prior is computed here, self-contained (the design subpackage must not
depend on the rest of the package), as RBesT's gMAP model would define it: logit-normal
random effects, mu ~ N(0, 2^2) (RBesT's default beta.prior for binary data), tau ~
HalfNormal(0, 1) ("conservative" default of the RBesT vignette) or HalfNormal(0, 1/2)
("more optimistic"); the predictive of a new study's rate by deterministic integration
on a (mu, tau) grid. It is an independent, coarse but accurate stand-in for the
package's exact engine.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

from bayes_dress.design import (
    TabulatedDensity,
    automixfit,
    ess_all,
    ess_verdict,
    parse_rule,
)
from bayes_dress.design.oc import boundary1s

EVENTS, TOTALS = (1, 16), (6, 18)


def exact_map(tau_scale: float) -> TabulatedDensity:
    mu = np.linspace(-8, 8, 81)
    tau = np.linspace(0.0375, 6, 80)
    M, T = np.meshgrid(mu, tau, indexing="ij")
    nodes, weights = np.polynomial.hermite_e.hermegauss(60)
    weights = weights / weights.sum()
    logpost = stats.norm.logpdf(M, 0, 2) + stats.halfnorm.logpdf(T, scale=tau_scale)
    for y, n in zip(EVENTS, TOTALS, strict=True):
        eta = M[..., None] + T[..., None] * nodes
        logpost += np.log(np.exp(stats.binom.logpmf(y, n, special.expit(eta))) @ weights)
    w = np.exp(logpost - logpost.max()).ravel()
    w /= w.sum()
    keep = w > 1e-12
    # Each grid cell stands for a spread of mu: widen its normal by the cell's SD.
    m = M.ravel()[keep]
    s = np.sqrt(T.ravel()[keep] ** 2 + (mu[1] - mu[0]) ** 2 / 12)
    w = w[keep] / w[keep].sum()
    eta = np.linspace(-30, 30, 801)
    z = (eta[:, None] - m[None, :]) / s[None, :]
    cdf = special.ndtr(z) @ w
    dens = (np.exp(-0.5 * z * z) / (np.sqrt(2 * np.pi) * s[None, :])) @ w
    x = special.expit(eta)
    return TabulatedDensity(x, cdf, logpdf=np.log(dens) - np.log(x * (1 - x)),
                            name="bundled MAP")


@pytest.fixture(scope="module")
def map_hn1():
    return exact_map(1.0)


def test_bundled_map_is_flat_or_u_shaped_and_says_so(map_hn1):
    # A predictive spread over the whole unit interval: sd close to the uniform's 0.289.
    assert map_hn1.sd() > 0.27
    verdict = ess_verdict(map_hn1)
    assert verdict.level == "none" and not verdict.informative
    assert verdict.shape.nearly_flat or verdict.shape.u_shaped
    assert "no usable information" in verdict.message
    assert "nearly flat" in verdict.message or "U-shaped" in verdict.message
    # ESS of about two patients at most by the reliable methods
    summary = ess_all(map_hn1)
    assert summary["moment"].value < 3
    # its mixture approximation says the same
    mix = automixfit(map_hn1).mixture
    assert ess_verdict(mix).level == "none"


def test_bundled_map_borrowing_changes_nothing(map_hn1):
    # With no information in the prior, the decision boundary of a planned trial is that
    # of a uniform prior to within one responder.
    from bayes_dress.design import BetaMixture

    rule = parse_rule("P(theta > 0.5) > 0.9")
    exact = boundary1s(map_hn1, 30, rule).rbest()
    flat = boundary1s(BetaMixture.beta(1, 1), 30, rule).rbest()
    assert abs(exact - flat) <= 1


def test_optimistic_tau_prior_is_still_weak():
    verdict = ess_verdict(exact_map(0.5))
    assert verdict.level in ("none", "weak")
    assert not verdict.informative
