"""Beta mixtures on the response rate, their beta-binomial predictives, and normal
mixtures on the logit scale: the conjugate objects of RBesT, in numpy/scipy.

Semantics follow RBesT (``mixbeta``, ``postmix``, ``preddist``, ``robustify``,
``mixcombine``; R/mixbeta.R, R/postmix.R, R/preddist.R, R/robustify.R of RBesT 1.9-0),
with one deliberate change: quantiles are found by exact root finding on the logit scale
(Brent, relative precision ~1e-13 in theta) instead of R's ``uniroot`` with its default
tolerance of about 1.2e-4.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from scipy import optimize, special

from bayes_dress.design._numerics import (
    as_float_array,
    beta_cdf,
    beta_logit_location,
    log_beta_pdf,
    log_betabinom_pmf,
    logsumexp,
)
from bayes_dress.errors import SpecError

#: Name RBesT gives the component that ``robustify`` adds.
ROBUST = "robust"


def _check_weights(weights: np.ndarray, *, normalize: bool) -> np.ndarray:
    if weights.size == 0:
        raise SpecError("a mixture needs at least one component")
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise SpecError(f"mixture weights must be finite and >= 0, got {weights.tolist()}")
    total = weights.sum()
    if total <= 0:
        raise SpecError("mixture weights must not all be 0")
    if normalize:
        return weights / total
    if abs(total - 1.0) > 1e-9:
        raise SpecError(f"mixture weights must sum to 1, they sum to {total:.12g}")
    return weights


def _names(names: Sequence[str] | None, k: int) -> tuple[str, ...]:
    if names is None:
        return tuple(f"comp{i + 1}" for i in range(k))
    names = tuple(str(n) for n in names)
    if len(names) != k:
        raise SpecError(f"{len(names)} component names given for {k} components")
    return names


def _frozen(arr: np.ndarray) -> np.ndarray:
    arr.setflags(write=False)
    return arr


def _log(weights: np.ndarray) -> np.ndarray:
    """log of weights, -inf for a zero weight (a robust component of weight 0)."""
    with np.errstate(divide="ignore"):
        return np.log(weights)


def _ppf_bracketed(cdf_logit, lo: np.ndarray, hi: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Roots of ``cdf_logit(eta) = p`` by Brent's method inside [lo, hi] (logit scale)."""
    out = np.empty(p.shape)
    for i, (pi, a, b) in enumerate(zip(p, lo, hi, strict=True)):
        if pi <= 0.0:
            out[i] = 0.0
            continue
        if pi >= 1.0:
            out[i] = 1.0
            continue
        f = lambda eta, pi=pi: cdf_logit(eta) - pi  # noqa: E731
        fa, fb = f(a), f(b)
        while fa > 0:
            a -= max(1.0, abs(a))
            fa = f(a)
        while fb < 0:
            b += max(1.0, abs(b))
            fb = f(b)
        if fa == 0:
            root = a
        elif fb == 0:
            root = b
        else:
            root = optimize.brentq(f, a, b, xtol=1e-13, rtol=4 * np.finfo(float).eps,
                                   maxiter=500)
        out[i] = special.expit(root)
    return out


class BetaMixture:
    """A finite mixture of Beta distributions for a response rate theta in (0, 1).

    Parameters
    ----------
    weights, a, b : array_like
        Component weights (rescaled to sum to 1 unless ``normalize=False``) and Beta
        shape parameters (> 0).
    names : sequence of str, optional
        Component names; default ``comp1, comp2, ...`` as RBesT. ``robustify`` names its
        component ``"robust"``.
    normalize : bool
        Rescale the weights to sum to 1 (RBesT's ``mixbeta`` does so silently for rounding
        differences and with a warning otherwise); with ``False`` they must sum to 1.

    Notes
    -----
    Arrays are read-only; every operation returns a new mixture.
    """

    __slots__ = ("_a", "_b", "_names", "_weights")

    def __init__(self, weights, a, b, *, names: Sequence[str] | None = None,
                 normalize: bool = True) -> None:
        w = as_float_array(weights, "weights")
        a = as_float_array(a, "a")
        b = as_float_array(b, "b")
        if not (w.size == a.size == b.size):
            raise SpecError(f"mixture needs as many weights ({w.size}), a ({a.size}) and "
                            f"b ({b.size}) values")
        if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))
                and np.all(a > 0) and np.all(b > 0)):
            raise SpecError(f"Beta parameters must be finite and > 0, got a={a.tolist()}, "
                            f"b={b.tolist()}")
        self._weights = _frozen(_check_weights(w, normalize=normalize))
        self._a = _frozen(a)
        self._b = _frozen(b)
        self._names = _names(names, w.size)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def beta(cls, a: float, b: float, *, name: str = "comp1") -> BetaMixture:
        """A single Beta(a, b) as a one-component mixture."""
        return cls([1.0], [a], [b], names=[name])

    @classmethod
    def from_mean_n(cls, weights, mean, n, *, names=None) -> BetaMixture:
        """RBesT's ``param = "mn"``: a = mean * n, b = (1 - mean) * n."""
        m = as_float_array(mean, "mean")
        n = as_float_array(n, "n")
        return cls(weights, m * n, (1 - m) * n, names=names)

    @classmethod
    def from_mean_sd(cls, weights, mean, sd, *, names=None) -> BetaMixture:
        """RBesT's ``param = "ms"`` (``ms2beta``): n = m (1 - m) / sd^2 - 1."""
        m = as_float_array(mean, "mean")
        s = as_float_array(sd, "sd")
        n = m * (1 - m) / s**2 - 1
        if np.any(n <= 0):
            raise SpecError(f"no Beta has mean {m.tolist()} and sd {s.tolist()}")
        return cls(weights, m * n, (1 - m) * n, names=names)

    # ------------------------------------------------------------------ basic attributes
    @property
    def weights(self) -> np.ndarray:
        return self._weights

    @property
    def a(self) -> np.ndarray:
        return self._a

    @property
    def b(self) -> np.ndarray:
        return self._b

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    @property
    def n_components(self) -> int:
        return self._weights.size

    def __len__(self) -> int:
        return self.n_components

    def __repr__(self) -> str:
        rows = ", ".join(f"{n}=({w:.6g}, {a:.6g}, {b:.6g})" for n, w, a, b in
                         zip(self.names, self.weights, self.a, self.b, strict=True))
        return f"BetaMixture({rows})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BetaMixture):
            return NotImplemented
        return (self.names == other.names and np.array_equal(self.weights, other.weights)
                and np.array_equal(self.a, other.a) and np.array_equal(self.b, other.b))

    __hash__ = None  # type: ignore[assignment]

    def component(self, index: int | str) -> BetaMixture:
        """One component as a one-component mixture (by position or name)."""
        i = self.names.index(index) if isinstance(index, str) else int(index)
        return BetaMixture([1.0], [self.a[i]], [self.b[i]], names=[self.names[i]])

    def weight_of(self, name: str) -> float:
        """Weight of the component called ``name`` (0.0 if there is none)."""
        return float(sum(w for n, w in zip(self.names, self.weights, strict=True)
                         if n == name))

    def matrix(self) -> np.ndarray:
        """RBesT's 3 x K layout: rows w, a, b."""
        return np.vstack([self.weights, self.a, self.b])

    # ------------------------------------------------------------------ distribution
    def logpdf(self, x) -> np.ndarray:
        """Log density at ``x`` (``-inf`` outside [0, 1])."""
        x = np.asarray(x, dtype=float)
        inside = (x >= 0) & (x <= 1)
        xc = np.clip(x, 0.0, 1.0)[..., None]
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = _log(self.weights) + log_beta_pdf(xc, self.a, self.b)
            out = logsumexp(terms, axis=-1)
        return np.where(inside, out, -np.inf)

    def pdf(self, x) -> np.ndarray:
        """Density at ``x``."""
        return np.exp(self.logpdf(x))

    def cdf(self, x) -> np.ndarray:
        """P(theta <= x)."""
        x = np.asarray(x, dtype=float)[..., None]
        return np.sum(self.weights * beta_cdf(self.a, self.b, x), axis=-1)

    def sf(self, x) -> np.ndarray:
        """P(theta > x), computed directly (accurate near 1 - small)."""
        x = np.asarray(x, dtype=float)[..., None]
        return np.sum(self.weights * beta_cdf(self.a, self.b, x, lower_tail=False), axis=-1)

    def _cdf_logit(self, eta: float) -> float:
        return float(self.cdf(special.expit(eta)))

    def quantile(self, p) -> np.ndarray:
        """Quantiles by exact root finding of the mixture CDF (on the logit scale).

        The root is bracketed by the smallest and largest component quantile, which
        always enclose the mixture quantile.
        """
        p = np.asarray(p, dtype=float)
        flat = np.atleast_1d(p).ravel()
        if np.any((flat < 0) | (flat > 1)) or np.any(np.isnan(flat)):
            raise SpecError("probabilities for quantiles must lie in [0, 1]")
        if self.n_components == 1:
            out = special.betaincinv(self.a[0], self.b[0], flat)
            return out.reshape(p.shape) if p.ndim else out[0]
        comp_q = special.betaincinv(self.a[None, :], self.b[None, :], flat[:, None])
        with np.errstate(divide="ignore"):
            lo = special.logit(comp_q.min(axis=1))
            hi = special.logit(comp_q.max(axis=1))
        lo = np.clip(np.nan_to_num(lo, neginf=-700.0), -700.0, 700.0)
        hi = np.clip(np.nan_to_num(hi, posinf=700.0), -700.0, 700.0)
        out = _ppf_bracketed(self._cdf_logit, lo, hi, flat)
        return out.reshape(p.shape) if p.ndim else out[0]

    ppf = quantile

    def mean(self) -> float:
        """Exact mixture mean."""
        return float(np.sum(self.weights * self.a / (self.a + self.b)))

    def var(self) -> float:
        """Exact mixture variance (RBesT's ``summary.betaMix`` formula)."""
        n = self.a + self.b
        m = self.a / n
        second = m * (1 - m) / (n + 1) + m**2
        mean = np.sum(self.weights * m)
        return float(np.sum(self.weights * second) - mean**2)

    def sd(self) -> float:
        """Exact mixture standard deviation."""
        return float(np.sqrt(max(self.var(), 0.0)))

    def summary(self, probs: Iterable[float] = (0.025, 0.5, 0.975)) -> dict[str, float]:
        """Mean, sd and quantiles, keyed as RBesT prints them (``"2.5%"``, ...)."""
        probs = list(probs)
        out = {"mean": self.mean(), "sd": self.sd()}
        for p, q in zip(probs, np.atleast_1d(self.quantile(probs)), strict=True):
            out[f"{100 * p:g}%"] = float(q)
        return out

    def sample(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """``size`` draws using the numpy Generator ``rng``."""
        comp = rng.choice(self.n_components, size=size, p=self.weights)
        return rng.beta(self.a[comp], self.b[comp])

    def modes(self) -> np.ndarray:
        """All local maxima of the density in [0, 1], highest density first.

        Found on a logit-scale grid that resolves every component, then refined by
        Brent's method; a bound (0 or 1) is a mode where the density rises towards it.
        """
        return _mixture_modes(self)

    # ------------------------------------------------------------------ conjugate updates
    def postmix(self, r: int, n: int) -> BetaMixture:
        """Posterior after ``r`` responders out of ``n`` (RBesT's ``postmix``).

        Each component is updated to Beta(a + r, b + n - r); the weights become
        proportional to ``w_k * BetaBinomial(r | n, a_k, b_k)``, computed in log space.
        """
        r, n = _check_counts(r, n)
        logw = _log(self.weights) + log_betabinom_pmf(r, n, self.a, self.b)
        logw -= logsumexp(logw)
        return BetaMixture(np.exp(logw), self.a + r, self.b + n - r, names=self.names)

    def posterior_weights(self, r, n: int) -> np.ndarray:
        """Posterior component weights for every count in ``r`` (shape ``r.shape + (K,)``)."""
        r = np.asarray(r, dtype=float)[..., None]
        with np.errstate(divide="ignore"):
            logw = _log(self.weights) + log_betabinom_pmf(r, n, self.a, self.b)
        logw -= logsumexp(logw, axis=-1, keepdims=True)
        return np.exp(logw)

    def preddist(self, n: int) -> BetaBinomialMixture:
        """Predictive distribution of the number of responders out of ``n``."""
        return BetaBinomialMixture(self.weights, self.a, self.b, n, names=self.names)

    def robustify(self, weight: float, *, mean: float = 0.5, n: float = 1.0) -> BetaMixture:
        """Add a weakly informative component named ``"robust"`` (RBesT's ``robustify``).

        The robust component is Beta(mean * (n + 1), (1 - mean) * (n + 1)): Beta(1, 1) for
        the defaults (RBesT uses ``n + 1`` so that the default is the uniform, not
        Beta(1/2, 1/2)). The existing weights are multiplied by ``1 - weight``.

        Parameters
        ----------
        weight : float
            Weight of the robust component, in [0, 1]. Required: there is no default.
        mean : float
            Mean of the robust component (RBesT's default 1/2).
        n : float
            Its sample size minus one (default 1, giving a + b = 2).
        """
        return robustify(self, weight, mean=mean, n=n)


def _check_counts(r, n) -> tuple[int, int]:
    try:
        r_i, n_i = int(r), int(n)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"counts must be integers, got r={r!r}, n={n!r}") from exc
    if r_i != r or n_i != n or n_i < 0 or not 0 <= r_i <= n_i:
        raise SpecError(f"need integers 0 <= r <= n, got r={r!r}, n={n!r}")
    return r_i, n_i


def combine(*mixtures: BetaMixture, weights: Sequence[float] | None = None) -> BetaMixture:
    """RBesT's ``mixcombine``: stack components, scaling each mixture's weights.

    Parameters
    ----------
    *mixtures : BetaMixture
        Mixtures to combine.
    weights : sequence of float, optional
        One weight per mixture (default equal); the result is renormalised.
    """
    if not mixtures:
        raise SpecError("combine needs at least one mixture")
    if weights is None:
        weights = [1.0] * len(mixtures)
    if len(weights) != len(mixtures):
        raise SpecError(f"{len(weights)} weights given for {len(mixtures)} mixtures")
    w = np.concatenate([m.weights * float(s) for m, s in zip(mixtures, weights, strict=True)])
    a = np.concatenate([m.a for m in mixtures])
    b = np.concatenate([m.b for m in mixtures])
    names = [n for m in mixtures for n in m.names]
    return BetaMixture(w, a, b, names=names)


def robustify(prior: BetaMixture, weight: float, *, mean: float = 0.5,
              n: float = 1.0) -> BetaMixture:
    """Add a robust component of weight ``weight`` (see :meth:`BetaMixture.robustify`)."""
    try:
        weight = float(weight)
        mean = float(mean)
        n = float(n)
    except (TypeError, ValueError) as exc:
        raise SpecError("robustify needs numeric weight, mean and n") from exc
    if not 0.0 <= weight <= 1.0:
        raise SpecError(f"robust weight must lie in [0, 1], got {weight}")
    if not 0.0 < mean < 1.0:
        raise SpecError(f"robust mean must lie in (0, 1), got {mean}")
    if not (np.isfinite(n) and n >= 0):
        raise SpecError(f"robust n must be finite and >= 0, got {n}")
    rob = BetaMixture([1.0], [mean * (n + 1)], [(1 - mean) * (n + 1)], names=[ROBUST])
    if weight == 0.0:
        # Keep the component (weight 0) so that posterior robust weights stay defined.
        return BetaMixture(np.append(prior.weights, 0.0), np.append(prior.a, rob.a),
                           np.append(prior.b, rob.b), names=[*prior.names, ROBUST])
    if weight == 1.0:
        return BetaMixture(np.append(np.zeros(prior.n_components), 1.0),
                           np.append(prior.a, rob.a), np.append(prior.b, rob.b),
                           names=[*prior.names, ROBUST])
    return combine(prior, rob, weights=[1.0 - weight, weight])


class BetaBinomialMixture:
    """Predictive distribution of responders out of ``n`` under a Beta mixture
    (RBesT's ``betaBinomialMix`` from ``preddist``)."""

    __slots__ = ("_a", "_b", "_n", "_names", "_weights")

    def __init__(self, weights, a, b, n: int, *, names: Sequence[str] | None = None) -> None:
        mix = BetaMixture(weights, a, b, names=names)
        n_i = int(n)
        if n_i != n or n_i < 0:
            raise SpecError(f"predictive sample size must be an integer >= 0, got {n!r}")
        self._weights, self._a, self._b, self._names = mix.weights, mix.a, mix.b, mix.names
        self._n = n_i

    @property
    def n(self) -> int:
        return self._n

    @property
    def weights(self) -> np.ndarray:
        return self._weights

    @property
    def a(self) -> np.ndarray:
        return self._a

    @property
    def b(self) -> np.ndarray:
        return self._b

    def __repr__(self) -> str:
        return f"BetaBinomialMixture(n={self.n}, {BetaMixture(self.weights, self.a, self.b)})"

    def logpmf(self, y) -> np.ndarray:
        """Log probability of each count in ``y`` (-inf off the support)."""
        y = np.asarray(y, dtype=float)
        valid = (y >= 0) & (y <= self.n) & (y == np.floor(y))
        yc = np.where(valid, y, 0.0)[..., None]
        terms = _log(self.weights) + log_betabinom_pmf(yc, self.n, self.a, self.b)
        return np.where(valid, logsumexp(terms, axis=-1), -np.inf)

    def pmf(self, y) -> np.ndarray:
        """Probability of each count in ``y``."""
        return np.exp(self.logpmf(y))

    def pmf_all(self) -> np.ndarray:
        """Probabilities of 0, 1, ..., n (sum to 1 up to rounding)."""
        return self.pmf(np.arange(self.n + 1))

    def cdf(self, y) -> np.ndarray:
        """P(Y <= y)."""
        cum = np.concatenate([[0.0], np.cumsum(self.pmf_all())])
        cum = np.clip(cum, 0.0, 1.0)
        idx = np.clip(np.floor(np.asarray(y, dtype=float)) + 1, 0, self.n + 1).astype(int)
        return cum[idx]

    def sf(self, y) -> np.ndarray:
        """P(Y > y), summed directly from the upper tail."""
        pmf = self.pmf_all()
        upper = np.concatenate([np.cumsum(pmf[::-1])[::-1], [0.0]])  # P(Y >= k)
        idx = np.clip(np.floor(np.asarray(y, dtype=float)) + 1, 0, self.n + 1).astype(int)
        return np.clip(upper[idx], 0.0, 1.0)

    def quantile(self, p) -> np.ndarray:
        """Smallest y with P(Y <= y) >= p."""
        p = np.asarray(p, dtype=float)
        cum = np.cumsum(self.pmf_all())
        return np.minimum(np.searchsorted(cum, p * (1 - 1e-12), side="left"), self.n)

    def mean(self) -> float:
        return float(self.n * np.sum(self.weights * self.a / (self.a + self.b)))

    def sd(self) -> float:
        """RBesT's ``summary.betaBinomialMix`` formula."""
        a, b, n = self.a, self.b, self.n
        m = n * a / (a + b)
        v = n * a * b * (a + b + n) / ((a + b) ** 2 * (a + b + 1))
        mmix = np.sum(self.weights * m)
        return float(np.sqrt(max(np.sum(self.weights * (v + m**2)) - mmix**2, 0.0)))

    def sample(self, size: int, rng: np.random.Generator) -> np.ndarray:
        comp = rng.choice(self.weights.size, size=size, p=self.weights)
        return rng.binomial(self.n, rng.beta(self.a[comp], self.b[comp]))


class NormalMixture:
    """A mixture of normals, e.g. a prior on the logit of a response rate.

    Used for RBesT's logit-scale ESS (``ess(normMix, family = binomial)``).

    Parameters
    ----------
    weights, means, sds : array_like
        Weights (renormalised), means and standard deviations (> 0).
    names : sequence of str, optional
        Component names.
    sigma : float, optional
        Reference scale (RBesT's ``sigma``), used only for the gaussian family.
    """

    __slots__ = ("_means", "_names", "_sds", "_weights", "sigma")

    def __init__(self, weights, means, sds, *, names: Sequence[str] | None = None,
                 sigma: float | None = None) -> None:
        w = as_float_array(weights, "weights")
        m = as_float_array(means, "means")
        s = as_float_array(sds, "sds")
        if not (w.size == m.size == s.size):
            raise SpecError("normal mixture needs as many weights, means and sds")
        if not (np.all(np.isfinite(m)) and np.all(np.isfinite(s)) and np.all(s > 0)):
            raise SpecError("normal mixture means must be finite and sds finite and > 0")
        self._weights = _frozen(_check_weights(w, normalize=True))
        self._means = _frozen(m)
        self._sds = _frozen(s)
        self._names = _names(names, w.size)
        self.sigma = None if sigma is None else float(sigma)

    @property
    def weights(self) -> np.ndarray:
        return self._weights

    @property
    def means(self) -> np.ndarray:
        return self._means

    @property
    def sds(self) -> np.ndarray:
        return self._sds

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    @property
    def n_components(self) -> int:
        return self._weights.size

    def __repr__(self) -> str:
        rows = ", ".join(f"{n}=({w:.6g}, {m:.6g}, {s:.6g})" for n, w, m, s in
                         zip(self.names, self.weights, self.means, self.sds, strict=True))
        return f"NormalMixture({rows})"

    def logpdf(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=float)[..., None]
        z = (x - self.means) / self.sds
        terms = _log(self.weights) - 0.5 * z**2 - np.log(self.sds) - 0.5 * np.log(2 * np.pi)
        return logsumexp(terms, axis=-1)

    def pdf(self, x) -> np.ndarray:
        return np.exp(self.logpdf(x))

    def cdf(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=float)[..., None]
        return np.sum(self.weights * special.ndtr((x - self.means) / self.sds), axis=-1)

    def mean(self) -> float:
        return float(np.sum(self.weights * self.means))

    def sd(self) -> float:
        m = self.mean()
        v = np.sum(self.weights * (self.sds**2 + self.means**2)) - m**2
        return float(np.sqrt(max(v, 0.0)))

    def quantile(self, p) -> np.ndarray:
        p = np.asarray(p, dtype=float)
        flat = np.atleast_1d(p).ravel()
        out = np.empty(flat.shape)
        for i, pi in enumerate(flat):
            q = self.means + self.sds * special.ndtri(pi)
            lo, hi = q.min(), q.max()
            if lo == hi:
                out[i] = lo
                continue
            out[i] = optimize.brentq(lambda x, pi=pi: float(self.cdf(x)) - pi, lo, hi,
                                     xtol=1e-14, rtol=4 * np.finfo(float).eps)
        return out.reshape(p.shape) if p.ndim else out[0]

    def sample(self, size: int, rng: np.random.Generator) -> np.ndarray:
        comp = rng.choice(self.n_components, size=size, p=self.weights)
        return rng.normal(self.means[comp], self.sds[comp])

    def modes(self) -> np.ndarray:
        """All local maxima of the density, highest first."""
        grid = np.unique(np.concatenate(
            [self.means[k] + self.sds[k] * np.linspace(-6, 6, 121)
             for k in range(self.n_components)]))
        def grad(x: float) -> float:
            z = (x - self.means) / self.sds
            lw = _log(self.weights) - 0.5 * z**2 - np.log(self.sds)
            r = np.exp(lw - logsumexp(lw))
            return float(np.sum(r * -(x - self.means) / self.sds**2))

        return _refine_maxima(lambda x: float(self.logpdf(x)), grid, self.logpdf(grid), grad)


def _refine_maxima(logf, grid: np.ndarray, values: np.ndarray, grad=None) -> np.ndarray:
    """Local maxima of ``values`` on the increasing ``grid``, refined by bounded Brent.

    Runs of equal values are treated as one plateau; a plateau is a maximum when the
    values next to it (-inf beyond the ends) are smaller. A plateau touching an end of the
    grid gives that end; an interior one is refined between its neighbours. A function
    that is constant over the whole grid has no maximum (empty result). Maxima are
    returned highest first.
    """
    n = grid.size
    starts = np.flatnonzero(np.concatenate([[True], values[1:] != values[:-1]]))
    ends = np.concatenate([starts[1:], [n]]) - 1
    if starts.size == 1:
        return np.array([])
    found: list[tuple[float, float]] = []
    for run, (i0, i1) in enumerate(zip(starts, ends, strict=True)):
        left = values[starts[run - 1]] if run > 0 else -np.inf
        right = values[starts[run + 1]] if run < starts.size - 1 else -np.inf
        v = values[i0]
        if not (v > left and v > right):
            continue
        if i0 == 0:
            found.append((float(grid[0]), float(v)))
            continue
        if i1 == n - 1:
            found.append((float(grid[-1]), float(v)))
            continue
        mid = (i0 + i1) // 2
        lo, hi = grid[i0 - 1], grid[i1 + 1]
        if grad is not None:
            g_lo, g_hi = grad(lo), grad(hi)
            if g_lo > 0 > g_hi:
                x = optimize.brentq(grad, lo, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps)
                found.append((float(x), float(logf(x))))
                continue
        res = optimize.minimize_scalar(lambda x: -logf(x), bounds=(lo, hi), method="bounded",
                                       options={"xatol": 1e-12 * max(1.0, abs(grid[mid]))})
        x, fx = float(res.x), -float(res.fun)
        if fx < v:
            x, fx = float(grid[mid]), float(v)
        found.append((x, fx))
    found.sort(key=lambda t: -t[1])
    merged: list[tuple[float, float]] = []
    for x, fx in found:
        if all(abs(x - y) > 1e-7 * max(1.0, abs(y)) for y, _ in merged):
            merged.append((x, fx))
    return np.array([x for x, _ in merged])


def _mixture_modes(mix: BetaMixture) -> np.ndarray:
    centre, spread = beta_logit_location(mix.a, mix.b)
    pieces = [np.linspace(-40.0, 40.0, 801), [-700.0, 700.0]]
    for c, s in zip(centre, spread, strict=True):
        pieces.append(c + s * np.linspace(-8, 8, 161))
    eta = np.unique(np.clip(np.concatenate(pieces), -700, 700))
    theta = np.unique(np.concatenate([[0.0], special.expit(eta), [1.0]]))
    with np.errstate(divide="ignore"):
        logp = mix.logpdf(theta)

    def logf(x: float) -> float:
        return float(mix.logpdf(x))

    def grad(x: float) -> float:
        # Sign of d log p / d theta: sum_k w~_k [(a_k - 1)(1 - x) - (b_k - 1) x].
        with np.errstate(divide="ignore"):
            lw = _log(mix.weights) + log_beta_pdf(x, mix.a, mix.b)
        r = np.exp(lw - logsumexp(lw))
        return float(np.sum(r * ((mix.a - 1) * (1 - x) - (mix.b - 1) * x)))

    # Refine on the theta scale between the neighbouring grid points.
    modes = _refine_maxima(logf, theta, logp, grad)
    # Snap maxima within float resolution of a bound onto the bound.
    modes = np.where(modes < 1e-300, 0.0, np.where(modes > 1 - 1e-15, 1.0, modes))
    _, first = np.unique(modes, return_index=True)
    return modes[np.sort(first)]
