"""The importance-sampling reference engine for the bivariate binomial-logit-normal model
(engines/importance/bivariate.py) against deterministic quadrature, in units of its own
Monte Carlo standard errors.

* rho fixed at 0: the posterior factorises into two univariate logit-normal posteriors,
  tabulated here on a (mu, tau) grid (Simpson) with a trapezoid rule over the study
  effect;
* tau_1, tau_2, rho fixed: the (mu_1, mu_2) posterior on a grid, each study's likelihood a
  brute-force 2-D sum (also the study rates, which checks the per-study latent weights);
* outcome 2 reported by no study: outcome 1's posterior is the univariate one.

Each comparison gives z-scores (IS - reference) / MCSE; they must all be within 4.5 and
their mean square near 1 (no systematic bias, honest MCSEs). The priors are
mu_j ~ N(0, 1.5), tau_j ~ HalfNormal(1), (rho + 1) / 2 ~ Beta(2, 2).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, interpolate, special, stats

from bayes_dress.engines.importance import fit_bivariate

EVENTS = np.array([[1, 16], [5, 1]])  # success 1/6, 16/18; severe AE 5/6, 1/18
TOTALS = np.array([[6, 18], [6, 18]])
PROBS = (0.025, 0.25, 0.5, 0.75, 0.975)


def log_prior(v):
    return (stats.norm.logpdf(v["mu_1"], 0, 1.5) + stats.norm.logpdf(v["mu_2"], 0, 1.5)
            + stats.halfnorm.logpdf(v["tau_1"]) + stats.halfnorm.logpdf(v["tau_2"])
            + stats.beta.logpdf((v["rho"] + 1) / 2, 2, 2) - np.log(2))


def prior_draw(rng, size):
    return {"mu_1": rng.normal(0, 1.5, size), "mu_2": rng.normal(0, 1.5, size),
            "tau_1": np.abs(rng.normal(size=size)), "tau_2": np.abs(rng.normal(size=size)),
            "rho": 2 * rng.beta(2, 2, size) - 1}


def fit(events=EVENTS, totals=TOTALS, reported=None, seed=1, **kwargs):
    return fit_bivariate(events, totals, reported, log_prior=log_prior, prior_draw=prior_draw,
                         rng=np.random.default_rng(seed), **kwargs)


# ----------------------------------------------------------------------------------------
# Deterministic references


def _marginal(x, density):
    cdf = integrate.cumulative_simpson(density, x=x, initial=0.0)
    density, cdf = density / cdf[-1], cdf / cdf[-1]
    mean = integrate.simpson(x * density, x=x)
    sd = np.sqrt(integrate.simpson((x - mean) ** 2 * density, x=x))
    keep = np.r_[True, np.diff(cdf) > 1e-13]
    inverse = interpolate.PchipInterpolator(cdf[keep], x[keep])
    return {"mean": mean, "sd": sd, "quantile": lambda p: float(inverse(p))}


def univariate_reference(events, totals):
    """Posterior of (mu, tau) of the univariate logit-normal model on a 241 x 181 grid
    over [-7.5, 7.5] x [0, 4.5] (Simpson), each likelihood by the trapezoid rule over
    z in [-9, 9] (step 0.1). Grid refinement changes the summaries by < 1e-5."""
    mu = np.linspace(-7.5, 7.5, 241)
    tau = np.linspace(0.0, 4.5, 181)
    z = np.arange(-9.0, 9.05, 0.1)
    wz = stats.norm.pdf(z) * 0.1
    eta = (mu[:, None, None] + tau[None, :, None] * z).reshape(-1, z.size)
    p, q = special.expit(eta), special.expit(-eta)
    log_lik = 0.0
    for y, n in zip(events, totals, strict=True):
        log_lik = log_lik + np.log((p**y * q ** (n - y)) @ wz)
    log_post = (log_lik.reshape(mu.size, tau.size) + stats.norm.logpdf(mu, 0, 1.5)[:, None]
                + stats.halfnorm.logpdf(tau)[None, :])
    dens = np.exp(log_post - log_post.max())
    return (_marginal(mu, integrate.simpson(dens, x=tau, axis=1)),
            _marginal(tau, integrate.simpson(dens, x=mu, axis=0)))


def z_scores(result, name, reference):
    s = result.summary(name, PROBS)
    out = [s["mean"].z_score(reference["mean"]), s["sd"].z_score(reference["sd"])]
    out += [s[f"q{100 * p:g}"].z_score(reference["quantile"](p)) for p in PROBS]
    return out


def check(z, label):
    z = np.asarray(z)
    print(f"\n{label}: {z.size} z-scores, mean {z.mean():+.2f}, mean square "
          f"{np.mean(z**2):.2f}, max |z| {np.abs(z).max():.2f}")
    assert np.abs(z).max() < 4.5
    # correlated z-scores (mean and median of one parameter...): a loose band
    assert 0.15 < np.mean(z**2) < 2.5
    assert abs(z.mean()) < 1.5


# ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def references():
    return {j: univariate_reference(EVENTS[j], TOTALS[j]) for j in (0, 1)}


def test_rho_zero_factorises_into_univariate_posteriors(references):
    z = []
    for seed in (1, 2):
        result = fit(fixed={"rho": 0.0}, seed=seed)
        assert result.reliable, result.verdict
        assert result.free == ("mu_1", "mu_2", "tau_1", "tau_2")
        assert np.all(result.draws["rho"] == 0.0)
        for j in (0, 1):
            for name, ref in zip((f"mu_{j + 1}", f"tau_{j + 1}"), references[j], strict=True):
                z += z_scores(result, name, ref)
        # the bridge estimate of the prior's constant: log Beta(2, 2) density at 1/2, / 2
        assert result.info["log_prior_normaliser"] == pytest.approx(np.log(0.75), abs=0.03)
    check(z, "rho = 0 vs univariate quadrature")


def test_outcome_never_reported_leaves_outcome_one_univariate(references):
    """Outcome 2 reported by no study: (mu_1, tau_1) has the univariate posterior of
    outcome 1 whatever rho, and (mu_2, tau_2, rho) keep their prior."""
    reported = np.array([[True, True], [False, False]])
    result = fit(reported=reported, seed=3)
    assert result.reliable, result.verdict
    z = z_scores(result, "mu_1", references[0][0]) + z_scores(result, "tau_1",
                                                              references[0][1])
    prior_rho = {"mean": 0.0, "sd": np.sqrt(1 / 5),
                 "quantile": lambda p: 2 * stats.beta(2, 2).ppf(p) - 1}
    prior_tau = {"mean": np.sqrt(2 / np.pi), "sd": np.sqrt(1 - 2 / np.pi),
                 "quantile": stats.halfnorm.ppf}
    z += z_scores(result, "rho", prior_rho) + z_scores(result, "tau_2", prior_tau)
    check(z, "outcome 2 unreported")


# ----------------------------------------------------------------------------------------
# (mu_1, mu_2) with tau_1, tau_2, rho fixed

FIXED = {"tau_1": 0.9, "tau_2": 1.3, "rho": -0.8}


def _fixed_reference():
    """(mu_1, mu_2) on a 193 x 193 grid over [-6, 6]^2 (step 1/16: 0 and -1 on the grid),
    L_i(mu_1, mu_2) = sum_q sum_r w_q w_r Bin(y_i1 | eta_1) Bin(y_i2 | eta_2) over a
    trapezoid grid z in [-8, 8]^2 (step 0.1). Also the posterior mean and SD of each
    study's two rates."""
    t1, t2, rho = FIXED["tau_1"], FIXED["tau_2"], FIXED["rho"]
    s = np.sqrt(1 - rho**2)
    mu = np.linspace(-6.0, 6.0, 193)
    z = np.arange(-8.0, 8.05, 0.1)
    w = stats.norm.pdf(z) * 0.1
    lik, moments = [], []
    for i in range(EVENTS.shape[1]):
        (y1, y2), (n1, n2) = EVENTS[:, i], TOTALS[:, i]
        eta1 = mu[None, :] + t1 * z[:, None]                        # (q, m1)
        r1 = special.expit(eta1)
        a = special.comb(n1, y1) * r1**y1 * (1 - r1) ** (n1 - y1)
        b = np.empty((3, z.size, mu.size))                          # (g, q, m2)
        for qi, zq in enumerate(z):
            eta2 = mu[:, None] + t2 * (rho * zq + s * z[None, :])  # (m2, r)
            r2 = special.expit(eta2)
            bin2 = special.comb(n2, y2) * r2**y2 * (1 - r2) ** (n2 - y2)
            b[0, qi], b[1, qi], b[2, qi] = bin2 @ w, (bin2 * r2) @ w, (bin2 * r2**2) @ w
        aw = a * w[:, None]
        lik_i = aw.T @ b[0]
        lik.append(lik_i)
        moments.append({(0, 1): (aw * r1).T @ b[0], (0, 2): (aw * r1**2).T @ b[0],
                        (1, 1): aw.T @ b[1], (1, 2): aw.T @ b[2]})
    prior = stats.norm.pdf(mu, 0, 1.5)
    post = np.prod(lik, axis=0) * prior[:, None] * prior[None, :]

    def integral(f):
        return integrate.simpson(integrate.simpson(f, x=mu, axis=1), x=mu)

    total = integral(post)
    refs = {"mu_1": _marginal(mu, integrate.simpson(post, x=mu, axis=1)),
            "mu_2": _marginal(mu, integrate.simpson(post, x=mu, axis=0))}
    rates = {}
    for i in range(EVENTS.shape[1]):
        others = post / lik[i]
        for j in (0, 1):
            m1 = integral(others * moments[i][(j, 1)]) / total
            m2 = integral(others * moments[i][(j, 2)]) / total
            rates[(i, j)] = (m1, np.sqrt(m2 - m1**2))
    above, below = mu >= 0.0, mu <= -1.0
    joint = integrate.simpson(integrate.simpson(post[np.ix_(above, below)], x=mu[below],
                                                axis=1), x=mu[above]) / total
    return refs, rates, joint


def test_fixed_heterogeneity_against_a_grid():
    refs, rates, joint = _fixed_reference()
    result = fit(fixed=FIXED, seed=4)
    assert result.reliable, result.verdict
    assert result.free == ("mu_1", "mu_2")
    z = z_scores(result, "mu_1", refs["mu_1"]) + z_scores(result, "mu_2", refs["mu_2"])
    from bayes_dress.posterior import weighted_stats as weighted

    event = (result.draws["mu_1"] >= 0) & (result.draws["mu_2"] <= -1)
    z.append(weighted.probability(event, result.log_weights).z_score(joint))
    for (i, j), (mean, sd) in rates.items():
        s = result.study_summary(i, j)
        z += [s["mean"].z_score(mean), s["sd"].z_score(sd)]
    check(z, "tau, rho fixed vs grid (incl. study rates)")


def test_bundled_counts_are_reliable():
    """k-hat and ESS on the bundled counts, with the severe-AE count of Sim 2022 at 1/18
    and at 0/18 (printed: run pytest -s)."""
    for sae in (1, 0):
        events = EVENTS.copy()
        events[1, 1] = sae
        result = fit(events=events)
        print(f"\nbundled, SAE {sae}/18: {result.verdict}; study k-hat "
              f"{np.round(result.study_khat, 2)}, study ESS {np.round(result.study_ess)}; "
              f"{result.timings['total']:.2f} s")
        assert result.reliable
        assert result.khat < 0.7 and result.ess > 4000
        assert np.all(result.study_ess > 4000)
