"""Fit Beta mixtures to draws or to an exact density by EM, and choose the number of
components by AIC: RBesT's ``mixfit``/``EM_bmm_ab`` and ``automixfit`` (R/EM_bmm_ab.R,
R/automixfit.R, R/knn.R of 1.9-0), deterministic.

What is kept from RBesT
    ``Nc`` components; ``constrain_gt1 = True`` by default (all a, b >= 1 + 1e-8, needed
    for a finite ELIR); draws exactly 0 or 1 moved to machine epsilon; per-point,
    per-component log-likelihood terms floored at -30 (so the reported log-likelihood is
    RBesT's); E-step in log space; M-step solving psi(a) - psi(a + b) = c1,
    psi(b) - psi(a + b) = c2 (c1, c2 the responsibility-weighted means of log x and
    log(1 - x)); a k-means initialisation with the least-weighted cluster re-centred at
    the data mean with the data variance; at most 500 iterations; convergence when the
    running mean (over the last ``n_eps`` = 5 iterations) of the absolute changes of
    logit(w), log(a - 1) and log(b - 1) falls below ``eps`` (0.005 each) or, if ``tol``
    is given, when the log-likelihood slope falls below it; components sorted by weight;
    ``df = 3 Nc - 1``; ``automixfit`` fits Nc = 1..4 and picks the lowest
    AIC = -2 logLik + k df with k = 6, keeping all fits ordered by AIC.

What differs, and why
    * Deterministic initialisation: k-means (Lloyd) started at the weighted
      (k - 1/2)/Nc quantiles, instead of RBesT's start at sample points taken in sample
      order (which depends on the random order of MCMC draws).
    * The M-step is solved exactly (projected Newton on the concave objective, with the
      bounds a, b >= 1 + 1e-8 when constrained) instead of by Nelder-Mead on squared
      residuals of the moment equations.
    * The convergence rule watches all parameters. (In RBesT's code only the weights'
      row of the running parameter trace is updated after initialisation, so in effect
      only the weights are watched, and a one-component fit stops after five iterations.)
    * Weighted draws are supported (weights rescaled to mean 1, so logLik and AIC count
      ``len(x)`` observations as RBesT counts draws).
    * An exact target (:class:`TabulatedDensity`) is fitted without sampling, by
      maximising the expected log-likelihood E_target[log q(theta)] over the target's
      quadrature nodes (a weighted EM). Its "logLik" is ``n_nominal`` times that
      expectation, with ``n_nominal = 4000`` by default: RBesT fits 4000 MCMC draws by
      default, so the AIC penalty k = 6 per parameter weighs against the same amount of
      fit as in RBesT (an extra component is kept if it improves E[log q] by more than
      3 k / n_nominal = 0.0045 nats). Exact targets stop on the log-likelihood slope too
      (``tol``; see :func:`fit_beta_mixture_exact`).

The error of the approximation is reported with every fit as the Kolmogorov distance
(largest absolute CDF difference) to the target: the draws' (weighted) empirical CDF, or
the exact CDF on a fine grid (:func:`kolmogorov_distance`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
from scipy import special

from bayes_dress.design.mixture import BetaMixture
from bayes_dress.design.tabulated import TabulatedDensity
from bayes_dress.errors import SpecError

#: RBesT's floor of each point's per-component log-likelihood term.
LLI_FLOOR = -30.0
#: Smallest a - 1 and b - 1 when constrained (RBesT: 1 + pmax(exp(par), 1e-8)).
GT1_FLOOR = 1e-8
#: Smallest a, b when unconstrained.
POSITIVE_FLOOR = 1e-8
#: RBesT's default number of MCMC draws of a MAP prior: the nominal N of an exact target.
N_NOMINAL = 4000
#: Quadrature of an exact target for fitting: piece width (logit) and Gauss order.
FIT_H_MAX = 0.05
FIT_ORDER = 3


@dataclass(frozen=True)
class MixFit:
    """One EM fit.

    Attributes
    ----------
    mixture : BetaMixture
        Components sorted by weight (largest first).
    loglik : float
        RBesT's log-likelihood (per-point terms floored at -30); for an exact target,
        ``n_obs`` times the expected log-likelihood under the target.
    n_obs : float
        Number of observations the log-likelihood counts.
    df : int
        3 Nc - 1.
    iterations : int
    converged : bool
    ks : float
        Kolmogorov distance (largest CDF difference) between the fit and the target.
    target : str
        ``"draws"`` or ``"exact"``.
    """

    mixture: BetaMixture
    loglik: float
    n_obs: float
    df: int
    iterations: int
    converged: bool
    ks: float
    target: str

    @property
    def n_components(self) -> int:
        return self.mixture.n_components

    def aic(self, k: float = 6.0) -> float:
        """-2 logLik + k df (RBesT's ``AIC(fit, k)``; automixfit uses k = 6)."""
        return -2.0 * self.loglik + k * self.df


@dataclass(frozen=True)
class AutoMixFit:
    """All fits of :func:`automixfit`, best (lowest AIC) first."""

    models: tuple[MixFit, ...]
    k: float

    @property
    def best(self) -> MixFit:
        return self.models[0]

    @property
    def mixture(self) -> BetaMixture:
        return self.models[0].mixture

    def aics(self) -> dict[int, float]:
        return {m.n_components: m.aic(self.k) for m in self.models}


# ---------------------------------------------------------------------------- M-step
def _objective(a, b, c1, c2):
    return (a - 1) * c1 + (b - 1) * c2 - special.betaln(a, b)


def _solve_ab(a: np.ndarray, b: np.ndarray, c1: np.ndarray, c2: np.ndarray,
              lb: float, max_iter: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Maximise (a-1) c1 + (b-1) c2 - log B(a, b) over a, b >= lb, per component.

    Projected Newton with backtracking on a strictly concave objective (log B is convex),
    started from the previous values; vectorised over components.
    """
    a = np.maximum(a.astype(float), lb)
    b = np.maximum(b.astype(float), lb)
    for _ in range(max_iter):
        s = a + b
        ds = special.digamma(s)
        ga = c1 - special.digamma(a) + ds
        gb = c2 - special.digamma(b) + ds
        ts = special.zeta(2.0, s)  # trigamma, as a plain ufunc
        haa = ts - special.zeta(2.0, a)
        hbb = ts - special.zeta(2.0, b)
        hab = ts
        fixed_a = (a <= lb) & (ga < 0)
        fixed_b = (b <= lb) & (gb < 0)
        det = haa * hbb - hab**2
        da = np.where(fixed_a | fixed_b, 0.0, -(hbb * ga - hab * gb) / det)
        db = np.where(fixed_a | fixed_b, 0.0, -(haa * gb - hab * ga) / det)
        only_a = fixed_b & ~fixed_a
        only_b = fixed_a & ~fixed_b
        da = np.where(only_a, -ga / haa, da)
        db = np.where(only_b, -gb / hbb, db)
        f0 = _objective(a, b, c1, c2)
        t = np.ones_like(a)
        new_a, new_b = a, b
        for _ in range(40):
            new_a = np.maximum(a + t * da, lb)
            new_b = np.maximum(b + t * db, lb)
            better = _objective(new_a, new_b, c1, c2) >= f0 - 1e-13 * np.abs(f0)
            if better.all():
                break
            t = np.where(better, t, 0.5 * t)
        step = np.maximum(np.abs(new_a - a) / (1 + a), np.abs(new_b - b) / (1 + b))
        a, b = new_a, new_b
        if np.all(step < 1e-12):
            break
    return a, b


# ---------------------------------------------------------------------------- init
def _weighted_quantiles(x: np.ndarray, m: np.ndarray, probs: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    cum = np.cumsum(m[order])
    cum /= cum[-1]
    idx = np.clip(np.searchsorted(cum, probs, side="left"), 0, x.size - 1)
    return x[order][idx]


def _kmeans_init(x: np.ndarray, m: np.ndarray, nc: int, n_obs: float,
                 lb: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RBesT's initialisation with a deterministic k-means start (see module notes)."""
    mean = float(np.dot(m, x))
    var = float(np.dot(m, (x - mean) ** 2))
    centres = _weighted_quantiles(x, m, (np.arange(nc) + 0.5) / nc).astype(float)
    assign = np.zeros(x.size, dtype=int)
    for _ in range(50):
        new = np.argmin(np.abs(x[:, None] - centres[None, :]), axis=1)
        p = np.bincount(new, weights=m, minlength=nc)
        sums = np.bincount(new, weights=m * x, minlength=nc)
        centres = np.where(p > 0, sums / np.where(p > 0, p, 1), centres)
        if np.array_equal(new, assign):
            break
        assign = new
    p = np.bincount(assign, weights=m, minlength=nc)
    mu = np.full(nc, mean)
    v = np.full(nc, 1.5 * var)
    for k in range(nc):
        sel = assign == k
        if p[k] * n_obs > 10:
            mu[k] = np.dot(m[sel], x[sel]) / p[k]
            v[k] = np.dot(m[sel], (x[sel] - mu[k]) ** 2) / p[k]
    with np.errstate(divide="ignore", invalid="ignore"):
        n_init = np.maximum(np.nan_to_num(mu * (1 - mu) / v - 1, nan=1.0, posinf=1e6), 1.0)
    cmin = int(np.argmin(p))
    mu[cmin] = float(np.dot(p, centres)) if p.sum() > 0 else mean
    n_init[cmin] = max(mu[cmin] * (1 - mu[cmin]) / var - 1, 1.0) if var > 0 else 1.0
    w = np.maximum(p, 1e-3)
    w /= w.sum()
    return w, np.maximum(n_init * mu, lb), np.maximum(n_init * (1 - mu), lb)


# ---------------------------------------------------------------------------- EM
class _EMMap:
    """One EM step (E-step then exact M-step) for fixed data, on an unconstrained
    parameter vector: (log w - mean log w, log(a - lb), log(b - lb)) per component."""

    def __init__(self, x: np.ndarray, m: np.ndarray, n_obs: float, lb: float) -> None:
        self.lx = np.log(x)
        self.l1x = np.log1p(-x)
        self.m = m
        self.mlx = m * self.lx
        self.ml1x = m * self.l1x
        self.design = np.stack([self.lx, self.l1x], axis=1)
        self.n_obs = n_obs
        self.lb = lb

    def pack(self, w, a, b) -> np.ndarray:
        lw = np.log(np.maximum(w, 1e-300))
        return np.concatenate([lw - lw.mean(), np.log(np.maximum(a - self.lb, 1e-300)),
                               np.log(np.maximum(b - self.lb, 1e-300))])

    def unpack(self, p: np.ndarray):
        k = p.size // 3
        lw = p[:k] - p[:k].max()
        w = np.exp(lw)
        w /= w.sum()
        return w, self.lb + np.exp(p[k:2 * k]), self.lb + np.exp(p[2 * k:])

    def estep(self, w, a, b):
        """Floored log-likelihood terms, RBesT's log-likelihood and responsibilities."""
        with np.errstate(divide="ignore"):
            const = np.log(w) - special.betaln(a, b)
        lli = self.design @ np.stack([a - 1, b - 1]) + const
        np.maximum(lli, LLI_FLOOR, out=lli)
        top = lli[:, 0].copy()
        for j in range(1, lli.shape[1]):
            np.maximum(top, lli[:, j], out=top)
        lli -= top[:, None]
        r = np.exp(lli)
        tot = r.sum(axis=1)
        lnresp = top + np.log(tot)
        r /= tot[:, None]
        return float(self.n_obs * np.dot(self.m, lnresp)), r

    def mstep(self, r, a, b):
        wk = self.m @ r
        alive = wk > 1e-300
        safe = np.where(alive, wk, 1.0)
        c1 = (self.mlx @ r) / safe
        c2 = (self.ml1x @ r) / safe
        na, nb = _solve_ab(a, b, c1, c2, self.lb)
        return (np.maximum(wk / wk.sum(), 1e-300), np.where(alive, na, a),
                np.where(alive, nb, b))

    def loglik(self, w, a, b) -> float:
        return self.estep(w, a, b)[0]

    def step(self, w, a, b):
        _, r = self.estep(w, a, b)
        return self.mstep(r, a, b)


def _em(x: np.ndarray, m: np.ndarray, n_obs: float, nc: int, *, constrain_gt1: bool,
        init: BetaMixture | None, max_iter: int, eps: float, n_eps: int,
        tol: float | None, accelerate: bool = True) -> tuple[BetaMixture, float, int, bool]:
    """EM with RBesT's convergence rule; optionally accelerated by SQUAREM.

    SQUAREM (Varadhan & Roland 2008, scheme S3): from p0, two EM steps give p1, p2; the
    extrapolation p0 - 2 alpha r + alpha^2 v (r = p1 - p0, v = p2 - 2 p1 + p0,
    alpha = -|r| / |v| <= -1) is followed by one EM step; it is kept only if its
    log-likelihood is at least that of p2, else p2 is kept. Deterministic; it converges to
    the same fixed point as plain EM in a fraction of the iterations. ``iterations``
    counts EM steps in either case.
    """
    if nc < 1:
        raise SpecError(f"number of components must be >= 1, got {nc}")
    lb = 1.0 + GT1_FLOOR if constrain_gt1 else POSITIVE_FLOOR
    tiny = np.finfo(float).eps
    x = np.clip(x, tiny, 1.0 - tiny)
    em = _EMMap(x, m, n_obs, lb)
    if init is None:
        w, a, b = _kmeans_init(x, m, nc, n_obs, lb)
    else:
        if init.n_components != nc:
            raise SpecError(f"initial mixture has {init.n_components} components, not {nc}")
        w, a, b = init.weights.copy(), np.maximum(init.a, lb), np.maximum(init.b, lb)
    shift = 1.0 if constrain_gt1 else 0.0

    def watched(w, a, b):
        with np.errstate(divide="ignore"):
            return np.stack([special.logit(np.clip(w, 1e-300, 1 - 1e-16)),
                             np.log(np.maximum(a - shift, 1e-300)),
                             np.log(np.maximum(b - shift, 1e-300))], axis=1)

    trace: list[np.ndarray] = []
    lls: list[float] = []
    converged = False
    it = 0
    ll, r = em.estep(w, a, b)
    while True:
        lls.append(ll)
        if tol is not None and len(lls) > 2 and (lls[-1] - lls[-3]) / 2 < tol:
            converged = True
            break
        if len(trace) >= n_eps:
            change = np.mean(np.abs(np.diff(np.array(trace[-n_eps:]), axis=0)), axis=0)
            if np.all((change if nc > 1 else change[:, 1:]) < eps):
                converged = True
                break
        if it >= max_iter:
            break
        w1, a1, b1 = em.mstep(r, a, b)
        it += 1
        if accelerate and nc > 1 and it + 2 <= max_iter:
            _, r1 = em.estep(w1, a1, b1)
            w2, a2, b2 = em.mstep(r1, a1, b1)
            it += 1
            ll2, r2 = em.estep(w2, a2, b2)
            p0, p1, p2 = em.pack(w, a, b), em.pack(w1, a1, b1), em.pack(w2, a2, b2)
            rr = p1 - p0
            vv = p2 - 2 * p1 + p0
            nv = float(np.sqrt(np.dot(vv, vv)))
            best = (w2, a2, b2, ll2, r2)
            if nv > 0 and np.all(np.isfinite(vv)):
                alpha = min(-float(np.sqrt(np.dot(rr, rr))) / nv, -1.0)
                pe = p0 - 2 * alpha * rr + alpha**2 * vv
                if np.all(np.isfinite(pe)):
                    we, ae, be = em.unpack(pe)
                    _, re = em.estep(we, ae, be)
                    we, ae, be = em.mstep(re, ae, be)
                    it += 1
                    lle, re = em.estep(we, ae, be)
                    if np.isfinite(lle) and lle >= ll2:
                        best = (we, ae, be, lle, re)
            w, a, b, ll, r = best
        else:
            w, a, b = w1, a1, b1
            ll, r = em.estep(w, a, b)
        trace.append(watched(w, a, b))
    order = np.argsort(-w, kind="stable")
    mix = BetaMixture(w[order], a[order], b[order],
                      names=[f"comp{i + 1}" for i in range(nc)])
    return mix, ll, it, converged


# ---------------------------------------------------------------------------- KS
def kolmogorov_distance(mixture: BetaMixture, target, *, weights=None) -> float:
    """Largest |F_mixture - F_target|.

    ``target`` is an array of draws (empirical CDF, optionally weighted; the supremum is
    attained at the draws and is computed exactly there) or a :class:`TabulatedDensity`
    (compared on the table's nodes, a logit grid of step 0.01 over its range, a uniform
    grid of step 1e-4 on [0, 1], and on both sides of its edge masses).
    """
    if isinstance(target, TabulatedDensity):
        eta = np.linspace(target.eta[0], target.eta[-1],
                          int(np.ceil((target.eta[-1] - target.eta[0]) / 0.01)) + 1)
        grid = np.unique(np.concatenate([target.x, special.expit(eta),
                                         np.linspace(0, 1, 10001)]))
        d = float(np.max(np.abs(mixture.cdf(grid) - target.cdf(grid))))
        x0, x1 = target.support
        lo, hi = target.edge_masses
        # Left limits at the edge nodes: the exact CDF is 0 just below x0 and F(x1-) below x1.
        d = max(d, float(mixture.cdf(x0)), float(abs(mixture.cdf(x1) - (1.0 - hi))))
        d = max(d, abs(float(mixture.cdf(x0)) - lo))
        return d
    x = np.asarray(target, dtype=float).ravel()
    m = np.ones(x.size) if weights is None else np.asarray(weights, dtype=float).ravel()
    order = np.argsort(x, kind="stable")
    xs, ms = x[order], m[order] / m.sum()
    upper = np.cumsum(ms)
    lower = upper - ms
    f = mixture.cdf(xs)
    return float(max(np.max(np.abs(f - upper)), np.max(np.abs(f - lower))))


# ---------------------------------------------------------------------------- public
def _draws(x, weights) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=float).ravel()
    if x.size < 2:
        raise SpecError("need at least two draws to fit a mixture")
    if not np.all(np.isfinite(x)) or np.any((x < 0) | (x > 1)):
        raise SpecError("draws must be finite and within [0, 1]")
    if weights is None:
        m = np.full(x.size, 1.0 / x.size)
    else:
        m = np.asarray(weights, dtype=float).ravel()
        if m.size != x.size or np.any(m < 0) or not np.all(np.isfinite(m)) or m.sum() <= 0:
            raise SpecError("weights must be finite, >= 0, one per draw, not all 0")
        m = m / m.sum()
    return x, m


def fit_beta_mixture(x, n_components: int, *, weights=None, constrain_gt1: bool = True,
                     init: BetaMixture | None = None, max_iter: int = 500,
                     eps: float = 0.005, n_eps: int = 5, tol: float | None = None) -> MixFit:
    """EM fit of an ``n_components`` Beta mixture to draws (RBesT's ``mixfit(type =
    "beta")``; see the module notes).

    Parameters
    ----------
    x : array_like
        Draws in [0, 1].
    n_components : int
    weights : array_like, optional
        Non-negative weights per draw (rescaled to mean 1).
    constrain_gt1 : bool
        Keep every a, b >= 1 (+1e-8), as RBesT's default; needed for the ELIR.
    init : BetaMixture, optional
        Starting mixture instead of the k-means start.
    max_iter, eps, n_eps, tol
        Convergence controls (RBesT's ``Niter.max``, ``eps``, ``Neps``, ``tol``).
    """
    x, m = _draws(x, weights)
    mix, ll, it, conv = _em(x, m, float(x.size), int(n_components),
                            constrain_gt1=constrain_gt1, init=init, max_iter=max_iter,
                            eps=eps, n_eps=n_eps, tol=tol)
    ks = kolmogorov_distance(mix, x, weights=m)
    return MixFit(mix, ll, float(x.size), 3 * int(n_components) - 1, it, conv, ks, "draws")


def fit_beta_mixture_exact(target: TabulatedDensity, n_components: int, *,
                           n_nominal: float = N_NOMINAL, constrain_gt1: bool = True,
                           init: BetaMixture | None = None, max_iter: int = 2000,
                           eps: float = 1e-3, n_eps: int = 5,
                           tol: float | None = 1e-3) -> MixFit:
    """Deterministic EM fit of a Beta mixture to an exact density (no sampling).

    Maximises E_target[log q(theta)], the target given as a :class:`TabulatedDensity`
    and integrated with its quadrature (edge masses included at their nodes);
    ``n_nominal`` scales the log-likelihood for the AIC (see the module notes).

    Convergence: either rule of RBesT stops the EM (as there): parameters' running mean
    change below ``eps`` (1e-3, five times tighter than RBesT's 0.005, as there is no
    Monte Carlo noise), or the log-likelihood slope below ``tol`` (1e-3 on the
    ``n_nominal`` scale, i.e. E[log q] improving by less than 2.5e-7 per iteration): a
    redundant component of a 4-component fit can drift for thousands of iterations
    without changing the fit.
    """
    if not isinstance(target, TabulatedDensity):
        raise SpecError("an exact target must be a TabulatedDensity")
    theta, w = target.quadrature(h_max=FIT_H_MAX, order=FIT_ORDER)
    # Nodes below 1e-12 of the total mass change E[log q] by < 30 * 1e-12 * nodes.
    keep = w > 1e-12 * w.sum()
    mix, ll, it, conv = _em(theta[keep], w[keep] / w[keep].sum(), float(n_nominal),
                            int(n_components), constrain_gt1=constrain_gt1, init=init,
                            max_iter=max_iter, eps=eps, n_eps=n_eps, tol=tol)
    ks = kolmogorov_distance(mix, target)
    return MixFit(mix, ll, float(n_nominal), 3 * int(n_components) - 1, it, conv, ks,
                  "exact")


def automixfit(target, *, n_components: Sequence[int] = (1, 2, 3, 4), k: float = 6.0,
               thresh: float = -np.inf, weights=None, n_nominal: float = N_NOMINAL,
               **options) -> AutoMixFit:
    """Fit each number of components and order the fits by AIC (RBesT's ``automixfit``).

    Parameters
    ----------
    target : array_like or TabulatedDensity
        Draws, or an exact density (fitted deterministically).
    n_components : sequence of int
        Increasing numbers of components to try (default 1..4).
    k : float
        AIC penalty per parameter (RBesT's default 6).
    thresh : float
        Stop once the AIC improves by less than ``thresh`` (RBesT's ``thresh``; the
        default -inf fits all).
    weights, n_nominal, **options
        Passed to :func:`fit_beta_mixture` / :func:`fit_beta_mixture_exact`.
    """
    ncs = [int(n) for n in n_components]
    if not ncs or any(b <= a for a, b in pairwise(ncs)):
        raise SpecError("n_components must be increasing")
    fits: list[MixFit] = []
    last = np.inf
    for nc in ncs:
        if isinstance(target, TabulatedDensity):
            fit = fit_beta_mixture_exact(target, nc, n_nominal=n_nominal, **options)
        else:
            fit = fit_beta_mixture(target, nc, weights=weights, **options)
        fits.append(fit)
        aic = fit.aic(k)
        if last - aic < thresh:
            break
        last = aic
    fits.sort(key=lambda f: f.aic(k))
    return AutoMixFit(tuple(fits), float(k))
