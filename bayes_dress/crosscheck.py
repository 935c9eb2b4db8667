"""Every NUTS fit checked against the exact engine, in units of Monte Carlo error.

For each reported quantity with an exact counterpart, the NUTS estimate of its mean and
of its 2.5%, 50% and 97.5% quantiles is compared with the exact value:

* the mean: (NUTS - exact) / sqrt(MCSE^2 + GRID_TOLERANCE^2), with the Monte Carlo
  standard error of arviz-stats (computed by :mod:`bayes_dress.mcmc_stats`) and the
  exact engine's own numerical tolerance;
* a quantile q_p: on the probability scale, (F(q_p) - p) / sqrt(p (1 - p) / ESS_p +
  t^2), where F is the exact CDF, ESS_p the effective sample size of the indicator
  draw <= q_p, and t the exact engine's tolerance GRID_TOLERANCE carried to the
  probability scale (the CDF's change over q_p +- GRID_TOLERANCE, at least
  GRID_TOLERANCE). A quantile's error in value units is symmetric only for
  near-normal tails; on the probability scale it is the same whatever the quantity's
  scale, so phi's 2.5% quantile and kappa = phi^-2's 97.5% quantile get one z, not a
  moderate one and an inflated one from kappa's heavy tail.

If NUTS is right, these z-values are roughly standard normal. ``mcse`` in the table is
the value-scale MCSE (arviz-stats), for reading the ``nuts`` column.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from bayes_dress import mcmc_stats
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


def compare_with_exact(tree: xr.DataTree, exact: ExactFit, summary: pd.DataFrame, *,
                       outcome: str) -> pd.DataFrame:
    """NUTS minus exact, per quantity and statistic, in Monte Carlo standard errors.

    ``summary`` is the fit's :func:`bayes_dress.summaries.summarize` table, whose
    means, quantiles and MCSE of the mean are used as they are.
    """
    matched = [(name, study, draws, marginal)
               for name, study, draws, marginal in _matched_quantities(tree, exact)
               if np.ptp(draws) > 0]  # skip constants (a common-effect zero SD of rates)
    if not matched:
        return pd.DataFrame(columns=COLUMNS)
    draws = np.stack([m[2] for m in matched], axis=-1)
    summarised = summary.set_index(["parameter", "study"]).loc[
        [(name, study) for name, study, *_ in matched]]
    # Every quantity at once. The quantile ESS is computed once and serves both the
    # value-scale MCSE and the probability-scale z.
    probs = [prob for _, prob in STATISTICS[1:]]
    ess_q = mcmc_stats.ess_quantile(draws, probs)
    mcse_q = mcmc_stats.mcse_quantile(draws, probs, ess=ess_q)
    nuts = {statistic: summarised[statistic].to_numpy() for statistic, _ in STATISTICS}
    mcse = {"mean": summarised["mcse_mean"].to_numpy()}
    ess_at = {}
    for i, (statistic, _) in enumerate(STATISTICS[1:]):
        mcse[statistic], ess_at[statistic] = mcse_q[i], ess_q[i]
    rows = []
    for k, (name, study, _, marginal) in enumerate(matched):
        for statistic, prob in STATISTICS:
            truth = marginal.mean if prob is None else float(marginal.quantile(prob))
            error = float(mcse[statistic][k])
            if not (np.isfinite(truth) and error > 0):
                continue  # e.g. kappa's mean, which does not exist
            estimate = float(nuts[statistic][k])
            if prob is None:
                z = (estimate - truth) / np.hypot(error, GRID_TOLERANCE)
            else:
                spread = np.sqrt(prob * (1 - prob) / float(ess_at[statistic][k]))
                # The exact engine's tolerance in value units, as probability: large
                # where the density spikes (a rate piled up against 0 or 1).
                below, at, above = marginal.cdf_at(estimate + np.array(
                    [-GRID_TOLERANCE, 0.0, GRID_TOLERANCE]))
                tolerance = max((above - below) / 2, GRID_TOLERANCE)
                z = (float(at) - prob) / np.hypot(spread, tolerance)
            rows.append({"outcome": outcome, "parameter": name, "study": study,
                         "statistic": statistic, "nuts": estimate, "exact": truth,
                         "mcse": error, "z": z})
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
