"""Designing the next trial from a MAP prior: mixtures, ESS, decision rules, exact OCs.

The numerical core of ``bayes-dress design`` (pure numpy/scipy). It reproduces the
semantics of RBesT 1.9-0 (Novartis, R) for binary endpoints where it claims to, and says
where it differs; every module's docstring gives the formulas and the RBesT source files.

Modules
-------
mixture
    :class:`BetaMixture` (pdf, cdf, exact quantiles, moments, sampling, ``postmix``,
    ``preddist``, ``robustify``), :class:`BetaBinomialMixture`, :class:`NormalMixture`
    (a prior on logit theta), :func:`robustify`, :func:`combine`.
tabulated
    :class:`TabulatedDensity`: the exact MAP as a tabulated CDF (optionally with its log
    density), with pdf/cdf/quantile/moments/sampling/quadrature and edge masses.
mixfit
    EM fits of Beta mixtures to draws (:func:`fit_beta_mixture`) or, deterministically,
    to an exact density (:func:`fit_beta_mixture_exact`); :func:`automixfit` (Nc = 1..4,
    AIC with k = 6); :func:`kolmogorov_distance` (approximation error).
ess
    :func:`ess_elir`, :func:`ess_moment`, :func:`ess_morita`, :func:`ess_all` returning
    :class:`EssResult` (value, method, warnings, reliable), and :func:`ess_verdict`
    (plain words: does the prior carry usable information?). The one-method dispatcher
    ``ess(prior, method)`` (RBesT's name) is ``bayes_dress.design.ess.ess``; it is not
    re-exported here, where the name is the module's.
decision
    :class:`Condition`, :class:`Rule` (one- and two-sample, identity/logit/log link),
    :func:`parse_rule` for text such as ``"P(theta > 0.3) > 0.95"``,
    :func:`prob_difference` (RBesT's ``pmixdiff``).
oc
    Single-arm trial: :func:`boundary1s` (:class:`Boundary1S` with explicit
    ``never``/``always``), :func:`oc1s` (exact binomial enumeration), :func:`pos1s`,
    :class:`Design1S`.
two_arms
    Two-arm trial: :func:`boundary2s` (:class:`Boundary2S`), :func:`oc2s`, :func:`pos2s`,
    :class:`Design2S` (with RBesT's ``eps`` restriction).
sizing
    :func:`sample_size`: smallest n meeting type I error and power, and whether every
    larger n does (binomial OCs saw-tooth).
endpoints
    :class:`TwoEndpointDesign`: efficacy rule AND safety (SAE-rate) rule, OC on a 2-D grid.
conflict
    :func:`conflict_table`: per outcome, decision, posterior probabilities, robust weight,
    prior-predictive p-value.
robust_map
    :func:`weight_map`: ESS and type I error/power over robust weights.
approximation
    :func:`check_approximation`: exact MAP vs its mixture (CDF, ESS, OC differences, flags).
mixjson
    :func:`read_mix_json`, :func:`write_mix_json`: RBesT's JSON format (1.8-2).

User errors raise :class:`bayes_dress.errors.SpecError` with a one-line message.

Typical use::

    from bayes_dress.design import (TabulatedDensity, automixfit, ess_all, ess_verdict,
                                    parse_rule, Design1S)
    exact = TabulatedDensity(x, cdf, logpdf=logpdf)     # the exact MAP
    fit = automixfit(exact)                            # deterministic EM, AIC k = 6
    mix = fit.mixture.robustify(0.2)
    verdict = ess_verdict(exact)                       # e.g. "no usable information"
    design = Design1S(mix, 40, parse_rule("P(theta > 0.3) > 0.95"))
    design.boundary.describe(), design.oc(np.linspace(0, 1, 1001))
"""

from __future__ import annotations

import importlib

#: Public name -> the module that defines it; imported on first use, so that
#: registering the ``design`` command does not import the numerical core. No module
#: shares a public name: importing it would bind the module over the function here.
_EXPORTS = {
    "ApproximationCheck": "bayes_dress.design.approximation",
    "AutoMixFit": "bayes_dress.design.mixfit",
    "BetaBinomialMixture": "bayes_dress.design.mixture",
    "BetaMixture": "bayes_dress.design.mixture",
    "Boundary1S": "bayes_dress.design.oc",
    "Boundary2S": "bayes_dress.design.two_arms",
    "Condition": "bayes_dress.design.decision",
    "ConflictTable": "bayes_dress.design.conflict",
    "Design1S": "bayes_dress.design.oc",
    "Design2S": "bayes_dress.design.two_arms",
    "EssResult": "bayes_dress.design.ess",
    "EssSummary": "bayes_dress.design.ess",
    "MixFit": "bayes_dress.design.mixfit",
    "NormalMixture": "bayes_dress.design.mixture",
    "PosteriorEvaluator": "bayes_dress.design.oc",
    "ROBUST": "bayes_dress.design.mixture",
    "Rule": "bayes_dress.design.decision",
    "SampleSizeResult": "bayes_dress.design.sizing",
    "Shape": "bayes_dress.design.ess",
    "TabulatedDensity": "bayes_dress.design.tabulated",
    "TwoEndpointDesign": "bayes_dress.design.endpoints",
    "Verdict": "bayes_dress.design.ess",
    "WeightMap": "bayes_dress.design.robust_map",
    "automixfit": "bayes_dress.design.mixfit",
    "boundary1s": "bayes_dress.design.oc",
    "boundary2s": "bayes_dress.design.two_arms",
    "check_approximation": "bayes_dress.design.approximation",
    "combine": "bayes_dress.design.mixture",
    "conflict_table": "bayes_dress.design.conflict",
    "difference_cdf": "bayes_dress.design.decision",
    "ess_all": "bayes_dress.design.ess",
    "ess_elir": "bayes_dress.design.ess",
    "ess_moment": "bayes_dress.design.ess",
    "ess_morita": "bayes_dress.design.ess",
    "ess_verdict": "bayes_dress.design.ess",
    "fit_beta_mixture": "bayes_dress.design.mixfit",
    "fit_beta_mixture_exact": "bayes_dress.design.mixfit",
    "kolmogorov_distance": "bayes_dress.design.mixfit",
    "mix_from_json": "bayes_dress.design.mixjson",
    "mix_to_json": "bayes_dress.design.mixjson",
    "oc1s": "bayes_dress.design.oc",
    "oc2s": "bayes_dress.design.two_arms",
    "parse_rule": "bayes_dress.design.decision",
    "pos1s": "bayes_dress.design.oc",
    "pos2s": "bayes_dress.design.two_arms",
    "predictive_p_values": "bayes_dress.design.conflict",
    "predictive_pmf": "bayes_dress.design.oc",
    "prob_difference": "bayes_dress.design.decision",
    "read_mix_json": "bayes_dress.design.mixjson",
    "robustify": "bayes_dress.design.mixture",
    "sample_size": "bayes_dress.design.sizing",
    "shape": "bayes_dress.design.ess",
    "success_probability": "bayes_dress.design.oc",
    "weight_map": "bayes_dress.design.robust_map",
    "write_mix_json": "bayes_dress.design.mixjson",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bayes_dress.design' has no attribute '{name}'")


def __dir__():
    return sorted(set(globals()) | set(__all__))
