"""Every NUTS fit checked against the exact engine, in units of Monte Carlo error.

For each reported quantity with an exact counterpart, the NUTS estimate of its mean and
of its 2.5%, 50% and 97.5% quantiles is compared with the exact value, and the
difference divided by sqrt(MCSE^2 + GRID_TOLERANCE^2): the estimate's Monte Carlo
standard error (arviz-stats) combined with the exact engine's own numerical tolerance,
which matters only where the MCSE is tiny (a quantile pressed against 0). If NUTS is
right, these z-values are roughly standard normal.
"""

from __future__ import annotations

import arviz_stats as azs
import numpy as np
import pandas as pd
import xarray as xr

from bayes_dress.diagnostics import Check
from bayes_dress.exact import GRID_TOLERANCE, ExactFit
from bayes_dress.models import STUDY_DIM

#: |z| above which NUTS and the exact posterior disagree. A check compares ~40 numbers;
#: P(|Z| > 4.5) = 6.8e-6 for one standard normal, ~3e-4 for the largest of 40, so a
#: failure is a real disagreement, not chance.
Z_BOUND = 4.5
STATISTICS = (("mean", None), ("q2.5", 0.025), ("median", 0.5), ("q97.5", 0.975))
COLUMNS = ["outcome", "parameter", "study", "statistic", "nuts", "exact", "mcse", "z"]


def _matched_quantities(tree: xr.DataTree, exact: ExactFit):
    posterior = tree["posterior"].to_dataset()
    for name, marginal in exact.quantities.items():
        if name in posterior and STUDY_DIM not in posterior[name].dims:
            yield name, "", posterior[name].values, marginal
    if "theta" in posterior and STUDY_DIM in posterior["theta"].dims:
        for study, marginal in exact.studies.items():
            yield "theta", study, posterior["theta"].sel({STUDY_DIM: study}).values, marginal


def compare_with_exact(tree: xr.DataTree, exact: ExactFit, *, outcome: str) -> pd.DataFrame:
    """NUTS minus exact, per quantity and statistic, in Monte Carlo standard errors."""
    rows = []
    for name, study, draws, marginal in _matched_quantities(tree, exact):
        if np.ptp(draws) == 0:
            continue  # a constant (the common-effect model's zero SD of rates)
        da = xr.DataArray(draws, dims=("chain", "draw"))
        for statistic, prob in STATISTICS:
            if prob is None:
                nuts, truth = float(draws.mean()), marginal.mean
                mcse = float(azs.mcse(da, method="mean"))
            else:
                nuts, truth = float(np.quantile(draws, prob)), float(marginal.quantile(prob))
                mcse = float(azs.mcse(da, method="quantile", prob=prob))
            if not (np.isfinite(truth) and mcse > 0):
                continue  # e.g. kappa's mean, which does not exist
            rows.append({"outcome": outcome, "parameter": name, "study": study,
                         "statistic": statistic, "nuts": nuts, "exact": truth,
                         "mcse": mcse,
                         "z": (nuts - truth) / np.hypot(mcse, GRID_TOLERANCE)})
    return pd.DataFrame(rows, columns=COLUMNS)


def agreement_check(table: pd.DataFrame, *, outcome: str) -> Check:
    """A diagnostic check that fails when any |z| exceeds :data:`Z_BOUND`."""
    if table.empty:
        return Check(outcome, "exact_agreement", True, float("nan"), Z_BOUND,
                     "no quantity to compare with the exact engine", "")
    worst = table.loc[table["z"].abs().idxmax()]
    label = worst["parameter"] + (f"[{worst['study']}]" if worst["study"] else "")
    value = float(abs(worst["z"]))
    return Check(outcome, "exact_agreement", value <= Z_BOUND, value, Z_BOUND,
                 f"largest NUTS-minus-exact difference {worst['z']:+.2f} MCSE ({label} "
                 f"{worst['statistic']}: NUTS {worst['nuts']:.4f}, exact "
                 f"{worst['exact']:.4f}) over {len(table)} comparisons, bound {Z_BOUND}",
                 "the sampler has not explored the posterior: raise --target-accept, "
                 "--tune and --draws, or use --engine exact")
