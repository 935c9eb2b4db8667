"""Sample-size search for a single-arm trial: the smallest n whose exact operating
characteristics meet a stated type I error at theta0 and power at theta1.

Binomial OCs saw-tooth in n (the critical count moves in integer steps), so a sample
size that meets both targets can be followed by larger ones that do not. The result
therefore reports, besides the smallest n that meets them, whether every larger n up to
the stated maximum meets them too, and the smallest n from which on all do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bayes_dress.design.decision import Rule
from bayes_dress.design.mixture import BetaMixture
from bayes_dress.design.oc import (
    PosteriorEvaluator,
    Prior,
    _check_n,
    boundary1s,
    success_probability,
)
from bayes_dress.errors import SpecError


@dataclass(frozen=True)
class SampleSizeResult:
    """OCs for every n in ``n_min..n_max`` and the sample sizes that meet the targets.

    Attributes
    ----------
    n : ndarray
        The sample sizes searched.
    type1, power : ndarray
        P(decision 1 | theta0) and P(decision 1 | theta1) for each n.
    meets : ndarray of bool
        ``type1 <= alpha`` and ``power >= target_power``.
    smallest : int or None
        Smallest n that meets both (None if none up to ``n_max``).
    all_larger_meet : bool
        Every n from ``smallest`` to ``n_max`` meets both.
    stable_from : int or None
        Smallest n0 such that every n in n0..n_max meets both (None if ``n_max`` does not).
    critical : list
        The boundary of each n in RBesT's convention (``Boundary1S.rbest()``).
    """

    n: np.ndarray
    type1: np.ndarray
    power: np.ndarray
    meets: np.ndarray
    smallest: int | None
    all_larger_meet: bool
    stable_from: int | None
    critical: list
    theta0: float
    theta1: float
    alpha: float
    target_power: float

    def describe(self) -> str:
        n_max = int(self.n[-1])
        if self.smallest is None:
            return (f"no sample size up to {n_max} has type I error <= {self.alpha:g} at "
                    f"{self.theta0:g} and power >= {self.target_power:g} at {self.theta1:g}")
        text = f"smallest n meeting both: {self.smallest}"
        if self.all_larger_meet:
            return text + f" (and every n up to {n_max} meets them)"
        if self.stable_from is None:
            return text + f"; not every larger n does, and n = {n_max} does not"
        if self.stable_from == n_max:
            return text + (f"; not every larger n does; of the larger ones only n = {n_max}, "
                           "the end of the search, does")
        return text + f"; not every larger n does; all n from {self.stable_from} to {n_max} do"


def sample_size(prior: Prior, rule: Rule, *, theta0: float, theta1: float, alpha: float,
                power: float, n_min: int = 1, n_max: int = 200) -> SampleSizeResult:
    """Search n = n_min..n_max exhaustively (exact OCs for each n).

    Parameters
    ----------
    prior : BetaMixture or TabulatedDensity
    rule : Rule
        One-sample rule.
    theta0 : float
        Rate at which the type I error is controlled (decision 1 is an error there).
    theta1 : float
        Rate at which the power is wanted.
    alpha : float
        Largest allowed type I error.
    power : float
        Smallest wanted power.
    n_min, n_max : int
        Range searched.
    """
    n_min, n_max = _check_n(n_min), _check_n(n_max)
    if n_max < n_min:
        raise SpecError(f"n_max ({n_max}) is below n_min ({n_min})")
    for name, v in (("theta0", theta0), ("theta1", theta1), ("alpha", alpha),
                    ("power", power)):
        if not 0.0 <= float(v) <= 1.0:
            raise SpecError(f"{name} must lie in [0, 1], got {v}")
    ev = PosteriorEvaluator(prior, rule)
    method = "full" if isinstance(prior, BetaMixture) else "bisect"
    ns = np.arange(n_min, n_max + 1)
    t1 = np.empty(ns.size)
    pw = np.empty(ns.size)
    crit = []
    for i, n in enumerate(ns):
        b = boundary1s(prior, int(n), rule, evaluator=ev, method=method)
        t1[i], pw[i] = success_probability(b.success, [theta0, theta1])
        crit.append(b.rbest())
    meets = (t1 <= alpha) & (pw >= power)
    hits = np.flatnonzero(meets)
    smallest = int(ns[hits[0]]) if hits.size else None
    all_larger = bool(hits.size and meets[hits[0]:].all())
    stable = None
    if meets[-1]:
        fails = np.flatnonzero(~meets)
        stable = int(ns[fails[-1] + 1]) if fails.size else int(ns[0])
    return SampleSizeResult(ns, t1, pw, meets, smallest, all_larger, stable, crit,
                            float(theta0), float(theta1), float(alpha), float(power))
