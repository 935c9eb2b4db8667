"""The robust-weight map: how the ESS and the operating characteristics of a robustified
MAP prior change with the weight of its robust component (RBesT's introduction vignette
plots the ESS part of it).

For each weight w, the prior is ``robustify(map, w, mean=mean, n=n_robust)``: the MAP
mixture scaled by 1 - w plus a Beta(mean (n_robust + 1), (1 - mean)(n_robust + 1)) of
weight w. At w = 1 the prior is the robust component alone; its ELIR is that of a single
Beta (0 for the default Beta(1, 1), see :mod:`bayes_dress.design.ess`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bayes_dress.design.decision import Rule
from bayes_dress.design.ess import ess_elir, ess_moment
from bayes_dress.design.mixture import BetaMixture, robustify
from bayes_dress.design.oc import boundary1s, success_probability
from bayes_dress.errors import SpecError

#: Default weights: 0, 0.05, ..., 1.
DEFAULT_WEIGHTS: tuple[float, ...] = tuple(round(0.05 * i, 10) for i in range(21))


@dataclass(frozen=True)
class WeightMap:
    """ESS and OCs over robust weights.

    Attributes
    ----------
    weights : ndarray
    ess_elir, ess_moment : ndarray
        ESS (patients) of each robustified prior (ELIR NaN where undefined).
    type1, power : ndarray or None
        P(decision 1 | theta0) and P(decision 1 | theta1) for the trial (None without a
        rule).
    critical : list
        Each weight's boundary in RBesT's convention (empty without a rule).
    warnings : list of list of str
        ESS warnings per weight.
    """

    weights: np.ndarray
    ess_elir: np.ndarray
    ess_moment: np.ndarray
    type1: np.ndarray | None
    power: np.ndarray | None
    critical: list
    warnings: list
    n: int | None
    rule: Rule | None
    theta0: float | None
    theta1: float | None

    def rows(self) -> list[dict]:
        out = []
        for i, w in enumerate(self.weights):
            row = {"weight": float(w), "ess_elir": float(self.ess_elir[i]),
                   "ess_moment": float(self.ess_moment[i])}
            if self.type1 is not None:
                row.update(type1=float(self.type1[i]), power=float(self.power[i]),
                           critical=self.critical[i])
            out.append(row)
        return out


def weight_map(prior: BetaMixture, *, weights=DEFAULT_WEIGHTS, mean: float = 0.5,
               n_robust: float = 1.0, n: int | None = None, rule: Rule | None = None,
               theta0: float | None = None, theta1: float | None = None) -> WeightMap:
    """ESS (ELIR and moment) and, given a trial, type I error and power per robust weight.

    Parameters
    ----------
    prior : BetaMixture
        The (non-robust) MAP mixture.
    weights : sequence of float
        Robust weights in [0, 1].
    mean, n_robust : float
        The robust component (``robustify``'s ``mean`` and ``n``).
    n, rule, theta0, theta1
        The single-arm trial and the rates at which type I error and power are read
        (all four or none).
    """
    if not isinstance(prior, BetaMixture):
        raise SpecError("the weight map needs a Beta mixture MAP prior")
    trial = (n, rule, theta0, theta1)
    if any(v is not None for v in trial) and any(v is None for v in trial):
        raise SpecError("give n, rule, theta0 and theta1 together (or none)")
    w = np.asarray(weights, dtype=float).ravel()
    elir = np.empty(w.size)
    moment = np.empty(w.size)
    t1 = np.empty(w.size) if rule is not None else None
    pw = np.empty(w.size) if rule is not None else None
    crit: list = []
    warns: list = []
    for i, wi in enumerate(w):
        p = robustify(prior, float(wi), mean=mean, n=n_robust)
        e = ess_elir(p)
        elir[i] = e.value
        moment[i] = ess_moment(p).value
        warns.append(list(e.warnings))
        if rule is not None:
            b = boundary1s(p, n, rule)
            t1[i], pw[i] = success_probability(b.success, [theta0, theta1])
            crit.append(b.rbest())
    return WeightMap(w, elir, moment, t1, pw, crit, warns, n, rule,
                     None if theta0 is None else float(theta0),
                     None if theta1 is None else float(theta1))
