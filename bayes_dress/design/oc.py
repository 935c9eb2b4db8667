"""Single-arm trial design: decision boundary, operating characteristics (OC) and
probability of success (PoS), exact by binomial enumeration.

For a planned trial of ``n`` patients with ``y`` responders, the posterior of the rate
under the prior (a :class:`BetaMixture`, conjugate, or a :class:`TabulatedDensity`, the
exact MAP, by quadrature) is evaluated for **every** outcome y = 0..n, which gives the set
of outcomes where the rule decides 1. Then

* OC(theta) = sum over that set of Binomial(y | n, theta): exact, no simulation,
  vectorised over any grid of true rates;
* PoS under a design prior = the same sum with the prior-predictive (beta-binomial
  mixture) probabilities.

RBesT (``decision1S_boundary``, ``oc1S``, ``pos1S``; R/decision1S_boundary.R, R/oc1S.R,
R/pos1S.R of 1.9-0) finds the same boundary by integer bisection, which assumes the
decision is monotone in y. It is for any prior when conditions share a tail (the
binomial likelihood has a monotone likelihood ratio), so the results agree; here the
full vector is computed and monotonicity is checked, not assumed.

Boundary fields and RBesT's return value (:meth:`Boundary1S.rbest`):

* lower-tail rule (P(theta <= q) > p): success iff y <= ``lower_crit``; RBesT returns
  ``lower_crit``; it is -1 when the decision is never 1 and n when it is always 1;
* upper-tail rule (P(theta > q) > p): success iff y > ``upper_crit``; RBesT returns
  ``upper_crit``; n = never, -1 = always;
* two-sided rule: success iff ``upper_crit`` < y <= ``lower_crit``; RBesT returns
  ``c(lower_or_equal_than = lower_crit, higher_than = upper_crit)``.

The sentinels are ordinary boundary values in this convention; :class:`Boundary1S` also
says ``never`` / ``always`` explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import special

from bayes_dress.design._numerics import beta_cdf, log_binom_pmf, logsumexp
from bayes_dress.design.decision import Rule
from bayes_dress.design.mixture import BetaMixture
from bayes_dress.design.tabulated import TabulatedDensity
from bayes_dress.errors import SpecError

Prior = BetaMixture | TabulatedDensity
#: Rows of outcomes processed at once for tabulated priors (bounds memory to ~ rows x nodes).
BLOCK = 64


def _check_n(n) -> int:
    try:
        n_i = int(n)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"sample size must be an integer, got {n!r}") from exc
    if n_i != n or n_i < 0:
        raise SpecError(f"sample size must be an integer >= 0, got {n!r}")
    return n_i


def _check_one_sample(rule: Rule) -> None:
    if not isinstance(rule, Rule):
        raise SpecError("a decision rule (Rule) is needed")
    if rule.two_sample:
        raise SpecError(f"rule {rule} is two-sample; a single-arm design needs a one-sample "
                        "rule 'P(theta ... q) > p'")


class PosteriorEvaluator:
    """P(condition | y) for a prior, a rule's conditions and any outcomes y of n patients.

    Beta mixtures are updated in closed form; tabulated priors are integrated with their
    quadrature cut at every threshold of the rule, so that indicator functions are
    integrated exactly (``TabulatedDensity.quadrature``).
    """

    def __init__(self, prior: Prior, rule: Rule) -> None:
        _check_one_sample(rule)
        self.prior = prior
        self.rule = rule
        self.thresholds = np.array([c.threshold for c in rule.conditions])
        self.probs = np.array([c.prob for c in rule.conditions])
        self.lower = np.array([c.lower_tail for c in rule.conditions])
        self._rules: dict[float, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        if not isinstance(prior, BetaMixture | TabulatedDensity):
            raise SpecError("prior must be a BetaMixture or a TabulatedDensity")

    def _quadrature(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Nodes, log weights and event masks of the tabulated prior, fine enough for n.

        The logit-scale piece width is at most 0.7 / sqrt(n) (halved from 0.1 until it
        is): at least ~3 pieces of 4 Gauss nodes per likelihood SD, whose logit-scale
        width is >= 2 / sqrt(n), which integrates the posterior to ~1e-8.
        """
        h = 0.1
        while h > 0.7 / np.sqrt(max(n, 1)) and h > 1e-3:
            h /= 2
        if h not in self._rules:
            theta, w = self.prior.quadrature(breaks=self.thresholds, h_max=h)
            with np.errstate(divide="ignore"):
                logw = np.log(w)
            masks = np.array([theta <= q if lo else theta > q for q, lo in
                              zip(self.thresholds, self.lower, strict=True)])
            self._rules[h] = (theta, logw, masks)
        return self._rules[h]

    def probabilities(self, n: int, y) -> np.ndarray:
        """Array (len(y), n_conditions): P(event of condition c | y responders of n)."""
        y = np.atleast_1d(np.asarray(y))
        if isinstance(self.prior, BetaMixture):
            mix = self.prior
            w = mix.posterior_weights(y, n)  # (Y, K)
            a = mix.a[None, :] + y[:, None]
            b = mix.b[None, :] + (n - y)[:, None]
            out = np.empty((y.size, self.thresholds.size))
            for c, (q, lo) in enumerate(zip(self.thresholds, self.lower, strict=True)):
                out[:, c] = np.sum(w * beta_cdf(a, b, q, lower_tail=bool(lo)), axis=1)
            return np.clip(out, 0.0, 1.0)
        theta, logw, masks = self._quadrature(n)
        log_t, log_1mt = np.log(theta), np.log1p(-theta)
        out = np.empty((y.size, self.thresholds.size))
        for start in range(0, y.size, BLOCK):
            yy = y[start:start + BLOCK].astype(float)[:, None]
            logp = logw[None, :] + yy * log_t[None, :] + (n - yy) * log_1mt[None, :]
            logp -= logp.max(axis=1, keepdims=True)
            p = np.exp(logp)
            p /= p.sum(axis=1, keepdims=True)
            out[start:start + BLOCK] = p @ masks.T
        return np.clip(out, 0.0, 1.0)

    def posterior_means(self, n: int, y) -> np.ndarray:
        """E(theta | y responders of n) for each y."""
        y = np.atleast_1d(np.asarray(y))
        if isinstance(self.prior, BetaMixture):
            mix = self.prior
            w = mix.posterior_weights(y, n)
            return np.sum(w * (mix.a[None, :] + y[:, None]) / (mix.a + mix.b + n)[None, :],
                          axis=1)
        theta, logw, _ = self._quadrature(n)
        log_t, log_1mt = np.log(theta), np.log1p(-theta)
        out = np.empty(y.size)
        for start in range(0, y.size, BLOCK):
            yy = y[start:start + BLOCK].astype(float)[:, None]
            logp = logw[None, :] + yy * log_t[None, :] + (n - yy) * log_1mt[None, :]
            logp -= logsumexp(logp, axis=1, keepdims=True)
            out[start:start + BLOCK] = np.exp(logp) @ theta
        return out

    def decisions(self, n: int, y) -> np.ndarray:
        """Boolean decision for each outcome in ``y``."""
        return np.all(self.probabilities(n, y) > self.probs[None, :], axis=1)

    def part_decisions(self, n: int, y, *, lower: bool) -> np.ndarray:
        """Decision of the lower-tail (or upper-tail) conditions alone (True if none)."""
        sel = self.lower == lower
        if not sel.any():
            return np.ones(np.atleast_1d(y).size, dtype=bool)
        probs = self.probabilities(n, y)
        return np.all(probs[:, sel] > self.probs[None, sel], axis=1)


@dataclass(frozen=True)
class Boundary1S:
    """Where a single-arm rule decides 1, for n patients.

    Attributes
    ----------
    n : int
    rule : Rule
    success : ndarray of bool
        The decision for y = 0..n.
    probabilities : ndarray
        (n + 1, n_conditions): P(condition's event | y) (empty when found by bisection).
    lower_crit : int or None
        For rules with lower-tail conditions: they hold iff y <= lower_crit (-1: never).
    upper_crit : int or None
        For rules with upper-tail conditions: they hold iff y > upper_crit (n: never).
    never, always : bool
        The decision is 0 (resp. 1) for every outcome.
    monotone : bool
        The decision of each tail's conditions is monotone in y (always expected; the
        OC is computed from ``success`` either way).
    """

    n: int
    rule: Rule
    success: np.ndarray
    probabilities: np.ndarray
    lower_crit: int | None
    upper_crit: int | None
    never: bool
    always: bool
    monotone: bool = True

    @property
    def y_success(self) -> tuple[int, int] | None:
        """Smallest and largest outcome with decision 1 (None if never)."""
        hits = np.flatnonzero(self.success)
        return None if hits.size == 0 else (int(hits[0]), int(hits[-1]))

    def rbest(self) -> int | dict[str, int]:
        """The value RBesT's ``decision1S_boundary`` returns (see the module notes)."""
        if self.rule.two_sided:
            return {"lower_or_equal_than": int(self.lower_crit),
                    "higher_than": int(self.upper_crit)}
        return int(self.lower_crit if self.rule.lower else self.upper_crit)

    def describe(self) -> str:
        """The boundary in words, e.g. 'success if 12 or more responders of 40'."""
        n = self.n
        if self.never:
            return f"the rule never decides success with {n} patients"
        if self.always:
            return f"the rule decides success whatever the outcome of {n} patients"
        lo, hi = self.y_success
        if lo == 0:
            return f"success if {hi} or fewer responders of {n}"
        if hi == n:
            return f"success if {lo} or more responders of {n}"
        return f"success if {lo} to {hi} responders of {n}"


def _crit(flags: np.ndarray, *, lower: bool) -> tuple[int, bool]:
    """Critical value of a tail's decision vector, and whether it is monotone."""
    n = flags.size - 1
    if lower:
        hits = np.flatnonzero(flags)
        crit = int(hits[-1]) if hits.size else -1
        monotone = bool(np.all(flags[: crit + 1])) if crit >= 0 else True
        return crit, monotone
    misses = np.flatnonzero(~flags)
    crit = int(misses[-1]) if misses.size else -1
    monotone = bool(not np.any(flags[: crit + 1])) if crit >= 0 else True
    return (crit if crit <= n else n), monotone


def _bisect_crit(ev: PosteriorEvaluator, n: int, *, lower: bool) -> int:
    """Critical value of one tail by integer bisection (RBesT's method), relying on the
    decision of that tail being monotone in y."""
    lo, hi = 0, n + 1  # first y where the tail's decision switches (upper: to 1; lower: to 0)
    while lo < hi:
        mid = (lo + hi) // 2
        holds = bool(ev.part_decisions(n, [mid], lower=lower)[0])
        if holds != lower:
            hi = mid
        else:
            lo = mid + 1
    return lo - 1


def boundary1s(prior: Prior, n: int, rule: Rule, *,
               evaluator: PosteriorEvaluator | None = None,
               method: str = "full") -> Boundary1S:
    """The decision for every outcome y = 0..n and the critical values.

    Parameters
    ----------
    prior : BetaMixture or TabulatedDensity
        Prior of the response rate.
    n : int
        Planned sample size.
    rule : Rule
        One-sample decision rule.
    method : {"full", "bisect"}
        ``"full"`` evaluates every outcome (and checks monotonicity); ``"bisect"``
        finds each tail's critical value by integer bisection as RBesT does (O(log n)
        posterior evaluations; ``probabilities`` is then empty), which the sample-size
        search uses for tabulated priors.
    """
    n = _check_n(n)
    ev = evaluator if evaluator is not None else PosteriorEvaluator(prior, rule)
    if method == "bisect":
        lower_crit = _bisect_crit(ev, n, lower=True) if rule.lower else None
        upper_crit = _bisect_crit(ev, n, lower=False) if rule.upper else None
        y = np.arange(n + 1)
        success = np.ones(n + 1, dtype=bool)
        if lower_crit is not None:
            success &= y <= lower_crit
        if upper_crit is not None:
            success &= y > upper_crit
        return Boundary1S(n, rule, success, np.empty((0, len(rule.conditions))), lower_crit,
                          upper_crit, bool(not success.any()), bool(success.all()), True)
    if method != "full":
        raise SpecError(f"unknown boundary method {method!r}: use 'full' or 'bisect'")
    y = np.arange(n + 1)
    probs = ev.probabilities(n, y)
    passed = probs > ev.probs[None, :]
    success = np.all(passed, axis=1)
    lower_crit = upper_crit = None
    monotone = True
    if rule.lower:
        lower_crit, ok = _crit(np.all(passed[:, ev.lower], axis=1), lower=True)
        monotone &= ok
    if rule.upper:
        upper_crit, ok = _crit(np.all(passed[:, ~ev.lower], axis=1), lower=False)
        monotone &= ok
    return Boundary1S(n, rule, success, probs, lower_crit, upper_crit,
                      bool(not success.any()), bool(success.all()), bool(monotone))


def success_probability(success: np.ndarray, theta) -> np.ndarray:
    """P(Y in the success set | theta) for Y ~ Binomial(n, theta), n = len(success) - 1.

    Exact: an interval of outcomes uses the binomial CDF (``scipy.special.bdtr``),
    anything else sums the binomial probabilities.
    """
    success = np.asarray(success, dtype=bool)
    n = success.size - 1
    theta = np.asarray(theta, dtype=float)
    if np.any((theta < 0) | (theta > 1)) or np.any(np.isnan(theta)):
        raise SpecError("true response rates must lie in [0, 1]")
    hits = np.flatnonzero(success)
    if hits.size == 0:
        return np.zeros(theta.shape)
    lo, hi = int(hits[0]), int(hits[-1])
    if hits.size == hi - lo + 1:
        if lo == 0 and hi == n:
            return np.ones(theta.shape)
        if lo == 0:
            return special.bdtr(hi, n, theta)
        if hi == n:
            return special.bdtrc(lo - 1, n, theta)
        # Subtract the smaller tails to keep precision: P = 1 - P(Y < lo) - P(Y > hi).
        return np.clip(1.0 - special.bdtr(lo - 1, n, theta) - special.bdtrc(hi, n, theta),
                       0.0, 1.0)
    y = np.arange(n + 1)
    logp = log_binom_pmf(y[None, :], n, theta.reshape(-1, 1))
    return (np.exp(logp) @ success.astype(float)).reshape(theta.shape)


def oc1s(prior: Prior, n: int, rule: Rule, theta, *,
         boundary: Boundary1S | None = None) -> np.ndarray:
    """Operating characteristic: P(decision 1 | true rate theta), exact.

    ``theta`` may be any array of true rates (e.g. 1,001 points); pass a precomputed
    ``boundary`` to evaluate several grids without recomputing it.
    """
    b = boundary if boundary is not None else boundary1s(prior, n, rule)
    return success_probability(b.success, theta)


def predictive_pmf(dist: Prior, n: int) -> np.ndarray:
    """Prior-predictive probabilities of y = 0..n responders under ``dist``."""
    if isinstance(dist, BetaMixture):
        return dist.preddist(n).pmf_all()
    if isinstance(dist, TabulatedDensity):
        return dist.predictive_pmf(n)
    raise SpecError("a design prior must be a BetaMixture or a TabulatedDensity")


def pos1s(prior: Prior, n: int, rule: Rule, design_prior: Prior, *,
          boundary: Boundary1S | None = None) -> float:
    """Probability of success: the decision's probability under the prior predictive
    of ``design_prior`` (RBesT's ``pos1S``: the integral of OC(theta) over it)."""
    b = boundary if boundary is not None else boundary1s(prior, n, rule)
    pmf = predictive_pmf(design_prior, b.n)
    return float(np.clip(np.dot(pmf, b.success), 0.0, 1.0))


@dataclass
class Design1S:
    """A planned single-arm trial: prior, sample size and rule, with its boundary cached.

    Examples
    --------
    >>> d = Design1S(BetaMixture.beta(1, 1), 40, parse_rule("P(theta > 0.3) > 0.95"))
    >>> d.boundary.describe(), d.oc([0.3, 0.5])
    """

    prior: Prior
    n: int
    rule: Rule
    _boundary: Boundary1S | None = field(default=None, init=False, repr=False)

    @property
    def boundary(self) -> Boundary1S:
        if self._boundary is None:
            self._boundary = boundary1s(self.prior, self.n, self.rule)
        return self._boundary

    def oc(self, theta) -> np.ndarray:
        return success_probability(self.boundary.success, theta)

    def pos(self, design_prior: Prior) -> float:
        return pos1s(self.prior, self.n, self.rule, design_prior, boundary=self.boundary)
