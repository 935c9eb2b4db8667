"""The short plain-text account of a fit that the CLI prints.

A pooled rate is never shown without the between-study spread and the new-study
(predictive) interval beside it, and every quantity the data barely moved from its
prior is marked as such.
"""

from __future__ import annotations

import pandas as pd

from bayes_dress.fitting.fit import AnalysisFit, FitResult
from bayes_dress.labels import quantity_label, terminal_safe

PRIOR_FLAG = "prior-dominated"
#: Studies listed one per line in the headline; beyond this the rates are summarised.
HEADLINE_STUDIES = 12


def _row(summary: pd.DataFrame, name: str, outcome: str, study: str = "") -> pd.Series | None:
    rows = summary[(summary["parameter"] == name) & (summary["outcome"] == outcome)
                   & (summary["study"] == study)]
    return None if rows.empty else rows.iloc[0]


def _line(label: str, row: pd.Series) -> str:
    dominated = row["prior_dominated"]
    flag = f"  {PRIOR_FLAG}" if not pd.isna(dominated) and bool(dominated) else ""
    return (f"  {label:<30} {row['median']:>7.3f}   {row['q2.5']:.3f} – "
            f"{row['q97.5']:.3f}{flag}")


def _counts(fit: AnalysisFit, outcome: str) -> str:
    block = fit.analysis.data.block(outcome)
    shown = [f"{terminal_safe(r.study)} {r.events}/{r.total}"
             + ("" if r.primary else f" [{terminal_safe(r.definition)}]")
             for r in block.rows[:HEADLINE_STUDIES]]
    more = len(block.rows) - HEADLINE_STUDIES
    if more > 0:
        shown.append(f"... and {more} more ({int(block.events.sum())} events in "
                     f"{int(block.totals.sum())} patients in all)")
    return ", ".join(shown)


def format_outcome(fit: AnalysisFit, outcome: str | None = None) -> list[str]:
    """Headline lines for one outcome of an analysis."""
    outcome = outcome or fit.outcomes[0]
    spec = fit.analysis.model.spec
    lines = [f"{terminal_safe(outcome)}: {_counts(fit, outcome)}",
             f"  {'quantity':<30} {'median':>7}   95% interval"]
    names = ["mean_rate", "theta_new", "sd_rates", *spec.heterogeneity]
    for name in dict.fromkeys(names):
        row = _row(fit.summary, name, outcome)
        if row is not None and name != "kappa":
            lines.append(_line(quantity_label(name), row))
    studies = fit.analysis.data.block(outcome).studies
    for study in studies[:HEADLINE_STUDIES]:
        row = _row(fit.summary, "theta", outcome, study)
        if row is not None:
            lines.append(_line(f"rate in {terminal_safe(study)}", row))
    if len(studies) > HEADLINE_STUDIES:
        lines.append(f"  ... {len(studies) - HEADLINE_STUDIES} more study rates in "
                     "summary.csv")
    probs = fit.probabilities[fit.probabilities["outcome"] == outcome]
    for quantity in ("mean_rate", "theta_new"):
        part = probs[probs["quantity"] == quantity]
        text = ", ".join(f"{p:.2f}" for p in part["probability"])
        thresholds = ", ".join(f"{t:g}" for t in part["threshold"])
        lines.append(f"  P({quantity_label(quantity, short=True)} > {thresholds}) = {text}")
    return lines


def format_analysis(fit: AnalysisFit) -> list[str]:
    """Headline lines for one analysis: each outcome, quantities across outcomes, notes
    and the verdict of its checks."""
    lines = []
    for outcome in fit.outcomes:
        lines += format_outcome(fit, outcome)
    across = fit.summary[fit.summary["outcome"] == ""]
    for _, row in across.iterrows():
        lines.append(_line(quantity_label(row["parameter"]), row))
    for note in fit.notes:
        lines.append(f"  note: {terminal_safe(note)}")
    failed = fit.failures
    if failed:
        lines.append(f"  DIAGNOSTICS FAILED ({len(failed)}): "
                     + "; ".join(terminal_safe(c.detail) for c in failed))
        return lines
    lines.append("  " + checks_line(fit))
    return lines


def checks_line(fit: AnalysisFit) -> str:
    """One line saying what was checked and how it came out."""
    summary = fit.summary
    parts = []
    if fit.posterior.kind == "draws":
        stats = fit.groups.get("sample_stats")
        divergences = (int(stats["diverging"].sum()) if stats is not None
                       and "diverging" in stats else 0)
        parts.append(f"{divergences} divergences, max R-hat {summary['r_hat'].max():.3f}, "
                     f"min ESS {summary[['ess_bulk', 'ess_tail']].min().min():.0f}")
    for check in fit.checks:
        if check.check == "grid_error" and check.value == check.value:  # not NaN
            parts.append(f"exact engine grid error {check.value:.1e} "
                         f"({fit.details['engine'].get('grid_points')} points per axis)")
        elif check.check == "reference_agreement":
            parts.append(f"vs {fit.reference} engine max |z| {check.value:.1f}"
                         if fit.reference else "no reference engine (see the note)")
    if fit.engine == "exact" and not any(c.check == "grid_error" for c in fit.checks):
        parts.append("exact engine: no grid (conjugate Beta posteriors, or "
                     "one-dimensional quadrature for another prior)")
    return "diagnostics OK: " + "; ".join(parts) if parts else "diagnostics OK"


def format_benefit_risk(result: FitResult) -> list[str]:
    """Joint probabilities beside what independence would say, and the acceptability of
    the net clinical benefit at a few harm weights."""
    from bayes_dress.fitting.benefit_risk import identification_sentence

    table = result.benefit_risk
    if table.empty:
        return []
    spec = result.config.benefit_risk
    joint = bool(table["correlation_modelled"].any())
    together = [f for f in result.fits.values()
                if {spec.benefit, spec.risk} <= set(f.outcomes)]
    fixed = together[0].analysis.priors.get("rho") if together else None
    fixed = fixed.fixed_value if fixed is not None else None
    if joint:
        how = "correlated study effects"
    elif together and fixed not in (None, 0):
        how = f"one joint analysis with rho fixed at {fixed:g}"
    elif together:
        how = "one joint analysis with rho fixed at 0: independent"
    else:
        how = "fitted separately: paired as independent"
    lines = [f"benefit-risk ({terminal_safe(spec.benefit)} vs {terminal_safe(spec.risk)}, "
             f"{how})"]
    for _, row in table[table["kind"] == "joint"].iterrows():
        lines.append(f"  P({row['event']}), {row['level']}: {row['probability']:.2f}"
                     + (f" ± {row['mcse']:.2f} (independence: {row['independent']:.2f})"
                        if joint or row["mcse"] > 0 else ""))
    ncb = table[(table["kind"] == "net_benefit") & (table["quantity"] == "theta_new")]
    shown = ncb[ncb["weight"].isin([0.5, 1.0, 2.0])]
    if not shown.empty:
        lines.append("  P(net benefit > 0), new study, harm weight w: " + ", ".join(
            f"w={w:g}: {p:.2f}" for w, p in zip(shown["weight"], shown["probability"],
                                                strict=True))
            + " (benefit_risk.csv has the curve)")
    for fit in result.fits.values():
        sentence = identification_sentence(fit, table)
        if sentence:
            lines.append(f"  {sentence}")
    return [*lines, ""]


def format_headline(result: FitResult) -> str:
    """The headline table of a run, as printed by ``bayes-dress fit``."""
    config = result.config
    sampler = config.sampler
    engine = (f"{sampler.name} {sampler.chains} chains x {sampler.draws} draws"
              if config.engine == "nuts" else "exact engine (numerical integration)")
    title = next(iter(result.fits.values())).analysis.model.spec.title
    lines = [f"{title} | seed {sampler.seed} | {engine} | {result.wall_time:.1f} s", ""]
    for fit in result.fits.values():
        lines += [*format_analysis(fit), ""]
    lines += format_benefit_risk(result)
    if any(f.summary["prior_dominated"].fillna(False).astype(bool).any()
           for f in result.fits.values()):
        lines.append(f"{PRIOR_FLAG}: the posterior 95% interval still holds >= 75% of the "
                     "prior's mass, so the data cannot tell this answer apart from the prior "
                     "(prior_mass_in_ci95 in summary.csv).")
    return "\n".join(lines)
