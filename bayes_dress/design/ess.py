"""Effective sample size (ESS) of a prior for a response rate, with reasons when the
number should not be trusted, and a plain-words verdict on whether the prior carries
usable information.

Methods (RBesT 1.9-0, R/mixess.R; Neuenschwander, Weber, Schmidli & O'Hagan 2020,
Biometrics 76:578; Morita, Thall & Mueller 2008, Biometrics 64:595):

``moment``
    Match mean m and variance v by one Beta: ESS = m (1 - m) / v - 1 (= a + b).
``elir``
    Expected local information ratio, ESS = E_p[ i_p(theta) / i_F(theta) ] with
    i_p = -d^2/dtheta^2 log p and i_F = 1 / (theta (1 - theta)) (one Bernoulli
    observation). For a Beta mixture it is computed from the mixture information
    function written with bounded terms: with responsibilities
    w~_k(theta) = w_k p_k(theta) / p(theta), G_k = (a_k - 1)(1 - theta) - (b_k - 1) theta and
    H_k = (a_k - 1)(a_k - 2)(1 - theta)^2 + (b_k - 1)(b_k - 2) theta^2
    - 2 (a_k - 1)(b_k - 1) theta (1 - theta),
    ELIR = E_p[ ((sum w~ G)^2 - sum w~ H) / (theta (1 - theta)) ], integrated per component
    on the logit scale (trapezoid rule after a sinh map, 513 nodes) out to where
    theta^(a-1) (1 - theta)^(b-1) has fallen by e^-45 beyond the bulk, at most
    |logit theta| = 700 (``_numerics.beta_logit_rule``). This is RBesT's quantity; the
    bounded form replaces its sign-dependent log-sum-exp stabilisation (RBesT 1.8-0).
    For a single Beta(a, b) with a, b > 1 it equals a + b.
    Undefined (the integral diverges) if any a_k or b_k < 1: RBesT stops with an error,
    here the value is NaN with that reason. A negative value (possible for mixtures that
    are far from log-concave) is returned with a warning, as RBesT does since 1.8-0.
    Note the discontinuity at a = 1: the ELIR of Beta(1, b) is 1, of Beta(1, 1) is 0 (not
    a + b); components with a or b slightly above 1 contribute a tail that no numerical
    integration (RBesT's included) resolves fully. A component with a or b within
    ``NEAR_ONE`` of 1 (but not both, as in the Beta(1, 1) robust component) is therefore
    reported with a warning and the value flagged unreliable.
``morita``
    At the largest mode t of the prior, with the flattened prior Beta(t / s, (1 - t) / s),
    s = 100: ESS = [i_p(t) - i_p0(t)] / (mu / t^2 + (1 - mu) / (1 - t)^2), mu the prior mean
    (Neuenschwander et al. 2019/2020, Eq. 9, as RBesT). For a single Beta it equals
    a + b - 1 / (s t (1 - t) E) (a + b exactly as s -> inf), so it rounds to a + b.

Normal mixtures (a prior on logit theta, RBesT's ``ess(normMix, family = binomial)``):
i_F(eta) = theta (1 - theta) on the logit scale; ``poisson`` (log link, i_F = e^eta) and
``gaussian`` (identity link with reference scale sigma) are supported as in RBesT.

Tabulated (exact) densities: the moment ESS is exact. The ELIR is computed on the logit
scale from a smooth spline of the log density L(eta) (from the table's ``logpdf`` if given,
else from the CDF table), integrating by parts so that only L' is needed:
ELIR = int [ f (L'^2 - (1 - 2 theta)^2) / s - 2 f ] d eta - [ p L' ]_ends, with f = e^L the
logit-scale density and s = theta (1 - theta). Mass the table leaves beyond its ends (edge
masses) makes the ELIR undefined; it is then reported with that warning and flagged
unreliable. Morita uses L'' at the mode. Pass the log density with the table when it is
known: from the CDF alone the curvature needs two more numerical derivatives (accuracy
~1e-4 relative instead of ~1e-7, tails cut where the CDF is resolved in double precision).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import integrate, optimize, signal, special

from bayes_dress.design._numerics import beta_logit_rule, log_beta_pdf_logit, logsumexp
from bayes_dress.design.mixture import BetaMixture, NormalMixture
from bayes_dress.design.tabulated import TabulatedDensity
from bayes_dress.errors import SpecError

Method = Literal["elir", "moment", "morita"]
METHODS: tuple[str, ...] = ("elir", "moment", "morita")

#: RBesT's default flattening constant for Morita's ESS.
MORITA_S = 100.0
#: Methods "disagree" when the largest ESS exceeds the smallest by this factor.
DISAGREEMENT_FACTOR = 2.0
#: Mass within this distance of a bound counts as mass "at" the bound.
BOUND_ZONE = 0.01
#: ... and is flagged when it exceeds this probability.
BOUND_MASS_FLAG = 0.05
#: A prior whose density varies by less than this factor over [0.05, 0.95] is "nearly flat".
FLAT_RATIO = 3.0
#: A peak must rise by this factor above its surrounding troughs to count.
PEAK_RATIO = 1.2
#: Peaks within this distance of a bound are "at" the bound (for U-shapes).
EDGE_ZONE = 0.1
#: ESS (patients) below which a prior carries no usable information.
ESS_NONE = 1.0
#: ESS below which a prior is called weak.
ESS_WEAK = 5.0
#: Relative size of the edge masses of a table above which ELIR/Morita are undefined.
EDGE_MASS_TOL = 1e-6
#: a or b this close to 1 puts the ELIR at its discontinuity (see the module notes): the
#: tail term (a - 1) E[(1 - theta) / theta] is spread over theta ~ exp(-1 / (a - 1)),
#: beyond what any quadrature resolves.
NEAR_ONE = 0.01
#: Quadrature nodes per component for the ELIR of a Beta mixture.
ELIR_NODES = 513

Prior = BetaMixture | TabulatedDensity


@dataclass
class EssResult:
    """One effective sample size.

    Attributes
    ----------
    value : float
        The ESS in patients (NaN where undefined).
    method : str
        ``"elir"``, ``"moment"`` or ``"morita"``.
    scale : str
        ``"probability"`` (prior on theta) or the link of a normal mixture.
    warnings : list of str
        Reasons why the number may mislead; empty when there are none.
    reliable : bool
        False when a warning means the number should not be used as it stands.
    details : dict
        Method-specific values (the mode for Morita, the source of the curvature for
        tabulated ELIR, ...).
    """

    value: float
    method: str
    scale: str = "probability"
    warnings: list[str] = field(default_factory=list)
    reliable: bool = True
    details: dict = field(default_factory=dict)

    def __float__(self) -> float:
        return float(self.value)


@dataclass
class EssSummary:
    """ESS by every method, plus warnings that concern the methods together."""

    results: dict[str, EssResult]
    warnings: list[str] = field(default_factory=list)

    def __getitem__(self, method: str) -> EssResult:
        return self.results[method]

    def values(self) -> dict[str, float]:
        return {m: r.value for m, r in self.results.items()}


# ---------------------------------------------------------------------------- moment
def ess_moment(prior: Prior | NormalMixture, *, family: str = "binomial",
               sigma: float | None = None) -> EssResult:
    """Moment-matching ESS: the a + b of the Beta with the prior's mean and variance.

    For a :class:`NormalMixture` (RBesT ``family``): E_p[1 / i_F] / Var, times sigma^2 for
    the gaussian family.
    """
    if isinstance(prior, NormalMixture):
        return _normal_moment(prior, family=family, sigma=sigma)
    m, v = prior.mean(), prior.var()
    warnings: list[str] = []
    if v <= 0:
        return EssResult(np.inf, "moment", warnings=["the prior has zero variance"],
                         reliable=False)
    value = m * (1 - m) / v - 1.0
    warnings += _edge_warnings(prior)
    return EssResult(float(value), "moment", warnings=warnings,
                     details={"mean": m, "sd": float(np.sqrt(v))})


# ---------------------------------------------------------------------------- ELIR
def _beta_mixture_q(mix: BetaMixture, eta: np.ndarray) -> np.ndarray:
    """Bounded information term Q(theta) = i_p(theta) * theta^2 (1 - theta)^2."""
    theta = special.expit(eta)[..., None]
    one_m = special.expit(-eta)[..., None]
    a, b, w = mix.a, mix.b, mix.weights
    with np.errstate(divide="ignore"):
        logp_k = np.log(w) + log_beta_pdf_logit(eta[..., None], a, b)
    resp = np.exp(logp_k - logsumexp(logp_k, axis=-1, keepdims=True))
    g = (a - 1) * one_m - (b - 1) * theta
    h = ((a - 1) * (a - 2) * one_m**2 + (b - 1) * (b - 2) * theta**2
         - 2 * (a - 1) * (b - 1) * theta * one_m)
    return np.sum(resp * g, axis=-1) ** 2 - np.sum(resp * h, axis=-1)


def _beta_mixture_elir(mix: BetaMixture) -> float:
    eta, logw = beta_logit_rule(mix.a, mix.b, nodes=ELIR_NODES, tail=0.0, log=True)
    q = _beta_mixture_q(mix, eta)
    # 1 / (theta (1 - theta)) in log space, combined with the weights before exponentiating.
    log_inv_s = -(special.log_expit(eta) + special.log_expit(-eta))
    per_comp = np.sum(np.exp(logw + log_inv_s) * q, axis=-1)
    return float(np.dot(mix.weights, per_comp))


def ess_elir(prior: Prior | NormalMixture, *, family: str = "binomial",
             sigma: float | None = None) -> EssResult:
    """ELIR effective sample size (RBesT's default method; see the module notes)."""
    if isinstance(prior, NormalMixture):
        return _normal_elir(prior, family=family, sigma=sigma)
    if isinstance(prior, TabulatedDensity):
        return _tabulated_elir(prior)
    bad = [(n, a, b) for n, a, b in zip(prior.names, prior.a, prior.b, strict=True)
           if a < 1 or b < 1]
    if bad:
        which = ", ".join(f"{n} (a={a:.4g}, b={b:.4g})" for n, a, b in bad)
        letter = "a" if any(a < 1 for _, a, _ in bad) else "b"
        return EssResult(float("nan"), "elir", reliable=False, warnings=[
            f"{letter} < 1 in a component: ELIR undefined (its defining integral diverges): "
            f"{which}; fit the mixture with a, b > 1 (constrain_gt1)"])
    value = _beta_mixture_elir(prior)
    warnings: list[str] = []
    reliable = True
    near = lambda v: abs(v - 1.0) < NEAR_ONE  # noqa: E731
    edge = [(n, a, b) for n, a, b, w in zip(prior.names, prior.a, prior.b, prior.weights,
                                            strict=True)
            if w > 0 and near(a) != near(b)]
    if edge:
        which = ", ".join(f"{n} (a={a:.6g}, b={b:.6g})" for n, a, b in edge)
        warnings.append(f"a component has a or b (within {NEAR_ONE:g} of) 1, its density "
                        f"finite and non-zero at a bound: the ELIR is discontinuous there "
                        f"and counts Beta(1, b) as 1 patient, not 1 + b: {which}")
        reliable = False
    if value < 0:
        warnings.append(f"negative ELIR ({value:.4g}): the prior is far from log-concave "
                        "(no clear peak); consider the logit-scale ESS")
        reliable = False
    return EssResult(value, "elir", warnings=warnings, reliable=reliable)


# ---------------------------------------------------------------------------- Morita
def ess_morita(prior: Prior | NormalMixture, *, s: float = MORITA_S,
               family: str = "binomial", sigma: float | None = None) -> EssResult:
    """Morita's ESS at the largest mode (RBesT's variant; see the module notes)."""
    if isinstance(prior, NormalMixture):
        return _normal_morita(prior, s=s, family=family, sigma=sigma)
    if isinstance(prior, TabulatedDensity):
        return _tabulated_morita(prior, s=s)
    warnings: list[str] = []
    modes = prior.modes()
    if modes.size == 0:
        return EssResult(float("nan"), "morita", reliable=False, warnings=[
            "no clear peak: the density is flat, Morita's ESS is undefined"])
    mode = float(modes[0])
    if mode in (0.0, 1.0):
        where = "0" if mode == 0.0 else "1"
        return EssResult(float("nan"), "morita", reliable=False, details={"mode": mode},
                         warnings=[f"no clear peak: density piles up at {where}"])
    if modes.size > 1:
        warnings.append(f"multiple modes ({', '.join(f'{m:.4g}' for m in modes)}): Morita's "
                        "ESS is taken at the highest and is ill-defined")
    if np.any(prior.a + prior.b < 10.0 / s):
        warnings.append("a component has a + b < 10 / s: increase s")
    q = float(_beta_mixture_q(prior, np.array([special.logit(mode)]))[0])
    info = q / (mode * (1 - mode)) ** 2
    value = _morita_value(info, mode, prior.mean(), s)
    return EssResult(value, "morita", warnings=warnings, reliable=modes.size == 1,
                     details={"mode": mode})


def _morita_value(info_at_mode: float, mode: float, mean: float, s: float) -> float:
    a0, b0 = (mode / s, (1 - mode) / s) if np.isfinite(s) else (0.0, 0.0)
    info0 = (a0 - 1) / mode**2 + (b0 - 1) / (1 - mode) ** 2
    expected_fisher = mean / mode**2 + (1 - mean) / (1 - mode) ** 2
    return float((info_at_mode - info0) / expected_fisher)


# ---------------------------------------------------------------------------- dispatch
def ess(prior: Prior | NormalMixture, method: Method = "elir", **options) -> EssResult:
    """ESS by one method (``"elir"`` default, as RBesT since 1.4-0)."""
    if method == "elir":
        return ess_elir(prior, **options)
    if method == "moment":
        return ess_moment(prior, **options)
    if method == "morita":
        return ess_morita(prior, **options)
    raise SpecError(f"unknown ESS method {method!r}: use 'elir', 'moment' or 'morita'")


def ess_all(prior: Prior | NormalMixture, *, s: float = MORITA_S, **options) -> EssSummary:
    """ESS by every method, with a warning when they disagree by more than a factor 2."""
    results = {"elir": ess_elir(prior, **options), "moment": ess_moment(prior, **options),
               "morita": ess_morita(prior, s=s, **options)}
    warnings: list[str] = []
    finite = {m: r.value for m, r in results.items() if np.isfinite(r.value) and r.value > 0}
    if len(finite) >= 2:
        hi, lo = max(finite.values()), min(finite.values())
        if hi > DISAGREEMENT_FACTOR * lo:
            listing = ", ".join(f"{m} {v:.3g}" for m, v in finite.items())
            warnings.append(f"methods disagree by more than a factor {DISAGREEMENT_FACTOR:g} "
                            f"({listing}): the ESS is not a well-defined number here")
    return EssSummary(results, warnings)


# ---------------------------------------------------------------------------- normal mixtures
def _inverse_fisher(family: str, eta: np.ndarray) -> np.ndarray:
    if family == "binomial":
        return 2.0 + np.exp(eta) + np.exp(-eta)
    if family == "poisson":
        return np.exp(-eta)
    if family == "gaussian":
        return np.ones_like(eta)
    raise SpecError(f"unknown family {family!r}: use 'binomial', 'poisson' or 'gaussian'")


def _scale_factor(mix: NormalMixture, family: str, sigma: float | None) -> float:
    if family != "gaussian":
        return 1.0
    sigma = mix.sigma if sigma is None else sigma
    if sigma is None:
        raise SpecError("the gaussian family needs a reference scale sigma")
    return float(sigma) ** 2


def _normal_q(mix: NormalMixture, eta: np.ndarray) -> np.ndarray:
    """Mixture information -d^2/d eta^2 log p(eta)."""
    x = eta[..., None]
    z = (x - mix.means) / mix.sds
    with np.errstate(divide="ignore"):
        logp_k = np.log(mix.weights) - 0.5 * z**2 - np.log(mix.sds)
    resp = np.exp(logp_k - logsumexp(logp_k, axis=-1, keepdims=True))
    g = -(x - mix.means) / mix.sds**2
    h = -1.0 / mix.sds**2 + g**2
    return np.sum(resp * g, axis=-1) ** 2 - np.sum(resp * h, axis=-1)


def _normal_rule(mix: NormalMixture, nodes: int = 2001):
    """Per-component trapezoid rule on a uniform grid (geometric convergence for the
    smooth integrands here; Gauss-Hermite converges slowly for them because the
    responsibilities have poles near the real axis). The grid spans 12 SDs plus s^2
    on each side, where e^{|eta|} N(eta | m, s^2) peaks."""
    half = 12.0 * mix.sds + mix.sds**2
    frac = np.linspace(-1.0, 1.0, nodes)
    eta = mix.means[:, None] + half[:, None] * frac[None, :]
    z = (eta - mix.means[:, None]) / mix.sds[:, None]
    w = np.exp(-0.5 * z**2)
    w[:, [0, -1]] *= 0.5
    w /= w.sum(axis=1, keepdims=True)
    return eta, w


def _normal_elir(mix: NormalMixture, *, family: str, sigma: float | None) -> EssResult:
    eta, w = _normal_rule(mix)
    integrand = _normal_q(mix, eta) * _inverse_fisher(family, eta)
    value = float(np.dot(mix.weights, np.sum(integrand * w, axis=1)))
    value *= _scale_factor(mix, family, sigma)
    warnings = []
    if value < 0:
        warnings.append(f"negative ELIR ({value:.4g}): the prior is far from log-concave")
    return EssResult(value, "elir", scale=_link(family), warnings=warnings,
                     reliable=value >= 0)


def _normal_moment(mix: NormalMixture, *, family: str, sigma: float | None) -> EssResult:
    eta, w = _normal_rule(mix)
    expected = float(np.dot(mix.weights, np.sum(_inverse_fisher(family, eta) * w, axis=1)))
    value = expected * _scale_factor(mix, family, sigma) / mix.sd() ** 2
    return EssResult(value, "moment", scale=_link(family))


def _normal_morita(mix: NormalMixture, *, s: float, family: str,
                   sigma: float | None) -> EssResult:
    modes = mix.modes()
    warnings = []
    if modes.size > 1:
        warnings.append(f"multiple modes ({', '.join(f'{m:.4g}' for m in modes)}): Morita's "
                        "ESS is taken at the highest and is ill-defined")
    mode = float(modes[0])
    info = float(_normal_q(mix, np.array([mode]))[0])
    info0 = 1.0 / (s * float(np.max(mix.sds**2))) if np.isfinite(s) else 0.0
    mode_info = 1.0 / float(_inverse_fisher(family, np.array([mode]))[0])
    mode_info /= _scale_factor(mix, family, sigma)
    return EssResult(float((info - info0) / mode_info), "morita", scale=_link(family),
                     warnings=warnings, reliable=modes.size == 1, details={"mode": mode})


def _link(family: str) -> str:
    return {"binomial": "logit", "poisson": "log", "gaussian": "identity"}.get(family, family)


# ---------------------------------------------------------------------------- tabulated
def _edge_warnings(prior: Prior) -> list[str]:
    if not isinstance(prior, TabulatedDensity):
        return []
    lo, hi = prior.edge_masses
    out = []
    x0, x1 = prior.support
    if lo > EDGE_MASS_TOL:
        out.append(f"density piles up at 0: {lo:.3g} of the mass lies at or below "
                   f"theta = {x0:.3g}, beyond the table")
    if hi > EDGE_MASS_TOL:
        out.append(f"density piles up at 1: {hi:.3g} of the mass lies above "
                   f"theta = {x1:.3g}, beyond the table")
    return out


def _tabulated_grid(prior: TabulatedDensity, step: float = 0.01) -> np.ndarray:
    lo, hi = prior.eta[0], prior.eta[-1]
    n = max(int(np.ceil((hi - lo) / step)), 2) // 2 * 2 + 1
    return np.linspace(lo, hi, n)


def _tabulated_elir(prior: TabulatedDensity) -> EssResult:
    spline, source = prior.log_density_logit_spline()
    eta = _tabulated_grid(prior)
    eta = eta[(eta >= spline.t[0]) & (eta <= spline.t[-1])]
    L = spline(eta)
    dL = spline.derivative()(eta)
    theta = special.expit(eta)
    log_s = special.log_expit(eta) + special.log_expit(-eta)
    f = np.exp(L)
    with np.errstate(over="ignore"):
        body = np.exp(L - log_s) * (dL**2 - (1 - 2 * theta) ** 2) - 2 * f
    body = np.nan_to_num(body, nan=0.0, posinf=0.0, neginf=0.0)
    value = float(integrate.simpson(body, x=eta))
    # Boundary term of the integration by parts: -[p(theta) L'(eta)] at the ends.
    p_ends = np.exp(L[[0, -1]] - log_s[[0, -1]])
    boundary = -float(p_ends[1] * dL[-1] - p_ends[0] * dL[0])
    value += boundary
    warnings = _edge_warnings(prior)
    reliable = not warnings
    if value < 0:
        warnings.append(f"negative ELIR ({value:.4g}): no clear peak")
        reliable = False
    details = {"boundary_term": boundary, "curvature_from": (
        "cdf table (no logpdf given: less accurate)" if source == "cdf" else "logpdf")}
    return EssResult(value, "elir", warnings=warnings, reliable=reliable, details=details)


def _tabulated_modes(prior: TabulatedDensity, spline) -> tuple[np.ndarray, bool, bool]:
    """Modes of the theta-scale density from the log-density spline: peaks of prominence
    above 1e-3 (0.1 %) where the density is within e^-30 of its top, refined by Brent.
    Also says whether the density is highest at (rising towards) an end of the table."""
    eta = _tabulated_grid(prior, step=0.02)
    eta = eta[(eta >= spline.t[0]) & (eta <= spline.t[-1])]
    log_p = spline(eta) - (special.log_expit(eta) + special.log_expit(-eta))
    idx, _ = _peaks(log_p, 1e-3)
    relevant = log_p[idx] > np.max(log_p) - 30.0
    idx = idx[relevant]
    modes = []
    for i in idx:
        if i in (0, eta.size - 1):
            modes.append((float(eta[i]), float(log_p[i]), True))
            continue
        res = optimize.minimize_scalar(
            lambda e: -(spline(e) - special.log_expit(e) - special.log_expit(-e)),
            bounds=(eta[i - 1], eta[i + 1]), method="bounded", options={"xatol": 1e-10})
        modes.append((float(res.x), -float(res.fun), False))
    modes.sort(key=lambda t: -t[1])
    if not modes:
        return np.array([]), False, False
    top_eta, _, at_end = modes[0]
    left = at_end and top_eta <= eta[0]
    right = at_end and top_eta >= eta[-1]
    return np.array([m for m, _, end in modes if not end]), bool(left), bool(right)


def _tabulated_morita(prior: TabulatedDensity, *, s: float) -> EssResult:
    spline, source = prior.log_density_logit_spline()
    modes, left, right = _tabulated_modes(prior, spline)
    warnings = _edge_warnings(prior)
    if left or right or modes.size == 0:
        where = "0" if left else "1" if right else "a bound"
        return EssResult(float("nan"), "morita", reliable=False,
                         warnings=[*warnings, f"no clear peak: density piles up at {where}"])
    if modes.size > 1:
        warnings.append(f"multiple modes ({', '.join(f'{special.expit(m):.4g}' for m in modes)})"
                        ": Morita's ESS is taken at the highest and is ill-defined")
    eta0 = float(modes[0])
    mode = float(special.expit(eta0))
    s0 = mode * (1 - mode)
    d2 = float(spline.derivative(2)(eta0))
    info = (-d2 - 2 * s0) / s0**2
    value = _morita_value(info, mode, prior.mean(), s)
    return EssResult(value, "morita", warnings=warnings, reliable=not warnings,
                     details={"mode": mode, "curvature_from": source})


# ---------------------------------------------------------------------------- verdict
@dataclass
class Shape:
    """Where the prior's mass and peaks are (see :func:`shape`)."""

    mass_low: float  #: P(theta < BOUND_ZONE)
    mass_high: float  #: P(theta > 1 - BOUND_ZONE)
    peak_at_low: bool  #: the density is highest at (or rising towards) 0
    peak_at_high: bool  #: ... at 1
    u_shaped: bool  #: rises towards both bounds with a trough in between
    nearly_flat: bool  #: varies by less than FLAT_RATIO over [0.05, 0.95]
    modes: tuple[float, ...]  #: prominent local maxima of the density (bounds included)


def _peaks(logp: np.ndarray, prominence: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices and prominences of peaks of ``logp``, the ends included when the function
    rises towards them."""
    finite = np.where(np.isfinite(logp), logp, np.nanmin(logp[np.isfinite(logp)]) - 50.0)
    pad = float(np.min(finite)) - 50.0
    padded = np.concatenate([[pad], finite, [pad]])
    idx, props = signal.find_peaks(padded, prominence=prominence, plateau_size=1)
    # A plateau is reported by its middle; keep the index within the original array.
    return np.clip(idx - 1, 0, logp.size - 1), props["prominences"]


def shape(prior: Prior) -> Shape:
    """Describe where the mass of ``prior`` lies (used by :func:`ess_verdict`).

    The log density is examined on a logit grid over theta in [1.2e-4, 1 - 1.2e-4];
    peaks count when they rise by a factor ``PEAK_RATIO`` above the surrounding troughs
    (numerical ripples of tabulated densities do not).
    """
    mass_low = float(prior.cdf(BOUND_ZONE))
    mass_high = float(1.0 - prior.cdf(1.0 - BOUND_ZONE))
    eta = np.linspace(-9.0, 9.0, 1801)
    theta = special.expit(eta)
    with np.errstate(divide="ignore"):
        logp = np.asarray(prior.logpdf(theta), dtype=float)
    finite = np.isfinite(logp)
    if not finite.any():
        return Shape(mass_low, mass_high, mass_low > 0.5, mass_high > 0.5,
                     mass_low > BOUND_MASS_FLAG and mass_high > BOUND_MASS_FLAG, False, ())
    idx, _ = _peaks(logp, np.log(PEAK_RATIO))
    top = float(np.max(logp[finite]))
    peaks = [(float(theta[i]), float(logp[i])) for i in idx]
    low_peaks = [v for t, v in peaks if t <= EDGE_ZONE]
    high_peaks = [v for t, v in peaks if t >= 1 - EDGE_ZONE]
    peak_low = bool(low_peaks and max(low_peaks) >= top - 1e-9) or mass_low > 0.5
    peak_high = bool(high_peaks and max(high_peaks) >= top - 1e-9) or mass_high > 0.5
    u_shaped = False
    if low_peaks and high_peaks:
        i_lo = max(i for i in idx if theta[i] <= EDGE_ZONE)
        i_hi = min(i for i in idx if theta[i] >= 1 - EDGE_ZONE)
        trough = float(np.min(logp[i_lo:i_hi + 1]))
        u_shaped = (min(logp[i_lo], logp[i_hi]) - trough) > np.log(PEAK_RATIO)
    u_shaped = u_shaped or (mass_low > BOUND_MASS_FLAG and mass_high > BOUND_MASS_FLAG)
    central = (theta >= 0.05) & (theta <= 0.95) & finite
    nearly_flat = bool(central.sum() > 2 and float(np.max(logp[central])
                                                   - np.min(logp[central])) < np.log(FLAT_RATIO))
    modes = tuple(t for t, _ in sorted(peaks, key=lambda p: -p[1]))
    return Shape(mass_low, mass_high, bool(peak_low), bool(peak_high), bool(u_shaped),
                 nearly_flat, modes)


@dataclass
class Verdict:
    """Whether a prior carries usable information, in plain words.

    Attributes
    ----------
    informative : bool
        True only for level ``"informative"``.
    level : str
        ``"none"`` (no usable information), ``"weak"`` or ``"informative"``.
    reasons : list of str
        Each finding that led to the level.
    message : str
        One paragraph for a report.
    ess : EssSummary
        The ESS values it is based on.
    shape : Shape
        Where the mass and peaks are.
    """

    informative: bool
    level: str
    reasons: list[str]
    message: str
    ess: EssSummary
    shape: Shape


def ess_verdict(prior: Prior, *, summary: EssSummary | None = None,
                n_planned: int | None = None) -> Verdict:
    """Say in plain words whether ``prior`` carries usable information about the rate.

    Rules (thresholds are module constants):

    * no usable information if the moment ESS is below ``ESS_NONE`` (1 patient), or the
      density is U-shaped, or it piles up at a bound (highest at 0 or 1, or more than half
      its mass within ``BOUND_ZONE`` of one), or it is nearly flat (varies by less than a
      factor ``FLAT_RATIO`` over [0.05, 0.95]) with an ESS below ``ESS_WEAK``;
    * weak if the most conservative reliable ESS (moment if none is reliable) is below
      ``ESS_WEAK`` patients or below 10 % of ``n_planned``;
    * informative otherwise.

    ESS warnings (undefined ELIR, disagreeing methods, multiple modes) are passed on as
    reasons.
    """
    summary = ess_all(prior) if summary is None else summary
    sh = shape(prior)
    reasons: list[str] = []
    moment = summary["moment"].value
    # The most conservative ESS among the methods whose value is reliable (the moment ESS,
    # always defined, when none is).
    usable = [r.value for r in summary.results.values() if r.reliable
              and np.isfinite(r.value) and r.value >= 0]
    conservative = min(usable) if usable else moment
    none = False
    if np.isfinite(moment) and moment < ESS_NONE:
        none = True
        reasons.append(f"ESS below one patient (moment ESS {moment:.2g})")
    if sh.u_shaped:
        none = True
        reasons.append(f"U-shaped: the density rises towards both 0 and 1 "
                       f"({sh.mass_low:.1%} of the mass below {BOUND_ZONE:g}, "
                       f"{sh.mass_high:.1%} above {1 - BOUND_ZONE:g})")
    else:
        for flag, where, mass in ((sh.peak_at_low, "0", sh.mass_low),
                                  (sh.peak_at_high, "1", sh.mass_high)):
            if flag:
                reasons.append(f"no clear peak: density piles up at {where} ({mass:.1%} of "
                               f"the mass within {BOUND_ZONE:g} of it)")
    if sh.nearly_flat:
        reasons.append(f"nearly flat: the density varies by less than a factor "
                       f"{FLAT_RATIO:g} between 0.05 and 0.95")
        if not np.isfinite(conservative) or conservative < ESS_WEAK:
            none = True
    if len(sh.modes) > 1 and not sh.u_shaped:
        reasons.append(f"multimodal: peaks at {', '.join(f'{m:.3g}' for m in sh.modes)}")
    for r in summary.results.values():
        reasons.extend(f"{r.method}: {w}" for w in r.warnings)
    reasons.extend(summary.warnings)
    if none:
        level = "none"
    elif (not np.isfinite(conservative) or conservative < ESS_WEAK
          or (n_planned is not None and conservative < 0.1 * n_planned)):
        level = "weak"
        if np.isfinite(conservative):
            reasons.append(f"small ESS ({conservative:.3g} patients by the most "
                           "conservative reliable method)")
    else:
        level = "informative"
    ess_text = ", ".join(f"{m} {v:.3g}" if np.isfinite(v) else f"{m} undefined"
                         for m, v in summary.values().items())
    if level == "none":
        head = ("The prior carries no usable information about the response rate: it "
                "should be treated as non-informative, and borrowing from it cannot "
                "replace patients.")
    elif level == "weak":
        head = "The prior carries little information about the response rate."
    else:
        head = (f"The prior is informative: it is worth about {conservative:.3g} patients "
                "or more.")
    why = ("; ".join(dict.fromkeys(reasons))) if reasons else "no warnings"
    message = f"{head} ESS (patients): {ess_text}. Findings: {why}."
    return Verdict(level == "informative", level, list(dict.fromkeys(reasons)), message,
                   summary, sh)
