"""Decision rules as data, with RBesT's semantics (R/decision1S.R, R/decision2S.R).

A :class:`Condition` ``(prob, threshold, lower_tail)`` holds for a posterior when

* ``lower_tail=True``:  P(theta <= threshold) > prob,
* ``lower_tail=False``: P(theta > threshold) > prob,

with a strict ">" (RBesT's Heaviside with H(0) = 0). A :class:`Rule` decides 1
("success", "go") when **all** its conditions hold. A two-sample rule applies its
conditions to g(theta1) - g(theta2), g the link (``identity``: risk difference, ``logit``:
log odds ratio, ``log``: log risk ratio). Conditions of both tails in one rule give a
two-sided ("intermediate zone") rule, as RBesT 1.9-0 allows.

Text form (:func:`parse_rule`), one or more conditions joined by ``and`` (or ``&``)::

    P(theta > 0.3) > 0.95
    P(theta <= 0.2) > 0.9 and P(theta > 0.05) > 0.5
    P(theta > 0.2) < 0.1                 # same as P(theta <= 0.2) > 0.9
    P(theta1 - theta2 > 0) > 0.975
    P(logit(theta1) - logit(theta2) > 0) > 0.95
    P(log(theta1) - log(theta2) > 0.1) > 0.9

Inside P(.), ``<`` reads as ``<=`` and ``>=`` as ``>`` (the same probability for a
continuous posterior). The outer comparison must be strict: ``> p`` as RBesT, or ``< p``,
read as the complementary condition ``P(other tail) > 1 - p`` (strictness is preserved:
P(A) < p exactly when P(not A) > 1 - p).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import special

from bayes_dress.design._numerics import beta_cdf, beta_logit_rule
from bayes_dress.design.mixture import BetaMixture
from bayes_dress.design.tabulated import TabulatedDensity
from bayes_dress.errors import SpecError

Link = Literal["identity", "logit", "log"]
LINKS: tuple[str, ...] = ("identity", "logit", "log")
#: Quadrature nodes per component of the second arm for difference probabilities, and
#: where g^-1(q + g(theta2)) leaves (0, 1) inside the range (identity link with q != 0,
#: log link with q > 0: the integrand has a kink there and the rule needs more nodes for
#: ~1e-9 accuracy).
DIFF_NODES = 129
DIFF_NODES_KINK = 257


@dataclass(frozen=True)
class Condition:
    """One condition ``P(theta <= threshold) > prob`` (``lower_tail``) or
    ``P(theta > threshold) > prob``."""

    prob: float
    threshold: float
    lower_tail: bool

    def __post_init__(self) -> None:
        try:
            prob = float(self.prob)
            threshold = float(self.threshold)
        except (TypeError, ValueError) as exc:
            raise SpecError(f"condition needs numbers, got prob={self.prob!r}, "
                            f"threshold={self.threshold!r}") from exc
        if not 0.0 <= prob <= 1.0 or math.isnan(prob):
            raise SpecError(f"condition probability must lie in [0, 1], got {self.prob!r}")
        if not math.isfinite(threshold):
            raise SpecError(f"condition threshold must be finite, got {self.threshold!r}")
        object.__setattr__(self, "prob", prob)
        object.__setattr__(self, "threshold", threshold)
        object.__setattr__(self, "lower_tail", bool(self.lower_tail))

    def text(self, variable: str = "theta") -> str:
        """``P(theta <= q) > p`` with numbers written to round-trip exactly."""
        op = "<=" if self.lower_tail else ">"
        return f"P({variable} {op} {_num(self.threshold)}) > {_num(self.prob)}"

    def __str__(self) -> str:
        return self.text()


@dataclass(frozen=True)
class Rule:
    """A decision rule: success when all ``conditions`` hold.

    Parameters
    ----------
    conditions : tuple of Condition
        At least one.
    two_sample : bool
        Conditions on g(theta1) - g(theta2) instead of theta.
    link : {"identity", "logit", "log"}
        The link g of a two-sample rule.
    """

    conditions: tuple[Condition, ...]
    two_sample: bool = field(default=False, kw_only=True)
    link: Link = field(default="identity", kw_only=True)

    def __post_init__(self) -> None:
        conds = tuple(self.conditions) if not isinstance(self.conditions, Condition) else (
            self.conditions,)
        if not conds:
            raise SpecError("a decision rule needs at least one condition")
        if not all(isinstance(c, Condition) for c in conds):
            raise SpecError("a decision rule's conditions must be Condition objects")
        if self.link not in LINKS:
            raise SpecError(f"unknown link {self.link!r}: use 'identity', 'logit' or 'log'")
        if not self.two_sample and self.link != "identity":
            raise SpecError("a link applies to two-sample rules only")
        if not self.two_sample:
            for c in conds:
                if not 0.0 <= c.threshold <= 1.0:
                    raise SpecError(f"one-sample threshold {c.threshold:g} lies outside "
                                    "[0, 1]: it is a response rate")
        object.__setattr__(self, "conditions", conds)

    @classmethod
    def one_sample(cls, prob, threshold, *, lower_tail) -> Rule:
        """RBesT's ``decision1S(pc, qc, lower.tail)``: vectors give several conditions."""
        return cls(_conditions(prob, threshold, lower_tail))

    @classmethod
    def two_sample_rule(cls, prob, threshold, *, lower_tail, link: Link = "identity") -> Rule:
        """RBesT's ``decision2S(pc, qc, lower.tail, link)``."""
        return cls(_conditions(prob, threshold, lower_tail), two_sample=True, link=link)

    # ------------------------------------------------------------------ structure
    @property
    def lower(self) -> tuple[Condition, ...]:
        """Lower-tail conditions (P(. <= q) > p)."""
        return tuple(c for c in self.conditions if c.lower_tail)

    @property
    def upper(self) -> tuple[Condition, ...]:
        """Upper-tail conditions (P(. > q) > p)."""
        return tuple(c for c in self.conditions if not c.lower_tail)

    @property
    def two_sided(self) -> bool:
        """Both tails present (an interval of outcomes decides 1)."""
        return bool(self.lower) and bool(self.upper)

    @property
    def variable(self) -> str:
        if not self.two_sample:
            return "theta"
        if self.link == "identity":
            return "theta1 - theta2"
        return f"{self.link}(theta1) - {self.link}(theta2)"

    def text(self) -> str:
        """The rule in the text form :func:`parse_rule` reads."""
        return " and ".join(c.text(self.variable) for c in self.conditions)

    def __str__(self) -> str:
        return self.text()

    # ------------------------------------------------------------------ evaluation
    def probabilities(self, posterior: BetaMixture | TabulatedDensity,
                      posterior2: BetaMixture | None = None) -> np.ndarray:
        """P(condition's event) for each condition, in order.

        One-sample: ``posterior`` of theta. Two-sample: posteriors of theta1 and theta2.
        """
        if self.two_sample:
            if not (isinstance(posterior, BetaMixture) and isinstance(posterior2, BetaMixture)):
                raise SpecError("a two-sample rule needs two Beta mixture posteriors")
            return np.array([prob_difference(posterior, posterior2, c.threshold,
                                             link=self.link, lower_tail=c.lower_tail)
                             for c in self.conditions])
        if posterior2 is not None:
            raise SpecError("a one-sample rule takes one posterior")
        return np.array([float(posterior.cdf(c.threshold)) if c.lower_tail
                         else float(posterior.sf(c.threshold)) for c in self.conditions])

    def margins(self, posterior, posterior2=None) -> np.ndarray:
        """RBesT's ``decision(post, dist = TRUE)``: log P - log prob per condition."""
        with np.errstate(divide="ignore"):
            return np.log(self.probabilities(posterior, posterior2)) - np.log(
                [c.prob for c in self.conditions])

    def decide(self, posterior, posterior2=None) -> bool:
        """True (RBesT's 1) when every condition holds strictly."""
        probs = self.probabilities(posterior, posterior2)
        return bool(np.all(probs > np.array([c.prob for c in self.conditions])))


def _num(x: float) -> str:
    """Shortest text that reads back as the same float (``0.95``, ``1e-06``)."""
    text = repr(float(x))
    return text[:-2] if text.endswith(".0") else text


def _conditions(prob, threshold, lower_tail) -> tuple[Condition, ...]:
    p = np.atleast_1d(np.asarray(prob, dtype=float))
    q = np.atleast_1d(np.asarray(threshold, dtype=float))
    lt = np.atleast_1d(np.asarray(lower_tail, dtype=bool))
    if q.size != p.size:
        raise SpecError(f"{p.size} probabilities but {q.size} thresholds")
    if lt.size == 1:
        lt = np.repeat(lt, p.size)
    if lt.size != p.size:
        raise SpecError(f"lower_tail needs 1 or {p.size} values, got {lt.size}")
    return tuple(Condition(float(a), float(b), bool(c)) for a, b, c in zip(p, q, lt,
                                                                          strict=True))


# ---------------------------------------------------------------------------- parsing
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_VARIABLE = (r"(?P<var>theta|θ|theta1\s*-\s*theta2|θ1\s*-\s*θ2|"
             r"(?P<fn>logit|log)\s*\(\s*(?:theta1|θ1)\s*\)\s*-\s*(?P=fn)\s*\(\s*(?:theta2|θ2)"
             r"\s*\))")
_CONDITION = re.compile(
    r"^\s*P\s*\(\s*" + _VARIABLE + r"\s*(?P<inner><=|>=|<|>)\s*(?P<q>" + _NUMBER
    + r")\s*\)\s*(?P<outer><=|>=|<|>|=)\s*(?P<p>" + _NUMBER + r")\s*$", re.IGNORECASE)
_SPLIT = re.compile(r"\s+and\s+|\s*&&?\s*", re.IGNORECASE)


def parse_rule(text: str) -> Rule:
    """Read a rule from its text form (see the module docstring); never evaluates code.

    Raises
    ------
    SpecError
        One line naming the part that cannot be read.
    """
    if not isinstance(text, str) or not text.strip():
        raise SpecError("decision rule is empty: write e.g. 'P(theta > 0.3) > 0.95'")
    parts = [p for p in _SPLIT.split(text.strip()) if p.strip()]
    conditions: list[Condition] = []
    kinds: set[tuple[bool, str]] = set()
    for part in parts:
        m = _CONDITION.match(part)
        if m is None:
            raise SpecError(f"cannot read decision condition {part.strip()!r}: write "
                            "'P(theta > q) > p' or 'P(theta1 - theta2 > q) > p'")
        var = re.sub(r"\s+", "", m.group("var").lower()).replace("θ", "theta")
        fn = (m.group("fn") or "").lower()
        two = var != "theta"
        link = fn if fn else "identity"
        kinds.add((two, link))
        outer = m.group("outer")
        if outer not in (">", "<"):
            raise SpecError(f"decision condition {part.strip()!r}: the comparison with the "
                            f"probability must be strict ('>' or '<'), not {outer!r}")
        prob = float(m.group("p"))
        q = float(m.group("q"))
        if not 0.0 <= prob <= 1.0:
            raise SpecError(f"decision condition {part.strip()!r}: probability {prob:g} "
                            "is outside [0, 1]")
        lower = m.group("inner").startswith("<")
        if outer == "<":
            lower, prob = not lower, 1.0 - prob
        conditions.append(Condition(prob, q, lower))
    if len(kinds) > 1:
        raise SpecError(f"decision rule {text.strip()!r} mixes one-sample and two-sample "
                        "conditions or links")
    two, link = kinds.pop()
    return Rule(tuple(conditions), two_sample=two, link=link)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- differences
def _inverse_shift(theta2: np.ndarray, q: np.ndarray, link: str) -> np.ndarray:
    """theta1 at which g(theta1) - g(theta2) = q."""
    if link == "identity":
        return theta2 + q
    if link == "logit":
        return special.expit(q + special.logit(theta2))
    return theta2 * np.exp(q)


def difference_cdf(w1, a1, b1, w2, a2, b2, q, *, link: str = "identity",
                   lower_tail: bool = True, nodes: int | None = None) -> np.ndarray:
    """P(g(theta1) - g(theta2) <= q) (or > q) for batches of Beta-mixture pairs.

    theta1 ~ sum_j w1_j Beta(a1_j, b1_j) and theta2 ~ sum_k w2_k Beta(a2_k, b2_k),
    independent. The probability is E_theta2[F1(g^-1(q + g(theta2)))] (F1 the CDF, or the
    survival function for the upper tail, taken directly for accuracy), integrated per
    component of theta2 on the logit scale (``_numerics.beta_logit_rule``).

    Parameters
    ----------
    w1, a1, b1 : array_like, shape (..., K1)
    w2, a2, b2 : array_like, shape (..., K2)
        Batch shapes ``...`` must broadcast.
    q : float or array_like broadcasting with the batch shape

    Returns
    -------
    ndarray
        Shape of the broadcast batch.
    """
    w1, a1, b1 = (np.asarray(v, dtype=float) for v in (w1, a1, b1))
    w2, a2, b2 = (np.asarray(v, dtype=float) for v in (w2, a2, b2))
    if nodes is None:
        qa = np.asarray(q, dtype=float)
        kink = bool(np.any(qa != 0)) if link == "identity" else (
            bool(np.any(qa > 0)) if link == "log" else False)
        nodes = DIFF_NODES_KINK if kink else DIFF_NODES
    eta, wq = beta_logit_rule(a2, b2, nodes=nodes)  # (..., K2, m)
    theta2 = special.expit(eta)
    q = np.asarray(q, dtype=float)[..., None, None]
    x = _inverse_shift(theta2, q, link)  # (..., K2, m)
    # F1 at x: sum over components of theta1 -> (..., K2, m)
    f1 = beta_cdf(a1[..., None, None, :], b1[..., None, None, :], x[..., None],
                  lower_tail=lower_tail)
    f1 = np.sum(w1[..., None, None, :] * f1, axis=-1)
    per_comp = np.sum(wq * f1, axis=-1)  # (..., K2)
    return np.clip(np.sum(w2 * per_comp, axis=-1), 0.0, 1.0)


def prob_difference(mix1: BetaMixture, mix2: BetaMixture, q: float, *,
                    link: Link = "identity", lower_tail: bool = True) -> float:
    """P(g(theta1) - g(theta2) <= q) (``lower_tail``) or > q: RBesT's ``pmixdiff``
    (identity link) generalised to the logit and log links of ``decision2S``."""
    if link not in LINKS:
        raise SpecError(f"unknown link {link!r}: use 'identity', 'logit' or 'log'")
    return float(difference_cdf(mix1.weights, mix1.a, mix1.b, mix2.weights, mix2.a, mix2.b,
                                q, link=link, lower_tail=lower_tail))
