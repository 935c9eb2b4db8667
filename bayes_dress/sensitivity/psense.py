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

import logging

import arviz_stats as azs
import numpy as np
import pandas as pd
import xarray as xr

from bayes_dress.fitting import OutcomeFit
from bayes_dress.models import STUDY_DIM, get_model

#: arviz-stats' default: a distance above 0.05 per unit log alpha is flagged.
PSENSE_THRESHOLD = 0.05
PSENSE_COLUMNS = ["outcome", "model", "variable", "prior", "likelihood", "diagnosis", "note"]


def power_scaling(fit: OutcomeFit) -> pd.DataFrame:
    """Prior and likelihood power-scaling sensitivity of ``fit``'s population quantities.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`PSENSE_COLUMNS`, one row per population-level quantity. Empty
        (with a note) for an exact-engine fit, which has no joint draws to reweight.
    """
    if fit.engine != "nuts":
        return pd.DataFrame([{"outcome": fit.outcome, "model": fit.model,
                              "note": "exact engine: no posterior draws to reweight"}],
                            columns=PSENSE_COLUMNS)
    model = get_model(fit.model)
    posterior = fit.tree["posterior"].to_dataset()
    draws = {name: posterior[name].values for name in model.sampled}
    log_lik = model.log_likelihood(draws, fit.data.events, fit.data.totals)
    log_prior = sum(np.asarray(fit.priors[name].logpdf(draws[name]), dtype=float)
                    for name in fit.priors)
    variables = [v for v in posterior.data_vars
                 if STUDY_DIM not in posterior[v].dims and np.ptp(posterior[v].values) > 0
                 and v != "theta_new"]  # a single predictive draw per sample: too noisy
    tree = xr.DataTree.from_dict({
        "posterior": posterior[variables],
        "log_likelihood": xr.Dataset({"y": (("chain", "draw", STUDY_DIM), log_lik)}),
        "log_prior": xr.Dataset({"prior": (("chain", "draw"), log_prior)}),
    })
    # psense_summary logs a generic warning when it flags anything; the table's
    # diagnosis column says the same per quantity, and is what gets reported.
    logger = logging.getLogger("arviz_stats.psense")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with np.errstate(all="ignore"):
            table = azs.psense_summary(tree, threshold=PSENSE_THRESHOLD, round_to=4)
    finally:
        logger.setLevel(level)
    table = table.reset_index().rename(columns={"index": "variable"})
    table.columns = [str(c) for c in table.columns]
    flat = [name for name, p in fit.priors.items() if not p.proper]
    note = (f"flat prior on {', '.join(flat)}: power-scaling it changes nothing, so its "
            "prior sensitivity is 0 by construction" if flat else "")
    table.insert(0, "model", fit.model)
    table.insert(0, "outcome", fit.outcome)
    table["note"] = note
    return table.reindex(columns=PSENSE_COLUMNS)
