"""The sections of ``report.html``, in reading order, as HTML strings.

Every value that comes from a file goes through :func:`esc` (or a number formatter);
only :class:`Markup` strings, built here, are inserted as HTML.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
import shlex
from collections.abc import Iterable, Sequence
from importlib import resources

import pandas as pd

from bayes_dress.errors import SpecError
from bayes_dress.labels import outcome_label, quantity_label
from bayes_dress.report.html import (
    Markup,
    _float,
    bullets,
    count,
    esc,
    figures,
    folded,
    num,
    outcome_heading,
    pct,
    points,
    pretty_equation,
    table,
    truthy,
    yes_no,
)
from bayes_dress.report.images import embed_plots
from bayes_dress.rundir.read import SavedRun as RunFiles
from bayes_dress.rundir.read import SavedSweep as SensitivityFiles
from bayes_dress.spec.models import get_model_spec

HEADLINE = ("mean_rate", "sd_rates", "theta_new")
SECTIONS = (("headline", "Headline"), ("diagnostics", "Diagnostics"),
            ("data", "Studies and data"), ("models", "Model and priors"),
            ("benefit_risk", "Benefit and risk"), ("plots", "Plots"),
            ("posterior", "Posterior summary"), ("sensitivity", "Sensitivity"),
            ("design", "Designing the next trial"), ("limitations", "Limitations"),
            ("reproducibility", "Reproducibility"))
#: Sections present only when the run (or the directories given) has something for them.
OPTIONAL_SECTIONS = ("benefit_risk", "design")


def outcomes_of(run: RunFiles) -> list[str]:
    """Outcomes in the order of the run's analyses."""
    return list(dict.fromkeys(run.outcomes))


def notes_of(run: RunFiles, outcome: str) -> list[str]:
    """The data notes of the analysis of ``outcome``."""
    for meta in (run.manifest.get("analyses") or {}).values():
        if outcome in (meta.get("outcomes") or ()):
            return [str(n) for n in meta.get("notes") or []]
    return []


def counts_of(run: RunFiles, outcome: str) -> list[tuple[str, int, int]]:
    rows = run.data_used[run.data_used["outcome"] == outcome]
    return [(r.study, int(r.events), int(r.total)) for r in rows.itertuples()]


def population_row(run: RunFiles, outcome: str, parameter: str) -> pd.Series | None:
    s = run.summary
    rows = s[(s["outcome"] == outcome) & (s["parameter"] == parameter) & (s["study"] == "")]
    return None if rows.empty else rows.iloc[0]


def _interval(row: pd.Series, fmt=num, lo: str = "q2.5", hi: str = "q97.5") -> Markup:
    return Markup(f"{fmt(row[lo])} to {fmt(row[hi])}")


def _section(key: str, body: str) -> str:
    """A section; its number is filled in by :func:`render` from the sections present
    (the placeholder holds '<', which no escaped value from a file can contain)."""
    title = dict(SECTIONS)[key]
    return (f'<section id="{key}"><h2><<N:{key}>>. {esc(title)}</h2>\n{body}\n'
            "</section>\n")


# --- banners ------------------------------------------------------------------------------

def check_result(passed: object, value: object = None, *, has_value: bool = True) -> str:
    """PASS, FAIL, or "not measured": ``passed`` is None, or a passed check has no value
    (null in diagnostics.json: e.g. the grid error of a sweep's non-primary exact fits,
    or no reference engine for the model). Only FAIL counts as failed."""
    result = {True: "PASS", False: "FAIL"}.get(truthy(passed), "not measured")
    v = _float(value)
    unmeasured = has_value and (v is None or math.isnan(v))
    return "not measured" if result == "PASS" and unmeasured else result


def failed_checks(run: RunFiles) -> list[str]:
    failed = []
    for outcome, entry in (run.diagnostics.get("analyses") or {}).items():
        entry = entry or {}  # null: nothing recorded
        for check in entry.get("checks") or []:
            if truthy(check.get("passed")) is False:
                failed.append(f"{outcome}: {check.get('detail') or check.get('check')}")
        if truthy(entry.get("passed")) is False and not any(f.startswith(f"{outcome}:")
                                                    for f in failed):
            failed.append(f"{outcome}: diagnostics failed")
    if truthy(run.diagnostics.get("passed")) is False and not failed:
        failed.append("diagnostics.json says the run failed its checks")
    return failed


def problem_scenarios(sens: SensitivityFiles) -> pd.DataFrame:
    frame = sens.sensitivity
    bad = frame[frame["status"].str.strip().str.lower() != "ok"]
    keep = [c for c in ("scenario", "label", "outcome", "status", "problems") if c in bad]
    return bad[keep].drop_duplicates()


def sweep_mismatches(run: RunFiles, sens: SensitivityFiles) -> list[str]:
    """How the sweep's primary analysis differs from this run (data file, model)."""
    if not isinstance(sens.manifest, dict):
        return []
    found = []
    run_sha = (run.manifest.get("data") or {}).get("sha256")
    sweep_sha = (sens.manifest.get("data") or {}).get("sha256")
    if run_sha and sweep_sha and run_sha != sweep_sha:
        found.append(f"data: the sweep used a different data file (sha256 {sweep_sha[:12]}…, "
                     f"this run {run_sha[:12]}…)")
    run_model = (run.manifest.get("config") or {}).get("model")
    sweep_model = (sens.manifest.get("primary_config") or {}).get("model")
    if run_model and sweep_model and run_model != sweep_model:
        found.append(f"model: the sweep's primary analysis is {sweep_model}, this run is "
                     f"{run_model}")
    return found


#: Sampler and data settings that make a sweep's primary fit the run's own fit.
SAME_FIT_KEYS = ("model", "engine", "priors", "definitions", "exclude")


def _primary_probabilities(sens: SensitivityFiles) -> dict[tuple, tuple[float, float]]:
    frame = sens.probabilities
    primary = frame[frame["primary"].map(truthy).fillna(False).astype(bool)]
    return {(r["outcome"], r["quantity"], round(float(r["threshold"]), 9)):
            (_float(r["probability"]), _float(r.get("mcse")))
            for _, r in primary.iterrows()}


def run_probability(run: RunFiles, outcome: str, quantity: str, threshold: float
                    ) -> tuple[float, float] | None:
    p = run.probabilities
    rows = p[(p["outcome"] == outcome) & (p["quantity"] == quantity)
             & ((p["threshold"] - threshold).abs() < 1e-9)]
    if rows.empty:
        return None
    row = rows.iloc[0]
    return _float(row["probability"]), _float(row.get("mcse"))


def primary_agreement(run: RunFiles, sens: SensitivityFiles) -> tuple[bool | None, str]:
    """Whether the sweep's primary analysis is this run's fit (identical numbers), and a
    sentence saying so, or saying that it is the sweep's own refit and how it differs."""
    shared = []
    for (outcome, quantity, threshold), (p, _) in _primary_probabilities(sens).items():
        own = run_probability(run, outcome, quantity, threshold)
        if own is not None and p is not None:
            shared.append(abs(own[0] - p) <= 1e-9)
    if not shared:
        return None, ""
    if all(shared):
        return True, ("The sweep's primary analysis is this run's fit: the same data, "
                      "model, priors and sampler settings give identical numbers.")
    run_config = run.manifest.get("config") or {}
    sweep_config = sens.manifest.get("primary_config") or {}
    differ = [k for k in SAME_FIT_KEYS if run_config.get(k) != sweep_config.get(k)]
    run_sampler, sweep_sampler = (run_config.get("sampler") or {},
                                  sweep_config.get("sampler") or {})
    differ += [f"sampler {k}" for k in ("seed", "draws", "tune", "chains", "target_accept",
                                        "name") if run_sampler.get(k) != sweep_sampler.get(k)]
    why = (f" (settings that differ: {', '.join(differ)})" if differ else
           " (the same settings, fitted by an earlier version or on another machine)")
    return False, ("The sweep refitted the primary analysis" + why + ": its probabilities "
                   "are a second Monte Carlo estimate of the run's and differ from them by "
                   "about their Monte Carlo error, shown beside each.")


def banners(run: RunFiles, sens: SensitivityFiles | None) -> str:
    parts = []
    failed = failed_checks(run)
    if failed:
        parts.append(f'<div class="banner" role="alert">DIAGNOSTICS FAILED: the estimates '
                     f'below may be unreliable (<a href="#diagnostics">details</a>).'
                     f"{bullets(failed)}</div>")
    if sens is not None and (mismatch := sweep_mismatches(run, sens)):
        parts.append('<div class="banner warn" role="alert">THE SENSITIVITY SWEEP DOES NOT '
                     "MATCH THIS RUN: its primary analysis is not the analysis reported here, "
                     "so its verdicts may not apply to these estimates (<a "
                     f'href="#sensitivity">details</a>).{bullets(mismatch)}</div>')
    if sens is not None:
        bad = problem_scenarios(sens)
        if not bad.empty:
            items = [f"{r.get('scenario', '')} ({r.get('outcome', '')}): {r.get('status', '')}"
                     + (f" – {r['problems']}" if r.get("problems") else "")
                     for _, r in bad.iterrows()]
            parts.append('<div class="banner warn" role="alert">SENSITIVITY SCENARIOS WITH '
                         f'PROBLEMS: {len(items)} scenario fit(s) did not finish cleanly (<a '
                         f'href="#sensitivity">details</a>).{bullets(items)}</div>')
    return "\n".join(parts)


# --- 1. headline --------------------------------------------------------------------------

def scenario_list(value: object) -> list[str]:
    """A "; "-joined list of scenarios from robustness.csv ("S12 label; S30 label")."""
    text = "" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else str(value)
    return [item.strip() for item in text.split(";") if item.strip()]


def _crossings(row: pd.Series) -> dict[float, list[str]]:
    return {level: scenario_list(row.get(f"crosses_{level:g}")) for level in (0.5, 0.95)}


def not_robust(row: pd.Series) -> bool:
    """Whether some scenario moves this probability across 0.5 or 0.95."""
    return (any(_crossings(row).values())
            or str(row.get("verdict", "")).strip().lower().startswith("not robust"))


def _event(row: pd.Series) -> Markup:
    """The event of a tail probability in words, e.g. "P(new-study rate > 50%)"."""
    quantity = quantity_label(row["quantity"], short=True)
    return Markup(f"P({esc(quantity)} &gt; {pct(row['threshold'])})")


def robustness_sentence(row: pd.Series, run: RunFiles | None = None) -> Markup:
    """One verdict of robustness.csv in plain words; with ``run``, the run's own value
    beside the sweep's when the sweep refitted the primary analysis."""
    event = _event(row)
    n = _float(row.get("n_scenarios"))
    n_text = count(n) if n is not None and math.isfinite(n) else "?"
    p0 = _float(row.get("probability_primary"))
    not_counted = scenario_list(row.get("not_counted"))
    tail = (f" {len(not_counted)} scenario(s) not counted (failed diagnostics or not "
            "fitted)." if not_counted else "")
    if p0 is None or math.isnan(p0) or not n:
        return Markup(f"{event}: {esc(row.get('verdict', ''))}.{tail}")
    crossings = _crossings(row)
    moved = [f"across {pct(level)} in {len(names)} of {n_text} scenarios"
             for level, names in crossings.items() if names]
    where = "in the primary analysis"
    if run is not None:
        own = run_probability(run, row["outcome"], row["quantity"], float(row["threshold"]))
        if own is not None and abs(own[0] - p0) > 1e-9:
            where = (f"in the sweep's refit of the primary analysis (this run: "
                     f"{num(own[0], 2)} ± {num(own[1], 3)}, the same quantity estimated "
                     "from another set of draws)")
    if moved or not_robust(row):
        what = " and ".join(moved) or esc(row.get("verdict", ""))
        return Markup(f'<span class="verdict-bad">Not robust:</span> {event} is '
                      f"{num(p0, 2)} {where} and moves {what} (range "
                      f"{num(row.get('probability_min'), 2)} to "
                      f"{num(row.get('probability_max'), 2)}).{tail}")
    return Markup(f"Robust: {event} = {num(p0, 2)} {where}, and stays on the same side of "
                  f"50% and 95% in all {n_text} scenarios.{tail}")


def headline(run: RunFiles, sens: SensitivityFiles | None = None) -> str:
    parts = ['<p class="note">Rates are posterior medians with 95% credible intervals. The '
             'pooled mean is never the whole story: the spread between studies and the '
             'interval for a new study say how far the next study could be from it.</p>']
    for outcome in outcomes_of(run):
        counts = counts_of(run, outcome)
        data = ", ".join(f"{s} {e}/{t}" for s, e, t in counts)
        events, patients = sum(c[1] for c in counts), sum(c[2] for c in counts)
        text = [f"Data: {len(counts)} {'study' if len(counts) == 1 else 'studies'} "
                f"({esc(data)}; {events} events in {patients} patients)."]
        rows = {name: population_row(run, outcome, name) for name in HEADLINE}
        mean, sd, new = rows["mean_rate"], rows["sd_rates"], rows["theta_new"]
        if mean is not None:
            text.append(f"Pooled mean rate <strong>{pct(mean['median'])}</strong> (95% "
                        f"interval {_interval(mean, pct)}).")
        if sd is not None:
            text.append(f"Between-study SD of rates <strong>{points(sd['median'])} "
                        f"percentage points</strong> (95% interval {_interval(sd, points)}):"
                        " how much the true rates differ from study to study.")
        else:
            text.append("The between-study SD of rates is not reported by this model.")
        if new is not None:
            text.append(f"The rate in a new study (predictive) is <strong>"
                        f"{pct(new['median'])}</strong>, 95% interval {_interval(new, pct)}.")
        text.append(prior_statement(run, outcome))
        verdicts = ""
        if sens is not None:
            rob = sens.robustness[sens.robustness["outcome"] == outcome]
            verdicts = ('<p class="headline-verdicts">Sensitivity sweep (<a '
                        'href="#sensitivity">details</a>): '
                        + (" ".join(robustness_sentence(r, run) for _, r in rob.iterrows())
                           if not rob.empty else "no verdict for this outcome.") + "</p>")
        parts.append(f'<h3>{outcome_heading(outcome)}</h3><p class="headline">'
                     f'{" ".join(text)}</p>{verdicts}')
    return _section("headline", "\n".join(parts))


def prior_statement(run: RunFiles, outcome: str) -> str:
    s = run.summary[(run.summary["outcome"] == outcome) & (run.summary["study"] == "")]
    # kappa and m restate phi and mean_rate (same interval mass): not listed twice.
    flags = [(r["parameter"], truthy(r["prior_dominated"]), r.get("prior_mass_in_ci95"))
             for _, r in s.iterrows() if r["parameter"] not in ("kappa", "m")]
    if flags and all(f is None for _, f, _ in flags):
        return ("Prior dominance was not measured: a prior is improper, so there are no "
                "prior draws.")
    dominated = [(p, m) for p, f, m in flags if f]
    if not dominated:
        return "None of the population quantities is prior-dominated."
    names = Markup(", ".join(f"{esc(quantity_label(p))} ({pct(m)} of the prior's mass in "
                             "its 95% interval)" for p, m in dominated))
    return (f'<span class="prior-flag">Prior-dominated:</span> {names}. For '
            f'{"this quantity" if len(dominated) == 1 else "these quantities"} the data '
            "cannot be told apart from the prior: the answer mostly restates the prior "
            "assumption.")


# --- 2. diagnostics -----------------------------------------------------------------------

def diagnostics(run: RunFiles) -> str:
    outcomes = run.diagnostics.get("analyses") or {}
    failed = failed_checks(run)
    parts = [f'<p class="{"banner" if failed else "ok-line"}">'
             f'{"FAIL: " + str(len(failed)) + " check(s) failed." if failed else
                "PASS: every check passed."}</p>']
    for outcome, entry in outcomes.items():
        entry = entry or {}  # null: nothing recorded
        checks = entry.get("checks") or []
        classes = ["fail" if truthy(c.get("passed")) is False else "" for c in checks]
        # A remedy column only when some check failed: passing checks need no remedy.
        remedies = "fail" in classes
        rows = []
        for c, cls in zip(checks, classes, strict=True):
            row = [c.get("check", ""), check_result(c.get("passed"), c.get("value")),
                   num(c.get("value")), num(c.get("threshold")), c.get("detail", "")]
            if remedies:
                row.append(c.get("remedy", "") if cls == "fail" else "")
            rows.append(row)
        engine = entry.get("engine", "")
        details = entry.get("details") if isinstance(entry.get("details"), dict) else {}
        grid = details.get("engine") if isinstance(details.get("engine"), dict) else {}
        reference = (details.get("reference") if isinstance(details.get("reference"), dict)
                     else {})
        extra = ""
        if grid.get("grid_points"):
            extra = (f" Exact engine: {count(grid.get('grid_points'))} grid points per axis"
                     + (f", grid error {num(grid['grid_error'], 6)}"
                        if grid.get("grid_error") is not None else "") + ".")
        if reference:
            extra += (f" Checked against the {esc(reference.get('engine', ''))} engine"
                      + (f" ({esc(reference['verdict'])})" if reference.get("verdict")
                         else "") + ".")
        parts.append(f"<h3>{outcome_heading(outcome)}</h3><p>Engine: {esc(engine)}. Overall: "
                     f"<strong>{check_result(entry.get('passed'), has_value=False)}</strong>."
                     f"{extra}"
                     "</p>")
        headers = ["check", "result", "value", "threshold", "detail",
                   *(["remedy"] if remedies else [])]
        parts.append(table(headers, rows, numeric=(2, 3), row_classes=classes))
    if not outcomes:
        parts.append('<p class="note">diagnostics.json lists no outcomes.</p>')
    return _section("diagnostics", "\n".join(parts))


# --- 3. data ------------------------------------------------------------------------------

def data_section(run: RunFiles) -> str:
    source = run.manifest.get("data") or {}
    du = run.data_used
    provenance = [c for c in ("quote", "location", "note")
                  if c in du.columns and du[c].astype(str).str.strip().ne("").any()]
    intro = (" Each count is shown with the sentence it was taken from and where it stands "
             "in the paper." if "quote" in provenance else "")
    parts = [f"<p>Data file: <code>{esc(source.get('path') or 'bundled table')}</code> "
             f"(sha256 <code>{esc(source.get('sha256', ''))}</code>).{intro}</p>"]
    headers = {"quote": "provenance quote", "location": "location",
               "note": "how the count was derived"}
    for outcome in outcomes_of(run):
        rows = []
        for _, r in du[du["outcome"] == outcome].iterrows():
            definition = r.get("definition", "")
            if truthy(r.get("primary")) and definition != "primary":
                definition = f"{definition} (primary)"
            rate = r["events"] / r["total"]  # a bayes-dress run has total > 0
            quote = r.get("quote", "")
            note = str(r.get("note", "") or "")
            bound = (" <strong>(lower bound)</strong>"
                     if re.search(r"\blower bound\b", note, re.IGNORECASE) else "")
            cells = {"quote": Markup(f'<span class="quote">“{esc(quote)}”</span>')
                     if quote else "", "location": r.get("location", ""),
                     "note": note_cell(note)}
            rows.append([r["study"], definition, Markup(f"{count(r['events'])}/"
                                                        f"{count(r['total'])}{bound}"),
                         pct(rate), *[cells[c] for c in provenance]])
        parts.append(f"<h3>{outcome_heading(outcome)}</h3>")
        parts.append(folded(table(["study", "definition", "events/total", "observed rate",
                                   *[headers[c] for c in provenance]], rows,
                                  numeric=(2, 3)), len(rows), "studies"))
        notes = notes_of(run, outcome)
        if notes:
            parts.append(folded(f'<p class="small"><strong>Data notes:</strong></p>'
                                f"{bullets(notes)}", len(notes), "data notes"))
    return _section("data", "\n".join(parts))




def note_cell(note: str, limit: int = 120) -> Markup:
    """A data note: whole when short, else its first sentence with the rest folded away."""
    note = note.strip()
    if len(note) <= limit:
        return esc(note)
    first = re.split(r"(?<=\.)\s", note, maxsplit=1)[0]
    if len(first) > limit:
        first = first[:limit].rsplit(" ", 1)[0] + " …"
    return Markup(f'<details class="note-cell"><summary>{esc(first)}</summary>{esc(note)}'
                  "</details>")


# --- 4. models and priors -----------------------------------------------------------------

def models_section(run: RunFiles) -> str:
    model = run.manifest.get("model") or {}
    name = model.get("name") or (run.manifest.get("config") or {}).get("model", "")
    try:
        spec = get_model_spec(name)
    except SpecError:
        spec = None  # a model this version does not know: show what the manifest recorded
    title = model.get("title") or (spec.title if spec else name)
    equations = model.get("equations") or (list(spec.equations) if spec else [])
    together = int(model.get("outcomes") or (spec.outcomes if spec else 1)) > 1
    parts = [f"<p><strong>{esc(title)}</strong> (<code>{esc(name)}</code>), "
             + ("for the outcomes together; study i has y<sub>ij</sub> events of outcome j "
                "among n<sub>ij</sub> patients.</p>" if together else
                "for each outcome separately; study i has y<sub>i</sub> events among "
                "n<sub>i</sub> patients.</p>"),
             '<div class="eq">' + "<br>".join(pretty_equation(e) for e in equations)
             + "</div>"]
    if spec is not None:
        parts.append(f"<p>{pretty_equation(spec.sampling)}</p><p>Heterogeneity: "
                     f"{pretty_equation(spec.heterogeneity_note)}</p>")
    rows = []
    for param, prior in (run.manifest.get("priors") or {}).items():
        ps = spec.parameters.get(param) if spec else None
        default = str(ps.default) if ps else ""
        used = Markup(f"<code>{esc(prior)}</code>" + (
            f" <strong>(changed from the default <code>{esc(default)}</code>)</strong>"
            if ps and str(prior) != default else ""))
        rows.append([pretty_equation(param), pretty_equation(ps.description) if ps else "",
                     used,
                     ps.rationale if ps else ""])
    parts.append("<h3>Priors used in this run, and why</h3>")
    parts.append(table(["parameter", "meaning", "prior", "rationale (for the default)"], rows))
    parts.append('<p class="note">Every reported quantity is derived from these: '
                 "mean_rate = E[θ], sd_rates = the between-study SD of rates, theta_new = "
                 "the rate of a new study drawn from the population (the predictive "
                 "distribution).</p>")
    return _section("models", "\n".join(parts))


# --- 5. plots -----------------------------------------------------------------------------

# --- 6. posterior summary -----------------------------------------------------------------

#: Quantities whose posterior mean may not exist (heavy right tail): no mean is shown.
HEAVY_TAILED = ("kappa",)


def _sampling(row: pd.Series) -> Markup:
    """ESS bulk / tail and R-hat in one cell; "–" when not sampled (exact engine)."""
    bulk, tail, rhat = (_float(row.get(k)) for k in ("ess_bulk", "ess_tail", "r_hat"))
    if all(v is None or math.isnan(v) for v in (bulk, tail, rhat)):
        return Markup("–")
    return Markup(f"{count(bulk)} / {count(tail)} · {num(rhat, 2)}")


def posterior_section(run: RunFiles) -> str:
    parts = ['<p class="note">All quantities, per outcome. ESS = effective sample size '
             "(bulk / tail), with R-hat; “–” for exact-engine fits, which do not sample. "
             "The mean of κ is not shown (“—”): its posterior is heavy-tailed and may have "
             "no mean. Prior mass = the prior probability of the posterior 95% interval; a "
             "quantity is prior-dominated when it is at least 0.75. Standard deviations, "
             "HDIs, Monte Carlo errors and prior intervals are in summary.csv.</p>"]
    s, p = run.summary, run.probabilities
    for outcome in outcomes_of(run):
        rows, classes = [], []
        for _, r in s[s["outcome"] == outcome].iterrows():
            dominated = truthy(r["prior_dominated"])
            rows.append([quantity_label(r["parameter"]), r["study"],
                         Markup("—") if r["parameter"] in HEAVY_TAILED else num(r["mean"]),
                         num(r["median"]), _interval(r), _sampling(r),
                         num(r.get("prior_mass_in_ci95"), 2), yes_no(dominated)])
            classes.append("flag" if dominated else "")
        parts.append(f"<h3>{outcome_heading(outcome)}</h3>")
        parts.append(folded(table(["quantity", "study", "mean", "median", "95% interval",
                                   "ESS · R-hat", "prior mass", "prior-dominated"], rows,
                                  numeric=range(2, 7), row_classes=classes), len(rows),
                            "quantities"))
        probs = p[p["outcome"] == outcome]
        if not probs.empty:
            thresholds = sorted(probs["threshold"].unique())
            prow = []
            for quantity, group in probs.groupby("quantity", sort=False):
                by = {t: g.iloc[0] for t, g in group.groupby("threshold")}
                prow.append([quantity_label(quantity), *[
                    Markup(f"{num(by[t]['probability'], 2)}"
                           + (f" ± {num(by[t]['mcse'], 3)}" if "mcse" in by[t] else ""))
                    if t in by else "–" for t in thresholds]])
            parts.append("<p><strong>Tail probabilities</strong> P(rate &gt; t) ± Monte "
                         "Carlo SE:</p>")
            parts.append(table(["quantity", *[f"t = {num(t, 2)}" for t in thresholds]],
                               prow, numeric=range(1, len(thresholds) + 1)))
    return _section("posterior", "\n".join(parts))


# --- 7. sensitivity -----------------------------------------------------------------------

def _estimate(r: pd.Series) -> Markup:
    dagger = " †" if truthy(r.get("prior_dominated")) else ""
    return Markup(f"{num(r['median'])} ({num(r['q2.5'])}–{num(r['q97.5'])}){dagger}")


def _scenario_cell(names: list[str], n: object) -> Markup:
    """A list of scenarios from robustness.csv: "none", or how many with the list folded."""
    if not names:
        return Markup("none")
    of = f" of {count(n)}" if _float(n) is not None and math.isfinite(_float(n)) else ""
    return Markup(f"<details><summary><strong>{len(names)}{of}</strong></summary>"
                  f"{bullets(names)}</details>")


def _scenario_id(entry: str, ids: Iterable[str]) -> str | None:
    """The scenario an entry of robustness.csv ("S12 label") names, if it is one of ids."""
    for sid in ids:
        if entry == sid or entry.startswith(f"{sid} "):
            return sid
    return None


def crossing_scenarios(rob: pd.DataFrame, ids: Sequence[str]) -> dict[tuple[str, str],
                                                                       list[str]]:
    """(outcome, scenario) -> the conclusions it changes, e.g. "P(…) across 50%"."""
    found: dict[tuple[str, str], list[str]] = {}
    for _, r in rob.iterrows():
        for level, names in _crossings(r).items():
            for entry in names:
                sid = _scenario_id(entry, ids)
                if sid is not None:
                    found.setdefault((r["outcome"], sid), []).append(
                        f"{_event(r)} across {pct(level)}")
    return found


def sensitivity_section(run: RunFiles, sens: SensitivityFiles | None) -> str:
    if sens is None:
        return _section("sensitivity", '<p class="note">No sensitivity sweep was given '
                        "(bayes-dress report RUN_DIR SENS_DIR adds one).</p>")
    frame = sens.sensitivity
    scenarios = list(dict.fromkeys(frame["scenario"]))
    parts = [f"<p>{len(scenarios)} scenarios from <code>{esc(sens.path.name)}</code>, each "
             "changing one choice (prior, model, definition or study) from the primary "
             "analysis.</p>"]
    mismatch = sweep_mismatches(run, sens)
    if mismatch:
        parts.append('<div class="banner warn">This sweep\'s primary analysis is not the '
                     f"run reported above:{bullets(mismatch)}</div>")
    else:
        _, sentence = primary_agreement(run, sens)
        if sentence:
            parts.append(f'<p class="note">{esc(sentence)}</p>')
    bad = problem_scenarios(sens)
    if not bad.empty:
        parts.append('<div class="banner warn"><p>Scenarios that did not finish cleanly '
                     '(status other than "ok"): their estimates are not to be trusted.</p>'
                     f"{table(list(bad.columns), bad.itertuples(index=False))}</div>")
    rob = sens.robustness
    parts.append("<h3>Are the conclusions robust?</h3><p>For each tail probability, its value "
                 "in the primary analysis, its range over the scenarios that passed their "
                 "diagnostics, and the scenarios that move it to the other side of 0.5 or "
                 "0.95 from the primary analysis (open a count to list them). Rows in bold "
                 "are <strong>not robust</strong>: some scenario changes the "
                 "conclusion.</p>")
    rows = []
    for _, r in rob.iterrows():
        crossings = _crossings(r)
        not_counted = scenario_list(r.get("not_counted"))
        verdict = str(r.get("verdict", ""))
        flagged = not_robust(r) and not verdict.lower().startswith("not robust")
        rows.append([
            outcome_label(r["outcome"]), _event(r),
            num(r["probability_primary"], 2),
            Markup(f"{num(r['probability_min'], 2)} to {num(r['probability_max'], 2)}"),
            Markup(f'<span class="small">min: {esc(r.get("min_scenario", ""))}<br>max: '
                   f'{esc(r.get("max_scenario", ""))}</span>'),
            _scenario_cell(crossings[0.5], r.get("n_scenarios")),
            _scenario_cell(crossings[0.95], r.get("n_scenarios")),
            bullets(not_counted) if not_counted else "none",
            Markup(f"{'<strong>NOT robust</strong>: ' if flagged else ''}"
                   f"{esc(verdict)}")])
    parts.append(table(
        ["outcome", "probability", "primary", "range", "range at", "crosses 0.5",
         "crosses 0.95", "not counted", "verdict"], rows, numeric=(2, 3),
        row_classes=["flag" if not_robust(r) else "" for _, r in rob.iterrows()]))
    changes = crossing_scenarios(rob, scenarios)
    parts.append("<h3>Estimates by scenario</h3><p class=note>Median (95% interval); † = "
                 "prior-dominated; rows in bold (‡) are scenarios that change a conclusion "
                 "of the primary analysis, listed under their name.</p>")
    for outcome in dict.fromkeys(frame["outcome"]):
        sub = frame[frame["outcome"] == outcome]
        quantities = list(dict.fromkeys(sub["quantity"]))
        rows, classes = [], []
        for scenario, group in sub.groupby("scenario", sort=False):
            first = group.iloc[0]
            what = "; ".join(f"{k}: {first[k]}" for k in ("varied", "model", "priors",
                                                          "definition", "excluded")
                             if k in first and str(first[k]).strip())
            label = first.get("label") or scenario
            primary = " (primary)" if truthy(first.get("primary")) else ""
            by = {q: g.iloc[0] for q, g in group.groupby("quantity")}
            status = first["status"]
            changed = changes.get((outcome, scenario), [])
            mark = (f'<br><span class="small">‡ changes: {"; ".join(changed)}</span>'
                    if changed else "")
            rows.append([Markup(f"<strong>{esc(label)}</strong>{primary}"
                                f"{' ‡' if changed else ''}<br>"
                                f'<span class="small">{esc(what)}</span>{mark}'),
                         count(first.get("n_studies")), status,
                         *[_estimate(by[q]) if q in by else "–" for q in quantities]])
            classes.append("fail" if str(status).strip().lower() != "ok"
                           else "flag" if changed else "")
        parts.append(f"<h4>{outcome_heading(outcome)}</h4>")
        parts.append(table(["scenario", "studies", "status",
                            *[quantity_label(q) for q in quantities]], rows,
                           numeric=(1,), row_classes=classes))
    if sens.psense is not None:
        ps = sens.psense
        parts.append("<h3>Power-scaling prior sensitivity</h3><p class=note>How much the "
                     "posterior moves when the prior or the likelihood is raised to a "
                     "power near 1; a diagnosis other than “-” flags prior sensitivity or "
                     "prior–data conflict.</p>")
        parts.append(table(list(ps.columns), ([num(v) if isinstance(v, float) else v
                                               for v in row] for row in
                                              ps.itertuples(index=False)),
                           row_classes=["" if str(d).strip() in ("", "-", "ok") else "flag"
                                        for d in ps["diagnosis"]]))
    else:
        parts.append('<p class="note">No psense.csv (power-scaling sensitivity) in the '
                     "sweep.</p>")
    parts.append(figures(embed_plots(sens.path, *sens.plots)))
    if sens.manifest is not None:
        parts.append("<details><summary>The sweep's manifest.json</summary><pre>"
                     f"{esc(json.dumps(sens.manifest, indent=2))}</pre></details>")
    return _section("sensitivity", "\n".join(parts))


# --- 8. limitations -----------------------------------------------------------------------

def _is_bundled(run: RunFiles) -> bool:
    """Whether the run used the bundled DRESS/IVIG table (by content, not by path)."""
    from bayes_dress.data.table import bundled_data_path

    try:
        bundled = bundled_data_path().read_bytes()
    except OSError:
        return False
    return hashlib.sha256(bundled).hexdigest() == (run.manifest.get("data") or {}).get("sha256")


def limitations(run: RunFiles, sens: SensitivityFiles | None) -> str:
    ks = {o: len(counts_of(run, o)) for o in outcomes_of(run)}
    k = min(ks.values(), default=0)
    totals = [t for o in ks for _, _, t in counts_of(run, o)]
    items = []
    if k <= 1:
        items.append("At least one outcome has a single study: nothing in the data says how "
                     "much studies differ, so the between-study spread and the new-study "
                     "rate are the prior's.")
    elif k <= 4:
        items.append(f"Only {k} studies for at least one outcome: the between-study spread "
                     f"(heterogeneity) is barely informed by {k} rates, so it, the new-study "
                     "rate and even the pooled mean depend on the prior. Read the "
                     "prior-dominated flags and the sensitivity sweep before the numbers.")
    elif k < 10:
        items.append(f"{k} studies: heterogeneity is estimated, but imprecisely; its prior "
                     "still matters.")
    else:
        items.append(f"{k} or more studies per outcome: heterogeneity is informed by the "
                     "data; check the prior-dominated flags all the same.")
    predictive = [o for o in ks if (row := population_row(run, o, "theta_new")) is not None
                  and truthy(row["prior_dominated"])]
    if predictive:
        items.append("The new-study (predictive) interval is mostly prior for: "
                     + ", ".join(outcome_label(o) for o in predictive) + ". It shows how "
                     "little is known about the next study's rate, not a property of the "
                     "treatment.")
    if totals and min(totals) < 30:
        n = min(totals)
        items.append(f"Small samples: the smallest study has {n} patients, so one patient "
                     f"moves its rate by {points(1 / n)} percentage points.")
    items.append("These are rates in treated patients, not comparisons with a control "
                 "group: they cannot show that the treatment caused them.")
    items.append("Pooling assumes the studies are exchangeable. Designs, populations, "
                 "co-treatments and outcome definitions that differ between studies make "
                 "the spread larger and the pooled mean harder to interpret; see the "
                 "definitions and notes in the study table.")
    if max(ks.values(), default=0) < 10:
        items.append("With fewer than 10 studies, publication bias and small-study effects "
                     "cannot be assessed.")
    if _is_bundled(run):
        items += [
            "Joly2012 (prospective, IVIG alone, 6 patients) was stopped early for safety; "
            "Sim2022 (retrospective, 18 patients) gave IVIG added to corticosteroids in "
            "steroid-hyporesponsive patients. The two rates differ in treatment, patient "
            "selection and design at once.",
            "The papers define success and severe adverse events differently (Joly: "
            "remission without corticosteroids, all severe events; Sim: remission on "
            "steroids plus IVIG, no all-cause count): see data/README.md and the notes "
            "above."]
    if failed_checks(run):
        items.append("Some diagnostics failed (see the banner at the top): rerun with more "
                     "draws or the exact engine before relying on the numbers.")
    if sens is None:
        items.append("No sensitivity sweep is included in this report.")
    return _section("limitations", str(bullets(items)))


# --- 9. reproducibility -------------------------------------------------------------------

def reproducibility(run: RunFiles, date: dt.date) -> str:
    m = run.manifest
    config = m.get("config") or {}
    sampler = config.get("sampler") or {}
    command = m.get("command")
    rows = [
        ("run created", m.get("created", "")),
        ("report written", date.isoformat()),
        ("command", Markup(f"<code>{esc(shlex.join(map(str, command)))}</code>")
         if isinstance(command, list) else command or ""),
        ("engine", m.get("engine", "")),
        ("seed", m.get("seed", "")),
        ("model", (m.get("model") or {}).get("name", config.get("model", ""))),
        ("priors", "; ".join(f"{k} ~ {v}" for k, v in (m.get("priors") or {}).items())),
        ("sampler", ", ".join(f"{k} {v}" for k, v in sampler.items() if v is not None)),
        ("definitions", "; ".join(f"{k}={v}" for k, v in
                                  (config.get("definitions") or {}).items()) or "primary"),
        ("excluded studies", ", ".join(config.get("exclude") or []) or "none"),
        ("data file", (m.get("data") or {}).get("path") or "bundled"),
        ("data sha256", Markup(f"<code>{esc((m.get('data') or {}).get('sha256', ''))}"
                               "</code>")),
        ("packages", ", ".join(f"{k} {v}" for k, v in (m.get("packages") or {}).items())),
        ("platform", ", ".join(str(v) for v in (m.get("platform") or {}).values())),
        ("wall time", f"{num(m.get('wall_time_seconds'), 1)} s"),
    ]
    body = [table(["item", "value"], rows),
            "<details><summary>manifest.json (raw)</summary>"
            f"<pre>{esc(json.dumps(m, indent=2))}</pre></details>"]
    return _section("reproducibility", "\n".join(body))


# --- the document -------------------------------------------------------------------------

def _rho_scenarios(sens: SensitivityFiles, event: str) -> tuple[list, float | None]:
    """(label, probability, status) of the sweep's scenarios that change the prior of
    rho, for the joint-probability event, and the primary's value."""
    varied = dict(zip(sens.sensitivity["scenario"], sens.sensitivity["varied"], strict=False))
    p = sens.probabilities
    rows = p[p["quantity"] == event]
    primary = rows[rows["primary"].map(truthy).fillna(False).astype(bool)]
    p0 = _float(primary["probability"].iloc[0]) if len(primary) else None
    found = [(r["label"], _float(r["probability"]), r["status"]) for _, r in rows.iterrows()
             if varied.get(r["scenario"]) == "correlation_prior"]
    return found, p0


def benefit_risk_section(run: RunFiles, sens: SensitivityFiles | None) -> str:
    """Benefit and risk together: the joint model, its table beside independence, the
    plots, what the data say of rho, and (with a sweep) its rho-prior scenarios."""
    br = run.benefit_risk
    if br is None or br.empty:
        return ""
    spec = run.manifest.get("benefit_risk") or {}
    correlated = br["correlation_modelled"].map(truthy).fillna(False).astype(bool).any()
    benefit, risk = spec.get("benefit", "success"), spec.get("risk", "severe_ae")
    parts = []
    if correlated:
        parts.append(f"<p>{outcome_heading(benefit)} and {outcome_heading(risk)} are modelled "
                     "together, with correlated study effects (the equations are under "
                     "<em>Model and priors</em>): a study with a higher success rate may have "
                     "a higher or a lower rate of severe adverse events, and rho says which "
                     "and how strongly. The correlation is between studies; the papers' "
                     "counts cannot say whether the patients who respond are those who "
                     "escape harm. Every joint probability is shown beside what "
                     "independence (rho = 0) would give.</p>")
    else:
        parts.append("<p>The two outcomes are fitted separately, so the joint statements "
                     "below take benefit and harm to be independent; the joint model "
                     "(<code>--model joint_logit_normal</code>) lets the data say whether "
                     "they are.</p>")
    statement = spec.get("statement")
    correlation = spec.get("correlation") if isinstance(spec.get("correlation"), dict) else {}
    if statement:
        parts.append(f'<p class="headline"><strong>{esc(statement)}</strong></p>')
    if correlation:
        parts.append(f"<p class=small>rho: posterior SD {num(correlation.get('posterior_sd'))} "
                     f"against the prior's {num(correlation.get('prior_sd'))} (ratio "
                     f"{pct(correlation.get('sd_ratio'))}); P(rho &lt; 0) = "
                     f"{num(correlation.get('p_negative'), 2)}.</p>")
    joint = br[br["kind"] == "joint"]
    rows = [[r["level"], r["event"], Markup(f"{num(r['probability'], 3)}"
                                            + (f" ± {num(r['mcse'], 3)}" if correlated
                                               else "")),
             num(r["independent"], 3)] for _, r in joint.iterrows()]
    parts.append("<h3>Joint probability</h3>")
    parts.append(table(["level", "event", "joint model" if correlated else "probability",
                        "if independent"], rows, numeric=(2, 3)))
    ncb = br[br["kind"] == "net_benefit"]
    ncb_rows = [[r["level"], num(r["weight"], 2),
                 Markup(f"{num(r['probability'], 3)}"
                        + (f" ± {num(r['mcse'], 3)}" if correlated else "")),
                 num(r["independent"], 3)] for _, r in ncb.iterrows()]
    parts.append("<h3>Net clinical benefit</h3><p class=note>P(p<sub>success</sub> − w · "
                 "p<sub>harm</sub> &gt; 0) for harm weights w (how many benefit events one "
                 "harm event is worth): the acceptability curve.</p>")
    parts.append(folded(table(["level", "harm weight w", "joint model" if correlated
                               else "probability", "if independent"], ncb_rows,
                              numeric=(1, 2, 3)), len(ncb_rows), "harm weights"))
    entries, _ = run.plots
    chosen = [e for e in entries if e.get("name") in ("benefit-risk",
                                                      "benefit-risk-acceptability")]
    parts.append(figures(embed_plots(run.path, chosen, [])))
    if sens is not None and len(joint):
        event = (f"P(new-study {benefit} > {num(spec.get('benefit_threshold'), 2)} and "
                 f"{risk} < {num(spec.get('risk_threshold'), 2)})")
        event_key = (f"P(new-study {benefit} > {spec.get('benefit_threshold'):g} and "
                     f"{risk} < {spec.get('risk_threshold'):g})")
        found, p0 = _rho_scenarios(sens, event_key)
        if found and p0 is not None:
            crossing = [label for label, p, status in found if p is not None
                        and str(status).strip() == "ok"
                        and any((p > level) != (p0 > level) for level in (0.5, 0.95))]
            parts.append(f"<h3>Across priors of rho (sensitivity sweep)</h3><p>{esc(event)}: "
                         f"{num(p0, 2)} in the primary analysis.</p>")
            parts.append(table(["scenario", "probability", "status"],
                               [[label, num(p, 3), status] for label, p, status in found],
                               numeric=(1,)))
            if crossing:
                parts.append('<p class="headline"><span class="verdict-bad">The data inform '
                             "mainly the sign of rho; this joint result depends on its "
                             "prior:</span> it moves across 0.5 or 0.95 under "
                             f"{esc('; '.join(crossing))}.</p>")
            else:
                parts.append("<p>It stays on the same side of 0.5 and 0.95 under every "
                             "prior of rho in the sweep.</p>")
    return _section("benefit_risk", "\n".join(parts))


def design_html(design, run: RunFiles) -> str:
    """The design section, when a design directory is given."""
    if design is None:
        return ""
    from bayes_dress.report.design_section import design_section

    return _section("design", design_section(design, run=run))


def render(run: RunFiles, sens: SensitivityFiles | None, *, title: str | None,
           date: dt.date, design=None) -> str:
    model = run.manifest.get("model") or {}
    title = title or f"Bayesian meta-analysis: {model.get('title') or 'report'}"
    outcomes = ", ".join(outcome_label(o) for o in outcomes_of(run))
    css = resources.files("bayes_dress.report").joinpath("report.css").read_text(encoding="utf-8")
    optional = {"benefit_risk": benefit_risk_section(run, sens),
                "design": design_html(design, run)}
    present = [(k, n) for k, n in SECTIONS if k not in OPTIONAL_SECTIONS or optional[k]]
    toc = "".join(f'<li><a href="#{key}">{esc(name)}</a></li>' for key, name in present)
    body = [
        f"<header><h1>{esc(title)}</h1><p class=meta>Outcomes: {esc(outcomes)} · report "
        f"date {date.isoformat()} · run directory “{esc(run.path.name)}”, created "
        f"{esc(run.manifest.get('created', '?'))} · engine {esc(run.manifest.get('engine'))}"
        "</p></header>",
        banners(run, sens),
        f'<nav class="toc"><ol>{toc}</ol></nav>',
        headline(run, sens), diagnostics(run), data_section(run), models_section(run),
        optional["benefit_risk"],
        _section("plots", figures(embed_plots(run.path, *run.plots))
                 or '<p class="note">No plots.</p>'),
        posterior_section(run), sensitivity_section(run, sens), optional["design"],
        limitations(run, sens), reproducibility(run, date),
        '<footer class="small">Written by bayes-dress. Self-contained: no scripts, no '
        "network resources.</footer>",
    ]
    numbers = {key: i for i, (key, _) in enumerate(present, start=1)}
    body = [re.sub(r"<<N:(\w+)>>", lambda m: str(numbers[m[1]]), part) for part in body]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>\n{css}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")
