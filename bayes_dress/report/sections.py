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
from dataclasses import dataclass, field
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
            ("calibration", "Calibration (simulation-based)"),
            ("design", "Designing the next trial"), ("limitations", "Limitations"),
            ("reproducibility", "Reproducibility"))
#: Sections present only when the run (or the directories given) has something for them.
OPTIONAL_SECTIONS = ("benefit_risk", "calibration", "design")


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


def _dict(value: object) -> dict:
    """``value`` when it is a JSON object, else empty: a sweep's manifest is checked for
    its files, not for the shape of every entry."""
    return value if isinstance(value, dict) else {}


def _primary_scenario(sens: SensitivityFiles) -> dict:
    """The manifest's entry of the sweep's primary scenario (its resolved priors)."""
    frame = sens.sensitivity
    ids = set(frame.loc[frame["primary"].map(truthy).fillna(False).astype(bool), "scenario"])
    scenarios = sens.manifest.get("scenarios") if isinstance(sens.manifest, dict) else None
    for scenario in scenarios if isinstance(scenarios, list) else ():
        if isinstance(scenario, dict) and scenario.get("id") in ids:
            return scenario
    return {}


def _differences(run: RunFiles, sens: SensitivityFiles) -> list[tuple[str, str]]:
    """How the sweep's primary analysis differs from this run's analysis, as (short, long)
    descriptions: data file, model, priors, outcome definitions, excluded studies: what
    makes it another analysis. Engine and sampler settings do not (that is a refit)."""
    if not isinstance(sens.manifest, dict):
        return []
    found = []
    run_sha = _dict(run.manifest.get("data")).get("sha256")
    sweep_sha = _dict(sens.manifest.get("data")).get("sha256")
    if run_sha and sweep_sha and run_sha != sweep_sha:
        found.append(("data file: not this run's",
                      f"data: the sweep used a different data file (sha256 "
                      f"{sweep_sha[:12]}…, this run {run_sha[:12]}…)"))
    differ = []  # (what, the sweep's, this run's)
    run_config = _dict(run.manifest.get("config"))
    sweep_config = _dict(sens.manifest.get("primary_config"))
    run_model, sweep_model = run_config.get("model"), sweep_config.get("model")
    if run_model and sweep_model and run_model != sweep_model:
        differ.append(("model", sweep_model, run_model))
    # Priors as each fit resolved them (defaults filled in), so that a prior given
    # explicitly as its default is no difference. Another model has other priors anyway.
    run_priors = _dict(run.manifest.get("priors"))
    sweep_priors = _dict(_primary_scenario(sens).get("priors"))
    if run_model == sweep_model and run_priors and sweep_priors:
        differ += [(f"prior of {k}", sweep_priors.get(k, "none"), run_priors.get(k, "none"))
                   for k in dict.fromkeys([*sweep_priors, *run_priors])
                   if run_priors.get(k) != sweep_priors.get(k)]
    # Definitions as the fits used them (data_used.csv, sensitivity.csv), not as the
    # command lines spelled them: a default named explicitly is no difference.
    frame = sens.sensitivity
    primary_rows = frame[frame["primary"].map(truthy).fillna(False).astype(bool)]
    used = run.data_used
    for outcome, rows in primary_rows.groupby("outcome", sort=False):
        ours = set(used.loc[used["outcome"] == outcome, "definition"].astype(str))
        theirs = {d for d in str(rows["definition"].iloc[0]).split("/")
                  if d.strip() and d != "nan"}
        if ours and theirs and ours != theirs:  # empty: an outcome one of them lacks
            differ.append((f"definition of {outcome}", "/".join(sorted(theirs)),
                           "/".join(sorted(ours))))
    run_out = sorted({str(s) for s in run_config.get("exclude") or ()})
    sweep_out = sorted({str(s) for s in sweep_config.get("exclude") or ()})
    # A study is matched without regard to case (--exclude joly2012): so are they here.
    if {s.casefold() for s in run_out} != {s.casefold() for s in sweep_out}:
        differ.append(("excluded studies", ", ".join(sweep_out) or "none",
                       ", ".join(run_out) or "none"))
    found += [(f"{what}: {theirs}, not this run's {ours}",
               f"{what}: the sweep's primary analysis has {theirs}, this run {ours}")
              for what, theirs, ours in differ]
    return found


def sweep_mismatches(run: RunFiles, sens: SensitivityFiles) -> list[str]:
    """How the sweep's primary analysis differs from this run (data file, model, priors,
    definitions, excluded studies): a different analysis, not a refit of this one."""
    return [long for _, long in _differences(run, sens)]


#: Sampler and data settings that make a sweep's primary fit the run's own fit.
SAME_FIT_KEYS = ("model", "engine", "priors", "definitions", "exclude")
#: Sampler settings that change NUTS draws (an exact fit computes, it does not sample).
SAMPLER_KEYS = ("seed", "draws", "tune", "chains", "target_accept", "name")


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


def with_error(p: object, mcse: object, engine: str | None, *, short: bool = False
               ) -> Markup:
    """A probability with its Monte Carlo error, worded by the engine that computed it.

    Parameters
    ----------
    p, mcse : object
        The probability and its Monte Carlo standard error as read from a CSV.
    engine : str or None
        The engine of the fit: ``"exact"`` values have no Monte Carlo error.
    short : bool
        "(exact)" instead of the sentence, for table cells and asides.

    Returns
    -------
    Markup
        "0.62 ± 0.018" (NUTS), "0.67 (exact)" or "0.67 (the exact engine's value, no
        Monte Carlo error)", or "0.20 (Monte Carlo error not stored)" when the file has
        none (e.g. a joint probability of two separate fits): none is invented.
    """
    if engine == "exact":
        return Markup(f"{num(p, 2)} " + ("(exact)" if short else
                                         "(the exact engine's value, no Monte Carlo error)"))
    error = _float(mcse)
    if error is None or math.isnan(error):
        return Markup(f"{num(p, 2)} (Monte Carlo error not stored)")
    return Markup(f"{num(p, 2)} ± {num(error, 3)}")


@dataclass(frozen=True)
class SweepPrimary:
    """The sweep's primary analysis as seen from the run, so that every value of it in
    the report says whose fit it is (issue 16).

    Attributes
    ----------
    relation : str
        ``"same"``: it is this run's fit (the probabilities they share are identical);
        ``"refit"``: the same analysis, fitted again by the sweep (other draws, another
        engine, or nothing shared to compare); ``"other"``: another analysis.
    differences : tuple of str
        For ``"other"``, what differs (data file, model, priors, definitions, excluded
        studies), each as "what: the sweep's, not this run's …".
    engine, run_engine : str or None
        The engines of the sweep's primary fit and of the run (None when not recorded).
    settings : tuple of str
        Settings of the two fits that differ (for a refit: why its numbers differ).
    run : SavedRun
        The run, for its own value of a quantity.
    values : dict
        The sweep's primary probabilities: (outcome, quantity, threshold) -> (p, mcse).
    """

    relation: str
    differences: tuple[str, ...]
    engine: str | None
    run_engine: str | None
    settings: tuple[str, ...]
    run: RunFiles
    values: dict[tuple, tuple[float | None, float | None]] = field(default_factory=dict)

    def mcse(self, outcome: str, quantity: str, threshold: float) -> float | None:
        """The Monte Carlo error the sweep stored for one of its primary probabilities."""
        return self.values.get((outcome, quantity, round(float(threshold), 9)),
                               (None, None))[1]

    def own(self, outcome: str, quantity: str, threshold: float
            ) -> tuple[float, float] | None:
        """The run's own value of the probability and its MCSE, if the run has it."""
        return run_probability(self.run, outcome, quantity, float(threshold))

    @property
    def name(self) -> str:
        """What the sweep's primary values are, for labels: "this run's fit", "the
        sweep's refit of the primary analysis", or "the sweep's primary analysis"."""
        return {"same": "this run's fit", "refit": "the sweep's refit of the primary "
                "analysis"}.get(self.relation, "the sweep's primary analysis")

    def reason(self) -> str:
        """Why the run's value of a quantity differs from the sweep's refit of the same
        analysis, by engine: only NUTS values carry Monte Carlo error."""
        engines = (self.engine, self.run_engine)
        if engines == ("nuts", "nuts"):
            return "the same analysis estimated from another set of draws"
        if engines == ("exact", "nuts"):
            return "a Monte Carlo estimate of the same quantity"
        if engines == ("nuts", "exact"):
            return "the exact value of the quantity the sweep estimates"
        if engines == ("exact", "exact"):
            return "the same quantity computed exactly again, with " + (
                f"other settings ({', '.join(self.settings)})" if self.settings
                else "another version of bayes-dress")
        return "the same analysis, fitted separately"


def _settings_that_differ(run: RunFiles, sens: SensitivityFiles) -> list[str]:
    run_config = _dict(run.manifest.get("config"))
    sweep_config = _dict(sens.manifest.get("primary_config"))
    differ = [k for k in SAME_FIT_KEYS if run_config.get(k) != sweep_config.get(k)]
    # Sampler settings matter only when both fits sample: an exact fit uses them for
    # prior draws alone, never for its probabilities.
    if run_config.get("engine") == sweep_config.get("engine") == "nuts":
        run_sampler = _dict(run_config.get("sampler"))
        sweep_sampler = _dict(sweep_config.get("sampler"))
        differ += [f"sampler {k}" for k in SAMPLER_KEYS
                   if run_sampler.get(k) != sweep_sampler.get(k)]
    return differ


def _identical(run: RunFiles, values: dict) -> bool | None:
    """Whether every probability the run and the sweep's primary share is the same to
    the digit (None: they share none)."""
    shared = []
    for (outcome, quantity, threshold), (p, _) in values.items():
        own = run_probability(run, outcome, quantity, threshold)
        if own is not None and p is not None:
            shared.append(abs(own[0] - p) <= 1e-9)
    return all(shared) if shared else None


def sweep_primary(run: RunFiles, sens: SensitivityFiles) -> SweepPrimary:
    """What the sweep's primary analysis is to this run.

    Parameters
    ----------
    run : SavedRun
        The run the report is of.
    sens : SavedSweep
        The sweep given with it.

    Returns
    -------
    SweepPrimary
        Its relation to the run: this run's own fit, a refit of the same analysis, or
        another analysis (what :func:`sweep_mismatches` finds takes precedence).
    """
    values = _primary_probabilities(sens)
    differences = tuple(short for short, _ in _differences(run, sens))
    identical = _identical(run, values)
    # A different analysis is named as such even if some numbers happen to agree.
    relation = ("other" if differences else "same" if identical else "refit")
    engine = _dict(sens.manifest.get("primary_config")).get("engine") \
        if isinstance(sens.manifest, dict) else None
    run_engine = run.manifest.get("engine") or _dict(run.manifest.get("config")).get("engine")
    return SweepPrimary(relation=relation, differences=differences, engine=engine,
                        run_engine=run_engine,
                        settings=tuple(_settings_that_differ(run, sens)), run=run,
                        values=values)


def primary_agreement(run: RunFiles, sens: SensitivityFiles) -> tuple[bool | None, str]:
    """Whether the sweep's primary analysis is this run's fit (identical numbers), and a
    sentence saying so, or saying that it is the sweep's own refit, why its numbers
    differ, and whether they carry Monte Carlo error (by engine)."""
    primary = sweep_primary(run, sens)
    identical = _identical(run, primary.values)
    if primary.relation == "other":
        return False, ("The sweep's primary analysis is not this run's analysis ("
                       + "; ".join(primary.differences) + "): its values are labelled "
                       "as the sweep's, not this run's.")
    if identical:
        return True, ("The sweep's primary analysis is this run's fit: the same data, "
                      "model, priors and sampler settings give identical numbers.")
    why = (f" (settings that differ: {', '.join(primary.settings)})" if primary.settings
           else " (the same settings, fitted by an earlier version or on another machine)")
    if identical is None:
        return None, ("The sweep refitted the primary analysis" + why + "; none of its "
                      "probabilities is at a threshold this run reports, so its values are "
                      "labelled as the sweep's refit, not as this run's fit.")
    engines = (primary.engine, primary.run_engine)
    if engines == ("exact", "nuts"):
        what = ("its probabilities are the exact engine's values, with no Monte Carlo "
                "error; this run's are NUTS estimates of the same quantities and differ "
                "from them by about their Monte Carlo error.")
    elif engines == ("nuts", "exact"):
        what = ("its probabilities are Monte Carlo estimates (± their Monte Carlo error, "
                "shown beside each) of this run's exact values.")
    elif engines == ("exact", "exact"):
        what = ("both are exact values, with no Monte Carlo error: they differ only "
                "through the settings or the version that computed them.")
    else:
        what = ("its probabilities are a second Monte Carlo estimate of the run's, from "
                "another set of draws, and differ from them by about their Monte Carlo "
                "error, shown beside each.")
    return False, f"The sweep refitted the primary analysis{why}: {what}"


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


def primary_value(p0: object, mcse: object, own: tuple[float, float] | None,
                  primary: SweepPrimary | None) -> tuple[Markup, Markup]:
    """A value of the sweep's primary analysis and where it comes from, for a sentence.

    Parameters
    ----------
    p0, mcse : object
        The sweep's primary value and the Monte Carlo error it stored.
    own : tuple of float, or None
        The run's value of the same quantity and its MCSE, if the run has it.
    primary : SweepPrimary or None
        The sweep's primary analysis as seen from the run; None: no run to compare with.

    Returns
    -------
    tuple of Markup
        The value ("0.62 ± 0.018"; bare when it is the run's own fit) and where it comes
        from: "in this run's fit (…)", "in the sweep's refit of the primary analysis"
        with the run's value beside it and why they differ, or "in the sweep's primary
        analysis, a different analysis from this run's" with what differs.
    """
    if primary is None:  # no run to compare with
        return num(p0, 2), Markup("in the sweep's primary analysis")
    if primary.relation == "same":
        return num(p0, 2), Markup("in this run's fit (also the sweep's primary analysis)")
    value = with_error(p0, mcse, primary.engine)
    mine = with_error(own[0], own[1], primary.run_engine, short=True) if own else None
    if primary.relation == "other":
        beside = f"; this run's value: {mine}" if mine is not None else ""
        return value, Markup("in the sweep's primary analysis, a different analysis from "
                             f"this run's ({esc('; '.join(primary.differences))}{beside})")
    where = "in the sweep's refit of the primary analysis"
    p = _float(p0)
    if own is not None and own[0] is not None and p is not None and abs(own[0] - p) > 1e-9:
        where += f" (this run: {mine}, {esc(primary.reason())})"
    return value, Markup(where)


def robustness_sentence(row: pd.Series, primary: SweepPrimary | None = None) -> Markup:
    """One verdict of robustness.csv in plain words; with ``primary`` (the sweep's
    primary analysis as seen from the run), the value is labelled as the run's fit or
    as the sweep's refit (with its Monte Carlo error and the run's value beside it)."""
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
    key = (row["outcome"], row["quantity"], float(row["threshold"]))
    value, where = primary_value(p0, primary.mcse(*key) if primary else None,
                                 primary.own(*key) if primary else None, primary)
    if moved or not_robust(row):
        what = " and ".join(moved) or esc(row.get("verdict", ""))
        return Markup(f'<span class="verdict-bad">Not robust:</span> {event} is '
                      f"{value} {where} and moves {what} (range "
                      f"{num(row.get('probability_min'), 2)} to "
                      f"{num(row.get('probability_max'), 2)}).{tail}")
    return Markup(f"Robust: {event} = {value} {where}, and stays on the same side of "
                  f"50% and 95% in all {n_text} scenarios.{tail}")


def headline(run: RunFiles, sens: SensitivityFiles | None = None) -> str:
    parts = ['<p class="note">Rates are posterior medians with 95% credible intervals. The '
             'pooled mean is never the whole story: the spread between studies and the '
             'interval for a new study say how far the next study could be from it.</p>']
    primary = sweep_primary(run, sens) if sens is not None else None
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
                        + (" ".join(robustness_sentence(r, primary)
                                    for _, r in rob.iterrows())
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
    primary = sweep_primary(run, sens)
    if mismatch:
        parts.append('<div class="banner warn">This sweep\'s primary analysis is not the '
                     "run reported above: its values below are the sweep's fit of "
                     f"another analysis, not this run's estimates.{bullets(mismatch)}</div>")
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
    # The primary column holds the sweep's numbers: say whose fit they are, and give a
    # refit's Monte Carlo error, so that no reader takes them for this run's estimates.
    source = {"same": "the primary analysis, which is this run's fit",
              "refit": "the sweep's refit of the primary analysis (not this run's fit; "
                       + ("the exact engine's value" if primary.engine == "exact" else
                          "± its Monte Carlo error") + ")",
              "other": "the sweep's primary analysis, which is not this run's analysis "
                       "(see above)"}[primary.relation]
    parts.append("<h3>Are the conclusions robust?</h3><p>For each tail probability, its value "
                 f"in {esc(source)}, its range over the scenarios that passed their "
                 "diagnostics, and the scenarios that move it to the other side of 0.5 or "
                 "0.95 from that value (open a count to list them). Rows in bold "
                 "are <strong>not robust</strong>: some scenario changes the "
                 "conclusion.</p>")
    rows = []
    for _, r in rob.iterrows():
        crossings = _crossings(r)
        not_counted = scenario_list(r.get("not_counted"))
        verdict = str(r.get("verdict", ""))
        flagged = not_robust(r) and not verdict.lower().startswith("not robust")
        value = (num(r["probability_primary"], 2) if primary.relation == "same" else
                 with_error(r["probability_primary"],
                            primary.mcse(r["outcome"], r["quantity"], r["threshold"]),
                            primary.engine, short=True))
        rows.append([
            outcome_label(r["outcome"]), _event(r), value,
            Markup(f"{num(r['probability_min'], 2)} to {num(r['probability_max'], 2)}"),
            Markup(f'<span class="small">min: {esc(r.get("min_scenario", ""))}<br>max: '
                   f'{esc(r.get("max_scenario", ""))}</span>'),
            _scenario_cell(crossings[0.5], r.get("n_scenarios")),
            _scenario_cell(crossings[0.95], r.get("n_scenarios")),
            bullets(not_counted) if not_counted else "none",
            Markup(f"{'<strong>NOT robust</strong>: ' if flagged else ''}"
                   f"{esc(verdict)}")])
    header = {"same": "primary (this run's fit)", "refit": "primary (sweep's refit)",
              "other": "primary (sweep's, another analysis)"}[primary.relation]
    parts.append(table(
        ["outcome", "probability", header, "range", "range at", "crosses 0.5",
         "crosses 0.95", "not counted", "verdict"], rows, numeric=(2, 3),
        row_classes=["flag" if not_robust(r) else "" for _, r in rob.iterrows()]))
    changes = crossing_scenarios(rob, scenarios)
    parts.append("<h3>Estimates by scenario</h3><p class=note>Median (95% interval); † = "
                 "prior-dominated; rows in bold (‡) are scenarios that change a conclusion "
                 "of the primary analysis, listed under their name.</p>")
    # The primary row shows the sweep's numbers: whose fit they are, as in the table above.
    tag = {"same": "primary: this run's fit", "refit": "primary: the sweep's refit",
           "other": "the sweep's primary analysis, not this run's"}[primary.relation]
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
            mine = f" ({esc(tag)})" if truthy(first.get("primary")) else ""
            by = {q: g.iloc[0] for q, g in group.groupby("quantity")}
            status = first["status"]
            changed = changes.get((outcome, scenario), [])
            mark = (f'<br><span class="small">‡ changes: {"; ".join(changed)}</span>'
                    if changed else "")
            rows.append([Markup(f"<strong>{esc(label)}</strong>{mine}"
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
    plots = figures(embed_plots(sens.path, *sens.plots))
    if plots and primary.relation != "same":
        # The sweep drew its plots without knowing this run: their PRIMARY row is its own.
        parts.append(f'<p class="note">In the sweep\'s plots, PRIMARY marks '
                     f"{esc(primary.name)}"
                     + (", a different analysis from this run's." if primary.relation ==
                        "other" else ", not this run's fit.") + "</p>")
    parts.append(plots)
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

def _rho_scenarios(sens: SensitivityFiles, event: str
                   ) -> tuple[list, float | None, float | None]:
    """(label, probability, status) of the sweep's scenarios that change the prior of
    rho, for the joint-probability event, and the primary's value and its MCSE."""
    varied = dict(zip(sens.sensitivity["scenario"], sens.sensitivity["varied"], strict=False))
    p = sens.probabilities
    rows = p[p["quantity"] == event]
    primary = rows[rows["primary"].map(truthy).fillna(False).astype(bool)]
    p0 = _float(primary["probability"].iloc[0]) if len(primary) else None
    mcse = _float(primary["mcse"].iloc[0]) if len(primary) and "mcse" in primary else None
    found = [(r["label"], _float(r["probability"]), r["status"]) for _, r in rows.iterrows()
             if varied.get(r["scenario"]) == "correlation_prior"]
    return found, p0, mcse


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
    chosen = [e for e in entries if e.get("name") in BENEFIT_RISK_PLOTS]
    parts.append(figures(embed_plots(run.path, chosen, [])))
    if sens is not None and len(joint):
        event = (f"P(new-study {benefit} > {num(spec.get('benefit_threshold'), 2)} and "
                 f"{risk} < {num(spec.get('risk_threshold'), 2)})")
        event_key = (f"P(new-study {benefit} > {spec.get('benefit_threshold'):g} and "
                     f"{risk} < {spec.get('risk_threshold'):g})")
        found, p0, mcse = _rho_scenarios(sens, event_key)
        if found and p0 is not None:
            # The run's own value of the event is the new-study joint row above.
            # Separate fits store no Monte Carlo error of their product (the table shows
            # none for them either), so none is claimed.
            new_study = joint[joint["quantity"] == "theta_new"]
            own = ((_float(new_study["probability"].iloc[0]),
                    _float(new_study["mcse"].iloc[0]) if correlated else None)
                   if len(new_study) else None)
            value, where = primary_value(p0, mcse, own, sweep_primary(run, sens))
            crossing = [label for label, p, status in found if p is not None
                        and str(status).strip() == "ok"
                        and any((p > level) != (p0 > level) for level in (0.5, 0.95))]
            parts.append(f"<h3>Across priors of rho (sensitivity sweep)</h3><p>{esc(event)}: "
                         f"{value} {where}.</p>")
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


def calibration_html(calibration) -> str:
    """The calibration section, when a calibration directory is given."""
    if calibration is None:
        return ""
    from bayes_dress.report.calibration_section import calibration_section

    return _section("calibration", calibration_section(calibration))


#: Plots the benefit-risk section shows itself (so the plots section leaves them out).
BENEFIT_RISK_PLOTS = ("benefit-risk", "benefit-risk-acceptability")


def _plots_not_shown_above(run: RunFiles, *, benefit_risk: bool):
    """The run's plot entries and problems, without those a section above embeds."""
    entries, problems = run.plots
    if benefit_risk:
        entries = [e for e in entries if e.get("name") not in BENEFIT_RISK_PLOTS]
    return entries, problems


def render(run: RunFiles, sens: SensitivityFiles | None, *, title: str | None,
           date: dt.date, design=None, calibration=None) -> str:
    model = run.manifest.get("model") or {}
    title = title or f"Bayesian meta-analysis: {model.get('title') or 'report'}"
    outcomes = ", ".join(outcome_label(o) for o in outcomes_of(run))
    css = resources.files("bayes_dress.report").joinpath("report.css").read_text(encoding="utf-8")
    optional = {"benefit_risk": benefit_risk_section(run, sens),
                "design": design_html(design, run),
                "calibration": calibration_html(calibration)}
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
        _section("plots", figures(embed_plots(run.path, *_plots_not_shown_above(
                     run, benefit_risk=bool(optional["benefit_risk"]))))
                 or '<p class="note">No plots.</p>'),
        posterior_section(run), sensitivity_section(run, sens), optional["calibration"],
        optional["design"],
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
