"""Every sampler's fit checked against a reference engine, in units of standard error.

For each reported quantity the reference has, the sampler's estimate of its mean and of
its 2.5%, 50% and 97.5% quantiles is compared with the reference's:

* the mean: (test - reference) / sqrt(error_test^2 + error_reference^2), where each
  error is that engine's own (a sampler's Monte Carlo standard error, arviz-stats'
  estimator; an integrator's numerical tolerance; an importance sampler's Monte Carlo
  error);
* a quantile q_p: on the probability scale, (F(q_p) - p) / sqrt(p (1 - p) / ESS_p +
  e^2), where F is the reference CDF, ESS_p the effective sample size of the indicator
  draw <= q_p, and e the reference's own error of F at q_p (an integrator's tolerance
  carried to the probability scale, at least the tolerance itself). A quantile's error
  in value units is symmetric only for near-normal tails; on the probability scale it
  is the same whatever the quantity's scale, so phi's 2.5% quantile and kappa =
  phi^-2's 97.5% quantile get one z, not a moderate one and an inflated one from
  kappa's heavy tail.

If the sampler is right, these z-values are roughly standard normal. ``error`` in the
table is the value-scale error of the sampler's estimate, for reading the ``test``
column.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayes_dress.checks.diagnostics import Check
from bayes_dress.labels import key_text
from bayes_dress.posterior.base import Posterior

#: |z| above which the sampler and the reference disagree. A check compares ~40
#: numbers; P(|Z| > 4.5) = 6.8e-6 for one standard normal, ~3e-4 for the largest of 40,
#: so a failure is a real disagreement, not chance.
Z_BOUND = 4.5
STATISTICS = (("mean", None), ("q2.5", 0.025), ("median", 0.5), ("q97.5", 0.975))
COLUMNS = ["analysis", "outcome", "parameter", "study", "statistic", "test", "reference",
           "error", "z"]


def compare(test: Posterior, reference: Posterior, summary: pd.DataFrame, *,
            analysis: str) -> pd.DataFrame:
    """Test minus reference, per quantity and statistic, in standard errors.

    ``summary`` is the test fit's summary table (:func:`bayes_dress.fitting.summaries.
    summarize`), whose means, quantiles and MCSE of the mean are used as they are.
    """
    indexed = summary.set_index(["outcome", "parameter", "study"])
    keys = [k for k in test.keys if reference.has(k) and (k[1], k[0], k[2]) in indexed.index]
    sd = indexed.loc[[(k[1], k[0], k[2]) for k in keys], "sd"].to_numpy() if keys else []
    keys = [k for k, s in zip(keys, sd, strict=True) if s > 0]  # skip constants
    if not keys:
        return pd.DataFrame(columns=COLUMNS)
    rows_of = indexed.loc[[(k[1], k[0], k[2]) for k in keys]]
    probs = [prob for _, prob in STATISTICS[1:]]
    quantile_se = test.quantile_prob_error(keys, probs)
    value_se = (test.quantile_errors(keys, probs)[0] if hasattr(test, "quantile_errors")
                else np.full((len(probs), len(keys)), np.nan))
    means_ref = reference.mean(keys)
    mean_err_ref = reference.mean_error(keys)
    mean_err = rows_of["mcse_mean"].to_numpy(dtype=float)
    quantiles_ref = reference.quantile(keys, probs)
    rows = []
    for k, key in enumerate(keys):
        for statistic, prob in STATISTICS:
            estimate = float(rows_of[statistic].iloc[k])
            if prob is None:
                truth = float(means_ref[k])
                error = float(mean_err[k])
                combined = np.hypot(error, mean_err_ref[k])
                if not (np.isfinite(truth) and combined > 0):
                    continue  # e.g. kappa's mean, which does not exist
                z = (estimate - truth) / combined
            else:
                i = probs.index(prob)
                truth = float(quantiles_ref[i, k])
                error = float(value_se[i, k])
                spread = float(quantile_se[i, k])
                if not (np.isfinite(truth) and spread > 0):
                    continue
                at = float(reference.cdf(key, estimate))
                own = float(reference.cdf_error(key, estimate))
                z = (at - prob) / np.hypot(spread, own)
            rows.append({"analysis": analysis, "outcome": key[1], "parameter": key[0],
                         "study": key[2], "statistic": statistic, "test": estimate,
                         "reference": truth, "error": error, "z": z})
    return pd.DataFrame(rows, columns=COLUMNS)


def agreement_check(table: pd.DataFrame, *, analysis: str, reference: str) -> Check:
    """A diagnostic check that fails when any |z| exceeds :data:`Z_BOUND`."""
    if table.empty:
        return Check(analysis, "reference_agreement", True, float("nan"), Z_BOUND,
                     f"no quantity to compare with the {reference} engine", "")
    worst = table.loc[table["z"].abs().idxmax()]
    label = key_text(worst["parameter"], worst["study"] or "",
                     worst["outcome"] if worst["outcome"] != analysis else "")
    value = float(abs(worst["z"]))
    return Check(analysis, "reference_agreement", value <= Z_BOUND, value, Z_BOUND,
                 f"largest difference from the {reference} engine {worst['z']:+.2f} standard "
                 f"errors ({label} {worst['statistic']}: sampler {worst['test']:.4f}, "
                 f"{reference} {worst['reference']:.4f}) over {len(table)} comparisons, "
                 f"bound {Z_BOUND}",
                 "the sampler has not explored the posterior: raise --target-accept, "
                 "--tune and --draws, or use --engine exact where it supports the model")


def no_reference_check(analysis: str, reasons: list[str]) -> Check:
    """A note, not a failure: no engine could serve as a reference for this model."""
    why = "; ".join(reasons) if reasons else "no reference engine supports this model"
    return Check(analysis, "reference_agreement", True, float("nan"), Z_BOUND,
                 f"no exact reference for this model ({why}): the sampler's fit is not "
                 "compared with one", "")
