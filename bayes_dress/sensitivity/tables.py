"""The tables a sweep reports: each scenario's estimates, and whether conclusions hold."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bayes_dress.models.base import POPULATION_QUANTITIES
from bayes_dress.sensitivity.runner import TaskResult
from bayes_dress.sensitivity.spec import Headline

SENSITIVITY_COLUMNS = ["scenario", "label", "primary", "varied", "model", "priors",
                       "definition", "excluded", "n_studies", "outcome", "quantity", "mean",
                       "median", "q2.5", "q97.5", "prior_dominated", "status", "problems"]
PROBABILITY_COLUMNS = ["scenario", "label", "primary", "outcome", "quantity", "threshold",
                       "probability", "mcse", "status"]
ROBUSTNESS_COLUMNS = ["outcome", "quantity", "threshold", "probability_primary",
                      "probability_min", "probability_max", "min_scenario", "max_scenario",
                      "crosses_0.5", "crosses_0.95", "n_scenarios", "not_counted", "verdict"]
#: The probability levels whose crossing changes a conclusion: more likely than not,
#: and the usual bar for "probably above".
DECISION_LEVELS = (0.5, 0.95)


def _outcomes(result: TaskResult) -> tuple[str, ...]:
    return result.outcomes or (result.outcome,)


def _scenario_columns(result: TaskResult, outcome: str) -> dict:
    scenario = result.scenario
    return {"scenario": scenario.id, "label": scenario.label, "primary": scenario.primary,
            "varied": scenario.varied, "model": scenario.model,
            "priors": scenario.priors_text(),
            "definition": "/".join(dict.fromkeys(result.definitions))
            or scenario.definitions.get(outcome, ""),
            "excluded": ";".join(scenario.exclude), "n_studies": result.n_studies,
            "outcome": outcome, "status": result.status,
            "problems": " | ".join(result.problems)}


def sensitivity_table(results: Sequence[TaskResult]) -> pd.DataFrame:
    """One row per scenario x outcome x population quantity; unfitted ones kept, empty."""
    rows = []
    for result in results:
        for outcome in _outcomes(result):
            base = _scenario_columns(result, outcome)
            summary = None
            if result.summary is not None:
                mine = result.summary[(result.summary["outcome"] == outcome)
                                      & (result.summary["study"] == "")]
                summary = mine.set_index("parameter")
            for quantity in POPULATION_QUANTITIES:
                row = {**base, "quantity": quantity}
                if summary is not None and quantity in summary.index:
                    entry = summary.loc[quantity]
                    entry = entry.iloc[0] if isinstance(entry, pd.DataFrame) else entry
                    row.update({k: entry[k] for k in ("mean", "median", "q2.5", "q97.5",
                                                      "prior_dominated")})
                rows.append(row)
    return pd.DataFrame(rows, columns=SENSITIVITY_COLUMNS)


def probability_table(results: Sequence[TaskResult],
                      headlines: Sequence[Headline]) -> pd.DataFrame:
    """Each headline probability in each scenario."""
    rows = []
    for result in results:
        table = result.probabilities
        for headline in headlines:
            if headline.outcome not in _outcomes(result):
                continue
            base = _scenario_columns(result, headline.outcome)
            mine = (table[table["outcome"] == headline.outcome] if table is not None
                    else None)
            for threshold in headline.thresholds:
                row = {k: base[k] for k in ("scenario", "label", "primary", "outcome",
                                            "status")}
                row.update({"quantity": headline.quantity, "threshold": threshold})
                if mine is not None:
                    match = mine[(mine["quantity"] == headline.quantity)
                                 & np.isclose(mine["threshold"], threshold)]
                    if len(match):
                        row.update(probability=float(match["probability"].iloc[0]),
                                   mcse=float(match["mcse"].iloc[0]))
                rows.append(row)
    return pd.DataFrame(rows, columns=PROBABILITY_COLUMNS)


def _worst_status(statuses) -> str:
    statuses = list(statuses)
    for status in ("not fitted", "diagnostics failed"):
        if status in statuses:
            return status
    return "ok"


def benefit_risk_probabilities(results: Sequence[TaskResult], spec, weights
                               ) -> pd.DataFrame:
    """Per scenario, the joint probability P(new-study benefit > a and harm < b) and
    P(net clinical benefit > 0) at ``weights``: from a joint model's own table, or, for
    separate fits of the two outcomes, the joint probability under independence (the
    product of their tail probabilities; the net benefit needs joint draws and is not
    given for them). Rows in :data:`PROBABILITY_COLUMNS`; the event is the quantity and
    the threshold its benefit threshold."""
    event = (f"P(new-study {spec.benefit} > {spec.benefit_threshold:g} and "
             f"{spec.risk} < {spec.risk_threshold:g})")
    by_scenario: dict[str, list[TaskResult]] = {}
    for result in results:
        by_scenario.setdefault(result.scenario.id, []).append(result)
    rows = []
    for group in by_scenario.values():
        scenario = group[0].scenario
        base = {"scenario": scenario.id, "label": scenario.label,
                "primary": scenario.primary, "outcome": f"{spec.benefit}+{spec.risk}",
                "threshold": spec.benefit_threshold}
        joint = next((r for r in group if "benefit_risk.csv" in r.tables), None)
        if joint is not None:
            table = joint.tables["benefit_risk.csv"]
            new = table[table["quantity"] == "theta_new"]
            row = new[new["kind"] == "joint"].iloc[0]
            rows.append({**base, "quantity": event, "probability": row["probability"],
                         "mcse": row["mcse"], "status": joint.status})
            for weight in weights:
                match = new[(new["kind"] == "net_benefit") & np.isclose(new["weight"], weight)]
                if len(match):
                    rows.append({**base, "quantity": f"P(new-study net benefit > 0, harm "
                                 f"weight {weight:g})", "threshold": 0.0,
                                 "probability": float(match["probability"].iloc[0]),
                                 "mcse": float(match["mcse"].iloc[0]),
                                 "status": joint.status})
            continue
        benefit = next((r for r in group if _outcomes(r) == (spec.benefit,)), None)
        risk = next((r for r in group if _outcomes(r) == (spec.risk,)), None)
        if benefit is None or risk is None:
            continue
        status = _worst_status([benefit.status, risk.status])
        p = np.nan
        if benefit.probabilities is not None and risk.probabilities is not None:
            a = benefit.probabilities
            b = risk.probabilities
            pa = a[(a["quantity"] == "theta_new")
                   & np.isclose(a["threshold"], spec.benefit_threshold)]["probability"]
            pb = b[(b["quantity"] == "theta_new")
                   & np.isclose(b["threshold"], spec.risk_threshold)]["probability"]
            if len(pa) and len(pb):
                p = float(pa.iloc[0]) * (1.0 - float(pb.iloc[0]))
        rows.append({**base, "quantity": event, "probability": p, "mcse": np.nan,
                     "status": status})
    return pd.DataFrame(rows, columns=PROBABILITY_COLUMNS)


def robustness_table(probabilities: pd.DataFrame) -> pd.DataFrame:
    """For each headline probability: its range over the scenarios that passed every
    diagnostic, and which of them move it across 0.5 or 0.95 from the primary analysis.
    Scenarios not counted (not fitted, or failing a diagnostic) are named."""
    rows = []
    keys = ["outcome", "quantity", "threshold"]
    for (outcome, quantity, threshold), group in probabilities.groupby(keys, sort=False):
        counted = group[(group["status"] == "ok") & group["probability"].notna()]
        not_counted = group.drop(counted.index)
        primary = group[group["primary"].astype(bool)]
        p0 = float(primary["probability"].iloc[0]) if len(primary) else np.nan
        primary_status = primary["status"].iloc[0] if len(primary) else "missing"
        # Crossings are judged from a primary analysis that passed its diagnostics.
        reference = p0 if primary_status == "ok" else np.nan
        row = {"outcome": outcome, "quantity": quantity, "threshold": threshold,
               "probability_primary": p0, "n_scenarios": len(counted),
               "not_counted": "; ".join(f"{r.scenario} ({r.status})"
                                        for r in not_counted.itertuples())}
        if counted.empty:
            row["verdict"] = (f"{_event(quantity, threshold)}: no scenario passed its "
                              "diagnostics, nothing to judge")
            rows.append(row)
            continue
        lo = counted.loc[counted["probability"].idxmin()]
        hi = counted.loc[counted["probability"].idxmax()]
        row.update(probability_min=lo["probability"], probability_max=hi["probability"],
                   min_scenario=f"{lo['scenario']} {lo['label']}",
                   max_scenario=f"{hi['scenario']} {hi['label']}")
        crossings = {}
        for level in DECISION_LEVELS if np.isfinite(reference) else ():
            moved = counted[(counted["probability"] > level) != (reference > level)]
            crossings[level] = moved
            row[f"crosses_{level:g}"] = "; ".join(f"{r.scenario} {r.label}"
                                                   for r in moved.itertuples())
        row["verdict"] = _verdict(reference, crossings, len(counted), quantity, threshold,
                                  primary_status)
        if len(not_counted):
            row["verdict"] += f"; {len(not_counted)} scenario(s) not counted (see not_counted)"
        rows.append(row)
    return pd.DataFrame(rows, columns=ROBUSTNESS_COLUMNS)


def _event(quantity: str, threshold: float) -> str:
    """A headline probability in words, as the run's own headline words it."""
    from bayes_dress.labels import quantity_label

    return (quantity if quantity.startswith("P(") else
            f"P({quantity_label(quantity, short=True)} > {threshold:g})")


def _verdict(p0: float, crossings: dict, n: int, quantity: str, threshold: float,
             primary_status: str) -> str:
    event = _event(quantity, threshold)
    if np.isnan(p0):
        if primary_status == "missing":
            return f"{event}: no primary analysis to compare with"
        return (f"{event}: the primary analysis is '{primary_status}', so there is no "
                "reference to judge the scenarios against")
    parts = []
    for level, moved in crossings.items():
        side = "above" if p0 > level else "at or below"
        if len(moved):
            parts.append(f"crosses {level:g} in {len(moved)} of {n} scenarios "
                         f"(primary {p0:.2f}, {side} {level:g})")
    if not parts:
        return (f"robust: {event} stays on the primary analysis's side of 0.5 and 0.95 "
                f"in all {n} scenarios")
    return f"NOT robust: {event} " + " and ".join(parts)
