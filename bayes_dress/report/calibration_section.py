"""The report's calibration section (simulation-based calibration), rendered from a
calibration directory (:func:`bayes_dress.calibration.read.load_calibration`).

The verdict comes first: whether the engine recovered, over the simulated tables, every
quantity it reports; then the table of verdicts, how the fits went, the method in a
paragraph, and the plots. Every value read from the directory is HTML-escaped (through
:mod:`bayes_dress.report.sections`' helpers).
"""

from __future__ import annotations

import math

from bayes_dress.report.html import (
    Markup,
    bullets,
    count,
    esc,
    figures,
    folded,
    num,
    table,
)
from bayes_dress.report.images import embed_plots

KEY = "calibration"
TITLE = "Calibration (simulation-based)"


def _p(value) -> Markup:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return esc(value)
    if math.isnan(v):
        return Markup("–")
    return Markup("&lt;0.001") if v < 0.001 else num(v, 3)


def _prior_text(priors: dict[str, str]) -> str:
    return "; ".join(f"{k} ~ {v}" for k, v in priors.items())


def _verdict_rows(saved, many: bool) -> list[list]:
    rows = []
    for r in saved.verdicts.itertuples(index=False):
        bad = r.verdict != "calibrated"
        label = f"{r.analysis}: {r.label}" if many else r.label
        verdict = Markup(f"<strong>{esc(str(r.verdict).upper())}</strong>") if bad \
            else esc(r.verdict)
        rows.append([Markup(f"<code>{esc(label)}</code>"), verdict, count(r.n),
                     count(r.n_diagnostics_failed), _p(r.band_p_value),
                     _p(r.tail_p_value), num(r.mean_pit, 2), r.note or ""])
    return rows


def calibration_section(saved) -> str:
    """The section's body HTML for a :class:`~bayes_dress.calibration.read.
    SavedCalibration` (the report wraps it in its numbered section)."""
    m = saved.manifest
    verdicts = saved.verdicts
    many = len(set(verdicts["analysis"])) > 1 if len(verdicts) else False
    engine = saved.engine
    model = (m.get("model") or {}).get("title") or saved.model_name
    n = saved.n_replications
    diagnostics = saved.diagnostics
    status = diagnostics.get("status") or {}
    level = m.get("level")
    bad = verdicts[verdicts["verdict"] != "calibrated"]
    parts = []
    if saved.calibrated:
        parts.append(f'<p class="ok-line"><strong>Calibrated:</strong> over {count(n)} '
                     f"tables simulated from the prior, the {esc(engine)} engine "
                     f"recovered every one of the {count(len(verdicts))} quantities it "
                     f"reports: where the true values fell in their posteriors is "
                     f"indistinguishable from uniform (family-wise level "
                     f"{num(level, 2)}).</p>")
    else:
        labels = [f"{r.analysis}: {r.label}" if many else r.label
                  for r in bad.itertuples(index=False)]
        parts.append(f'<div class="banner warn" role="alert"><strong>NOT CALIBRATED:'
                     f"</strong> over {count(n)} simulated tables the {esc(engine)} "
                     f"engine's posteriors do not match the values that generated the data "
                     f"for {count(len(bad))} of {count(len(verdicts))} quantities "
                     f"({esc(', '.join(labels))}).</div>")
    if m.get("misspecified"):
        parts.append(f'<p class="note">Deliberate mismatch: the tables were simulated from '
                     f"<code>{esc(_prior_text(saved.simulate_priors))}</code> but fitted "
                     f"with <code>{esc(_prior_text(saved.priors))}</code>, so "
                     "non-uniform ranks are expected: this run checks that calibration "
                     "detects a wrong prior.</p>")
    sampler = m.get("sampler") or {}
    how = (f"NUTS ({esc(sampler.get('chains'))} chains × {esc(sampler.get('draws'))} draws "
           f"after {esc(sampler.get('tune'))} tuning steps, target acceptance "
           f"{esc(sampler.get('target_accept'))})" if engine == "nuts"
           else "the exact engine (numerical integration)")
    analyses = m.get("analyses") or {}
    shapes = "; ".join(
        f"{name}: " + ", ".join(f"{s} n={t}" for s, t in zip(
            a.get("studies") or [], (a.get("totals") or [[]])[0], strict=False))
        for name, a in analyses.items() if isinstance(a, dict))
    parts.append(f"<p>{esc(model)} (<code>{esc(saved.model_name)}</code>), priors "
                 f"<code>{esc(_prior_text(saved.priors))}</code>, fitted with {how}. "
                 f"Each of {count(n)} replications drew the hyperparameters from the "
                 f"prior, the study rates and a new study's rate given them, and events "
                 f"for the same studies and study sizes as the data ({esc(shapes)}); "
                 f"then fitted the simulated table as <code>bayes-dress fit</code> "
                 f"would.</p>")
    parts.append(folded(str(table(
        ["quantity", "verdict", "replications", "failed diagnostics", "band p",
         "tails p", "mean PIT", "note"], _verdict_rows(saved, many),
        numeric=(2, 3, 4, 5, 6))), len(verdicts), "quantities"))
    failed = int(status.get("diagnostics failed") or 0)
    not_fitted = int(status.get("not fitted") or 0)
    checks = diagnostics.get("failed_checks") or {}
    fits = [f"{count(diagnostics.get('fits'))} fits in "
            f"{num(diagnostics.get('wall_time'), 1)} s "
            f"({num(diagnostics.get('fits_per_second'), 1)} fits per second, "
            f"{esc(diagnostics.get('executor'))})."]
    if failed:
        worst = ", ".join(f"{k} ({v})" for k, v in sorted(checks.items(),
                                                           key=lambda kv: -int(kv[1])))
        fits.append(f"{count(failed)} fits failed a diagnostic check ({esc(worst)}); they "
                    "are included in the verdicts: leaving them out would test the engine "
                    "only where it works. ranks.csv marks them (status).")
    if not_fitted:
        fits.append(f"{count(not_fitted)} replications could not be fitted and have no "
                    "rank (diagnostics.json says why).")
    parts.append(f'<p class="note">{" ".join(str(f) for f in fits)}</p>')
    method = esc(diagnostics.get("rank_method", ""))
    verdict_level = m.get("verdict_level")
    parts.append(
        f'<p class="note"><strong>Method.</strong> Simulation-based calibration (Talts et '
        f"al. 2018; Modrák et al. 2023). Position of each true value: {method}. Verdict: "
        f"the ECDF of the replications' PIT values must stay inside the simultaneous band "
        f"of Säilynoja, Bürkner and Vehtari (2022) and its smallest and largest values "
        f"must not be too extreme for uniform values, each test at "
        f"{num(verdict_level, 4)} per quantity (Bonferroni over two tests per quantity), "
        f"so that a calibrated engine is called calibrated on every quantity with "
        f"probability at least {num(level, 2)}. Band p and tails p are the two tests' "
        f"p-values; a mean PIT below 0.5 means true values lie low in their posteriors.</p>")
    notes = [str(n) for n in m.get("notes") or []]
    if notes:
        parts.append(f'<p class="small"><strong>Notes:</strong></p>{bullets(notes)}')
    entries = saved.plots
    parts.append(figures(embed_plots(saved.path, entries, saved.plot_notes)))
    return "\n".join(parts)
