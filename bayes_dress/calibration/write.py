"""Writing a calibration directory, atomically, with a manifest that hashes its files.

A calibration directory holds ``ranks.csv`` (one row per replication and quantity),
``verdicts.csv`` (one row per quantity), ``replications.csv`` (one row per replication:
status, seed, simulated events, true values), ``diagnostics.json``, ``manifest.json``
and ``plots/`` (the ECDF-difference plot and the rank histograms, PNG and SVG, listed
with their hashes in ``plots/index.json``).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_dress.calibration.figures import Panel, ecdf_figure, histogram_figure
from bayes_dress.calibration.layout import (
    ECDF_PLOT,
    HISTOGRAM_PLOT,
    KIND,
    PNG_DPI,
    RANK_METHOD,
    RANKS,
    REPLICATIONS,
    VERDICTS,
)
from bayes_dress.calibration.plan import DISPLAY_LEVEL, MAX_PLOTTED_STUDIES
from bayes_dress.calibration.run import FAILED, NOT_FITTED, OK, CalibrationResult
from bayes_dress.calibration.uniformity import N_SIMULATIONS, Bands
from bayes_dress.rundir import layout
from bayes_dress.rundir.atomic import sha256
from bayes_dress.rundir.fit_files import data_source
from bayes_dress.rundir.write import RunWriter, json_text


def _panels(ranks: pd.DataFrame, verdicts: pd.DataFrame, studies: dict[str, int]
            ) -> list[Panel]:
    many = len(verdicts["analysis"].unique()) > 1
    panels = []
    for row in verdicts.itertuples(index=False):
        if row.study and studies.get(row.analysis, 0) > MAX_PLOTTED_STUDIES:
            continue
        mine = ranks[(ranks["analysis"] == row.analysis) & (ranks["quantity"] == row.quantity)
                     & (ranks["outcome"] == row.outcome) & (ranks["study"] == row.study)]
        label = f"{row.analysis}: {row.label}" if many else row.label
        panels.append(Panel(label=label, pit=mine["pit"].to_numpy(dtype=float),
                            verdict=str(row.verdict),
                            n_failed=int(row.n_diagnostics_failed or 0),
                            note=str(row.note or "")))
    return panels


def draw_plots(ranks: pd.DataFrame, verdicts: pd.DataFrame, bands: dict[int, Bands],
               directory: Path, *, meta: dict) -> list[dict]:
    """Draw both figures into ``directory`` (a ``plots`` folder) and write its index.

    ``meta``: ``engine``, ``model``, ``replications``, ``verdict_level``, ``studies``
    (analysis -> number of studies), ``fitted`` and ``simulated`` prior texts.
    """
    from bayes_dress.plots.figures import save

    directory.mkdir(parents=True, exist_ok=True)
    panels = _panels(ranks, verdicts, meta["studies"])
    hidden = len(verdicts) - len(panels)
    engine, model = meta["engine"], meta["model"]
    n = meta["replications"]
    failed = int((ranks.drop_duplicates(["analysis", "replication"])["status"]
                  == FAILED).sum()) if len(ranks) else 0
    bad = [p.label for p in panels if p.verdict != "calibrated"]
    where = (f"{model}, {engine} engine, {n} replications; simulated from "
             f"{meta['simulated']}; fitted with {meta['fitted']}")
    verdict_text = ("Every quantity is calibrated." if not bad else
                    f"Miscalibrated: {', '.join(bad)}.")
    hidden_text = (f" Study rates of analyses with more than {MAX_PLOTTED_STUDIES} studies "
                   f"are not drawn ({hidden} quantities; see verdicts.csv)."
                   if hidden else "")
    jobs = [
        (ECDF_PLOT, "Simulation-based calibration: ECDF of the ranks",
         f"Each panel shows, for one quantity, how far the empirical CDF of the "
         f"replications' PIT values (where the true value fell in its posterior) strays "
         f"from the uniform CDF it has when the {engine} engine is calibrated: "
         f"ECDF(u) − u, black. Gray: the {DISPLAY_LEVEL:.0%} simultaneous band "
         f"(Säilynoja et al. 2022: a calibrated quantity's whole line stays inside it "
         f"with probability {DISPLAY_LEVEL:.0%}). Dashed: the band of the verdict, "
         f"{meta['verdict_level']:.2%} per quantity, so that a calibrated engine is "
         f"called calibrated on every quantity at once with probability at least "
         f"{meta['level']:.0%}; a verdict also fails when the smallest or largest PIT "
         f"value is too extreme (see verdicts.csv). A line above 0 means true values "
         f"lie low in their posteriors (posteriors too high); an S through 0 means "
         f"posteriors too narrow or too wide. {verdict_text} Fits that failed a "
         f"diagnostic ({failed} of {n}) are included. {where}.{hidden_text}",
         lambda: ecdf_figure(panels, bands, display_level=DISPLAY_LEVEL,
                             verdict_level=meta["verdict_level"],
                             title=f"SBC: {model}, {engine} engine, {n} replications")),
        (HISTOGRAM_PLOT, "Simulation-based calibration: rank histograms",
         f"The replications' PIT values (normalised ranks) of each quantity in bins; "
         f"flat when calibrated. Dashed: the count expected in a bin; gray: where one "
         f"bin's count falls with 95% probability if calibrated (pointwise, so about "
         f"one bin in twenty falls outside by chance); hatched: a quantity whose verdict "
         f"is miscalibrated. A slope means bias, a U too-narrow posteriors, a hump "
         f"too-wide ones. {where}.{hidden_text}",
         lambda: histogram_figure(panels, title=f"SBC rank histograms: {model}, {engine} "
                                                f"engine, {n} replications")),
    ]
    index = []
    for name, title, caption, draw in jobs:
        png, svg = save(draw(), directory, name, dpi=PNG_DPI)
        index.append({"name": name, "title": title, "caption": caption, "outcome": None,
                      "png": f"{layout.PLOTS_DIR}/{png.name}",
                      "svg": f"{layout.PLOTS_DIR}/{svg.name}",
                      "png_sha256": sha256(png), "svg_sha256": sha256(svg)})
    (directory / layout.PLOT_INDEX).write_text(json_text(index), encoding="utf-8")
    return index


def plot_meta(result: CalibrationResult) -> dict:
    plan = result.plan
    return {"engine": plan.engine, "model": plan.model.name,
            "replications": plan.replications, "level": plan.level,
            "verdict_level": plan.verdict_level,
            "studies": {a.name: a.data.n_studies for a in plan.analyses},
            "fitted": "; ".join(f"{k} ~ {p}" for k, p in plan.priors.items()),
            "simulated": "; ".join(f"{k} ~ {p}" for k, p in plan.simulate_priors.items())}


def diagnostics_payload(result: CalibrationResult) -> dict:
    """What ``diagnostics.json`` says: how the fits went, and how ranks were made."""
    plan = result.plan
    counts = Counter(r.status for r in result.results)
    thinning = {}
    ranks = result.ranks
    if plan.engine == "nuts" and len(ranks):
        for (analysis, label), group in ranks.groupby(["analysis", "label"], sort=False):
            kept = group["n_ranked"].dropna().astype(float)
            thin = group["thin"].dropna().astype(float)
            if len(kept):
                thinning[f"{analysis}: {label}"] = {
                    "mean_kept_draws": round(float(kept.mean()), 1),
                    "min_kept_draws": int(kept.min()), "mean_thin": round(float(
                        thin.mean()), 2), "max_thin": int(thin.max())}
    return {
        "passed": result.calibrated,
        "fits": len(result.results),
        "status": {OK: counts.get(OK, 0), FAILED: counts.get(FAILED, 0),
                   NOT_FITTED: counts.get(NOT_FITTED, 0)},
        "failed_diagnostics_included": True,
        "failed_checks": dict(Counter(c for r in result.results for c in r.failed_checks)),
        "miscalibrated": [f"{row.analysis}: {row.label}" for row in
                          result.miscalibrated.itertuples(index=False)],
        "rank_method": RANK_METHOD.get(plan.engine, RANK_METHOD["exact"]),
        "thinning": thinning,
        "bands": {"method": "simultaneous ECDF band by simulation (Säilynoja, Bürkner "
                            "and Vehtari 2022), arviz-stats' pointwise binomial band "
                            "at the simulated level",
                  "simulations": N_SIMULATIONS, "display_level": DISPLAY_LEVEL,
                  "family_level": plan.level, "verdict_level": plan.verdict_level,
                  "pointwise_levels": {str(n): {
                      "display": b.pointwise_level(DISPLAY_LEVEL),
                      "verdict": b.pointwise_level(plan.verdict_level)}
                      for n, b in result.bands.items()}},
        "replications": [{"replication": r.index, "analysis": r.analysis,
                          "status": r.status, "checks": r.failed_checks,
                          "problems": r.problems} for r in result.results
                         if r.status != OK],
        "wall_time": round(result.wall_time, 3),
        "fits_per_second": (round(result.fits_per_second, 3)
                            if np.isfinite(result.fits_per_second) else None),
        "executor": result.executor,
    }


def manifest_payload(result: CalibrationResult) -> dict:
    plan = result.plan
    spec = plan.model.spec
    settings = plan.settings
    return {
        "engine": plan.engine,
        "seed": plan.seed,
        "replications": plan.replications,
        "level": plan.level,
        "verdict_level": plan.verdict_level,
        "display_level": DISPLAY_LEVEL,
        "model": {"name": spec.name, "title": spec.title, "equations": list(spec.equations),
                  "outcomes": spec.outcomes},
        "priors": {k: str(p) for k, p in plan.priors.items()},
        "simulate_priors": {k: str(p) for k, p in plan.simulate_priors.items()},
        "misspecified": plan.misspecified,
        "sampler": {"name": settings.name, "draws": settings.draws, "tune": settings.tune,
                    "chains": settings.chains, "target_accept": settings.target_accept,
                    "cores_per_fit": settings.cores},
        "config": plan.config.to_dict() if plan.config is not None else None,
        "data": data_source(plan.table) if plan.table is not None else None,
        "analyses": {a.name: {"outcomes": list(a.outcomes), "studies": list(a.data.studies),
                              "totals": a.data.totals.tolist(),
                              "quantities": len(plan.quantities[a.name])}
                     for a in plan.analyses},
        "notes": list(plan.notes),
        "verdicts": {"calibrated": int((result.verdicts["verdict"] == "calibrated").sum()),
                     "miscalibrated": int((result.verdicts["verdict"] == "miscalibrated")
                                          .sum()),
                     "all_calibrated": result.calibrated},
        "wall_time": round(result.wall_time, 3),
        "executor": result.executor,
    }


def write_calibration(result: CalibrationResult, out: str | Path, *,
                      overwrite: bool = False) -> Path:
    """Write a calibration directory (see the module docstring); returns its path."""
    out = Path(out)
    with RunWriter(out, overwrite=overwrite) as writer:
        writer.csv(RANKS, result.ranks)
        writer.csv(VERDICTS, result.verdicts)
        writer.csv(REPLICATIONS, result.replications)
        writer.json(layout.DIAGNOSTICS, diagnostics_payload(result))
        draw_plots(result.ranks, result.verdicts, result.bands,
                   writer.path / layout.PLOTS_DIR, meta=plot_meta(result))
        writer.manifest(manifest_payload(result), kind=KIND)
    return out
