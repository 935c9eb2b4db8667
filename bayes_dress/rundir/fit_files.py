"""The files a fit writes into its run directory, and what its manifest records."""

from __future__ import annotations

import pandas as pd

from bayes_dress.checks.crosscheck import Z_BOUND
from bayes_dress.checks.diagnostics import (
    EBFMI_MIN,
    ESS_PER_CHAIN_MIN,
    KHAT_MAX,
    RHAT_MAX,
    checks_to_records,
)
from bayes_dress.data.table import bundled_data_path
from bayes_dress.fitting.fit import FitResult
from bayes_dress.rundir import layout
from bayes_dress.rundir.write import RunWriter


def data_used(result: FitResult) -> pd.DataFrame:
    """The counts each analysis used, per outcome and study, with their provenance."""
    rows = []
    for fit in result.fits.values():
        for block in fit.analysis.data.blocks:
            for row in block.rows:
                rows.append({"analysis": fit.name, "outcome": block.outcome,
                             "study": row.study, "definition": row.definition,
                             "primary": row.primary, "events": row.events,
                             "total": row.total, "quote": row.extra.get("quote", ""),
                             "location": row.extra.get("location", ""),
                             "note": row.extra.get("note", "")})
    return pd.DataFrame(rows, columns=["analysis", "outcome", "study", "definition",
                                       "primary", "events", "total", "quote", "location",
                                       "note"])


def diagnostics_payload(result: FitResult) -> dict:
    analyses = {}
    for name, fit in result.fits.items():
        entry = {"passed": not fit.failures, "engine": fit.engine, "outcomes":
                 list(fit.outcomes), "checks": checks_to_records(fit.checks),
                 "reference": fit.reference, "details": fit.details}
        if fit.comparison is not None:
            entry["reference_comparison"] = fit.comparison.drop(
                columns=["analysis"]).to_dict(orient="records")
        analyses[name] = entry
    return {
        "passed": not result.failures,
        "thresholds": {"r_hat_max": RHAT_MAX, "ess_per_chain_min": ESS_PER_CHAIN_MIN,
                       "divergences_max": 0, "tree_depth_saturation_max": 0,
                       "ebfmi_min": EBFMI_MIN, "reference_agreement_max_abs_z": Z_BOUND,
                       "importance_khat_max": KHAT_MAX},
        "analyses": analyses,
    }


def data_source(table) -> dict:
    """Where the data came from: the path as the user gave it (bundled or not) and the
    file's hash, which identifies the data wherever it lives."""
    try:
        bundled = table.path.resolve() == bundled_data_path().resolve()
    except OSError:
        bundled = False
    return {"path": "bundled: data/outcomes.csv" if bundled else str(table.path),
            "bundled": bundled, "sha256": table.sha256}


def manifest_payload(result: FitResult) -> dict:
    config = result.config
    first = next(iter(result.fits.values()))
    spec = first.analysis.model.spec
    return {
        "engine": config.engine,
        "seed": config.sampler.seed,
        "config": config.to_dict(),
        "model": {"name": spec.name, "title": spec.title, "equations": list(spec.equations),
                  "outcomes": spec.outcomes},
        "priors": {name: str(p) for name, p in first.priors.items()},
        "data": data_source(result.table),
        "analyses": {name: {
            "outcomes": list(fit.outcomes),
            "file": layout.posterior_file(fit.outcomes),
            "counts": {block.outcome: {"studies": list(block.studies),
                                       "definitions": list(block.definitions),
                                       "events": block.events.tolist(),
                                       "totals": block.totals.tolist()}
                       for block in fit.analysis.data.blocks},
            "notes": fit.notes} for name, fit in result.fits.items()},
        "benefit_risk": _benefit_risk_summary(result),
        "wall_time_seconds": round(result.wall_time, 3),
    }


def _benefit_risk_summary(result: FitResult) -> dict | None:
    """What the benefit-risk table judged, and, for a joint fit, what the data say of
    the correlation (for the report's identifiability statement)."""
    from bayes_dress.fitting.benefit_risk import identification_sentence, rho_identification

    if result.benefit_risk.empty:
        return None
    spec = result.config.benefit_risk
    summary = {**spec.to_dict(), "correlation": None, "statement": None}
    for fit in result.fits.values():
        info = rho_identification(fit)
        if info is not None:
            summary["correlation"] = info
            summary["statement"] = identification_sentence(fit, result.benefit_risk)
    return summary


def write_fit(writer: RunWriter, result: FitResult) -> None:
    """Every file of a fit's run directory but the plots, manifest last."""
    layout.check_distinct_files([o for f in result.fits.values() for o in f.outcomes],
                                what="outcomes")
    writer.csv(layout.SUMMARY, result.summary)
    writer.csv(layout.PROBABILITIES, result.probabilities)
    writer.csv(layout.DATA_USED, data_used(result))
    comparisons = [f.comparison for f in result.fits.values() if f.comparison is not None]
    if comparisons:
        writer.csv(layout.COMPARISON, pd.concat(comparisons, ignore_index=True))
    if not result.benefit_risk.empty:
        writer.csv(layout.BENEFIT_RISK, result.benefit_risk)
    for fit in result.fits.values():
        writer.netcdf(layout.posterior_file(fit.outcomes), fit.tree)
    writer.json(layout.DIAGNOSTICS, diagnostics_payload(result))
    writer.manifest(manifest_payload(result), kind="run")
