"""The report's design section, rendered from a design directory
(:func:`bayes_dress.rundir.design_read.load_design`).

It never shows an ESS without the verdict on whether the MAP prior carries usable
information: the verdict paragraph comes first, and ESS values that the ESS code flags
as unreliable are marked so in the table. Every value read from the directory is
HTML-escaped (through :mod:`bayes_dress.report.sections`' helpers).
"""

from __future__ import annotations

import math

import pandas as pd

from bayes_dress.report.html import (
    Markup,
    bullets,
    esc,
    figures,
    folded,
    num,
    outcome_heading,
    table,
    truthy,
)
from bayes_dress.report.images import embed_plots

LEVEL_WORDS = {"none": "NO USABLE INFORMATION", "weak": "LITTLE INFORMATION",
               "informative": "INFORMATIVE"}
PRIOR_NAMES = {"exact": "exact MAP (numerical integration)", "draws": "NUTS draws",
               "mixture": "Beta mixture (RBesT automixfit)", "robust": "robust prior (the "
               "trial's)"}


def _value(v) -> float | None:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _ess_cell(value, reliable) -> Markup:
    v = _value(value)
    if v is None:
        return Markup("undefined")
    if truthy(reliable) is False:
        # A negative or astronomically large ESS is no number of patients.
        if v < 0 or abs(v) >= 1e4:
            return Markup("undefined <em>(no clear peak)</em>")
        return Markup(f"{num(v, 2)} <em>(unreliable)</em>")
    return num(v, 2)


def _verdict_block(summary: dict, ess: pd.DataFrame | None) -> str:
    outcome = str(summary.get("outcome", ""))
    level = str(summary.get("level", ""))
    parts = [f'<div class="headline-verdicts"><p><strong>{outcome_heading(outcome)}: MAP '
             f"prior – {esc(LEVEL_WORDS.get(level, level.upper()))}</strong> "
             f"(ESS verdict “{esc(level)}”, judged on the "
             f"{esc(summary.get('basis', ''))} MAP).</p>"
             f"<p>{esc(summary.get('message', ''))}</p></div>"]
    if ess is not None and not ess.empty:
        rows = ess[ess["outcome"] == outcome]
        priors = list(dict.fromkeys(rows["prior"]))
        body = []
        for method in dict.fromkeys(rows["method"]):
            cells: list[object] = [method]
            for prior in priors:
                hit = rows[(rows["prior"] == prior) & (rows["method"] == method)]
                cells.append(_ess_cell(hit["value"].iloc[0], hit["reliable"].iloc[0])
                             if not hit.empty else "–")
            body.append(cells)
        parts.append("<p class=\"note\">Effective sample size (patients) by method, to be "
                     "read only with the verdict above: “unreliable” marks a value the ESS "
                     "code itself flags (undefined ELIR, no clear peak, mass piling at a "
                     "bound, several modes).</p>")
        parts.append(table(["method", *(PRIOR_NAMES.get(p, p) for p in priors)], body,
                           numeric=range(1, len(priors) + 1)))
    agreement = summary.get("agreement")
    if isinstance(agreement, dict) and agreement.get("text"):
        parts.append(f'<p class="note">{esc(agreement["text"])}.</p>')
    return "\n".join(parts)


def _map_table(frame: pd.DataFrame | None) -> str:
    if frame is None or frame.empty:
        return ""
    rows = []
    for _, r in frame.iterrows():
        rows.append([r["outcome"], PRIOR_NAMES.get(r["prior"], r["prior"]), num(r["mean"]),
                     num(r["sd"]), Markup(f"{num(r['q2.5'])} to {num(r['q97.5'])}"),
                     "" if _value(r.get("components")) is None else
                     Markup(f"{int(float(r['components']))}"),
                     "" if _value(r.get("ks")) is None else num(r["ks"], 4)])
    return table(["outcome", "prior", "mean", "SD", "95% interval", "components",
                  "CDF error"], rows, numeric=(2, 3, 5, 6))


def _trial(design) -> str:
    s = design.summary
    t = s.get("trial") or {}
    parts = [f"<h3>Single-arm trial</h3><p><strong>{esc(t.get('n'))} patients, success if "
             f"{esc(t.get('rule'))}</strong>: {esc(t.get('boundary'))}. P(success) is "
             f"{num(t.get('type1'))} at the null rate {num(t.get('null'), 2)} (type I error) "
             f"and {num(t.get('power'))} at the alternative {num(t.get('alternative'), 2)} "
             f"(power); with a uniform prior instead (no borrowing) "
             f"{num(t.get('type1_uniform'))} and {num(t.get('power_uniform'))}.</p>"]
    size = t.get("sample_size") or {}
    if size.get("text"):
        parts.append(f"<p>Sample size for type I error ≤ {num(t.get('alpha'), 2)} and power "
                     f"≥ {num(t.get('target_power'), 2)}: {esc(size['text'])}.</p>")
    bounds = design.table("boundaries.csv")
    if bounds is not None and not bounds.empty:
        rows = [[r["prior"], r["boundary"], num(r["type1"]), num(r["power"])]
                for _, r in bounds.iterrows()]
        parts.append(table(["prior", "decision boundary", "P(success) at null",
                            "P(success) at alternative"], rows, numeric=(2, 3)))
    approx = s.get("approximation")
    if isinstance(approx, dict):
        if approx.get("flags"):
            parts.append('<div class="banner warn">The Beta-mixture approximation of the MAP '
                         f"changes what the design concludes:{bullets(approx['flags'])}"
                         f"Exact MAP: {esc(approx.get('boundary_exact'))}; mixture: "
                         f"{esc(approx.get('boundary_mixture'))}.</div>")
        else:
            parts.append(f'<p class="note">The mixture approximation does not change the '
                         f"conclusions: CDFs within {num(approx.get('cdf_max_diff'), 3)}, "
                         f"operating characteristics within "
                         f"{num(approx.get('oc_max_diff'), 3)}.</p>")
    return "\n".join(parts)


def _two_endpoint(summary: dict) -> str:
    e = summary.get("two_endpoint")
    if not isinstance(e, dict):
        return ""
    t = summary.get("trial") or {}
    return (f"<h3>Two-endpoint rule</h3><p>Success needs the efficacy rule AND "
            f"{esc(e.get('rule'))} on {outcome_heading(str(e.get('outcome', '')))}: "
            f"{esc(e.get('boundary'))}. The safety rule passes with probability "
            f"{num(e.get('p_safety_acceptable'))} at an acceptable rate "
            f"{num(e.get('acceptable'), 2)} and {num(e.get('p_safety_unacceptable'))} at an "
            f"unacceptable {num(e.get('unacceptable'), 2)}; both rules together: "
            f"{num(e.get('p_both_alternative_acceptable'))} at response "
            f"{num(t.get('alternative'), 2)} with SAE {num(e.get('acceptable'), 2)}, "
            f"{num(e.get('p_both_null_acceptable'))} at response {num(t.get('null'), 2)}. "
            "The two counts are taken as independent given the rates.</p>")


def _two_arm(design) -> str:
    frame = design.table("two_arm.csv")
    a = design.summary.get("two_arm")
    if frame is None or frame.empty or not isinstance(a, dict):
        return ""
    rows = [[r["design"], Markup(f"{int(r['n_treatment'])}:{int(r['n_control'])}"),
             num(r["type1_at_control_mean"]), num(r["type1_max"]),
             num(r["delta_for_power"]) if _value(r["delta_for_power"]) is not None
             else "not reached"] for _, r in frame.iterrows()]
    return (f"<h3>Two-arm trial</h3><p>{esc(a.get('rule'))}, the MAP as the control prior; "
            f"power at a control rate of {num(a.get('control_mean'))} (the MAP mean).</p>"
            + table(["design", "treatment:control", "type I error at the MAP mean",
                     "largest type I error", f"δ for power {num(a.get('target_power'), 2)}"],
                    rows, numeric=(2, 3, 4)))


def _sensitivity(design) -> str:
    s = design.summary.get("sensitivity")
    if not isinstance(s, dict):
        return ('<h3>Sensitivity</h3><p class="note">The design was not redone across '
                "sensitivity scenarios (bayes-dress design --sensitivity does).</p>")
    changed = bool(s.get("boundary_changed")) or bool(s.get("level_changed"))
    verdicts = [str(v) for v in s.get("verdicts") or []]
    cls = "banner warn" if changed else "ok-line"
    parts = [f"<h3>Sensitivity</h3><div class=\"{cls}\">{bullets(verdicts)}</div>"]
    for note in s.get("notes") or []:
        parts.append(f'<p class="note">{esc(note)}</p>')
    frame = design.table("scenarios.csv")
    if frame is not None and not frame.empty:
        rows = []
        for _, r in frame.iterrows():
            ok = str(r.get("status")) == "ok"
            rows.append([r["scenario"], r["label"], r["status"],
                         Markup(f"{num(r['mean'])} ({num(r['q2.5'])} to {num(r['q97.5'])})")
                         if ok else "–",
                         r["ess_level"] if ok else "–",
                         num(r["ess_moment"], 2) if ok else "–",
                         r["boundary"] if ok else r.get("note", ""),
                         num(r["type1"]) if ok else "–", num(r["power"]) if ok else "–"])
        classes = ["warn" if truthy(r.get("boundary_changed")) or truthy(r.get("level_changed"))
                   else "" for _, r in frame.iterrows()]
        html = table(["scenario", "label", "status", "MAP mean (95%)", "ESS class",
                      "moment ESS", "decision boundary", "type I error", "power"], rows,
                     numeric=(3, 5, 7, 8), row_classes=classes)
        parts.append(folded(html, len(rows), "scenarios"))
    return "\n".join(parts)


def design_section(design, *, run=None) -> str:
    """The body of the report's design section for a loaded design directory (a
    :class:`~bayes_dress.rundir.design_read.SavedDesign`), as HTML; the report wraps it
    (``sections._section("design", ...)``), numbered with the other sections.

    ``run`` (a SavedRun, optional): the report's run; a banner says so when the design
    was made from another run (its manifest's SHA-256 differs).
    """
    s = design.summary
    parts = [f"<p>From <code>{esc(design.path.name)}</code> (bayes-dress design): the MAP "
             "prior of the rate in a new study, its Beta-mixture approximation and robust "
             "version, and the trial it implies. Config: "
             f"{esc(design.manifest.get('config_source', '?'))}.</p>"]
    if run is not None and not design.run_matches(run.path):
        parts.append('<div class="banner warn" role="alert">THIS DESIGN WAS MADE FROM '
                     "ANOTHER RUN: the run's manifest differs from the one the design "
                     f"recorded (design's run: {esc(design.run_record.get('path', '?'))}).</div>")
    ess = design.table("ess.csv")
    for verdict in s.get("verdicts") or []:
        if isinstance(verdict, dict):
            parts.append(_verdict_block(verdict, ess))
    parts.append("<h3>MAP prior</h3>" + _map_table(design.table("map_summary.csv")))
    parts.append(_trial(design))
    parts.append(_two_endpoint(s))
    parts.append(_two_arm(design))
    parts.append(_sensitivity(design))
    notes = [str(n) for n in s.get("notes") or []]
    if notes:
        parts.append(f'<div class="note">Notes:{bullets(notes)}</div>')
    plots = figures(embed_plots(design.path, *design.plots))
    if plots:
        parts.append("<h3>Design plots</h3>" + plots)
    run_record = design.run_record
    parts.append(f'<p class="small">Design of run <code>{esc(run_record.get("path", "?"))}'
                 f"</code> (its manifest's SHA-256 "
                 f"<code>{esc(str(run_record.get('manifest_sha256', ''))[:16])}…</code>), "
                 f"created {esc(design.manifest.get('created', '?'))}.</p>")
    return "\n".join(p for p in parts if p)
