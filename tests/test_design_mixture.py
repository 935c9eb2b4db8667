"""Beta mixtures, their predictives, robustification and RBesT's JSON format.

RBesT reference numbers are taken from RBesT's rendered documentation on its gh-pages
branch, commit f9309c457916fb2b7f8a34f4c49aa68c2134086f ("Deploying to gh-pages from
Novartis/RBesT@30cf4cde", the v1.9-0 release commit 30cf4cde1e2a744b3550d10b33b4e7bcd78e7b69;
the session info of articles/introduction.md says RBesT_1.9-0). Files are named per test.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from bayes_dress.design import (
    BetaMixture,
    NormalMixture,
    combine,
    mix_from_json,
    mix_to_json,
    read_mix_json,
    robustify,
    write_mix_json,
)
from bayes_dress.errors import SpecError

# RBesT 1.9-0 articles/introduction.md (gh-pages f9309c4), `print(map)` of the AS MAP.
AS_MAP = BetaMixture([0.4612914, 0.1917812, 0.1893896, 0.1575378],
                     [33.9513487, 19.4400089, 12.2692310, 2.2521243],
                     [103.0146367, 41.5205219, 55.9202833, 5.4812202])

MIXTURES = [
    BetaMixture.beta(3, 7),
    BetaMixture([0.2, 0.8], [1, 10], [1, 2]),
    AS_MAP,
    BetaMixture([0.5, 0.5], [0.5, 30], [2, 5]),
]


@pytest.mark.parametrize("mix", MIXTURES, ids=range(len(MIXTURES)))
def test_density_cdf_and_moments_agree_with_quadrature(mix):
    total = integrate.quad(mix.pdf, 0, 1, limit=200, points=[0.1, 0.3, 0.9])[0]
    assert total == pytest.approx(1.0, abs=1e-8)
    for x in (0.05, 0.25, 0.5, 0.8):
        ref = integrate.quad(mix.pdf, 0, x, limit=200)[0]
        assert float(mix.cdf(x)) == pytest.approx(ref, abs=1e-8)
        assert float(mix.sf(x)) == pytest.approx(1 - ref, abs=1e-8)
    mean = integrate.quad(lambda t: t * mix.pdf(t), 0, 1, limit=200)[0]
    second = integrate.quad(lambda t: t * t * mix.pdf(t), 0, 1, limit=200)[0]
    assert mix.mean() == pytest.approx(mean, abs=1e-9)
    assert mix.sd() == pytest.approx(np.sqrt(second - mean**2), abs=1e-8)


@settings(max_examples=60, deadline=None)
@given(p=st.floats(1e-10, 1 - 1e-10), k=st.integers(0, len(MIXTURES) - 1))
def test_quantile_inverts_cdf_exactly(p, k):
    mix = MIXTURES[k]
    q = float(mix.quantile(p))
    assert float(mix.cdf(q)) == pytest.approx(p, rel=1e-9, abs=1e-13)


def test_as_map_summary_matches_rbest():
    # introduction.md, `summary(map)`:
    #   mean 0.25545885, sd 0.08662045, 2.5% 0.10730400, 50% 0.24758768, 97.5% 0.46276759.
    # Mean and sd are exact in both (printed to 8 decimals; the printed mixture is rounded
    # to 7 decimals, which moves them by < 1e-8): tolerance 2e-8. RBesT's quantiles come
    # from uniroot with tolerance .Machine$double.eps^0.25 ~ 1.2e-4; ours are exact, so
    # the tolerance is 2e-4.
    assert AS_MAP.mean() == pytest.approx(0.25545885, abs=2e-8)
    assert AS_MAP.sd() == pytest.approx(0.08662045, abs=2e-8)
    q = AS_MAP.quantile([0.025, 0.5, 0.975])
    np.testing.assert_allclose(q, [0.10730400, 0.24758768, 0.46276759], atol=2e-4)
    s = AS_MAP.summary()
    assert set(s) == {"mean", "sd", "2.5%", "50%", "97.5%"}


def test_sampling_is_reproducible_and_unbiased():
    a = AS_MAP.sample(20000, np.random.default_rng(7))
    b = AS_MAP.sample(20000, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert a.mean() == pytest.approx(AS_MAP.mean(), abs=4 * AS_MAP.sd() / np.sqrt(a.size))


def _posterior_by_quadrature(prior: BetaMixture, r: int, n: int, x: float) -> float:
    def kernel(t):
        return prior.pdf(t) * stats.binom.pmf(r, n, t)

    norm = integrate.quad(kernel, 0, 1, limit=400, epsabs=1e-14, epsrel=1e-12)[0]
    return integrate.quad(kernel, 0, x, limit=400, epsabs=1e-14, epsrel=1e-12)[0] / norm


@pytest.mark.parametrize("r,n", [(0, 5), (3, 10), (18, 20), (40, 40)])
def test_postmix_equals_direct_integration(r, n):
    for prior in (AS_MAP, robustify(AS_MAP, 0.2), BetaMixture([0.5, 0.5], [4, 1], [10, 1])):
        post = prior.postmix(r, n)
        for x in (0.1, 0.3, 0.6, 0.9):
            assert float(post.cdf(x)) == pytest.approx(_posterior_by_quadrature(prior, r, n, x),
                                                       abs=1e-9)


def test_postmix_weights_match_rbest_example():
    # reference/postmix.md: prior.rob <- mixbeta(c(0.5, 4, 10), c(0.5, 1, 1)),
    # postmix(prior.rob, n = 20, r = 18): w = 0.002672948 0.997327052, a = 22 19, b = 12 3.
    # Closed form in both; printed to 9 decimals: tolerance 1e-9.
    post = BetaMixture([0.5, 0.5], [4, 1], [10, 1]).postmix(18, 20)
    np.testing.assert_allclose(post.weights, [0.002672948, 0.997327052], atol=1e-9)
    np.testing.assert_array_equal(post.a, [22, 19])
    np.testing.assert_array_equal(post.b, [12, 3])
    # posterior_weights for many counts at once agrees with postmix
    prior = BetaMixture([0.5, 0.5], [4, 1], [10, 1])
    w = prior.posterior_weights(np.arange(21), 20)
    np.testing.assert_allclose(w[18], post.weights, rtol=1e-12)


def test_robust_component_takes_over_under_conflict():
    prior = robustify(BetaMixture.beta(4, 16), 0.2)
    assert prior.names == ("comp1", "robust")
    # consistent data keep the informative component, conflicting data hand over
    assert prior.postmix(4, 20).weight_of("robust") < 0.2
    assert prior.postmix(18, 20).weight_of("robust") > 0.99


def test_preddist_matches_rbest_example():
    # reference/preddist.md, Example 2: bm <- mixbeta(inf = c(0.8, 15, 50), rob = c(0.2, 1, 1)),
    # dmix(preddist(bm, n = 10), 0:10) printed to 7 significant digits: rtol 5e-7.
    bm = BetaMixture([0.8, 0.2], [15, 1], [50, 1], names=["inf", "rob"])
    pred = bm.preddist(10)
    ref = [0.08814590, 0.19605661, 0.23899190, 0.19379686, 0.11696528, 0.05913205,
           0.03082078, 0.02104347, 0.01863583, 0.01822732, 0.01818400]
    np.testing.assert_allclose(pred.pmf_all(), ref, rtol=5e-7)
    assert int(pred.quantile(0.5)) == 2  # printed `mdn` [1] 2
    # Example 1: uniform prior, n = 10: median 5
    assert int(BetaMixture.beta(1, 1).preddist(10).quantile(0.5)) == 5
    # against direct integration, and moments
    for y in (0, 4, 10):
        direct = integrate.quad(lambda t, y=y: bm.pdf(t) * stats.binom.pmf(y, 10, t), 0, 1,
                                limit=200)[0]
        assert float(pred.pmf(y)) == pytest.approx(direct, rel=1e-8)
    pmf = pred.pmf_all()
    assert pmf.sum() == pytest.approx(1.0, abs=1e-12)
    assert pred.mean() == pytest.approx(np.dot(pmf, np.arange(11)), rel=1e-12)
    assert pred.sd() == pytest.approx(np.sqrt(np.dot(pmf, (np.arange(11) - pred.mean())**2)),
                                      rel=1e-10)
    np.testing.assert_allclose(pred.cdf(np.arange(11)), np.cumsum(pmf), atol=1e-14)
    np.testing.assert_allclose(pred.sf(np.arange(11)), 1 - np.cumsum(pmf), atol=1e-14)


def test_robustify_matches_rbest():
    # reference/robustify.md: bmix <- mixbeta(inf1 = c(0.2, 8, 3), inf2 = c(0.8, 10, 2));
    # robustify(bmix, weight = 0.1, mean = 0.5): w 0.18 0.72 0.10, robust = Beta(1, 1).
    bmix = BetaMixture([0.2, 0.8], [8, 10], [3, 2], names=["inf1", "inf2"])
    rb = bmix.robustify(0.1, mean=0.5)
    assert rb.names == ("inf1", "inf2", "robust")
    np.testing.assert_allclose(rb.weights, [0.18, 0.72, 0.10], rtol=1e-14)
    assert (rb.a[-1], rb.b[-1]) == (1.0, 1.0)
    # tests/testthat/test-utils.R: n = 0 gives Beta(1/2, 1/2)
    rb0 = robustify(bmix, 0.1, n=0, mean=0.5)
    assert (rb0.a[-1], rb0.b[-1]) == (0.5, 0.5)
    # mean/n parametrisation: Beta(mean (n + 1), (1 - mean)(n + 1))
    rb3 = robustify(bmix, 0.3, mean=0.2, n=4)
    assert rb3.a[-1] == pytest.approx(1.0) and rb3.b[-1] == pytest.approx(4.0)
    # the weight is required
    with pytest.raises(TypeError):
        bmix.robustify()  # type: ignore[call-arg]
    with pytest.raises(SpecError, match="robust weight"):
        bmix.robustify(1.5)
    # weights 0 and 1 keep the component
    assert robustify(bmix, 0.0).weight_of("robust") == 0.0
    assert robustify(bmix, 1.0).weight_of("robust") == 1.0


def test_mixbeta_parametrisations_match_rbest():
    # reference/mixbeta.md: mixbeta(rob = c(0.2, mn2beta(0.3, 5)), inf = c(0.8,
    # ms2beta(0.4, 0.1))) prints a = 1.5 9.2, b = 3.5 13.8.
    rob = BetaMixture.from_mean_n([1.0], [0.3], [5])
    inf = BetaMixture.from_mean_sd([1.0], [0.4], [0.1])
    bm4 = combine(rob, inf, weights=[0.2, 0.8])
    np.testing.assert_allclose(bm4.a, [1.5, 9.2], rtol=1e-12)
    np.testing.assert_allclose(bm4.b, [3.5, 13.8], rtol=1e-12)
    np.testing.assert_allclose(bm4.weights, [0.2, 0.8])


def test_invalid_mixtures_are_one_line_spec_errors():
    for args in (([0.5, 0.5], [1], [1, 2]), ([-1, 2], [1, 1], [1, 1]), ([1], [0], [1]),
                 ([1], [np.nan], [1])):
        with pytest.raises(SpecError) as err:
            BetaMixture(*args)
        assert "\n" not in str(err.value)
    with pytest.raises(SpecError):
        AS_MAP.postmix(5, 3)
    with pytest.raises(SpecError):
        AS_MAP.quantile(1.5)


def test_modes():
    assert AS_MAP.modes().size == 1
    np.testing.assert_allclose(BetaMixture.beta(3, 5).modes(), [2 / 6], rtol=1e-13)
    np.testing.assert_allclose(BetaMixture.beta(30, 5).modes(), [29 / 33], rtol=1e-13)
    bimodal = BetaMixture([0.5, 0.5], [5, 30], [30, 5])
    assert bimodal.modes().size == 2
    assert BetaMixture.beta(1, 3).modes().tolist() == [0.0]
    assert BetaMixture.beta(1, 1).modes().size == 0


def test_normal_mixture_basics():
    nm = NormalMixture([0.2, 0.8], [0, 2], [2, 0.5], sigma=3)
    x = np.linspace(-20, 20, 40001)
    assert np.trapezoid(nm.pdf(x), x) == pytest.approx(1.0, abs=1e-9)
    assert nm.mean() == pytest.approx(1.6)
    q = nm.quantile([0.1, 0.5, 0.9])
    np.testing.assert_allclose(nm.cdf(q), [0.1, 0.5, 0.9], atol=1e-12)
    mode = nm.modes()[0]
    h = 1e-5
    assert abs(float(nm.logpdf(mode + h) - nm.logpdf(mode - h))) / (2 * h) < 1e-5
    assert 1.9 < mode < 2.0


# ---------------------------------------------------------------------------- JSON
def test_json_round_trip_is_exact(tmp_path):
    mix = robustify(AS_MAP, 0.2)
    path = tmp_path / "map.json"
    write_mix_json(mix, path)
    back = read_mix_json(path)
    assert back == mix
    nm = NormalMixture([0.2, 0.8], [0, 2], [2, 2], names=["rob", "inf"], sigma=5)
    back = mix_from_json(mix_to_json(nm))
    assert back.names == nm.names and back.sigma == 5
    np.testing.assert_array_equal(back.means, nm.means)


def test_reads_json_as_rbest_writes_it(tmp_path):
    # R/mixjson.R (RBesT 1.8-2 .. 1.9-0): write_mix_json(mix, con, pretty = TRUE, digits)
    # = jsonlite::toJSON(list(meta = attributes(mix), comp = unclass(mix))). For
    # mixbeta(rob = c(0.2, 1, 1), inf = c(0.8, 10, 2)) the attributes are, in order, dim,
    # dimnames, link (written by name), class, likelihood; the matrix is row-major.
    text = """{
  "meta": {
    "dim": [3, 2],
    "dimnames": [
      ["w", "a", "b"],
      ["rob", "inf"]
    ],
    "link": ["identity"],
    "class": ["betaMix", "mix"],
    "likelihood": ["binomial"]
  },
  "comp": [
    [0.2, 0.8],
    [1, 10],
    [1, 2]
  ]
}
"""
    path = tmp_path / "rbest.json"
    path.write_text(text)
    mix = read_mix_json(path)
    assert mix == BetaMixture([0.2, 0.8], [1, 10], [1, 2], names=["rob", "inf"])
    # our writer produces the same structure
    assert json.loads(mix_to_json(mix)) == json.loads(text)
    # robustify output as RBesT writes it (class and link attributes after cbind), with
    # rounded weights: rescaled on reading unless rescale=False (RBesT's `rescale`)
    rounded = {"meta": {"dim": [3, 3], "dimnames": [["w", "a", "b"],
                                                     ["inf1", "inf2", "robust"]],
                        "class": ["betaMix", "mix"], "link": ["identity"],
                        "likelihood": ["binomial"]},
               "comp": [[0.18, 0.72, 0.11], [8, 10, 1], [3, 2, 1]]}
    mix = mix_from_json(json.dumps(rounded))
    assert mix.weights.sum() == pytest.approx(1.0)
    assert mix.names[-1] == "robust"
    with pytest.raises(SpecError, match="rescale"):
        mix_from_json(json.dumps(rounded), rescale=False)
    # auto-unboxed scalars and a one-component matrix
    single = {"meta": {"dim": [3, 1], "dimnames": [["w", "a", "b"], ["comp1"]],
                       "link": "identity", "class": ["betaMix", "mix"],
                       "likelihood": "binomial"}, "comp": [[1], [5], [15]]}
    assert mix_from_json(json.dumps(single)) == BetaMixture.beta(5, 15)
    # the test-mixjson.R example normal mixture
    nm = {"meta": {"dim": [3, 2], "dimnames": [["w", "m", "s"], ["rob", "inf"]],
                   "link": ["identity"], "class": ["normMix", "mix"],
                   "likelihood": ["normal"], "sigma": [5]},
          "comp": [[0.2, 0.8], [0, 2], [2, 2]]}
    back = mix_from_json(json.dumps(nm))
    assert isinstance(back, NormalMixture) and back.sigma == 5


def test_json_errors_are_one_line():
    bad = ['{"comp": [[1], [2], [3]]}', "not json", '{"meta": {"class": ["gammaMix"]}, '
           '"comp": [[1], [2], [3]]}', '{"meta": {"class": ["betaMix"], "link": ["logit"]},'
           ' "comp": [[1], [2], [3]]}']
    for text in bad:
        with pytest.raises(SpecError) as err:
            mix_from_json(text)
        assert "\n" not in str(err.value)
    with pytest.raises(SpecError, match="cannot read"):
        read_mix_json("/nonexistent/map.json")


def test_json_digits():
    text = mix_to_json(AS_MAP, digits=3)
    assert json.loads(text)["comp"][0] == [0.461, 0.192, 0.189, 0.158]
