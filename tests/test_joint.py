"""The joint model of benefit and harm against known answers.

With rho fixed at 0 it is two logit-normal models (the exact engine to 1e-6, NUTS within
Monte Carlo error); swapping the outcomes changes nothing; recoding harm as "no harm"
flips mu_2 and rho and leaves the matching joint probability; with no data the posterior
is the prior; rho near +-1 stays finite; a 20-study table of two outcomes fits the same
way as the bundled one; the sweep judges the joint probabilities across priors of rho.
Tolerances are in combined standard errors: ``Z`` = 4.5, as the engines' own check.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats

from bayes_dress import RunConfig, run_fit
from bayes_dress.cli import main
from bayes_dress.data import AnalysisData, OutcomeData, load_table, select_analysis
from bayes_dress.engines import get_engine
from bayes_dress.engines.base import FitOptions
from bayes_dress.fitting.fit import derive_seed
from bayes_dress.models import get_model
from bayes_dress.models.analysis import Analysis
from bayes_dress.spec.config import SamplerSettings
from bayes_dress.spec.models import resolve_priors

Z = 4.5
SETTINGS = SamplerSettings(draws=1500, tune=1000, chains=2, seed=11)
JOINT = "joint_logit_normal"


def analysis(priors=None, data=None) -> Analysis:
    model = get_model(JOINT)
    data = data or select_analysis(load_table(), ("success", "severe_ae"))
    return Analysis(model, data, resolve_priors(model.spec, priors or {}))


def reference(an: Analysis):
    """The importance-sampling reference fit (deterministic given the seed)."""
    seeds = derive_seed(1, an.name).spawn(3)
    return get_engine("importance").fit(an, settings=SETTINGS, seeds=seeds,
                                        options=FitOptions(reference=True)).posterior


def z_scores(a, b, keys_a, keys_b):
    """(a - b) / combined error for the means of matched keys."""
    return ((a.mean(keys_a) - b.mean(keys_b))
            / np.hypot(a.mean_error(keys_a), b.mean_error(keys_b)))


def test_rho_fixed_at_zero_is_two_logit_normal_models_exactly():
    joint = run_fit(RunConfig(model=JOINT, engine="exact", priors={"rho": "Fixed(0)"}))
    separate = run_fit(RunConfig(model="logit_normal", engine="exact"))
    both = joint.summary.merge(separate.summary, on=["outcome", "parameter", "study"],
                               suffixes=("_joint", "_alone"))
    assert len(both) == len(separate.summary) == 14
    for column in ("mean", "q2.5", "median", "q97.5", "sd"):
        np.testing.assert_allclose(both[f"{column}_joint"], both[f"{column}_alone"],
                                   atol=1e-6)


@pytest.mark.slow
def test_rho_fixed_at_zero_nuts_equals_two_separate_fits_within_mc_error():
    joint = run_fit(RunConfig(model=JOINT, priors={"rho": "Fixed(0)"}, sampler=SETTINGS))
    fit = joint.fits["success+severe_ae"]
    assert not fit.failures, [c.message() for c in fit.failures]
    assert fit.reference == "exact"  # rho fixed at 0: the exact engine checks it
    separate = run_fit(RunConfig(model="logit_normal", sampler=SETTINGS)).summary
    both = fit.summary.merge(separate, on=["outcome", "parameter", "study"],
                             suffixes=("_joint", "_alone"))
    z = ((both["mean_joint"] - both["mean_alone"])
         / np.hypot(both["mcse_mean_joint"], both["mcse_mean_alone"]))
    assert len(both) == 14 and z.abs().max() < Z, both.loc[z.abs().idxmax()]


def test_swapping_the_outcomes_changes_nothing():
    forward = reference(analysis())
    table = load_table()
    backward = reference(analysis(data=select_analysis(table, ("severe_ae", "success"))))
    keys = [k for k in forward.keys if k[0] != "theta"]
    z = z_scores(forward, backward, keys, keys)
    assert np.abs(z).max() < Z, dict(zip(keys, z, strict=True))


def _recoded(data: AnalysisData) -> AnalysisData:
    """Harm recoded as no harm: y -> n - y."""
    harm = data.block("severe_ae")
    return AnalysisData((data.block("success"),
                         dataclasses.replace(harm, events=harm.totals - harm.events)))


def test_recoding_harm_as_no_harm_flips_mu_and_rho():
    data = select_analysis(load_table(), ("success", "severe_ae"))
    original, recoded = reference(analysis(data=data)), reference(analysis(data=_recoded(data)))
    mu_harm = [("mu", "severe_ae", "")]
    assert abs(z_scores(original, _negated(recoded), mu_harm, mu_harm)[0]) < Z
    rho = [("rho", "", "")]
    assert abs(z_scores(original, _negated(recoded), rho, rho)[0]) < Z
    same = [("mu", "success", ""), ("tau", "success", ""), ("tau", "severe_ae", "")]
    assert np.abs(z_scores(original, recoded, same, same)).max() < Z


class _Negated:
    """A posterior whose means are another's, negated (for mu_2 -> -mu_2, rho -> -rho)."""

    def __init__(self, posterior):
        self.posterior = posterior

    def mean(self, keys):
        return -self.posterior.mean(keys)

    def mean_error(self, keys):
        return self.posterior.mean_error(keys)


def _negated(posterior):
    return _Negated(posterior)


@pytest.mark.slow
def test_recoding_harm_leaves_the_matching_joint_probability():
    """P(success > a and harm < b) = P(success > a and no harm > 1 - b) under the
    symmetric LKJ(2) prior of rho (NUTS, within Monte Carlo error)."""
    from bayes_dress.fitting.benefit_risk import benefit_risk_table
    from bayes_dress.fitting.fit import fit_analysis
    from bayes_dress.spec.config import BenefitRiskSpec

    data = select_analysis(load_table(), ("success", "severe_ae"))
    fits = [fit_analysis(analysis(data=d), settings=SETTINGS, thresholds=(0.5,))
            for d in (data, _recoded(data))]
    harm = benefit_risk_table([fits[0]], BenefitRiskSpec(benefit_threshold=0.5,
                                                         risk_threshold=0.2))
    # Recoded, "harm < 0.2" is "no harm > 0.8": the complement of P(no harm < 0.8) at the
    # same benefit threshold, from the joint draws of the recoded fit.
    posterior = fits[1].posterior
    x = posterior.draws(("theta_new", "success", ""))
    y = posterior.draws(("theta_new", "severe_ae", ""))
    recoded = np.mean((x > 0.5) & (y > 0.8))
    row = harm[(harm["kind"] == "joint") & (harm["quantity"] == "theta_new")].iloc[0]
    assert abs(recoded - row["probability"]) < Z * np.sqrt(2) * row["mcse"] + 1e-3


@pytest.mark.slow
def test_without_data_the_posterior_is_the_prior_of_rho():
    """Every count empty (0 of 0): NUTS and the importance sampler return the LKJ(2)
    prior of rho, (rho + 1) / 2 ~ Beta(2, 2)."""
    empty = AnalysisData(tuple(
        OutcomeData(outcome=o, studies=("A", "B"), events=np.zeros(2, dtype=np.int64),
                    totals=np.zeros(2, dtype=np.int64), definitions=("", ""))
        for o in ("success", "severe_ae")))
    prior = stats.beta(2, 2, loc=-1, scale=2)
    from bayes_dress.fitting.fit import fit_analysis

    fit = fit_analysis(analysis(data=empty), settings=SETTINGS, thresholds=(0.5,))
    rho = fit.posterior.draws(("rho", "", "")).reshape(-1)
    for p in (0.05, 0.25, 0.5, 0.75, 0.95):
        se = np.sqrt(p * (1 - p) / (rho.size / 4))  # ESS at least a quarter of the draws
        assert abs(np.mean(rho <= prior.ppf(p)) - p) < Z * se
    weighted = reference(analysis(data=empty))
    q = weighted.quantile([("rho", "", "")], [0.1, 0.5, 0.9])[:, 0]
    np.testing.assert_allclose(q, prior.ppf([0.1, 0.5, 0.9]), atol=0.03)


@pytest.mark.slow
@pytest.mark.parametrize("rho", ["Fixed(0.99)", "Fixed(-0.99)", "LKJ(1)"])
def test_rho_near_the_bounds_stays_finite_and_fits_cleanly(rho):
    settings = dataclasses.replace(SamplerSettings(), seed=3)  # the defaults
    fit = run_fit(RunConfig(model=JOINT, priors={"rho": rho},
                            sampler=settings)).fits["success+severe_ae"]
    assert np.isfinite(fit.summary[["mean", "q2.5", "q97.5"]].to_numpy()).all()
    divergences = int(fit.groups["sample_stats"]["diverging"].sum())
    assert divergences == 0
    checks = {c.check: c for c in fit.checks}
    assert checks["reference_agreement"].passed, checks["reference_agreement"].message()
    if rho == "Fixed(0.99)":
        # The bundled counts pull benefit and harm apart (1/6 with 5/6, 16/18 with
        # 1/18); forcing rho to +0.99 leaves the severe-AE spread in a funnel near 0,
        # which NUTS explores slowly: bulk ESS about 250-400 of 8000 draws over seeds 1-6
        # here. That is reported, as it must be, and is the only thing reported.
        assert {c.check for c in fit.failures} <= {"ess_bulk", "ess_tail", "r_hat"}
    else:
        assert not fit.failures, [c.message() for c in fit.failures]


@pytest.mark.slow
def test_the_bundled_data_pass_every_check_against_the_importance_reference():
    fit = run_fit(RunConfig(model=JOINT)).fits["success+severe_ae"]
    checks = {c.check: c for c in fit.checks}
    assert fit.reference == "importance"
    assert checks["reference_agreement"].passed and checks["importance_khat"].passed
    assert not fit.failures, [c.message() for c in fit.failures]


@pytest.mark.slow
def test_a_twenty_study_table_of_two_outcomes(tmp_path):
    rng = np.random.default_rng(20)
    k, rho = 20, -0.6
    z = rng.standard_normal((2, k))
    logits = np.stack([0.5 + 0.8 * z[0],
                       -1.5 + 0.7 * (rho * z[0] + np.sqrt(1 - rho**2) * z[1])])
    totals = rng.integers(20, 120, size=k)
    events = rng.binomial(totals, 1 / (1 + np.exp(-logits)))
    rows = [(f"S{i:02d}", name, events[j, i], totals[i])
            for j, name in enumerate(("success", "severe_ae")) for i in range(k)]
    data = tmp_path / "two.csv"
    pd.DataFrame(rows, columns=["study", "outcome", "events", "total"]).to_csv(data,
                                                                              index=False)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["fit", "--data", str(data), "--model", JOINT,
                                       "--draws", "1000", "--chains", "2", "--out",
                                       str(out)])
    assert result.exit_code == 0, result.output + result.stderr
    summary = pd.read_csv(out / "summary.csv", keep_default_na=False, na_values=[""])
    row = summary[summary["parameter"] == "rho"].iloc[0]
    assert row["q2.5"] < rho < row["q97.5"] and row["q97.5"] < 0.3
    assert (out / "benefit_risk.csv").is_file()
    diagnostics = pd.read_json(out / "diagnostics.json", typ="series")
    checks = diagnostics["analyses"]["success+severe_ae"]["checks"]
    agreement = next(c for c in checks if c["check"] == "reference_agreement")
    assert agreement["passed"], agreement["detail"]


@pytest.mark.slow
def test_the_sweep_judges_joint_probabilities_across_rho_priors(tmp_path):
    spec = tmp_path / "sweep.toml"
    spec.write_text('[primary]\nmodel = "joint_logit_normal"\n'
                    "[primary.sampler]\ndraws = 800\ntune = 800\nchains = 2\n"
                    '[dimensions]\nmodel = ["joint_logit_normal"]\nleave_one_out = true\n'
                    "[dimensions.correlation_prior]\n"
                    'joint_logit_normal = ["Fixed(0)", "LKJ(1)", "Uniform(-1, 0)"]\n')
    out = tmp_path / "sweep"
    result = CliRunner().invoke(main, ["sensitivity", "--config", str(spec), "--jobs", "1",
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output + result.stderr
    robustness = pd.read_csv(out / "robustness.csv")
    joint = robustness[robustness["outcome"] == "success+severe_ae"]
    assert {"P(new-study success > 0.5 and severe_ae < 0.2)",
            "P(new-study net benefit > 0, harm weight 1)"} == set(joint["quantity"])
    assert joint["verdict"].str.contains("robust").all()
    sensitivity = pd.read_csv(out / "sensitivity.csv")
    assert set(sensitivity["varied"]) == {"primary", "correlation_prior", "leave_one_out"}
    import json

    fits = json.loads((out / "manifest.json").read_text())["fits"]
    notes = " ".join(" ".join(f["notes"]) for f in fits)
    assert "one study left: the data say nothing about the correlation rho" in notes
