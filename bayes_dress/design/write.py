"""Writing a design directory (``bayes-dress design``): tables, RBesT mixtures, plots and a
manifest, atomically (through :class:`bayes_dress.rundir.write.RunWriter`).

Layout (every CSV has a header row; rates are proportions; ``outcome`` names the outcome
of the MAP prior a row is about):

``design.json``
    The summary: outcome(s), the ESS verdicts (level and message), the boundary in
    words, type I error and power, the sample-size result, the approximation check, the
    two-endpoint and two-arm results, the sensitivity verdicts, notes, and the lines the
    command printed (``headline``).
``map_summary.csv``
    outcome, prior (exact | draws | mixture | robust), components, ks (largest CDF
    difference from what the mixture was fitted to), mean, sd, q2.5, q25, q50, q75, q97.5.
``map_density.csv``
    outcome, theta (midpoints of 1,000 equal bins), pdf_exact, cdf_exact, pdf_mixture,
    cdf_mixture, pdf_robust, cdf_robust (exact columns empty without an exact MAP).
``mixtures.csv``
    outcome, prior (mixture | robust), component, weight, a, b; the same mixtures in
    RBesT's JSON format as ``map-OUTCOME.json`` and ``robust-OUTCOME.json``
    (``RBesT::read_mix_json`` reads them).
``ess.csv``
    outcome, prior (exact | mixture | robust), method (elir | moment | morita), value,
    reliable, warnings.
``verdicts.csv``
    outcome, basis (exact | mixture: what the verdict judges), level (none | weak |
    informative), informative, message.
``agreement.csv`` (sampler runs with an exact MAP)
    outcome, statistic (ks | mean | sd | q2.5 ...), draws, exact, difference, mcse, z,
    limit.
``boundary.csv``
    For each outcome y = 0..n of the single-arm trial: y, decision (robust MAP prior),
    decision_uniform, one ``P(theta ...)`` column per condition (posterior probability
    of its event), posterior_mean, robust_weight, predictive, p_value, p_lower, p_upper.
``boundaries.csv``
    prior (robust MAP | MAP mixture | exact MAP | uniform), n, boundary (in words),
    lower_crit, upper_crit, never, always, type1, power.
``oc.csv``
    theta, robust_map, map_mixture, exact_map (where there is one), uniform: P(success).
``sample_size.csv``
    n, type1, power, meets, critical.
``weight_map.csv``
    weight, ess_elir, ess_moment, type1, power, critical.
``approximation.csv`` (with an exact MAP)
    statistic, value: cdf_max_diff, oc_max_diff, theta_at_max, ess_diff_elir,
    ess_diff_moment, ess_diff_morita.
``two_endpoint.csv`` (with a ``[safety]`` table)
    theta_eff, theta_sae, p_efficacy, p_safety, p_both on a 101 x 101 grid.
``two_arm.csv`` and ``two_arm_oc.csv`` (with a ``[two_arm]`` table)
    Per design: design, n_treatment, n_control, treatment_prior, control_prior,
    type1_at_control_mean, type1_max, theta_at_type1_max, target_power,
    delta_for_power; and the curves: design, curve (type1 | power), theta_treatment,
    theta_control, delta, p_success.
``scenarios.csv`` (with sensitivity)
    One row per sweep scenario (see :data:`bayes_dress.design.scenarios.COLUMNS`).
``plots/``
    PNG + SVG of each plot and ``plots/index.json`` (as a run's).
``manifest.json``
    ``format`` 2, ``kind`` "design", provenance, the design config, the run it came
    from (path and the SHA-256 of its manifest), seeds, and the SHA-256 of every file
    but the plots.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_dress.design.map_prior import PROBS, quantile_name
from bayes_dress.design.mixjson import mix_to_dict
from bayes_dress.rundir import layout

KIND = "design"
DESIGN_JSON = "design.json"
PNG_DPI = 120
DENSITY_POINTS = 1000


# ---------------------------------------------------------------------------- tables
def map_tables(md) -> dict[str, pd.DataFrame]:
    """map_summary, map_density, mixtures, ess rows of one outcome's MAP design."""
    outcome = md.outcome
    summary = []
    for prior, s in md.summaries().items():
        row = {"outcome": outcome, "prior": prior,
               "components": md.mixture.n_components if prior == "mixture" else
               md.robust.n_components if prior == "robust" else None,
               "ks": md.ks if prior == "mixture" else None}
        row.update({k: s[k] for k in ("mean", "sd", *(quantile_name(p) for p in PROBS))})
        summary.append(row)
    theta = (np.arange(DENSITY_POINTS) + 0.5) / DENSITY_POINTS
    density = {"outcome": outcome, "theta": theta}
    exact = md.map.exact
    density["pdf_exact"] = exact.pdf(theta) if exact is not None else np.nan
    density["cdf_exact"] = exact.cdf(theta) if exact is not None else np.nan
    for name, mix in (("mixture", md.mixture), ("robust", md.robust)):
        density[f"pdf_{name}"] = mix.pdf(theta)
        density[f"cdf_{name}"] = mix.cdf(theta)
    mixtures = [{"outcome": outcome, "prior": prior, "component": name, "weight": w,
                 "a": a, "b": b}
                for prior, mix in (("mixture", md.mixture), ("robust", md.robust))
                for name, w, a, b in zip(mix.names, mix.weights, mix.a, mix.b, strict=True)]
    ess = [{"outcome": outcome, "prior": prior, "method": method, "value": r.value,
            "reliable": r.reliable, "warnings": "; ".join(r.warnings)}
           for prior, summ in md.ess.items() for method, r in summ.results.items()]
    verdict = [{"outcome": outcome, "basis": "exact" if exact is not None else "mixture",
                "level": md.verdict.level, "informative": md.verdict.informative,
                "message": md.verdict.message}]
    out = {"map_summary.csv": pd.DataFrame(summary), "map_density.csv": pd.DataFrame(density),
           "mixtures.csv": pd.DataFrame(mixtures), "ess.csv": pd.DataFrame(ess),
           "verdicts.csv": pd.DataFrame(verdict)}
    if md.map.agreement is not None:
        a = md.map.agreement
        rows = [{"outcome": outcome, "statistic": "ks", "draws": a.ks, "exact": 0.0,
                 "difference": a.ks, "mcse": None, "z": None, "limit": a.ks_critical}]
        rows += [{"outcome": outcome, **r, "limit": 4.0} for r in a.rows]
        out["agreement.csv"] = pd.DataFrame(rows)
    return out


def trial_tables(result) -> dict[str, pd.DataFrame]:
    t = result.trial
    rows = t.conflict.rows()
    boundary = pd.DataFrame(rows)
    renamed = {}
    for cond in t.rule.conditions:
        text = cond.text(t.rule.variable)
        event = text.rsplit(" > ", 1)[0]
        renamed[text] = event
    boundary = boundary.rename(columns=renamed)
    uniform = t.boundaries["uniform"].success
    boundary.insert(2, "decision_uniform", uniform.astype(bool))
    bounds = []
    for prior, b in t.boundaries.items():
        t1, pw = (float(v) for v in (t.at(prior, t.null), t.at(prior, t.alternative)))
        bounds.append({"prior": prior, "n": b.n, "boundary": b.describe(),
                       "lower_crit": b.lower_crit, "upper_crit": b.upper_crit,
                       "never": b.never, "always": b.always, "type1": t1, "power": pw})
    oc = {"theta": t.theta}
    for prior, curve in t.oc.items():
        oc[prior.replace(" ", "_").lower()] = curve
    s = t.sample_size
    size = pd.DataFrame({"n": s.n, "type1": s.type1, "power": s.power, "meets": s.meets,
                         "critical": [str(c) for c in s.critical]})
    wm = pd.DataFrame(t.weight_map.rows())
    if "critical" in wm:
        wm["critical"] = wm["critical"].astype(str)
    out = {"boundary.csv": boundary, "boundaries.csv": pd.DataFrame(bounds),
           "oc.csv": pd.DataFrame(oc), "sample_size.csv": size, "weight_map.csv": wm}
    a = t.approximation
    if a is not None:
        stats = [("cdf_max_diff", a.cdf_max_diff), ("oc_max_diff", a.oc_max_diff),
                 ("theta_at_max", a.theta_at_max)]
        stats += [(f"ess_diff_{m}", v) for m, v in a.ess_diff.items()]
        out["approximation.csv"] = pd.DataFrame(stats, columns=["statistic", "value"])
    if result.safety is not None:
        f = result.safety
        e = np.atleast_1d(f.design.oc_efficacy(f.theta_eff))
        s_ = np.atleast_1d(f.design.oc_safety(f.theta_sae))
        te, ts = np.meshgrid(f.theta_eff, f.theta_sae, indexing="ij")
        pe, ps = np.meshgrid(e, s_, indexing="ij")
        out["two_endpoint.csv"] = pd.DataFrame({"theta_eff": te.ravel(),
                                                "theta_sae": ts.ravel(),
                                                "p_efficacy": pe.ravel(),
                                                "p_safety": ps.ravel(),
                                                "p_both": f.grid.ravel()})
    if result.two_arm is not None:
        a2 = result.two_arm
        out["two_arm.csv"] = pd.DataFrame(a2.rows())
        curves = []
        for label in a2.designs:
            curves.append(pd.DataFrame({"design": label, "curve": "type1",
                                        "theta_treatment": a2.theta, "theta_control": a2.theta,
                                        "delta": 0.0, "p_success": a2.type1[label]}))
            curves.append(pd.DataFrame({"design": label, "curve": "power",
                                        "theta_treatment": np.minimum(
                                            a2.control_mean + a2.delta, 1.0),
                                        "theta_control": a2.control_mean,
                                        "delta": a2.delta, "p_success": a2.power[label]}))
        out["two_arm_oc.csv"] = pd.concat(curves, ignore_index=True)
    if result.scenarios is not None and result.scenarios.rows:
        out["scenarios.csv"] = result.scenarios.frame()
    return out


def design_tables(result) -> dict[str, pd.DataFrame]:
    """Every CSV of the design directory, by file name."""
    tables: dict[str, list[pd.DataFrame]] = {}
    for md in [result.efficacy] + ([result.safety.map_design] if result.safety else []):
        for name, frame in map_tables(md).items():
            tables.setdefault(name, []).append(frame)
    out = {name: pd.concat(frames, ignore_index=True) for name, frames in tables.items()}
    out.update(trial_tables(result))
    return out


def _float(value):
    if value is None:
        return None
    value = float(value)
    return value if np.isfinite(value) else None


def summary_json(result) -> dict:
    """``design.json``: what the design concluded, in plain values."""
    t = result.trial
    e = result.efficacy

    def verdict(md):
        return {"outcome": md.outcome, "level": md.verdict.level,
                "informative": md.verdict.informative, "message": md.verdict.message,
                "reasons": list(md.verdict.reasons),
                "basis": "exact" if md.map.exact is not None else "mixture",
                "map_source": md.map.source, "exact_origin": md.map.exact_origin,
                "model": md.map.model, "priors": md.map.priors,
                "components": md.mixture.n_components, "ks": md.ks,
                "robust_weight": md.robust_spec.weight,
                "agreement": (None if md.map.agreement is None else
                              {"agree": md.map.agreement.agree,
                               "text": md.map.agreement.describe()})}

    out = {
        "outcome": result.outcome,
        "verdicts": [verdict(e)] + ([verdict(result.safety.map_design)]
                                    if result.safety else []),
        "trial": {"n": t.n, "rule": t.rule.text(), "null": t.null,
                  "alternative": t.alternative, "boundary": t.boundary.describe(),
                  "rbest_boundary": t.boundary.rbest(), "type1": t.type1, "power": t.power,
                  "type1_uniform": t.at("uniform", t.null),
                  "power_uniform": t.at("uniform", t.alternative),
                  "alpha": t.sample_size.alpha, "target_power": t.sample_size.target_power,
                  "sample_size": {"smallest": t.sample_size.smallest,
                                  "all_larger_meet": t.sample_size.all_larger_meet,
                                  "stable_from": t.sample_size.stable_from,
                                  "text": t.sample_size.describe()}},
        "approximation": None if t.approximation is None else {
            "matters": t.approximation.matters, "flags": list(t.approximation.flags),
            "cdf_max_diff": t.approximation.cdf_max_diff,
            "oc_max_diff": _float(t.approximation.oc_max_diff),
            "boundary_exact": t.approximation.boundary_exact,
            "boundary_mixture": t.approximation.boundary_mixture},
        "notes": list(result.notes),
        "headline": result.headline(),
        "timings_seconds": {k: round(v, 4) for k, v in result.timings.items()},
    }
    if result.safety is not None:
        f = result.safety
        out["two_endpoint"] = {
            "outcome": f.map_design.outcome, "rule": f.rule.text(),
            "boundary": f.describe(), "acceptable": f.acceptable,
            "unacceptable": f.unacceptable,
            "p_safety_acceptable": f.pass_probability(f.acceptable),
            "p_safety_unacceptable": f.pass_probability(f.unacceptable),
            "p_both_alternative_acceptable": t.power * f.pass_probability(f.acceptable),
            "p_both_null_acceptable": t.type1 * f.pass_probability(f.acceptable),
            "p_both_alternative_unacceptable": t.power * f.pass_probability(f.unacceptable)}
    if result.two_arm is not None:
        a = result.two_arm
        out["two_arm"] = {"rule": a.rule.text(), "n_treatment": a.n_treatment,
                          "n_control": a.n_control, "target_power": a.target_power,
                          "control_mean": a.control_mean,
                          "delta_for_power": {k: _float(v) for k, v in
                                              a.delta_for_power.items()}}
    if result.scenarios is not None:
        s = result.scenarios
        out["sensitivity"] = {"verdicts": list(s.verdicts), "fitted": s.fitted,
                              "scenarios": len(s.rows),
                              "boundary_changed": list(s.boundary_changed),
                              "level_changed": list(s.level_changed),
                              "skipped": list(s.skipped), "notes": list(s.notes)}
    return out


def manifest_payload(result) -> dict:
    plan = result.plan
    return {"design": {"outcome": result.outcome,
                       "outcomes": [result.outcome] + ([result.safety.map_design.outcome]
                                                       if result.safety else [])},
            "config": plan.to_dict(), "config_source": plan.where,
            "run": {"path": str(result.run_path),
                    "manifest_sha256": result.run_manifest_sha256,
                    "engine": result.run_engine},
            "seed": result.run_seed,
            "seeds": {"run": result.run_seed,
                      "exact_refit": result.run_seed,
                      "note": "the design is deterministic given the run: the mixture "
                              "fits are deterministic EM, OCs exact enumeration; the run's "
                              "seed is used only for the prior draws of an exact refit"}}


# ---------------------------------------------------------------------------- plots
def plot_jobs(result) -> list[tuple[str, str | None, Callable]]:
    """(file name, outcome or None, drawing function returning (title, caption, fig))."""
    from bayes_dress.design import figures
    from bayes_dress.labels import outcome_label

    safe = layout.safe_name
    t = result.trial
    jobs = []

    def map_job(md):
        def draw():
            label = outcome_label(md.outcome)
            title = f"{label}: MAP prior and its mixture approximation"
            caption = (f"The MAP prior (the rate to expect in a new study) of {md.outcome}"
                       f" from the run's {md.map.model} model"
                       + (" (exact: numerical integration)" if md.map.exact is not None
                          else "") + (", with a histogram of the run's NUTS draws"
                                      if md.map.draws is not None else "")
                       + f"; dashed: its mixture of {md.mixture.n_components} Beta "
                       f"distribution(s) (largest CDF difference {md.ks:.2g}); dotted: the "
                       f"robust prior the design uses (weight {md.robust_spec.weight:g}). "
                       f"The density axis is cut at 1.25 times the largest density "
                       f"between 0.02 and 0.98. ESS verdict ({md.verdict.level}): "
                       f"{md.verdict.message}")
            return title, caption, figures.map_figure(md, title=title)
        return draw

    jobs.append((f"map-{safe(result.outcome)}", result.outcome, map_job(result.efficacy)))
    if result.safety is not None:
        md = result.safety.map_design
        jobs.append((f"map-{safe(md.outcome)}", md.outcome, map_job(md)))

    def oc():
        title = f"Operating characteristics: {t.n} patients, {t.rule.text()}"
        caption = ("Probability that the trial declares success, against the true "
                   "response rate, exact by binomial enumeration, with the robust MAP prior "
                   "(the design), the MAP mixture alone, the exact MAP and a uniform "
                   f"Beta(1, 1) prior (no borrowing). Dashed verticals: null {t.null:g} and "
                   f"alternative {t.alternative:g}; dotted horizontals: the type I error "
                   f"target {t.sample_size.alpha:g} and the power target "
                   f"{t.sample_size.target_power:g}. Design: P(success) = {t.type1:.3f} at "
                   f"the null, {t.power:.3f} at the alternative.")
        return title, caption, figures.oc_figure(t, title=title, alpha=t.sample_size.alpha,
                                                 power=t.sample_size.target_power)

    def boundary():
        title = f"Decision boundary: {t.rule.text()}, {t.n} patients"
        caption = (f"For every possible number of responders y: the posterior probability "
                   "of the rule's event under the robust MAP prior (filled) and a uniform "
                   "prior (open), against the rule's threshold (dotted); shaded outcomes "
                   f"decide success ({t.boundary.describe()}). Below: how much the robust "
                   "component takes over (its posterior weight) and how surprising y would "
                   "be under the prior (two-sided prior-predictive p-value).")
        return title, caption, figures.boundary_figure(t, title=title)

    def weights():
        title = "Robust-weight map: ESS and operating characteristics"
        caption = ("ESS of the robustified MAP (ELIR and moment; ELIR left out where it is "
                   "undefined) and P(success) at the null and the alternative, against the "
                   "weight of the robust component (dotted vertical: the design's weight "
                   f"{result.efficacy.robust_spec.weight:g}). ESS values are to be read "
                   f"with the ESS verdict ({result.efficacy.verdict.level}).")
        return title, caption, figures.weight_map_figure(
            t.weight_map, title=title, chosen=result.efficacy.robust_spec.weight)

    jobs += [("oc", result.outcome, oc), ("boundary", result.outcome, boundary),
             ("weight-map", result.outcome, weights)]
    if result.safety is not None:
        f = result.safety

        def endpoints():
            title = (f"Two-endpoint rule: {t.rule.text()} AND {f.rule.text()} on "
                     f"{f.map_design.outcome}")
            caption = ("Probability that both rules decide success on the same "
                       f"{t.n} patients, over the true response rate (x) and the true "
                       f"{f.map_design.outcome} rate (y), taking the two counts as "
                       "independent given the rates (a dependence between response and "
                       "adverse events in the same patients is not modelled). Contours at "
                       "0.05, 0.1, 0.2, 0.5, 0.8 and 0.9; markers at the null and "
                       "alternative response rates and the acceptable and unacceptable "
                       "adverse-event rates.")
            return title, caption, figures.two_endpoint_figure(f, t, title=title)

        jobs.append(("two-endpoint", None, endpoints))
    if result.two_arm is not None:
        a = result.two_arm

        def two_arm():
            title = (f"Two-arm trial {a.n_treatment}:{a.n_control} (treatment:control), "
                     f"{a.rule.text()}")
            found = ", ".join(f"{k} {v:.3f}" if np.isfinite(v) else f"{k} not reached"
                              for k, v in a.delta_for_power.items())
            caption = ("Left: type I error (both arms at the same true rate); right: power "
                       f"with the control rate at the MAP mean {a.control_mean:.3f}, against "
                       "the difference δ; control prior the robust MAP, the MAP alone, or a "
                       "uniform prior (also with equal arms). Exact enumeration (RBesT's "
                       f"oc2S). δ reaching power {a.target_power:g}: {found}.")
            return title, caption, figures.two_arm_figure(a, title=title)

        jobs.append(("two-arm", result.outcome, two_arm))
    if result.scenarios is not None and result.scenarios.fitted:
        s = result.scenarios
        ref = t.boundary.upper_crit if t.boundary.upper_crit is not None else \
            t.boundary.lower_crit

        def scenarios():
            title = f"Design across sensitivity scenarios ({s.outcome})"
            caption = ("Per scenario of the sensitivity sweep (fitted with the exact "
                       "engine): the MAP prior's mean and 95% interval (open circle: an ESS "
                       "class other than the design's), and the critical number of "
                       "responders of the decision boundary (open square: it differs from "
                       "the design's, dashed line). " + " ".join(s.verdicts))
            return title, caption, figures.scenario_figure(s, title=title, design_crit=ref)

        jobs.append(("scenarios", result.outcome, scenarios))
    return jobs


def draw_design_plots(result, directory: Path, *, progress=None) -> list[dict]:
    """Draw every design plot into ``directory`` and write its ``index.json``."""
    import matplotlib

    matplotlib.use("Agg")
    from bayes_dress.plots.figures import save
    from bayes_dress.rundir.atomic import sha256
    from bayes_dress.rundir.write import json_text

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    index = []
    jobs = plot_jobs(result)
    for number, (name, outcome, draw) in enumerate(jobs, start=1):
        if progress:
            progress(f"plot {number} of {len(jobs)}: {name}")
        title, caption, fig = draw()
        png, svg = save(fig, directory, name, dpi=PNG_DPI)
        index.append({"name": name, "title": title, "caption": caption, "outcome": outcome,
                      "png": f"{layout.PLOTS_DIR}/{png.name}",
                      "svg": f"{layout.PLOTS_DIR}/{svg.name}",
                      "png_sha256": sha256(png), "svg_sha256": sha256(svg)})
    (directory / layout.PLOT_INDEX).write_text(json_text(index), encoding="utf-8")
    return index


# ---------------------------------------------------------------------------- writing
def write_design(result, out: str | Path, *, overwrite: bool = False, plots: bool = True,
                 progress=None) -> Path:
    """Write the design directory of ``result`` (see the module notes) atomically.

    Parameters
    ----------
    result : DesignResult
    out : str or Path
        Must not exist unless ``overwrite``.
    overwrite : bool
        Replace an existing directory once the new one is complete.
    plots : bool
        Draw the plots.

    Returns
    -------
    Path
        ``out``.
    """
    import warnings

    from bayes_dress.rundir.write import RunWriter

    out = Path(out)
    with RunWriter(out, overwrite=overwrite) as writer:
        if progress:
            progress("writing tables")
        for name, frame in design_tables(result).items():
            writer.csv(name, frame)
        for md in [result.efficacy] + ([result.safety.map_design] if result.safety else []):
            part = layout.safe_name(md.outcome)
            writer.json(f"map-{part}.json", mix_to_dict(md.mixture))
            writer.json(f"robust-{part}.json", mix_to_dict(md.robust))
        writer.json(DESIGN_JSON, summary_json(result))
        if plots:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore", RuntimeWarning)
                draw_design_plots(result, writer.path / layout.PLOTS_DIR, progress=progress)
        writer.manifest(manifest_payload(result), kind=KIND)
    return out
