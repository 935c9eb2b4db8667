"""Prior sensitivity of one fit without refitting: power-scaling (arviz-stats ``psense``).

Power-scaling raises the prior (or the likelihood) to a power alpha near 1 and measures,
by importance weighting the existing draws, how far each posterior moves (cumulative
Jensen-Shannon distance per unit log alpha; Kallioinen et al., Stat Comput 2024;34:57).
A prior sensitivity above the threshold with a low likelihood sensitivity means the
prior, not the data, shapes that quantity.

Only the priors a user chooses are scaled (the hyperpriors: ``m, phi``, ``mu, tau`` or
``theta``); the logit-normal's standardised effects ``z ~ Normal(0, 1)`` are part of
the model's structure, not a choice, and are left alone.
"""

from __future__ import annotations

import arviz_stats as azs
import numpy as np
import pandas as pd
import xarray as xr

from bayes_dress.fitting.fit import AnalysisFit

#: arviz-stats' default: a distance above 0.05 per unit log alpha is flagged.
PSENSE_THRESHOLD = 0.05
PSENSE_COLUMNS = ["outcome", "model", "variable", "prior", "likelihood", "diagnosis", "note"]


def power_scaling(fit: AnalysisFit) -> pd.DataFrame:
    """Prior and likelihood power-scaling sensitivity of ``fit``'s population quantities.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`PSENSE_COLUMNS`, one row per population-level quantity. Empty
        (with a note) for an exact-engine fit, which has no joint draws to reweight.
    """
    posterior = fit.posterior.joint_draws
    if posterior is None:
        return pd.DataFrame([{"outcome": fit.outcome, "model": fit.model,
                              "note": f"{fit.engine} engine: no posterior draws to reweight"}],
                            columns=PSENSE_COLUMNS)
    model = fit.analysis.model
    draws = {name: d.values for name, d in model.sampled_draws(posterior).items()}
    events, totals = model.counts(fit.analysis.data)
    log_lik = model.log_likelihood(draws, events, totals)
    chains, n_draws = log_lik.shape[:2]
    log_lik = log_lik.reshape(chains, n_draws, -1)
    # A prior's log density sums over a parameter's outcomes (one prior per parameter).
    log_prior = sum(np.asarray(fit.priors[name].logpdf(draws[name]), dtype=float).reshape(
        chains, n_draws, -1).sum(axis=-1) for name in fit.priors)
    keys = [k for k in fit.posterior.keys if not k[2] and k[0] != "theta_new"]
    columns = {}  # a single predictive draw per sample (theta_new) is too noisy
    for key in keys:
        values = fit.posterior.draws(key)
        if np.ptp(values) > 0:
            columns["__".join(p for p in key[:2] if p)] = (("chain", "draw"), values)
    variables = list(columns)
    tree = xr.DataTree.from_dict({
        "posterior": xr.Dataset(columns),
        "log_likelihood": xr.Dataset({"y": (("chain", "draw", "observation"), log_lik)}),
        "log_prior": xr.Dataset({"prior": (("chain", "draw"), log_prior)}),
    })
    # psense per component, as psense_summary does, except that a constant log prior
    # (uniform priors everywhere) has sensitivity 0 by construction: every importance
    # weight is equal, which arviz-stats' Pareto smoothing rejects as an error.
    likelihood = azs.psense(tree, group="likelihood")
    prior = (azs.psense(tree, group="prior") if np.ptp(log_prior) > 0
             else xr.zeros_like(likelihood))
    labels = {"__".join(p for p in k[:2] if p): (k[0] if len(fit.outcomes) == 1
                                                  else f"{k[0]} [{k[1] or 'all'}]")
              for k in keys}
    table = pd.DataFrame({"variable": [labels[v] for v in variables],
                          "prior": [float(prior[v]) for v in variables],
                          "likelihood": [float(likelihood[v]) for v in variables]})
    table["diagnosis"] = [_diagnosis(p, li) for p, li in zip(table["prior"],
                                                              table["likelihood"],
                                                              strict=True)]
    table[["prior", "likelihood"]] = table[["prior", "likelihood"]].round(4)
    flat = [name for name, p in fit.priors.items() if not p.proper]
    note = (f"flat prior on {', '.join(flat)}: its log density is constant, so "
            "power-scaling the prior reweights only by the other priors" if flat else "")
    table.insert(0, "model", fit.model)
    table.insert(0, "outcome", fit.outcome)
    table["note"] = note
    return table.reindex(columns=PSENSE_COLUMNS)


def _diagnosis(prior: float, likelihood: float) -> str:
    """arviz-stats psense_summary's reading of the two sensitivities."""
    if prior >= PSENSE_THRESHOLD and likelihood >= PSENSE_THRESHOLD:
        return "potential prior-data conflict"
    if prior > PSENSE_THRESHOLD > likelihood:
        return "potential strong prior / weak likelihood"
    return "✓"
