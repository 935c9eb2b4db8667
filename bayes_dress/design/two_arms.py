"""Two-arm trial design with Beta-mixture priors: decision boundary in y1 given y2,
operating characteristics and probability of success, exact by enumeration over y2.

Semantics of RBesT's ``decision2S_boundary``, ``oc2S`` and ``pos2S`` (R/decision2S_boundary.R,
R/oc2S.R, R/pos2S.R of 1.9-0): arm 1 has n1 patients and prior ``prior1``, arm 2 n2 and
``prior2``; the rule is on g(theta1) - g(theta2). For each outcome y2 of arm 2 the critical
y1 is found by integer bisection (the decision is monotone in y1 for fixed y2: the posterior
of theta1 increases stochastically with y1), vectorised over all y2 at once; then

    OC(theta1, theta2) = sum_y2 Binomial(y2 | n2, theta2) P(y1 in success set(y2) | theta1)

with the inner probability from the binomial CDF. ``eps`` restricts the y2 sum to the
central 1 - eps of Binomial(n2, theta2) (RBesT's option for huge sample spaces; it warns
when (n1 + 1)(n2 + 1) > 1e7 without it).

Boundary convention (:class:`Boundary2S`), for each y2:

* lower-tail conditions hold iff y1 <= ``lower_crit[y2]`` (-1: never, n1: always);
* upper-tail conditions hold iff y1 > ``upper_crit[y2]`` (n1: never, -1: always).

RBesT's sentinels differ for the upper tail (:meth:`Boundary2S.rbest`): it returns -1
when the decision is never 1 and n1 + 1 when it is always 1; for the lower tail its values
equal ``lower_crit`` (its ``boundary - 1`` floored at -1). Note that RBesT's one-sample
sentinels differ again (see :mod:`bayes_dress.design.oc`).
"""

from __future__ import annotations

import warnings as _warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import special, stats

from bayes_dress.design._numerics import log_binom_pmf, logsumexp
from bayes_dress.design.decision import Rule, difference_cdf
from bayes_dress.design.mixture import BetaMixture
from bayes_dress.design.oc import _check_n, predictive_pmf
from bayes_dress.errors import SpecError

#: RBesT warns above this many outcome pairs when no ``eps`` is given.
LARGE_SAMPLE_SPACE = 1e7


def _check_two_sample(rule: Rule) -> None:
    if not isinstance(rule, Rule):
        raise SpecError("a decision rule (Rule) is needed")
    if not rule.two_sample:
        raise SpecError(f"rule {rule} is one-sample; a two-arm design needs a rule on "
                        "'theta1 - theta2'")


def _posterior_params(mix: BetaMixture, y: np.ndarray, n: int):
    w = mix.posterior_weights(y, n)
    a = mix.a[None, :] + y[:, None]
    b = mix.b[None, :] + (n - y)[:, None]
    return w, a, b


def _part_holds(prior1: BetaMixture, prior2: BetaMixture, n1: int, n2: int, rule: Rule,
                y1: np.ndarray, y2: np.ndarray, *, lower: bool) -> np.ndarray:
    """Do all conditions of one tail hold for the outcome pairs (y1[i], y2[i])?"""
    conds = rule.lower if lower else rule.upper
    w1, a1, b1 = _posterior_params(prior1, y1, n1)
    w2, a2, b2 = _posterior_params(prior2, y2, n2)
    ok = np.ones(y1.size, dtype=bool)
    for c in conds:
        p = difference_cdf(w1, a1, b1, w2, a2, b2, c.threshold, link=rule.link,
                           lower_tail=lower)
        ok &= p > c.prob
    return ok


def _bisect(holds, n1: int, y2: np.ndarray, *, lower: bool) -> np.ndarray:
    """Critical y1 for every y2, by bisection on a predicate monotone in y1.

    Upper tail (non-decreasing predicate): returns the last y1 where it fails (-1 if it
    never fails, n1 if it never holds). Lower tail (non-increasing): the last y1 where
    it holds (-1 if never).
    """
    # Find, for each y2, the first y1 in [0, n1 + 1] where the predicate "switches":
    # upper: first y1 with holds; lower: first y1 without holds.
    lo = np.zeros(y2.size, dtype=np.int64)
    hi = np.full(y2.size, n1 + 1, dtype=np.int64)
    while True:
        active = lo < hi
        if not active.any():
            break
        mid = (lo[active] + hi[active]) // 2
        h = holds(mid, y2[active])
        switched = h if not lower else ~h
        lo_a, hi_a = lo[active], hi[active]
        hi_a = np.where(switched, mid, hi_a)
        lo_a = np.where(switched, lo_a, mid + 1)
        lo[active], hi[active] = lo_a, hi_a
    return lo - 1


@dataclass
class Boundary2S:
    """Critical values of y1 for each y2 (see the module notes for the convention).

    Attributes
    ----------
    y2 : ndarray
        The arm-2 outcomes covered (all of 0..n2 unless restricted by ``eps``).
    lower_crit, upper_crit : ndarray or None
        Per y2; None when the rule has no condition of that tail.
    """

    n1: int
    n2: int
    rule: Rule
    y2: np.ndarray
    lower_crit: np.ndarray | None
    upper_crit: np.ndarray | None

    def _index(self, y2) -> np.ndarray:
        y2 = np.asarray(y2)
        idx = y2 - self.y2[0]
        if np.any(idx < 0) or np.any(idx >= self.y2.size):
            raise SpecError(f"outcome y2 outside the computed range {self.y2[0]}..{self.y2[-1]}")
        return idx

    def success_interval(self, y2) -> tuple[np.ndarray, np.ndarray]:
        """(first, last) y1 with decision 1 for each y2; first > last means never."""
        idx = self._index(y2)
        first = np.zeros(np.shape(idx), dtype=np.int64)
        last = np.full(np.shape(idx), self.n1, dtype=np.int64)
        if self.upper_crit is not None:
            first = np.maximum(first, self.upper_crit[idx] + 1)
        if self.lower_crit is not None:
            last = np.minimum(last, self.lower_crit[idx])
        return first, last

    def never(self, y2) -> np.ndarray:
        first, last = self.success_interval(y2)
        return first > last

    def always(self, y2) -> np.ndarray:
        first, last = self.success_interval(y2)
        return (first == 0) & (last == self.n1)

    def success(self, y1, y2) -> np.ndarray:
        """Decision for outcome pairs (broadcasting)."""
        first, last = self.success_interval(y2)
        y1 = np.asarray(y1)
        return (y1 >= first) & (y1 <= last)

    def rbest(self, y2) -> np.ndarray | dict[str, np.ndarray]:
        """RBesT's ``decision2S_boundary(...)(y2)`` values (sentinels as RBesT)."""
        idx = self._index(y2)

        def upper(crit):
            out = np.asarray(crit[idx]).copy()
            never = out >= self.n1
            always = out < 0
            out[never] = -1
            out[always] = self.n1 + 1
            return out

        def lower(crit):
            return np.asarray(crit[idx]).copy()

        if self.rule.two_sided:
            return {"lower_or_equal_than": lower(self.lower_crit),
                    "higher_than": upper(self.upper_crit)}
        if self.rule.lower:
            return lower(self.lower_crit)
        return upper(self.upper_crit)


def boundary2s(prior1: BetaMixture, prior2: BetaMixture, n1: int, n2: int, rule: Rule, *,
               y2=None) -> Boundary2S:
    """Critical y1 for each y2 in ``y2`` (default 0..n2).

    Parameters
    ----------
    prior1, prior2 : BetaMixture
        Priors of theta1 and theta2.
    n1, n2 : int
        Sample sizes (n1 >= 1, n2 >= 0; n2 = 0 uses the prior of arm 2 as it is).
    rule : Rule
        Two-sample rule.
    y2 : array_like of int, optional
        A contiguous range of arm-2 outcomes to cover.
    """
    _check_two_sample(rule)
    if not (isinstance(prior1, BetaMixture) and isinstance(prior2, BetaMixture)):
        raise SpecError("two-arm designs need Beta mixture priors")
    n1, n2 = _check_n(n1), _check_n(n2)
    if n1 < 1:
        raise SpecError("arm 1 needs at least one patient")
    if y2 is None:
        y2 = np.arange(n2 + 1)
    else:
        y2 = np.arange(int(np.min(y2)), int(np.max(y2)) + 1)
        if y2[0] < 0 or y2[-1] > n2:
            raise SpecError(f"y2 must lie within 0..{n2}")
    lower_crit = upper_crit = None
    if rule.lower:
        lower_crit = _bisect(lambda a, b: _part_holds(prior1, prior2, n1, n2, rule, a, b,
                                                      lower=True), n1, y2, lower=True)
    if rule.upper:
        upper_crit = _bisect(lambda a, b: _part_holds(prior1, prior2, n1, n2, rule, a, b,
                                                      lower=False), n1, y2, lower=False)
    return Boundary2S(n1, n2, rule, y2, lower_crit, upper_crit)


def _interval_prob(first: np.ndarray, last: np.ndarray, n1: int, theta1) -> np.ndarray:
    """P(first <= Y1 <= last) for Y1 ~ Binomial(n1, theta1); rows y2, columns theta1."""
    theta1 = np.asarray(theta1, dtype=float)
    f = first[:, None]
    l_ = last[:, None]
    below = np.where(f > 0, special.bdtr(np.maximum(f - 1, 0), n1, theta1[None, :]), 0.0)
    above = np.where(l_ < n1, special.bdtrc(np.minimum(l_, n1), n1, theta1[None, :]), 0.0)
    p = np.clip(1.0 - below - above, 0.0, 1.0)
    return np.where(f > l_, 0.0, p)


@dataclass
class Design2S:
    """A planned two-arm trial with Beta-mixture priors; boundaries are cached by y2.

    Parameters
    ----------
    prior1, prior2 : BetaMixture
    n1, n2 : int
    rule : Rule
        Two-sample rule on g(theta1) - g(theta2).
    eps : float, optional
        Restrict sums over y2 to the central 1 - eps of its binomial (or predictive)
        distribution, as RBesT's ``eps``.
    """

    prior1: BetaMixture
    prior2: BetaMixture
    n1: int
    n2: int
    rule: Rule
    eps: float | None = field(default=None, kw_only=True)
    warnings: list[str] = field(default_factory=list, kw_only=True)
    _lower: dict[int, int] = field(default_factory=dict, init=False, repr=False)
    _upper: dict[int, int] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        _check_two_sample(self.rule)
        self.n1, self.n2 = _check_n(self.n1), _check_n(self.n2)
        if self.eps is not None and not 0.0 < self.eps <= 0.1:
            raise SpecError(f"eps must lie in (0, 0.1], got {self.eps}")
        if self.eps is None and (self.n1 + 1) * (self.n2 + 1) > LARGE_SAMPLE_SPACE:
            msg = "Large sample space. Consider setting eps=1e-6."
            self.warnings.append(msg)
            _warnings.warn(msg, stacklevel=2)

    def boundary(self, y2=None) -> Boundary2S:
        """Critical values for the contiguous range ``y2`` (default all), cached."""
        y2 = np.arange(self.n2 + 1) if y2 is None else np.arange(int(np.min(y2)),
                                                                   int(np.max(y2)) + 1)
        missing = np.array([v for v in y2 if v not in (self._lower if self.rule.lower
                                                        else self._upper)], dtype=np.int64)
        if missing.size:
            for part, store in ((True, self._lower), (False, self._upper)):
                if not (self.rule.lower if part else self.rule.upper):
                    continue
                crit = _bisect(lambda a, b, part=part: _part_holds(
                    self.prior1, self.prior2, self.n1, self.n2, self.rule, a, b, lower=part),
                    self.n1, missing, lower=part)
                store.update(zip(missing.tolist(), crit.tolist(), strict=True))
        lower = np.array([self._lower[v] for v in y2]) if self.rule.lower else None
        upper = np.array([self._upper[v] for v in y2]) if self.rule.upper else None
        return Boundary2S(self.n1, self.n2, self.rule, y2, lower, upper)

    def _y2_range(self, theta2: np.ndarray) -> np.ndarray:
        if self.eps is None:
            return np.arange(self.n2 + 1)
        lo = int(stats.binom.ppf(self.eps / 2, self.n2, float(np.min(theta2))))
        hi = int(stats.binom.ppf(1 - self.eps / 2, self.n2, float(np.max(theta2))))
        return np.arange(max(lo, 0), min(hi, self.n2) + 1)

    def oc(self, theta1, theta2) -> np.ndarray:
        """P(decision 1 | theta1, theta2), elementwise over broadcast arrays."""
        t1, t2 = np.broadcast_arrays(np.asarray(theta1, dtype=float),
                                     np.asarray(theta2, dtype=float))
        if np.any((t1 < 0) | (t1 > 1) | (t2 < 0) | (t2 > 1)):
            raise SpecError("true response rates must lie in [0, 1]")
        flat1, flat2 = t1.ravel(), t2.ravel()
        y2 = self._y2_range(flat2)
        b = self.boundary(y2)
        first, last = b.success_interval(y2)
        inner = _interval_prob(first, last, self.n1, flat1)  # (Y2, T)
        logw = log_binom_pmf(y2[:, None], self.n2, flat2[None, :])
        with np.errstate(divide="ignore"):
            out = np.exp(logsumexp(logw + np.log(inner), axis=0))
        return np.clip(out, 0.0, 1.0).reshape(t1.shape)

    def pos(self, design1: BetaMixture, design2: BetaMixture) -> float:
        """Probability of success under the prior predictives of ``design1``/``design2``."""
        pred1 = predictive_pmf(design1, self.n1)
        pred2 = predictive_pmf(design2, self.n2)
        y2 = np.arange(self.n2 + 1)
        if self.eps is not None:
            cum = np.cumsum(pred2)
            lo = int(np.searchsorted(cum, self.eps / 2))
            hi = int(np.searchsorted(cum, 1 - self.eps / 2))
            y2 = np.arange(lo, min(hi, self.n2) + 1)
        b = self.boundary(y2)
        first, last = b.success_interval(y2)
        cum1 = np.concatenate([[0.0], np.cumsum(pred1)])
        inner = np.where(first <= last, cum1[np.minimum(last, self.n1) + 1]
                         - cum1[np.clip(first, 0, self.n1 + 1)], 0.0)
        return float(np.clip(np.dot(pred2[y2], np.clip(inner, 0, 1)), 0.0, 1.0))


def oc2s(prior1: BetaMixture, prior2: BetaMixture, n1: int, n2: int, rule: Rule, theta1,
         theta2, *, eps: float | None = None) -> np.ndarray:
    """P(decision 1 | theta1, theta2) (RBesT's ``oc2S(...)(theta1, theta2)``)."""
    return Design2S(prior1, prior2, n1, n2, rule, eps=eps).oc(theta1, theta2)


def pos2s(prior1: BetaMixture, prior2: BetaMixture, n1: int, n2: int, rule: Rule,
          design1: BetaMixture, design2: BetaMixture, *, eps: float | None = None) -> float:
    """Probability of success under design priors (RBesT's ``pos2S``)."""
    return Design2S(prior1, prior2, n1, n2, rule, eps=eps).pos(design1, design2)
