"""The short plain-text account of a fit that the CLI prints.

A pooled rate is never shown without the between-study spread and the new-study
(predictive) interval beside it, and every quantity the data barely moved from its
prior is marked as such.
"""

from __future__ import annotations

import pandas as pd

from bayes_dress.fitting import FitResult, OutcomeFit
from bayes_dress.labels import quantity_label
from bayes_dress.spec import get_model_spec

PRIOR_FLAG = "prior-dominated"


def _row(summary: pd.DataFrame, name: str) -> pd.Series | None:
    rows = summary[(summary["parameter"] == name) & (summary["study"] == "")]
    return None if rows.empty else rows.iloc[0]


def _line(label: str, row: pd.Series) -> str:
    dominated = row["prior_dominated"]
    flag = f"  {PRIOR_FLAG}" if not pd.isna(dominated) and bool(dominated) else ""
    return (f"  {label:<30} {row['median']:>7.3f}   {row['q2.5']:.3f} – "
            f"{row['q97.5']:.3f}{flag}")


def format_outcome(fit: OutcomeFit) -> list[str]:
    """Headline lines for one outcome."""
    spec = get_model_spec(fit.model)
    counts = ", ".join(f"{r.study} {r.events}/{r.total}"
                       + ("" if r.primary else f" [{r.definition}]") for r in fit.data.rows)
    lines = [f"{fit.outcome}: {counts}", f"  {'quantity':<30} {'median':>7}   95% interval"]
    names = ["mean_rate", "theta_new", "sd_rates", *spec.heterogeneity]
    for name in dict.fromkeys(names):
        row = _row(fit.summary, name)
        if row is not None and name != "kappa":
            lines.append(_line(quantity_label(name), row))
    for study in fit.data.studies:
        row = fit.summary[(fit.summary["parameter"] == "theta")
                          & (fit.summary["study"] == study)].iloc[0]
        lines.append(_line(f"rate in {study}", row))
    probs = fit.probabilities
    for quantity in ("mean_rate", "theta_new"):
        part = probs[probs["quantity"] == quantity]
        text = ", ".join(f"{p:.2f}" for p in part["probability"])
        thresholds = ", ".join(f"{t:g}" for t in part["threshold"])
        lines.append(f"  P({quantity_label(quantity, short=True)} > {thresholds}) = {text}")
    for note in fit.notes:
        lines.append(f"  note: {note}")
    failed = fit.failures
    if failed:
        lines.append(f"  DIAGNOSTICS FAILED ({len(failed)}): "
                     + "; ".join(c.detail for c in failed))
    elif fit.engine == "exact" and fit.exact.grid is None:
        lines.append("  exact engine: no grid (conjugate Beta posteriors, or one-dimensional "
                     "quadrature for another prior)")
    elif fit.engine == "exact":
        lines.append(f"  exact engine: grid error {fit.exact.grid_error:.1e} "
                     f"({fit.exact.grid_points} points per axis)")
    else:
        worst_rhat = fit.summary["r_hat"].max()
        min_ess = fit.summary[["ess_bulk", "ess_tail"]].min().min()
        agreement = next((c for c in fit.checks if c.check == "exact_agreement"), None)
        versus = (f", NUTS vs exact engine max |z| {agreement.value:.1f} MCSE"
                  if agreement is not None else ", not checked against the exact engine")
        lines.append(f"  diagnostics OK: 0 divergences, max R-hat {worst_rhat:.3f}, "
                     f"min ESS {min_ess:.0f}{versus}")
    return lines


def format_headline(result: FitResult) -> str:
    """The headline table of a run, as printed by ``bayes-dress fit``."""
    config = result.config
    sampler = config.sampler
    engine = (f"{sampler.name} {sampler.chains} chains x {sampler.draws} draws"
              if config.engine == "nuts" else "exact engine (numerical integration)")
    lines = [f"{get_model_spec(config.model).title} | seed {sampler.seed} | {engine} | "
             f"{result.wall_time:.1f} s", ""]
    for fit in result.fits.values():
        lines += [*format_outcome(fit), ""]
    if any(f.summary["prior_dominated"].fillna(False).astype(bool).any()
           for f in result.fits.values()):
        lines.append(f"{PRIOR_FLAG}: the posterior 95% interval still holds >= 75% of the "
                     "prior's mass, so the data cannot tell this answer apart from the prior "
                     "(prior_mass_in_ci95 in summary.csv).")
    return "\n".join(lines)
