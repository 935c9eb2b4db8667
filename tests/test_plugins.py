"""Models as plug-ins: a model defined in this test module alone runs through every command.

``StudentTLogit`` has three hyperparameters (mu, tau and the degrees of freedom nu of
Student-t study effects), which no integrator of the exact engine can grid: its NUTS
fits say "no exact reference for this model" (a note, not a failure) and everything
else works. ``TwoBlocks`` is an analysis over two outcomes (two independent
logit-normal blocks in one graph), whose summaries equal two single-outcome fits'
within Monte Carlo error. Neither touches a package module.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats
from scipy.special import expit

from bayes_dress import RunConfig, run_fit
from bayes_dress.cli import main
from bayes_dress.models import (
    OUTCOME_DIM,
    STUDY_DIM,
    Model,
    Quantity,
    SingleOutcomeModel,
    register_model,
)
from bayes_dress.models.base import rate
from bayes_dress.models.logit_normal import logit_normal_moments
from bayes_dress.spec.config import SamplerSettings

SMALL = ["--draws", "400", "--tune", "400", "--chains", "2", "--seed", "5"]
#: Nodes of the quantile rule over the t distribution for a toy model's moments.
T_NODES = 64


class StudentTLogit(SingleOutcomeModel):
    """logit(theta_i) = mu + tau t_i, t_i ~ StudentT(nu)."""

    name = "toy_student_t"
    quantities = (
        rate("mean_rate"), rate("theta_new"), Quantity("sd_rates", support="positive"),
        Quantity("mu", kind="parameter"), Quantity("tau", support="positive", kind="parameter"),
        Quantity("nu", support="positive", kind="parameter"),
        Quantity("z", (STUDY_DIM,), kind="latent"), rate("theta", STUDY_DIM),
    )

    def build_likelihood(self, events, totals, priors, shared):
        import pymc as pm

        mu = self.prior_variable("mu", priors, shared)
        tau = self.prior_variable("tau", priors, shared)
        nu = self.prior_variable("nu", priors, shared)
        z = pm.StudentT("z", nu=nu, mu=0.0, sigma=1.0, dims=STUDY_DIM)
        pm.Binomial("y", n=totals, logit_p=mu + tau * z, observed=events, dims=STUDY_DIM)

    def prior_draws(self, priors, data, rng, shape):
        draws = {name: priors[name].draw(rng, shape) for name in ("mu", "tau", "nu")}
        draws["z"] = rng.standard_t(draws["nu"][..., None], size=(*shape, data.n_studies))
        return draws

    def log_likelihood(self, draws, events, totals):
        logit = draws["mu"][..., None] + draws["tau"][..., None] * draws["z"]
        return stats.binom.logpmf(events, totals, expit(logit))

    def derived(self, draws, events, totals, rng, priors):
        mu, tau, nu = draws["mu"], draws["tau"], draws["nu"]
        nodes = stats.t.ppf((np.arange(T_NODES) + 0.5) / T_NODES, nu[..., None])
        rates = expit(mu[..., None] + tau[..., None] * nodes)
        return {"theta": expit(mu[..., None] + tau[..., None] * draws["z"]),
                "mean_rate": rates.mean(axis=-1), "sd_rates": rates.std(axis=-1),
                "theta_new": expit(mu + tau * rng.standard_t(nu))}


STUDENT_T_SPEC = {
    "name": "toy_student_t", "title": "Logit model with Student-t study effects (test)",
    "equations": ["y_i ~ Binomial(n_i, theta_i)", "logit(theta_i) = mu + tau t_i",
                  "t_i ~ StudentT(nu)"],
    "sampling": "NUTS on (mu, tau, nu, t).", "heterogeneity": ["tau"],
    "parameters": {
        "mu": {"support": "real", "prior": "Normal(0, 1.5)", "description": "centre"},
        "tau": {"support": "positive", "prior": "HalfNormal(1)", "description": "scale"},
        "nu": {"support": "positive", "prior": "Gamma(2, 0.1)",
               "description": "degrees of freedom", "rationale": "Juarez and Steel 2010"},
    },
}


class TwoBlocks(Model):
    """Two outcomes, each its own logit-normal model, in one PyMC graph."""

    name = "toy_two_blocks"
    quantities = (
        rate("mean_rate", OUTCOME_DIM), rate("theta_new", OUTCOME_DIM),
        Quantity("sd_rates", (OUTCOME_DIM,), "positive"),
        Quantity("mu", (OUTCOME_DIM,), kind="parameter"),
        Quantity("tau", (OUTCOME_DIM,), "positive", kind="parameter"),
        Quantity("z", (OUTCOME_DIM, STUDY_DIM), kind="latent"),
        rate("theta", OUTCOME_DIM, STUDY_DIM),
    )

    def build(self, data, priors, *, shared=None):
        import pymc as pm

        with pm.Model(coords=self.coords(data)) as model:
            events, totals = self.data_containers(data)
            mu = self.prior_variable("mu", priors, shared, dims=OUTCOME_DIM)
            tau = self.prior_variable("tau", priors, shared, dims=OUTCOME_DIM)
            z = pm.Normal("z", 0.0, 1.0, dims=(OUTCOME_DIM, STUDY_DIM))
            pm.Binomial("y", n=totals, logit_p=mu[:, None] + tau[:, None] * z,
                        observed=events, dims=(OUTCOME_DIM, STUDY_DIM))
        return model

    def log_likelihood(self, draws, events, totals):
        logit = draws["mu"][..., None] + draws["tau"][..., None] * draws["z"]
        return stats.binom.logpmf(events, totals, expit(logit))

    def derived(self, draws, events, totals, rng, priors):
        mu, tau = draws["mu"], draws["tau"]
        mean, sd = logit_normal_moments(mu, tau)
        return {"theta": expit(mu[..., None] + tau[..., None] * draws["z"]),
                "mean_rate": mean, "sd_rates": sd,
                "theta_new": expit(mu + tau * rng.standard_normal(mu.shape))}


TWO_BLOCKS_SPEC = {
    "name": "toy_two_blocks", "title": "Two logit-normal blocks (test)", "outcomes": 2,
    "default_outcomes": ["success", "severe_ae"],
    "equations": ["logit(theta_ij) = mu_j + tau_j z_ij"], "sampling": "NUTS, non-centred.",
    "heterogeneity": ["tau"],
    "parameters": {
        "mu": {"support": "real", "prior": "Normal(0, 1.5)", "description": "centre"},
        "tau": {"support": "positive", "prior": "HalfNormal(1)", "description": "scale"},
    },
}


@pytest.fixture(scope="module", autouse=True)
def registered():
    register_model(StudentTLogit(), STUDENT_T_SPEC)
    register_model(TwoBlocks(), TWO_BLOCKS_SPEC)


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.slow
def test_a_three_hyperparameter_model_runs_through_every_command(tmp_path):
    run = tmp_path / "run"
    result = invoke("fit", "--model", "toy_student_t", "--outcome", "success", *SMALL,
                    "--out", run)
    assert result.exit_code == 0, result.output + result.stderr
    assert "no exact reference for this model" in result.output
    diagnostics = json.loads((run / "diagnostics.json").read_text())
    note = next(c for c in diagnostics["analyses"]["success"]["checks"]
                if c["check"] == "reference_agreement")
    assert note["passed"] is True and note["value"] is None  # a note, not a failure
    assert "no integrator for model 'toy_student_t'" in note["detail"]
    summary = pd.read_csv(run / "summary.csv")
    assert {"mu", "tau", "nu", "mean_rate", "theta_new", "sd_rates"} <= set(
        summary["parameter"])
    names = [e["name"] for e in json.loads((run / "plots/index.json").read_text())]
    assert names == ["forest-success", "prior-posterior-success", "ppc-success",
                     "trace-success", "rank-success"]
    assert invoke("plot", run).exit_code == 0
    assert invoke("report", run).exit_code == 0
    html = (run / "report.html").read_text()
    assert "Student-t study effects" in html and "degrees of freedom" in html
    spec = tmp_path / "sweep.toml"
    spec.write_text('[primary]\nmodel = "toy_student_t"\noutcomes = ["success"]\n'
                    "[primary.sampler]\ndraws = 400\ntune = 400\nchains = 2\n"
                    '[dimensions]\nmodel = ["toy_student_t"]\n'
                    '[dimensions.heterogeneity_prior]\n'
                    'toy_student_t = ["HalfNormal(1)", "HalfNormal(0.5)"]\n')
    sweep = tmp_path / "sweep"
    result = invoke("sensitivity", "--config", spec, "--jobs", "1", "--out", sweep,
                    "--threshold", "0.5")
    assert result.exit_code == 0, result.output + result.stderr
    table = pd.read_csv(sweep / "sensitivity.csv")
    assert table["scenario"].nunique() == 2
    assert set(table["priors"]) == {
        "mu ~ Normal(mu=0, sigma=1.5); tau ~ HalfNormal(sigma=1); nu ~ Gamma(alpha=2, beta=0.1)",
        "mu ~ Normal(mu=0, sigma=1.5); tau ~ HalfNormal(sigma=0.5); nu ~ Gamma(alpha=2, "
        "beta=0.1)"}
    assert invoke("report", run, sweep).exit_code == 0


@pytest.mark.slow
def test_two_outcomes_in_one_graph_equal_two_single_outcome_fits():
    settings = SamplerSettings(draws=1500, tune=700, chains=2, seed=21)
    joint = run_fit(RunConfig(model="toy_two_blocks", sampler=settings))
    assert list(joint.fits) == ["success+severe_ae"]
    fit = joint.fits["success+severe_ae"]
    assert fit.outcomes == ("success", "severe_ae")
    assert "no exact reference" in " ".join(c.detail for c in fit.checks)
    separate = run_fit(RunConfig(model="logit_normal", sampler=settings)).summary
    both = fit.summary.merge(separate, on=["outcome", "parameter", "study"],
                             suffixes=("_joint", "_alone"))
    assert len(both) == len(separate) == 2 * 7  # each outcome: 5 population, 2 studies
    for statistic in ("mean", "median"):
        error = np.hypot(both["mcse_mean_joint"], both["mcse_mean_alone"])
        # Quantiles have wider Monte Carlo error than means: 3 x the mean's is generous.
        bound = 4.5 * error * (1 if statistic == "mean" else 3)
        worst = (both[f"{statistic}_joint"] - both[f"{statistic}_alone"]).abs() - bound
        assert (worst < 0).all(), both.loc[worst.idxmax()]
    # One analysis's two outcomes: each outcome's rows carry its name, and the analysis's.
    assert set(fit.summary["analysis"]) == {"success+severe_ae"}
    assert set(fit.summary["outcome"]) == {"success", "severe_ae"}
