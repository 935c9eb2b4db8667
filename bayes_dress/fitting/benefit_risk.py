"""Benefit and risk together: joint probabilities and net clinical benefit of a run.

For a benefit outcome (success) and a harm outcome (severe adverse events), at two
levels, a new study's rates (``theta_new``) and the population mean rates
(``mean_rate``):

* the joint probability P(benefit > a and harm < b), beside the product of the two
  marginal probabilities, which is what independence of benefit and harm would say;
* the weighted net clinical benefit NCB_w = p_benefit - w p_harm and P(NCB_w > 0) over a
  range of harm weights w (the benefit-risk acceptability curve), beside the same under
  independence.

Where one analysis models both outcomes with correlated study effects (the joint
model) the joint numbers come from its joint draws, with Monte Carlo errors; otherwise
(separate fits, or the joint model with rho fixed at 0) the two outcomes are independent
and the joint numbers are the independence ones. Under independence both are computed
from the two marginal posteriors without pairing noise: P(X - w Y > 0) = E[F_Y(X / w)].
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bayes_dress.spec.config import BenefitRiskSpec

LEVELS = (("theta_new", "new study"), ("mean_rate", "population mean"))
COLUMNS = ["analysis", "level", "quantity", "kind", "event", "benefit_threshold",
           "risk_threshold", "weight", "probability", "mcse", "independent",
           "correlation_modelled"]


def _indicator_estimate(indicator: np.ndarray) -> tuple[float, float]:
    """Mean of a 0/1 array of (chain, draw) with its Monte Carlo error (ESS of the
    indicator, as for every tail probability)."""
    from bayes_dress.posterior import mcmc_stats

    p = float(indicator.mean())
    if p in (0.0, 1.0):
        return p, 0.0
    ess = float(mcmc_stats.ess_mean(indicator[..., None].astype(float))[0])
    return p, float(np.sqrt(p * (1 - p) / ess))


def _independent_ncb(x_posterior, x_key, y_posterior, y_key, weight: float) -> float:
    """P(X - w Y > 0) for independent X and Y: E[F_Y(X / w)], X over its posterior."""
    if weight == 0:
        return float(x_posterior.prob_above([x_key], [0.0])[0][0])
    return float(x_posterior.expectation(
        x_key, lambda xs: np.asarray(y_posterior.cdf(y_key, xs / weight))))


def benefit_risk_table(fits: Sequence, spec: BenefitRiskSpec) -> pd.DataFrame:
    """The benefit-risk table of a run's analysis fits (empty when the run lacks one of
    the two outcomes)."""
    by_outcome = {o: f for f in fits for o in f.outcomes}
    if spec.benefit not in by_outcome or spec.risk not in by_outcome:
        return pd.DataFrame(columns=COLUMNS)
    a_fit, b_fit = by_outcome[spec.benefit], by_outcome[spec.risk]
    joint = a_fit is b_fit and a_fit.posterior.joint_draws is not None
    correlated = joint and _correlation_modelled(a_fit)
    analysis = a_fit.name if a_fit is b_fit else f"{a_fit.name}, {b_fit.name}"
    rows = []
    for quantity, level in LEVELS:
        x_key, y_key = (quantity, spec.benefit, ""), (quantity, spec.risk, "")
        px, py = a_fit.posterior, b_fit.posterior
        if not (px.has(x_key) and py.has(y_key)):
            continue
        p_benefit = float(px.prob_above([x_key], [spec.benefit_threshold])[0][0])
        p_safe = 1.0 - float(py.prob_above([y_key], [spec.risk_threshold])[0][0])
        independent = p_benefit * p_safe
        base = {"analysis": analysis, "level": level, "quantity": quantity,
                "benefit_threshold": spec.benefit_threshold,
                "risk_threshold": spec.risk_threshold, "correlation_modelled": correlated}
        if joint:
            x, y = px.draws(x_key), px.draws(y_key)
            p, mcse = _indicator_estimate((x > spec.benefit_threshold)
                                          & (y < spec.risk_threshold))
        else:
            p, mcse = independent, 0.0
        rows.append({**base, "kind": "joint", "event": spec.event(), "weight": np.nan,
                     "probability": p, "mcse": mcse, "independent": independent})
        for weight in spec.weights:
            free = _independent_ncb(px, x_key, py, y_key, weight)
            if joint:
                p, mcse = _indicator_estimate(x - weight * y > 0)
            else:
                p, mcse = free, 0.0
            rows.append({**base, "kind": "net_benefit",
                         "event": f"{spec.benefit} - {weight:g} x {spec.risk} > 0",
                         "weight": weight, "probability": p, "mcse": mcse,
                         "independent": free})
    return pd.DataFrame(rows, columns=COLUMNS)


def _correlation_modelled(fit) -> bool:
    """Whether a joint fit's correlation is free (not fixed at a value)."""
    prior = fit.analysis.priors.get("rho") if hasattr(fit, "analysis") else None
    return prior is not None and prior.fixed_value is None


def rho_identification(fit) -> dict | None:
    """How much the data say about rho: posterior and prior SD and their ratio, and the
    posterior's sign probability; None for a fit without a free rho."""
    key = ("rho", "", "")
    if not fit.posterior.has(key) or not _correlation_modelled(fit):
        return None
    sd = float(fit.posterior.sd([key])[0])
    prior = fit.prior
    prior_sd = float(prior.sd([key])[0]) if prior is not None and prior.has(key) else np.nan
    p_negative = 1.0 - float(fit.posterior.prob_above([key], [0.0])[0][0])
    ratio = sd / prior_sd if prior_sd > 0 else np.nan
    return {"posterior_sd": sd, "prior_sd": prior_sd, "sd_ratio": ratio,
            "p_negative": p_negative,
            "weakly_identified": bool(np.isfinite(ratio) and ratio > 0.5)}


def identification_sentence(fit, table: pd.DataFrame) -> str | None:
    """The plain statement a joint fit needs: what the data say about rho, and whether
    a joint probability would move across 0.5 or 0.95 without the correlation."""
    info = rho_identification(fit)
    if info is None:
        return None
    sign = ("negative" if info["p_negative"] > 0.5 else "positive")
    p_sign = max(info["p_negative"], 1 - info["p_negative"])
    words = (f"The data inform mainly the sign of rho (P(rho {'<' if sign == 'negative' else '>'}"
             f" 0) = {p_sign:.2f}); its posterior SD is {info['sd_ratio']:.0%} of the "
             "prior's" if info["weakly_identified"] else
             f"rho is informed by the data (posterior SD {info['sd_ratio']:.0%} of the "
             "prior's)")
    moved = []
    for _, row in table[table["kind"] == "joint"].iterrows():
        for level in (0.5, 0.95):
            if (row["probability"] > level) != (row["independent"] > level):
                moved.append(f"P({row['event']}) for the {row['level']} is "
                             f"{row['probability']:.2f} with the correlation and "
                             f"{row['independent']:.2f} without it, across {level:g}")
                break
    if moved:
        return (words + ". This joint result depends on the prior of rho: "
                + "; ".join(moved) + ". See the sensitivity sweep over rho priors.")
    return words + "; the joint probabilities stay on the same side of 0.5 and 0.95 as " \
        "under independence."
