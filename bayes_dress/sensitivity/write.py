"""Writing a sweep's run directory, atomically and with a manifest, as ``fit`` does."""

from __future__ import annotations

from pathlib import Path

from bayes_dress.labels import outcome_label
from bayes_dress.rundir import layout
from bayes_dress.rundir.atomic import sha256
from bayes_dress.rundir.fit_files import data_source
from bayes_dress.rundir.layout import PLOT_INDEX, PLOTS_DIR, safe_name
from bayes_dress.rundir.write import RunWriter, json_text
from bayes_dress.sensitivity.plot import plot_sensitivity_forest
from bayes_dress.sensitivity.sweep import SweepResult


def _plots(result: SweepResult, directory: Path) -> list[dict]:
    plots = directory / PLOTS_DIR
    plots.mkdir()
    table = result.sensitivity
    index = []
    for outcome in result.plan.outcomes:
        name = f"sensitivity_forest-{safe_name(outcome)}"
        thresholds: dict[str, list[float]] = {}
        for headline in result.plan.headlines:
            if headline.outcome == outcome:
                thresholds.setdefault(headline.quantity, []).extend(headline.thresholds)
        png, svg = plot_sensitivity_forest(table, outcome, plots, name=name,
                                           thresholds=thresholds)
        index.append({
            "name": name, "title": f"Sensitivity across scenarios: {outcome_label(outcome)}",
            "caption": "Posterior median and 95% interval of the population mean rate, the "
                       "new-study rate and the between-study SD in every scenario; the "
                       "primary analysis is the shaded row with diamonds. Hollow points on "
                       "dotted lines failed a diagnostic; 'not fitted' rows could not be "
                       "fitted (see sensitivity.csv, status and problems). Dotted vertical "
                       "lines mark the thresholds of the headline probabilities.",
            "outcome": outcome, "png": f"{PLOTS_DIR}/{name}.png",
            "svg": f"{PLOTS_DIR}/{name}.svg", "png_sha256": sha256(png),
            "svg_sha256": sha256(svg)})
    (plots / PLOT_INDEX).write_text(json_text(index), encoding="utf-8")
    return index


def diagnostics_payload(result: SweepResult) -> dict:
    return {
        "passed": not result.flagged,
        "fits": len(result.results),
        "flagged": [{"scenario": r.scenario.id, "label": r.scenario.label,
                     "outcome": r.outcome, "status": r.status, "problems": r.problems}
                    for r in result.flagged],
        "checks": {f"{r.scenario.id}/{r.outcome}": r.checks for r in result.results},
    }


def manifest_payload(result: SweepResult) -> dict:
    plan = result.plan
    return {
        "spec": plan.spec.where,
        "combine": plan.spec.combine,
        "seed": plan.config.sampler.seed,
        "primary_config": plan.config.to_dict(),
        "data": data_source(plan.table),
        "headlines": [{"outcome": h.outcome, "quantity": h.quantity,
                       "thresholds": list(h.thresholds)} for h in plan.headlines],
        "scenarios": [{"id": s.id, "label": s.label, "varied": s.varied, "model": s.model,
                       "priors": {k: str(p) for k, p in s.priors.items()},
                       "outcomes": list(s.outcomes), "definitions": dict(s.definitions),
                       "exclude": list(s.exclude)} for s in plan.scenarios],
        "fits": [{"scenario": r.scenario.id, "outcome": r.outcome, "status": r.status,
                  "n_studies": r.n_studies, "seconds": round(r.seconds, 3),
                  "notes": r.notes} for r in result.results],
        "wall_time_seconds": round(result.wall_time, 3),
    }


def write_sweep(result: SweepResult, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write a sweep's run directory.

    Files: ``sensitivity.csv`` (scenario x outcome x quantity), ``probabilities.csv``
    (each headline probability per scenario), ``robustness.csv`` (verdicts),
    ``psense.csv`` (power-scaling prior sensitivity of the primary fit),
    ``plots/sensitivity_forest-OUTCOME.png|svg`` with ``plots/index.json``,
    ``diagnostics.json`` and ``manifest.json``.
    """
    out = Path(out)
    with RunWriter(out, overwrite=overwrite) as writer:
        writer.csv(layout.SENSITIVITY, result.sensitivity)
        writer.csv(layout.PROBABILITIES, result.probabilities)
        writer.csv(layout.ROBUSTNESS, result.robustness)
        writer.csv(layout.PSENSE, result.psense)
        for name, frame in result.extra_tables.items():
            writer.csv(name, frame)
        writer.json(layout.DIAGNOSTICS, diagnostics_payload(result))
        writer.manifest(manifest_payload(result), kind="sweep")
        _plots(result, writer.path)
    return out
