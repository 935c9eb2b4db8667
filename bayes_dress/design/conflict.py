"""Prior-data conflict table of a planned single-arm trial: for every possible outcome,
what the rule decides, how sure the posterior is, how much the robust component takes
over, and how surprising the outcome would be under the prior.

Prior-predictive p-value (two-sided). With pi(y) the prior-predictive probability of y
responders out of n (beta-binomial mixture, or the exact MAP's predictive), the p-value
of an outcome y is the predictive probability of all outcomes at most as likely as y:

    p(y) = sum over y' with pi(y') <= pi(y) (1 + 1e-7) of pi(y'),

the "minimum-likelihood" two-sided p-value (as R's ``binom.test``, with its relative
tolerance 1e-7 for ties). Small p(y) means y would be in conflict with the prior. The
one-sided tail probabilities P(Y <= y) and P(Y >= y) are given too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bayes_dress.design.decision import Rule
from bayes_dress.design.mixture import ROBUST, BetaMixture
from bayes_dress.design.oc import (
    PosteriorEvaluator,
    Prior,
    _check_n,
    predictive_pmf,
)

#: Relative tolerance for "as likely" in the two-sided p-value (R's binom.test).
TIE_TOLERANCE = 1e-7


def predictive_p_values(pmf: np.ndarray) -> np.ndarray:
    """Two-sided prior-predictive p-value of every outcome (see the module notes)."""
    pmf = np.asarray(pmf, dtype=float)
    order = np.sort(pmf)
    cum = np.cumsum(order)
    idx = np.searchsorted(order, pmf * (1 + TIE_TOLERANCE), side="right") - 1
    return np.clip(cum[idx], 0.0, 1.0)


@dataclass(frozen=True)
class ConflictTable:
    """One row per outcome y = 0..n of the planned trial.

    Attributes
    ----------
    decision : ndarray of bool
    probabilities : ndarray
        (n + 1, n_conditions): posterior probability of each condition's event.
    posterior_mean : ndarray
    robust_weight : ndarray or None
        Posterior weight of the component named ``robust`` (None if the prior has none).
    prior_robust_weight : float or None
    predictive : ndarray
        Prior-predictive probability of y.
    p_value : ndarray
        Two-sided prior-predictive p-value of y.
    p_lower, p_upper : ndarray
        P(Y <= y) and P(Y >= y) under the prior predictive.
    """

    n: int
    rule: Rule
    y: np.ndarray
    decision: np.ndarray
    probabilities: np.ndarray
    posterior_mean: np.ndarray
    robust_weight: np.ndarray | None
    prior_robust_weight: float | None
    predictive: np.ndarray
    p_value: np.ndarray
    p_lower: np.ndarray
    p_upper: np.ndarray

    def rows(self) -> list[dict]:
        """The table as a list of plain dicts (for CSV or a report)."""
        out = []
        for i, y in enumerate(self.y):
            row = {"y": int(y), "decision": bool(self.decision[i]),
                   "posterior_mean": float(self.posterior_mean[i])}
            for c, cond in enumerate(self.rule.conditions):
                row[cond.text(self.rule.variable)] = float(self.probabilities[i, c])
            if self.robust_weight is not None:
                row["robust_weight"] = float(self.robust_weight[i])
            row.update(predictive=float(self.predictive[i]), p_value=float(self.p_value[i]),
                       p_lower=float(self.p_lower[i]), p_upper=float(self.p_upper[i]))
            out.append(row)
        return out


def conflict_table(prior: Prior, n: int, rule: Rule, *, robust: str = ROBUST) -> ConflictTable:
    """Decision, posterior probabilities, robust weight and predictive p-value for every
    outcome y = 0..n of a single-arm trial of ``n`` patients under ``prior``.

    Parameters
    ----------
    prior : BetaMixture or TabulatedDensity
    n : int
    rule : Rule
        One-sample rule.
    robust : str
        Name of the robust component (RBesT's ``robustify`` calls it ``"robust"``).
    """
    n = _check_n(n)
    ev = PosteriorEvaluator(prior, rule)
    y = np.arange(n + 1)
    probs = ev.probabilities(n, y)
    decision = np.all(probs > ev.probs[None, :], axis=1)
    means = ev.posterior_means(n, y)
    rob = prior_rob = None
    if isinstance(prior, BetaMixture) and robust in prior.names:
        idx = [i for i, name in enumerate(prior.names) if name == robust]
        rob = prior.posterior_weights(y, n)[:, idx].sum(axis=1)
        prior_rob = float(prior.weights[idx].sum())
    pmf = predictive_pmf(prior, n)
    p_lower = np.clip(np.cumsum(pmf), 0.0, 1.0)
    p_upper = np.clip(np.cumsum(pmf[::-1])[::-1], 0.0, 1.0)
    return ConflictTable(n, rule, y, decision, probs, means, rob, prior_rob, pmf,
                         predictive_p_values(pmf), p_lower, p_upper)
