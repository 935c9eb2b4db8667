"""Properties of the importance-sampling reference engine (engines/importance/bivariate.py):
symmetries (swapping the outcomes; recoding one as non-events), rho at or near ±1,
prior-only fits, the study-effect weights on their own, determinism, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

from bayes_dress.engines.importance import PARAMETERS, fit_bivariate, weighted

EVENTS = np.array([[1, 16], [5, 1]])
TOTALS = np.array([[6, 18], [6, 18]])
PROBS = (0.05, 0.5, 0.95)


def log_prior(v):
    return (stats.norm.logpdf(v["mu_1"], 0, 1.5) + stats.norm.logpdf(v["mu_2"], 0, 1.5)
            + stats.halfnorm.logpdf(v["tau_1"]) + stats.halfnorm.logpdf(v["tau_2"])
            + stats.beta.logpdf((v["rho"] + 1) / 2, 2, 2) - np.log(2))


def prior_draw(rng, size):
    return {"mu_1": rng.normal(0, 1.5, size), "mu_2": rng.normal(0, 1.5, size),
            "tau_1": np.abs(rng.normal(size=size)), "tau_2": np.abs(rng.normal(size=size)),
            "rho": 2 * rng.beta(2, 2, size) - 1}


def fit(events=EVENTS, totals=TOTALS, reported=None, seed=1, prior=(log_prior, prior_draw),
        **kwargs):
    return fit_bivariate(events, totals, reported, log_prior=prior[0], prior_draw=prior[1],
                         rng=np.random.default_rng(seed), **kwargs)


@pytest.fixture(scope="module")
def base():
    return fit(draws=12000)


def _stats(result, name, sign=1.0):
    """Mean and quantiles of sign * parameter, as (value, mcse) pairs."""
    x = sign * result.draws[name]
    out = [tuple(weighted.mean(x, result.log_weights))]
    out += [tuple(e) for e in weighted.quantiles(x, result.log_weights, PROBS)]
    return out


def _difference_z(a, b):
    return [(va - vb) / np.hypot(sa, sb) for (va, sa), (vb, sb) in zip(a, b, strict=True)]


def test_swapping_the_outcomes(base):
    swapped = fit(events=EVENTS[::-1], totals=TOTALS[::-1], seed=2, draws=12000)
    z = []
    for a, b in (("mu_1", "mu_2"), ("mu_2", "mu_1"), ("tau_1", "tau_2"), ("tau_2", "tau_1"),
                 ("rho", "rho")):
        z += _difference_z(_stats(base, a), _stats(swapped, b))
    print(f"\nswap: max |z| {np.abs(z).max():.2f}, mean square {np.mean(np.square(z)):.2f}")
    assert np.abs(z).max() < 4.5


def test_recoding_outcome_two_as_non_events(base):
    """y2 -> n2 - y2 maps mu_2 -> -mu_2 and rho -> -rho (the rho prior is symmetric)."""
    events = EVENTS.copy()
    events[1] = TOTALS[1] - EVENTS[1]
    recoded = fit(events=events, seed=3, draws=12000)
    z = _difference_z(_stats(base, "mu_1"), _stats(recoded, "mu_1"))
    z += _difference_z(_stats(base, "tau_2"), _stats(recoded, "tau_2"))
    for name in ("mu_2", "rho"):
        z += _difference_z(_stats(base, name), _stats(recoded, name, sign=-1.0))
    # study rates of outcome 2 become 1 - rate
    for i in range(2):
        a = base.study_summary(i, 1, probs=PROBS)
        b = recoded.study_summary(i, 1, probs=PROBS)
        z.append((a["mean"].value - (1 - b["mean"].value)) / np.hypot(a["mean"].mcse,
                                                                      b["mean"].mcse))
    print(f"\nrecode: max |z| {np.abs(z).max():.2f}, mean square {np.mean(np.square(z)):.2f}")
    assert np.abs(z).max() < 4.5


def _without_rho(v):
    """The prior without rho's factor (0 at rho = ±1: a fixed rho needs none)."""
    return (stats.norm.logpdf(v["mu_1"], 0, 1.5) + stats.norm.logpdf(v["mu_2"], 0, 1.5)
            + stats.halfnorm.logpdf(v["tau_1"]) + stats.halfnorm.logpdf(v["tau_2"]))


@pytest.mark.parametrize("rho", [0.999, -0.999, 1.0, -1.0])
def test_rho_fixed_at_the_boundary(rho):
    prior = (log_prior if abs(rho) < 1 else _without_rho, prior_draw)
    result = fit(fixed={"rho": rho}, draws=4000, prior=prior)
    assert result.reliable, result.verdict
    for name in PARAMETERS:
        assert np.all(np.isfinite(result.draws[name]))
    assert np.all(np.isfinite(result.log_weights))
    assert np.all(np.isfinite(result.z)) and np.all(np.isfinite(result.log_latent_factors))
    assert np.all(np.isfinite(result.study_eta()))


def _atanh_normal_prior(sd):
    """CopulaDTA's prior: atanh(rho) ~ N(0, sd^2) (U-shaped on rho for large sd), on
    the exact atanh_rho the engine passes (rho = tanh(.) rounds to ±1 beyond 19)."""
    def lp(v):
        c = v["atanh_rho"]
        log_1m_rho2 = 2 * (np.log(2) - np.abs(c) - np.log1p(np.exp(-2 * np.abs(c))))
        return (_without_rho(v) + stats.norm.logpdf(c, 0, sd) - log_1m_rho2)

    def draw(rng, size):
        d = prior_draw(rng, size)
        d["atanh_rho"] = rng.normal(0, sd, size)
        d["rho"] = np.tanh(d["atanh_rho"])
        return d
    return lp, draw


@pytest.mark.parametrize("sd", [2.0, 10.0])
def test_prior_piling_mass_at_the_boundary(sd):
    """atanh(rho) ~ N(0, sd^2) puts most mass at |rho| > 0.9: the fit stays finite and
    says whether it is reliable; P(|rho| > 0.9) comes with an MCSE."""
    result = fit(prior=_atanh_normal_prior(sd), draws=8000)
    assert np.all(np.isfinite(result.log_weights))
    # the prior component puts draws beyond |atanh rho| = 19 (P = 0.06 for sd = 10)
    if sd == 10.0:
        assert np.mean(np.abs(np.arctanh(np.clip(result.draws["rho"], -1 + 1e-16,
                                                 1 - 1e-16))) > 18) > 0.001
    assert np.all(np.isfinite(result.study_log_weights))
    p = weighted.probability(np.abs(result.draws["rho"]) > 0.9, result.log_weights)
    print(f"\natanh rho ~ N(0, {sd}^2): {result.verdict}; P(|rho| > 0.9) = {p.value:.3f} "
          f"+- {p.mcse:.3f}")
    assert 0.0 < p.value < 1.0 and p.mcse > 0
    assert result.reliable


@pytest.mark.parametrize("how", ["unreported", "zero totals"])
def test_prior_only_reproduces_the_prior(how):
    if how == "unreported":
        result = fit(reported=np.zeros((2, 2), bool), draws=8000)
    else:
        result = fit(events=np.zeros((2, 2), int), totals=np.zeros((2, 2), int), draws=8000)
    assert result.reliable, result.verdict
    priors = {"mu_1": stats.norm(0, 1.5), "mu_2": stats.norm(0, 1.5),
              "tau_1": stats.halfnorm(), "tau_2": stats.halfnorm(),
              "rho": stats.beta(2, 2, loc=-1, scale=2)}
    z = []
    for name, dist in priors.items():
        z.append(weighted.mean(result.draws[name], result.log_weights).z_score(dist.mean()))
        for p, est in zip(PROBS, weighted.quantiles(result.draws[name], result.log_weights,
                                                    PROBS), strict=True):
            z.append(est.z_score(dist.ppf(p)))
    print(f"\nprior only ({how}): max |z| {np.abs(z).max():.2f}")
    assert np.abs(z).max() < 4.5
    assert result.log_evidence == pytest.approx(0.0, abs=5 * result.log_evidence_mcse + 1e-3)


def test_prior_only_with_mass_at_the_boundary():
    """atanh(rho) ~ N(0, 10^2), nothing reported: the weighted draws of atanh(rho) (exact,
    in result.theta) reproduce the prior although 6% of it lies where rho rounds to ±1."""
    result = fit(reported=np.zeros((2, 2), bool), draws=8000, prior=_atanh_normal_prior(10.0))
    assert result.reliable, result.verdict
    c = result.theta[:, result.free.index("rho")]
    z = [weighted.mean(c, result.log_weights).z_score(0.0),
         weighted.sd(c, result.log_weights).z_score(10.0)]
    z += [e.z_score(stats.norm(0, 10).ppf(p))
          for p, e in zip(PROBS, weighted.quantiles(c, result.log_weights, PROBS), strict=True)]
    z.append(weighted.prob_above(np.abs(c), result.log_weights, 19.0).z_score(
        2 * stats.norm(0, 10).sf(19.0)))
    print(f"\nprior only, atanh rho ~ N(0, 10^2): max |z| {np.abs(z).max():.2f}")
    assert np.abs(z).max() < 4.5


def test_study_effects_alone():
    """Every hyperparameter fixed: only the study effects are sampled, and their weighted
    draws give each study's posterior rates (checked on a fine grid); the factors r_is
    average 1."""
    hyper = {"mu_1": 0.4, "mu_2": -1.0, "tau_1": 1.2, "tau_2": 0.8, "rho": -0.6}
    result = fit(fixed=hyper, draws=8000)
    assert result.free == () and result.reliable
    g = np.arange(-9, 9.001, 0.02)
    z1, z2 = np.meshgrid(g, g, indexing="ij")
    s = np.sqrt(1 - hyper["rho"] ** 2)
    eta = (hyper["mu_1"] + hyper["tau_1"] * z1,
           hyper["mu_2"] + hyper["tau_2"] * (hyper["rho"] * z1 + s * z2))
    z = []
    for i in range(2):
        log_p = -0.5 * (z1**2 + z2**2)
        for j in (0, 1):
            y, n = EVENTS[j, i], TOTALS[j, i]
            log_p = log_p + y * eta[j] - n * np.logaddexp(0, eta[j])
        post = np.exp(log_p - log_p.max())
        post /= post.sum()
        for j in (0, 1):
            rate = special.expit(eta[j])
            s_ij = result.study_summary(i, j)
            mean = np.sum(post * rate)
            z += [s_ij["mean"].z_score(mean),
                  s_ij["sd"].z_score(np.sqrt(np.sum(post * (rate - mean) ** 2)))]
        r = np.exp(result.log_latent_factors[:, i])
        assert abs(r.mean() - 1) < 4.5 * r.std() / np.sqrt(r.size)
    print(f"\nstudy effects alone: max |z| {np.abs(z).max():.2f}")
    assert np.abs(z).max() < 4.5


def test_deterministic_given_the_seed():
    a = fit(draws=2000, adapt_draws=1000)
    b = fit(draws=2000, adapt_draws=1000)
    for name in PARAMETERS:
        np.testing.assert_array_equal(a.draws[name], b.draws[name])
    np.testing.assert_array_equal(a.log_weights, b.log_weights)
    np.testing.assert_array_equal(a.z, b.z)
    np.testing.assert_array_equal(a.study_log_weights, b.study_log_weights)


def test_result_fields(base):
    s, k = base.size, 2
    assert set(base.draws) == set(PARAMETERS)
    assert all(v.shape == (s,) for v in base.draws.values())
    assert base.log_weights.shape == (s,) and base.z.shape == (s, k, 2)
    assert base.theta.shape == (s, 5)
    np.testing.assert_allclose(np.exp(base.theta[:, 2]), base.draws["tau_1"])
    assert base.log_latent_factors.shape == (s, k)
    assert base.study_log_weights.shape == (s, k)
    assert np.isclose(special.logsumexp(base.log_weights), 0.0)
    assert np.allclose(special.logsumexp(base.study_log_weights, axis=0), 0.0)
    assert base.study_eta().shape == (s, k, 2) and base.study_rates().shape == (s, k, 2)
    assert base.new_study_eta(np.random.default_rng(0)).shape == (s, 2)
    assert {"total", "final", "adapt", "mode"} <= set(base.timings)
    assert base.verdict.startswith("reliable")
    assert np.isfinite(base.log_evidence) and base.log_evidence < 0


@pytest.mark.parametrize("kwargs, match", [
    ({"fixed": {"sigma": 1.0}}, "unknown fixed"),
    ({"fixed": {"tau_1": -1.0}}, "tau_1"),
    ({"fixed": {"rho": 1.5}}, "rho"),
    ({"defensive": 0.0}, "defensive"),
    ({"draws": 10}, "draws"),
])
def test_bad_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit(**kwargs)


def test_log_prior_must_be_finite_at_the_fixed_values():
    with pytest.raises(ValueError, match="rho = 1 fixed"):
        fit(fixed={"rho": 1.0})


def test_prior_draw_must_cover_the_free_parameters():
    def partial(rng, size):
        d = prior_draw(rng, size)
        del d["rho"]
        return d
    with pytest.raises(ValueError, match="rho"):
        fit(prior=(log_prior, partial))
    fit(prior=(log_prior, partial), fixed={"rho": 0.0}, draws=500, adapt_draws=500)
