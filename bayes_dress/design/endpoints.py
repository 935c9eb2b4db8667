"""A single-arm design with two endpoints: an efficacy rule on the response rate AND a
bound on the severe-adverse-event (SAE) rate, each with its own prior.

The trial is a success when both rules decide 1 on the same n patients. The two counts
are assumed **independent given the two rates** (and the two priors independent), so
each posterior uses only its own count and

    P(success | theta_eff, theta_sae) = OC_eff(theta_eff) * OC_sae(theta_sae),

exactly, by binomial enumeration for each endpoint. A positive dependence between
response and SAEs in the same patients would change the joint OC; it is not modelled.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bayes_dress.design.decision import Rule
from bayes_dress.design.oc import (
    Boundary1S,
    Prior,
    _check_n,
    boundary1s,
    pos1s,
    success_probability,
)


@dataclass
class TwoEndpointDesign:
    """Efficacy rule on the response rate and a safety rule on the SAE rate.

    Parameters
    ----------
    n : int
        Patients in the trial (both endpoints are observed on all of them).
    efficacy_prior, efficacy_rule
        Prior of the response rate and the efficacy rule, e.g.
        ``parse_rule("P(theta > 0.3) > 0.9")``.
    safety_prior, safety_rule
        Prior of the SAE rate and the safety rule, e.g.
        ``parse_rule("P(theta > 0.2) < 0.1")`` (the SAE rate is probably below 20 %).
    """

    n: int
    efficacy_prior: Prior
    efficacy_rule: Rule
    safety_prior: Prior
    safety_rule: Rule
    _bounds: tuple[Boundary1S, Boundary1S] | None = field(default=None, init=False,
                                                           repr=False)

    def __post_init__(self) -> None:
        self.n = _check_n(self.n)

    @property
    def boundaries(self) -> tuple[Boundary1S, Boundary1S]:
        """(efficacy boundary, safety boundary)."""
        if self._bounds is None:
            self._bounds = (boundary1s(self.efficacy_prior, self.n, self.efficacy_rule),
                            boundary1s(self.safety_prior, self.n, self.safety_rule))
        return self._bounds

    def oc_efficacy(self, theta_eff) -> np.ndarray:
        return success_probability(self.boundaries[0].success, theta_eff)

    def oc_safety(self, theta_sae) -> np.ndarray:
        return success_probability(self.boundaries[1].success, theta_sae)

    def oc(self, theta_eff, theta_sae) -> np.ndarray:
        """P(both rules decide 1) on the grid ``theta_eff`` x ``theta_sae``.

        Returns an array of shape ``(len(theta_eff), len(theta_sae))``.
        """
        e = np.atleast_1d(self.oc_efficacy(np.asarray(theta_eff, dtype=float)))
        s = np.atleast_1d(self.oc_safety(np.asarray(theta_sae, dtype=float)))
        return np.outer(e, s)

    def pos(self, design_efficacy: Prior, design_safety: Prior) -> float:
        """Probability of success under independent design priors of the two rates."""
        pe = pos1s(self.efficacy_prior, self.n, self.efficacy_rule, design_efficacy,
                   boundary=self.boundaries[0])
        ps = pos1s(self.safety_prior, self.n, self.safety_rule, design_safety,
                   boundary=self.boundaries[1])
        return pe * ps
