"""The importance-sampling engine with all five hyperparameters free, against a coarse
5-D brute-force tensor quadrature of the posterior on the bundled counts (success 1/6,
16/18; severe AE 5/6, 1/18), priors mu_j ~ N(0, 1.5), tau_j ~ HalfNormal(1),
(rho + 1) / 2 ~ Beta(2, 2).

Grid: Gauss-Legendre panels on the natural scale, mu_j on [-7, -2, 0, 2, 7] (5 nodes a
panel), tau_j on [0, 1, 4.5] (6), rho on [-1, 0, 1] (6): 691,200 points, each study's
likelihood by the engine's own quadrature (coarse settings, ~1e-4 relative; the
quadrature is checked on its own in test_importance_agq.py). Refining to 6/7/7 nodes, or
to twice the panels, moves every summary by < 6e-4, a tenth of its MCSE.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from bayes_dress.engines.importance import fit_bivariate, weighted
from bayes_dress.engines.importance._agq2 import StudyData, study_log_likelihood

EVENTS = np.array([[1, 16], [5, 1]])
TOTALS = np.array([[6, 18], [6, 18]])
NAMES = ("mu_1", "mu_2", "tau_1", "tau_2", "rho")
THRESHOLDS = {"mu_1": 0.0, "mu_2": 0.0, "tau_1": 1.0, "tau_2": 1.0, "rho": 0.0}


def log_prior(v):
    return (stats.norm.logpdf(v["mu_1"], 0, 1.5) + stats.norm.logpdf(v["mu_2"], 0, 1.5)
            + stats.halfnorm.logpdf(v["tau_1"]) + stats.halfnorm.logpdf(v["tau_2"])
            + stats.beta.logpdf((v["rho"] + 1) / 2, 2, 2) - np.log(2))


def prior_draw(rng, size):
    return {"mu_1": rng.normal(0, 1.5, size), "mu_2": rng.normal(0, 1.5, size),
            "tau_1": np.abs(rng.normal(size=size)), "tau_2": np.abs(rng.normal(size=size)),
            "rho": 2 * rng.beta(2, 2, size) - 1}


def _panels(edges, m):
    x, w = np.polynomial.legendre.leggauss(m)
    nodes = [0.5 * (b - a) * x + 0.5 * (a + b) for a, b in itertools.pairwise(edges)]
    weights = [0.5 * (b - a) * w for a, b in itertools.pairwise(edges)]
    return np.concatenate(nodes), np.concatenate(weights)


def brute_force():
    mu, wmu = _panels([-7.0, -2.0, 0.0, 2.0, 7.0], 5)
    tau, wtau = _panels([0.0, 1.0, 4.5], 6)
    rho, wrho = _panels([-1.0, 0.0, 1.0], 6)
    grid = [a.ravel() for a in np.meshgrid(mu, mu, tau, tau, rho, indexing="ij")]
    w = np.einsum("a,b,c,d,e->abcde", wmu, wmu, wtau, wtau, wrho).ravel()
    values = dict(zip(NAMES, grid, strict=True))
    data = StudyData(EVENTS, TOTALS, np.ones((2, 2), bool))
    ll = study_log_likelihood(*grid, data, h_max=1.0, c_pole=1.0,
                              log_threshold=-20.0)[0].sum(axis=1)
    log_post = ll + log_prior(values)
    post = w * np.exp(log_post - log_post.max())
    post /= post.sum()
    out = {}
    for name, x in values.items():
        mean = post @ x
        out[name] = {"mean": mean, "sd": np.sqrt(post @ (x - mean) ** 2),
                     "above": post @ (x > THRESHOLDS[name])}
    return out


@pytest.mark.slow
def test_all_free_against_5d_brute_force():
    reference = brute_force()
    z = []
    for seed in (11, 12):
        result = fit_bivariate(EVENTS, TOTALS, log_prior=log_prior, prior_draw=prior_draw,
                               rng=np.random.default_rng(seed))
        print(f"\n{result.verdict}")
        assert result.reliable
        for name in NAMES:
            x, lw = result.draws[name], result.log_weights
            ref = reference[name]
            z += [weighted.mean(x, lw).z_score(ref["mean"]),
                  weighted.sd(x, lw).z_score(ref["sd"]),
                  weighted.prob_above(x, lw, THRESHOLDS[name]).z_score(ref["above"])]
    z = np.array(z)
    print(f"5-D brute force: {z.size} z-scores, mean {z.mean():+.2f}, mean square "
          f"{np.mean(z**2):.2f}, max |z| {np.abs(z).max():.2f}")
    assert np.abs(z).max() < 4.5
    assert 0.15 < np.mean(z**2) < 2.5
