"""The sensitivity sweep: its spec, the scenarios it expands to, its tables and its CLI.

MCMC here uses the small FAST settings of conftest; the exact engine stands in for NUTS
wherever a test is about the sweep's bookkeeping rather than about sampling.
"""

from __future__ import annotations

import json
import re
import tomllib

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from bayes_dress.cli import main
from bayes_dress.errors import SpecError
from bayes_dress.fitting import run_fit
from bayes_dress.sensitivity.spec import (
    default_spec_path,
    load_sweep_spec,
    sweep_spec_from_dict,
)
from bayes_dress.sensitivity.sweep import plan_sweep, run_sweep
from bayes_dress.sensitivity.tables import robustness_table
from bayes_dress.spec.config import RunConfig
from tests.conftest import FAST


def default_raw() -> dict:
    with default_spec_path().open("rb") as handle:
        return tomllib.load(handle)


def plan_of(raw: dict, **config_changes):
    spec = sweep_spec_from_dict(raw)
    return plan_sweep(spec, config=spec.primary.replace(**config_changes))


# ---- the spec ---------------------------------------------------------------------------


def test_default_spec_covers_what_the_issue_asks_for():
    spec = load_sweep_spec()
    assert spec.combine == "one_at_a_time"
    assert spec.models == ("beta_binomial", "logit_normal", "common_effect")
    tau = {str(p) for p in spec.heterogeneity_priors["logit_normal"]}
    assert {"HalfNormal(sigma=0.5)", "HalfNormal(sigma=1)", "HalfCauchy(beta=0.5)"} <= tau
    phi = {p.family for p in spec.heterogeneity_priors["beta_binomial"]}
    assert "BDA3" in phi and len(phi - {"BDA3"}) >= 1  # and a proper alternative
    assert spec.mean_priors and spec.definitions == "all" and spec.leave_one_out is True


@pytest.mark.parametrize(("change", "message"), [
    (lambda r: r["dimensions"].update(study_design=["x"]), "unknown dimension 'study_design'"),
    (lambda r: r["dimensions"]["heterogeneity_prior"].update(logit_normal=["HalfNormale(1)"]),
     "unknown distribution 'HalfNormale'"),
    (lambda r: r["dimensions"]["heterogeneity_prior"].update(logit_normal=[]),
     "dimensions.heterogeneity_prior.logit_normal is empty"),
    (lambda r: r["dimensions"].update(model=[]), "dimensions.model is empty"),
    (lambda r: r["dimensions"].update(model=["random_effects"]),
     "unknown model 'random_effects'"),
    (lambda r: r["dimensions"]["heterogeneity_prior"].update(common_effect=["HalfNormal(1)"]),
     "model 'common_effect' has no heterogeneity parameter"),
    (lambda r: r["dimensions"]["heterogeneity_prior"].update(logit_normal=["Normal(0, 1)"]),
     "support"),
    (lambda r: r["dimensions"]["heterogeneity_prior"].update(logit_normal=["BDA3"]),
     "improper"),
    (lambda r: r.update(combine="all"), "unknown combine 'all'"),
    (lambda r: r.update(scenarios=[]), "unknown key 'scenarios'"),
    (lambda r: r["dimensions"].update(leave_one_out="yes"), "leave_one_out must be"),
    (lambda r: r["dimensions"].update(definition=["evaluable"]), "dimensions.definition"),
    (lambda r: r["headline"].append({"outcome": "success", "quantity": "kappa",
                                     "thresholds": [0.5]}), "unknown quantity 'kappa'"),
    (lambda r: r["headline"].append({"outcome": "success", "quantity": "theta_new",
                                     "thresholds": [1.5]}), "strictly between 0 and 1"),
    (lambda r: r["primary"].update(model="nope"), "unknown model 'nope'"),
    (lambda r: r["dimensions"]["mean_prior"].update(beta_binomial=["BDA3"]),
     "dimensions.mean_prior.beta_binomial: "),
    (lambda r: r["headline"].append({"outcome": 3, "quantity": "theta_new",
                                     "thresholds": [0.5]}), "outcome must be"),
])
def test_bad_specs_are_rejected_with_the_reason(change, message):
    raw = default_raw()
    change(raw)
    with pytest.raises(SpecError, match=re.escape(message)):
        sweep_spec_from_dict(raw)


@pytest.mark.parametrize(("change", "message"), [
    (lambda r: r["dimensions"].update(definition={"sucess": ["evaluable"]}),
     "unknown outcome 'sucess' in dimensions.definition"),
    (lambda r: r["headline"].append({"outcome": "sucess", "quantity": "theta_new",
                                     "thresholds": [0.5]}),
     "unknown outcome 'sucess' in [[headline]]"),
])
def test_outcomes_the_data_do_not_have_are_rejected(change, message):
    """A misspelt outcome would otherwise drop a dimension or a headline silently."""
    raw = default_raw()
    change(raw)
    with pytest.raises(SpecError, match=re.escape(message)):
        plan_of(raw)


def test_a_model_flag_outside_the_spec_is_still_the_primary_analysis():
    """--model independent with a spec that lists three other models: the primary
    analysis is the independent model's, fitted first, and the robustness verdicts are
    judged from it."""
    plan = plan_of(default_raw(), model="independent", engine="exact")
    assert plan.scenarios[0].primary and plan.scenarios[0].model == "independent"
    assert sum(s.primary for s in plan.scenarios) == 1
    assert {"beta_binomial", "logit_normal", "common_effect"} <= {
        s.model for s in plan.scenarios}


def test_bad_spec_file(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text("combine = \n")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_sweep_spec(path)
    with pytest.raises(SpecError, match="not found"):
        load_sweep_spec(tmp_path / "missing.toml")


# ---- scenario expansion -------------------------------------------------------------------


def test_one_at_a_time_expansion_of_the_default_spec(bundled):
    plan = plan_sweep(load_sweep_spec())
    scenarios = plan.scenarios
    assert scenarios[0].primary and scenarios[0].label == "beta_binomial: primary analysis"
    assert sum(s.primary for s in scenarios) == 1
    assert [s.id for s in scenarios] == [f"S{i + 1:02d}" for i in range(len(scenarios))]
    # Per model: its base, each other prior, each alternative definition, each study out.
    by_model = {m: [s for s in scenarios if s.model == m] for m in plan.spec.models}
    assert len(by_model["beta_binomial"]) == 1 + 4 + 1 + 4 + 2
    # logit_normal's default tau ~ HalfNormal(1) is in the list but is its base already.
    assert len(by_model["logit_normal"]) == 1 + 2 + 1 + 4 + 2
    assert len(by_model["common_effect"]) == 1 + 1 + 4 + 2
    assert len(plan.tasks) == 48
    # A definition scenario applies to its own outcome only; the others to both.
    evaluable = next(s for s in scenarios if s.label.endswith("success = evaluable"))
    assert evaluable.outcomes == ("success",)
    assert dict(evaluable.definitions) == {"success": "evaluable"}
    left_out = next(s for s in scenarios if s.varied == "leave_one_out")
    assert left_out.outcomes == ("success", "severe_ae") and len(left_out.exclude) == 1
    # One change at a time: every non-base scenario differs from its model's base once.
    for scenario in scenarios:
        base = by_model[scenario.model][0]
        changed = sum([dict(scenario.priors) != dict(base.priors),
                       bool(scenario.definitions), bool(scenario.exclude)])
        assert changed == (0 if scenario is base else 1)


def test_cross_expansion_counts(bundled):
    raw = {"combine": "cross",
           "dimensions": {"model": ["beta_binomial"], "leave_one_out": True,
                          "definition": {"severe_ae": ["ivig_attributed"]},
                          "heterogeneity_prior": {"beta_binomial": ["HalfNormal(0.5)",
                                                                    "HalfCauchy(0.5)"]}}}
    plan = plan_of(raw)
    # 2 priors x 3 study sets, each for both outcomes, plus the alternative SAE
    # definition under each: 2 x 3 x (2 + 1) fits.
    assert len(plan.tasks) == 2 * 3 * 3
    assert sum(s.primary for s in plan.scenarios) == 1
    keys = {(s.priors_text(), tuple(sorted(s.definitions.items())), s.exclude, o)
            for s in plan.scenarios for o in s.outcomes}
    assert len(keys) == len(plan.tasks)  # no fit twice


def test_flags_apply_to_every_scenario(bundled):
    spec = load_sweep_spec()
    config = spec.primary.replace(exclude=("Joly2012",), outcomes=("severe_ae",),
                                  priors={"phi": "HalfNormal(1)"})
    plan = plan_sweep(spec, config=config)
    assert all("Joly2012" in s.exclude for s in plan.scenarios)
    assert {o for s in plan.scenarios for o in s.outcomes} == {"severe_ae"}
    assert not any(s.varied == "leave_one_out" for s in plan.scenarios)  # one study left
    assert str(plan.scenarios[0].priors["phi"]) == "HalfNormal(sigma=1)"
    assert plan.scenarios[0].label == "beta_binomial: primary analysis, phi ~ HalfNormal(sigma=1)"


def test_leave_one_out_of_an_unknown_study(bundled):
    raw = default_raw()
    raw["dimensions"]["leave_one_out"] = ["Smith2020"]
    with pytest.raises(SpecError, match="unknown study 'Smith2020'"):
        plan_of(raw)


def test_definition_the_data_do_not_have(bundled):
    raw = default_raw()
    raw["dimensions"]["definition"] = {"success": ["strict"]}
    with pytest.raises(SpecError, match="has no definition 'strict'"):
        plan_of(raw)


def test_same_families_share_one_compiled_structure():
    plan = plan_sweep(load_sweep_spec())
    others = [t for t in plan.tasks if not t.scenario.primary]
    assert len({t.key() for t in others}) == 3  # one per model
    assert {t.n_slots for t in plan.tasks} == {2}
    # The primary analysis keeps `fit`'s own graph (no shared prior families), so the
    # sweep's primary numbers are the run's, draw for draw.
    primary = [t for t in plan.tasks if t.scenario.primary]
    assert all(t.shared == {} for t in primary)
    assert not {t.key() for t in primary} & {t.key() for t in others}


# ---- running, tables, robustness ---------------------------------------------------------


@pytest.mark.parametrize("jobs", [1, 2])
def test_one_scenario_sweep_reproduces_fit(jobs):
    """No dimensions: the sweep is the primary analysis, fitted as `fit` fits it, in this
    process or in worker processes (each sampling its chains on one core)."""
    config = RunConfig(sampler=FAST)
    spec = sweep_spec_from_dict({"primary": {}})
    plan = plan_sweep(spec, config=config)
    assert len(plan.scenarios) == 1 and len(plan.tasks) == 2
    sweep = run_sweep(plan, jobs=jobs)
    fit = run_fit(config)
    for result in sweep.results:
        pd.testing.assert_frame_equal(result.summary, fit.fits[result.outcome].summary)
        # The sweep also asks for the benefit-risk thresholds; every probability the fit
        # reports is the same.
        own = fit.fits[result.outcome].probabilities
        merged = own.merge(result.probabilities, on=["outcome", "quantity", "threshold"],
                           suffixes=("", "_sweep"))
        assert len(merged) == len(own)
        pd.testing.assert_series_equal(merged["probability"], merged["probability_sweep"],
                                       check_names=False)
        assert result.problems == [c.message() for c in fit.fits[result.outcome].failures]


def test_exact_sweep_tables_and_a_flagged_scenario(tmp_path):
    """Scenarios that cannot be fitted are kept, flagged and named, never dropped: BDA3
    on studies with every patient an event (an improper posterior), and a definition
    only the left-out study reports (no study left)."""
    raw = {"dimensions": {"leave_one_out": True, "definition": "all",
                          "heterogeneity_prior": {"beta_binomial": ["BDA3"]}},
           "combine": "cross"}
    plan = plan_of(raw, engine="exact")
    sweep = run_sweep(plan, jobs=1)
    table = sweep.sensitivity
    assert len(table) == 3 * len(plan.tasks)  # three quantities per fit
    not_fitted = table[table["status"] == "not fitted"]
    assert not not_fitted.empty
    improper = not_fitted["problems"].str.contains("does not integrate")
    empty = not_fitted["problems"].str.contains("no study is left")
    assert improper.any() and empty.any() and (improper | empty).all()
    assert not_fitted[["mean", "q2.5", "q97.5"]].isna().all().all()
    robust = sweep.robustness
    assert set(robust["outcome"]) == {"success", "severe_ae", "success+severe_ae"}
    success = robust[(robust["outcome"] == "success") & (robust["quantity"] == "theta_new")]
    assert success["not_counted"].iloc[0]  # the improper scenario, by name
    probabilities = sweep.probabilities
    counted = probabilities[(probabilities["outcome"] == "success")
                            & (probabilities["quantity"] == "theta_new")
                            & (probabilities["status"] == "ok")]
    assert success["probability_min"].iloc[0] == pytest.approx(counted["probability"].min())
    assert success["probability_max"].iloc[0] == pytest.approx(counted["probability"].max())


def test_robustness_verdicts():
    rows = [("S01", "primary", True, "ok", 0.60), ("S02", "a", False, "ok", 0.70),
            ("S03", "b", False, "ok", 0.40), ("S04", "c", False, "ok", 0.97),
            ("S05", "d", False, "diagnostics failed", 0.10)]
    table = pd.DataFrame([{"scenario": s, "label": label, "primary": p, "status": status,
                           "outcome": "success", "quantity": "theta_new", "threshold": 0.5,
                           "probability": prob, "mcse": 0.01}
                          for s, label, p, status, prob in rows])
    verdict = robustness_table(table).iloc[0]
    assert verdict["probability_min"] == 0.40 and verdict["probability_max"] == 0.97
    assert verdict["crosses_0.5"] == "S03 b"
    assert verdict["crosses_0.95"] == "S04 c"
    assert verdict["n_scenarios"] == 4
    assert "S05 (diagnostics failed)" in verdict["not_counted"]
    assert verdict["verdict"].startswith("NOT robust")
    steady = table[table["scenario"].isin(["S01", "S02"])]
    assert robustness_table(steady).iloc[0]["verdict"].startswith("robust")


@pytest.mark.parametrize(("primary_status", "expected"), [
    ("diagnostics failed", "the primary analysis is 'diagnostics failed'"),
    (None, "no primary analysis to compare with"),
])
def test_no_crossings_without_a_trustworthy_primary(primary_status, expected):
    """Crossing 0.5 is judged from the primary analysis; if it failed its diagnostics or
    is missing, no scenario is listed as crossing (a NaN reference once listed all)."""
    rows = [("S02", "a", False, "ok", 0.70), ("S03", "b", False, "ok", 0.40)]
    if primary_status:
        rows.insert(0, ("S01", "primary", True, primary_status, 0.60))
    table = pd.DataFrame([{"scenario": s, "label": label, "primary": p, "status": status,
                           "outcome": "success", "quantity": "theta_new", "threshold": 0.5,
                           "probability": prob, "mcse": 0.01}
                          for s, label, p, status, prob in rows])
    verdict = robustness_table(table).iloc[0]
    assert expected in verdict["verdict"]
    assert pd.isna(verdict["crosses_0.5"]) and pd.isna(verdict["crosses_0.95"])
    assert (verdict["probability_min"], verdict["probability_max"]) == (0.40, 0.70)


def test_power_scaling_a_uniform_prior_changes_nothing(bundled):
    """Common-effect model, theta ~ Beta(1, 1): the log prior is constant, so scaling
    the prior cannot move the posterior, and psense's prior sensitivity (a distance
    between the posterior and its prior-scaled reweighting) is 0 up to rounding; the
    likelihood, which the posterior follows, is not."""
    from bayes_dress.sensitivity.psense import power_scaling

    config = RunConfig(model="common_effect", sampler=FAST, outcomes=("success",))
    fit = run_fit(config).fits["success"]
    assert str(fit.priors["theta"]) == "Beta(alpha=1, beta=1)"
    table = power_scaling(fit).set_index("variable")
    assert abs(table.loc["mean_rate", "prior"]) < 1e-9
    assert table.loc["mean_rate", "likelihood"] > 0.05


@pytest.mark.slow
def test_nuts_sweep_passes_every_diagnostic_and_writes_its_directory(tmp_path):
    """A small NUTS sweep on the bundled data, through the command line, in parallel."""
    spec = tmp_path / "sweep.toml"
    spec.write_text("""
combine = "one_at_a_time"
[primary.sampler]
draws = 1500
tune = 600
chains = 2
seed = 1234
[dimensions]
model = ["beta_binomial", "logit_normal"]
leave_one_out = ["Joly2012"]
[dimensions.heterogeneity_prior]
beta_binomial = ["HalfNormal(0.5)", "HalfCauchy(0.5)", "BDA3"]
""")
    out = tmp_path / "sens"
    result = CliRunner().invoke(main, ["sensitivity", "--config", str(spec), "--out",
                                       str(out), "--jobs", "2"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "sensitivity.csv")
    assert (table["status"] == "ok").all(), table[table["status"] != "ok"]["problems"]
    # 1 base + 2 other phi priors + 1 study out for the beta-binomial, 1 + 1 for the
    # logit-normal; each for both outcomes, three quantities each.
    assert table["scenario"].nunique() == 6 and len(table) == 6 * 2 * 3
    assert set(table["outcome"]) == {"success", "severe_ae"}
    for name in ("sensitivity.csv", "probabilities.csv", "robustness.csv", "psense.csv",
                 "diagnostics.json", "manifest.json", "plots/index.json",
                 "plots/sensitivity_forest-success.png",
                 "plots/sensitivity_forest-severe_ae.svg"):
        assert (out / name).is_file(), name
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 1234 and len(manifest["scenarios"]) == 6
    assert set(manifest["files"]) >= {"sensitivity.csv", "robustness.csv"}  # plots: own index
    psense = pd.read_csv(out / "psense.csv")
    assert {"m", "phi", "mean_rate"} <= set(psense["variable"])
    assert psense["prior"].notna().all()
    assert "success:" in result.output and "robust" in result.output


def test_forest_plot_shows_each_scenario_interval(tmp_path):
    from bayes_dress.sensitivity.plot import sensitivity_forest_data

    plan = plan_of({"dimensions": {"leave_one_out": True}}, engine="exact")
    table = run_sweep(plan, jobs=1).sensitivity
    data = sensitivity_forest_data(table, "success")
    assert list(data["scenario"]) == [s.id for s in plan.scenarios]
    assert data["primary"].tolist() == [True, False, False]
    rows = table[(table["outcome"] == "success") & (table["quantity"] == "theta_new")]
    np.testing.assert_allclose(data["theta_new:q97.5"], rows["q97.5"])


# ---- the command line ---------------------------------------------------------------------


def test_cli_exact_sweep_writes_everything(tmp_path):
    out = tmp_path / "sens"
    result = CliRunner().invoke(main, ["sensitivity", "--engine", "exact", "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "sensitivity.csv")
    assert table["scenario"].nunique() == 30 and len(table) == 48 * 3
    # Known answers. A common-effect fit with theta ~ Beta(1, 1) is conjugate: success,
    # 17 of 24 patients, gives Beta(18, 8), mean 18/26; without Sim2022, Beta(2, 6).
    common = table[(table["model"] == "common_effect") & (table["outcome"] == "success")
                   & (table["quantity"] == "mean_rate") & (table["varied"] == "model")]
    assert common["mean"].iloc[0] == pytest.approx(18 / 26, abs=1e-9)
    alone = table[(table["model"] == "common_effect") & (table["outcome"] == "success")
                  & (table["quantity"] == "mean_rate") & (table["excluded"] == "Sim2022")]
    assert alone["mean"].iloc[0] == pytest.approx(2 / 8, abs=1e-9)
    robust = pd.read_csv(out / "robustness.csv", keep_default_na=False)
    # P(theta_new, mean_rate > t) for each outcome, and the joint benefit-risk probability
    # (separate fits: under independence).
    assert len(robust) == 5
    joint = robust[robust["outcome"] == "success+severe_ae"]
    assert list(joint["quantity"]) == ["P(new-study success > 0.5 and severe_ae < 0.2)"]
    # Joly2012 alone (1 of 6) puts the success rate below one half: leaving Sim2022 out
    # must move P(new-study success > 0.5) across 0.5, under every model.
    success = robust[(robust["outcome"] == "success") & (robust["quantity"] == "theta_new")]
    crossing = success["crosses_0.5"].iloc[0]
    assert crossing.count("without Sim2022") == 3, crossing
    assert success["verdict"].iloc[0].startswith("NOT robust")
    index = json.loads((out / "plots" / "index.json").read_text())
    assert [e["outcome"] for e in index] == ["success", "severe_ae"]


@pytest.mark.parametrize(("args", "message"), [
    (["--config", "missing.toml"], "sweep spec 'missing.toml' not found"),
    (["--prior", "tau=Foo(1)"], "unknown distribution 'Foo'"),
    (["--exclude", "Nobody"], "Nobody"),
    (["--model", "nope"], "unknown model 'nope'"),
])
def test_cli_bad_input_is_one_line(tmp_path, args, message):
    result = CliRunner().invoke(main, ["sensitivity", "--engine", "exact", "--out",
                                       str(tmp_path / "x"), *args])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("error: ") and message in lines[-1]
    assert "Traceback" not in result.output
    assert not (tmp_path / "x").exists()


def test_cli_threshold_replaces_the_headlines(tmp_path):
    out = tmp_path / "sens"
    result = CliRunner().invoke(main, ["sensitivity", "--engine", "exact", "--out", str(out),
                                       "--threshold", "0.3", "--outcome", "success"])
    assert result.exit_code == 0, result.output
    robust = pd.read_csv(out / "robustness.csv")
    assert set(robust["threshold"]) == {0.3}
    assert set(robust["quantity"]) == {"theta_new", "mean_rate"}


def test_cli_strict_exits_1_on_a_flagged_scenario_and_still_writes(tmp_path):
    """BDA3 on Sim2022's 18 of 18 early improvements alone is improper: the sweep is
    written in full, each flagged fit is named on stderr, and --strict makes the exit
    code 1."""
    spec = tmp_path / "sweep.toml"
    spec.write_text('combine = "cross"\n[dimensions]\nleave_one_out = true\n'
                    'definition = "all"\n'
                    '[dimensions.heterogeneity_prior]\nbeta_binomial = ["BDA3"]\n')
    out = tmp_path / "sens"
    result = CliRunner().invoke(main, ["sensitivity", "--config", str(spec), "--engine",
                                       "exact", "--strict", "--out", str(out)])
    assert result.exit_code == 1
    assert "fit(s) flagged (--strict)" in result.output
    assert "WARNING: " in result.output and "not fitted" in result.output
    table = pd.read_csv(out / "sensitivity.csv")
    assert (table["status"] == "not fitted").any()
    assert json.loads((out / "manifest.json").read_text())["files"]
