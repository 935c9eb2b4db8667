"""``bayes-dress design`` on the bundled primary run: the MAP prior with its honest ESS
verdict, a single-arm design with its boundary and operating characteristics, the
two-endpoint rule, the sensitivity verdicts, the design directory (atomic, verified on
read, tied to its run), the report section, and one-line errors.

The command object is invoked directly (``design_command``), as the lead registers it on
the ``bayes-dress`` group with ``main.add_command``.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from bayes_dress import RunConfig, run_fit, write_run
from bayes_dress.design import parse_rule
from bayes_dress.design.cli import design_command
from bayes_dress.design.map_prior import compare_draws_exact, map_prior
from bayes_dress.design.oc import success_probability
from bayes_dress.design.plan import load_plan, plan_from_dict
from bayes_dress.errors import RunDirError, SpecError
from bayes_dress.report.design_section import design_section
from bayes_dress.rundir.design_read import load_design
from bayes_dress.rundir.read import load_run
from tests.conftest import FAST, assert_user_error


@pytest.fixture(scope="module")
def exact_run(tmp_path_factory):
    """The bundled primary analysis (beta-binomial, default priors), exact engine."""
    out = tmp_path_factory.mktemp("design") / "run"
    write_run(run_fit(RunConfig(engine="exact")), out, plots=False)
    return out


@pytest.fixture(scope="module")
def design_dir(exact_run, tmp_path_factory):
    """``bayes-dress design RUN`` with the bundled config, sensitivity included."""
    out = tmp_path_factory.mktemp("design") / "design"
    result = CliRunner().invoke(design_command, [str(exact_run), "--out", str(out),
                                                 "--jobs", "2", "-q"])
    assert result.exit_code == 0, result.output
    return out, result


def test_design_of_the_bundled_run_says_the_map_carries_no_information(design_dir):
    out, result = design_dir
    text = result.stdout
    # The MAP prior with its honest ESS verdict: never an ESS without the verdict.
    assert "MAP prior of success (exact, model beta_binomial)" in text
    assert "ESS verdict (none): The prior carries no usable information" in text
    assert "U-shaped" in text or "nearly flat" in text
    for line in text.splitlines():
        if "ESS (patients)" in line:
            assert line.startswith("ESS verdict"), line
    # The single-arm design for the stated target, with its boundary and OC.
    plan = load_plan()
    assert (f"single-arm trial, {parse_rule(plan.trial.rule).text()}: success if 17 or "
            "more responders of 40") in text
    # The two-endpoint rule.
    assert "two-endpoint rule (P(theta > 0.3) > 0.95 AND P(theta <= 0.2) > 0.8" in text
    assert "safety passes if 5 or fewer of 40 patients have the event" in text
    # Sensitivity verdicts name what changes.
    assert "sensitivity: the decision boundary" in text
    assert "sensitivity: the ESS class ('none')" in text
    assert f"Design written to {out}/" in text


def test_design_directory_tables_and_manifest(design_dir, exact_run):
    out, _ = design_dir
    design = load_design(out)
    manifest = design.manifest
    assert manifest["format"] == 2 and manifest["kind"] == "design"
    assert design.run_matches(exact_run)
    assert manifest["run"]["path"] == str(exact_run.resolve())
    assert manifest["config"]["trial"]["n"] == 40 and manifest["seed"] == 20260101
    assert manifest["packages"]["numpy"] and "created" in manifest
    verdicts = design.table("verdicts.csv").set_index("outcome")
    assert verdicts.loc["success", "level"] == "none"
    assert verdicts.loc["severe_ae", "level"] == "none"
    summary = design.table("map_summary.csv")
    exact = summary[(summary.outcome == "success") & (summary.prior == "exact")].iloc[0]
    # Beta-binomial predictive of a new study: spread over (0, 1), sd above the uniform's.
    assert exact["sd"] > 0.28 and exact["q2.5"] < 0.02 and exact["q97.5"] > 0.98
    ess = design.table("ess.csv")
    elir = ess[(ess.outcome == "success") & (ess.prior == "exact") & (ess.method == "elir")]
    assert not bool(elir["reliable"].iloc[0])  # flagged, never presented as a number
    # The boundary table agrees with the OC table and with exact binomial sums.
    boundary = design.table("boundary.csv")
    assert list(boundary["y"]) == list(range(41))
    success = boundary["decision"].astype(bool).to_numpy()
    assert success.sum() == 24 and success[17:].all() and not success[:17].any()
    oc = design.table("oc.csv")
    assert len(oc) == 1001
    np.testing.assert_allclose(oc["robust_map"], success_probability(success, oc["theta"]),
                               atol=1e-12)
    bounds = design.table("boundaries.csv").set_index("prior")
    assert bounds.loc["robust MAP", "type1"] == pytest.approx(
        success_probability(success, 0.3), abs=1e-12)
    # No borrowing possible: the uniform prior gives the same boundary.
    assert bounds.loc["uniform", "boundary"] == bounds.loc["robust MAP", "boundary"]
    grid = design.table("two_endpoint.csv")
    assert len(grid) == 101 * 101
    np.testing.assert_allclose(grid["p_both"], grid["p_efficacy"] * grid["p_safety"],
                               atol=1e-12)
    size = design.table("sample_size.csv")
    assert size["n"].min() == 10 and size["n"].max() == 200
    assert set(design.mixtures) == {"map-success.json", "robust-success.json",
                                    "map-severe_ae.json", "robust-severe_ae.json"}
    assert design.mixtures["robust-success.json"]["meta"]["dimnames"][1][-1] == "robust"
    names = {e["name"] for e in design.plots[0]}
    assert {"map-success", "map-severe_ae", "oc", "boundary", "weight-map", "two-endpoint",
            "scenarios"} <= names
    assert not design.plots[1]


def test_sensitivity_scenarios(design_dir):
    out, _ = design_dir
    design = load_design(out)
    scenarios = design.table("scenarios.csv")
    assert len(scenarios) == 27 and (scenarios["status"] == "ok").all()
    primary = scenarios[scenarios["primary"].astype(bool)].iloc[0]
    assert primary["boundary"] == "success if 17 or more responders of 40"
    assert primary["ess_level"] == "none"
    s = design.summary["sensitivity"]
    changed = scenarios[scenarios["boundary_changed"].astype(bool)]["scenario"].tolist()
    assert len(s["boundary_changed"]) == len(changed)
    # The common-effect model pools the two studies: its MAP is informative.
    common = scenarios[scenarios["model"] == "common_effect"]
    assert (common["ess_level"] != "none").all()


def test_report_section(design_dir, exact_run, tmp_path):
    out, _ = design_dir
    design = load_design(out)
    html = design_section(design, run=load_run(exact_run))
    assert "<section" not in html  # the body: the report wraps and numbers it
    assert "NO USABLE INFORMATION" in html
    assert "THIS DESIGN WAS MADE FROM ANOTHER RUN" not in html
    assert "success if 17 or more responders of 40" in html
    assert "undefined <em>(no clear peak)</em>" in html  # the ELIR is not shown as a number
    assert html.count("<figure>") == len(design.plots[0])
    assert "<script" not in html
    # Another run (here: the same files, its manifest rewritten) gets a banner.
    import shutil

    other = tmp_path / "other"
    shutil.copytree(exact_run, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["created"] = "2000-01-01T00:00:00+00:00"
    (other / "manifest.json").write_text(json.dumps(manifest))
    assert "THIS DESIGN WAS MADE FROM ANOTHER RUN" in design_section(
        design, run=load_run(other))
    # In the whole report (where the report module takes a design directory).
    from bayes_dress.report import sections

    if "design" in dict(sections.SECTIONS) and "design" in sections.render.__code__.co_varnames:
        import datetime as dt

        page = sections.render(load_run(exact_run), None, title=None,
                               date=dt.date(2026, 1, 1), design=design)
        assert page.count('<section id="design">') == 1
        assert "NO USABLE INFORMATION" in page


def test_design_directory_is_verified_on_read(design_dir, tmp_path):
    import shutil

    out, _ = design_dir
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "boundary.csv").write_text("y,decision\n0,True\n")
    with pytest.raises(RunDirError, match="changed after it was written"):
        load_design(copy)
    with pytest.raises(RunDirError, match="not a design directory"):
        load_design(out / "plots")
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["kind"] = "run"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RunDirError, match="'run' directory"):
        load_design(copy)


def test_flags_override_the_config_and_outputs_are_atomic(exact_run, tmp_path):
    out = tmp_path / "d"
    runner = CliRunner()
    args = [str(exact_run), "--out", str(out), "--no-sensitivity", "--n", "30", "--rule",
            "P(theta > 0.4) > 0.9", "--robust-weight", "0", "--outcome", "success", "-q"]
    result = runner.invoke(design_command, args)
    assert result.exit_code == 0, result.output
    design = load_design(out)
    assert design.manifest["config"]["trial"]["n"] == 30
    assert design.manifest["config"]["robust"]["weight"] == 0
    assert "sensitivity" not in design.summary
    assert design.table("scenarios.csv") is None
    assert design.summary["trial"]["rule"] == "P(theta > 0.4) > 0.9"
    mixtures = design.table("mixtures.csv")
    success = mixtures[mixtures["outcome"] == "success"]
    assert "robust" not in set(success["component"])  # weight 0: the MAP as it is
    safety = mixtures[mixtures["outcome"] == "severe_ae"]
    assert "robust" in set(safety["component"])  # safety.robust_weight stays 0.2
    # An existing directory is not replaced without --overwrite, and nothing changes.
    before = (out / "manifest.json").read_bytes()
    assert_user_error(runner.invoke(design_command, args), "already exists", "--overwrite")
    assert (out / "manifest.json").read_bytes() == before
    result = runner.invoke(design_command, [*args, "--overwrite"])
    assert result.exit_code == 0, result.output
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(("toml", "words"), [
    ('[trial]\nn = "forty"\n', ["'trial.n'", "whole number"]),
    ("[trial]\nnn = 4\n", ["unknown key 'trial.nn'", "'n_max'"]),
    ('[trial]\nrule = "P(theta1 - theta2 > 0) > 0.9"\n', ["'trial.rule'", "one-sample"]),
    ('[trial]\nrule = "theta > 0.3"\n', ["'trial.rule'", "cannot read decision condition"]),
    ("[robust]\nweight = 1\n", ["'robust.weight'", "below 1"]),
    ('[map]\nsource = "mcmc"\n', ["'map.source'", "'draws'"]),
    ("[trial]\nnull = 0.3\nalternative = 0.3\n", ["'trial.alternative'"]),
    ('[safety]\noutcome = "success"\n', ["'safety.outcome'"]),
    ('[two_arm]\ntreatment_prior = "Gamma(1, 1)"\n', ["'two_arm.treatment_prior'"]),
    ('[sensitivity]\nsweep = "nowhere.toml"\n', ["'sensitivity.sweep'", "not found"]),
    ("[oc]\npoints = 3\n", ["'oc.points'"]),
])
def test_config_errors_name_the_key(exact_run, tmp_path, toml, words):
    config = tmp_path / "design.toml"
    config.write_text(toml)
    result = CliRunner().invoke(design_command, [str(exact_run), "--config", str(config),
                                                 "--out", str(tmp_path / "d")])
    assert_user_error(result, str(config), *words)
    assert not (tmp_path / "d").exists()


def test_other_user_errors(exact_run, tmp_path):
    runner = CliRunner()
    out = ["--out", str(tmp_path / "d")]
    assert_user_error(runner.invoke(design_command, [str(exact_run), "--outcome", "death",
                                                     *out]),
                      "--outcome 'death'", "did not analyse", "'severe_ae' or 'success'")
    assert_user_error(runner.invoke(design_command, [str(exact_run), "--rule", "P(x>1)>2",
                                                     *out]), "'trial.rule'")
    assert_user_error(runner.invoke(design_command, [str(tmp_path / "nothing"), *out]),
                      "does not exist")
    assert_user_error(runner.invoke(design_command, [str(exact_run), "--config",
                                                     str(tmp_path / "none.toml"), *out]),
                      "not found")
    draws = plan_from_dict({"map": {"source": "draws"}, "sensitivity": {"enabled": False}})
    from bayes_dress.design.study import run_design

    with pytest.raises(SpecError, match="no draws of theta_new"):
        run_design(exact_run, draws)


def test_python_api_equals_the_command(exact_run, design_dir):
    from bayes_dress.design.study import run_design

    out, _ = design_dir
    plan = load_plan().with_flags(sensitivity=False)
    result = run_design(exact_run, plan)
    design = load_design(out)
    assert result.trial.boundary.describe() == design.summary["trial"]["boundary"]
    assert result.trial.type1 == pytest.approx(design.summary["trial"]["type1"], abs=1e-15)
    assert result.efficacy.verdict.message == design.summary["verdicts"][0]["message"]
    assert result.timings["total"] > 0


@pytest.mark.slow
def test_nuts_run_draws_agree_with_the_exact_map(tmp_path):
    """A sampler run: the MAP is refitted exactly, and its NUTS draws agree with it within
    Monte Carlo error; the design from the draws (RBesT's way) gives the same boundary."""
    run_dir = tmp_path / "nuts"
    write_run(run_fit(RunConfig(sampler=FAST, outcomes=("success",))), run_dir, plots=False)
    run = load_run(run_dir)
    mp = map_prior(run.analysis_of("success"))
    assert mp.source == "exact" and mp.exact_origin == "refit"
    assert mp.agreement is not None and mp.agreement.agree, mp.agreement.describe()
    # The agreement statistics are calibrated: draws from the exact MAP itself agree.
    rng = np.random.default_rng(7)
    own = compare_draws_exact(mp.exact.sample(4000, rng), mp.exact)
    assert own.agree and own.ks < own.ks_critical
    config = tmp_path / "design.toml"
    config.write_text('[map]\nsource = "draws"\n[sensitivity]\nenabled = false\n')
    out = tmp_path / "design"
    result = CliRunner().invoke(design_command, [str(run_dir), "--config", str(config),
                                                 "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    design = load_design(out)
    agreement = design.table("agreement.csv")
    assert set(agreement["statistic"]) >= {"ks", "mean", "sd", "q2.5", "q50", "q97.5"}
    assert "MAP prior of success (draws" in result.stdout
    assert "and the exact MAP agree within Monte Carlo error" in result.stdout
    assert design.summary["trial"]["boundary"] == "success if 17 or more responders of 40"
    assert set(pd.unique(design.table("map_summary.csv")["prior"])) == {
        "exact", "draws", "mixture", "robust"}


# ---- the design's outcome: matched to the run's (issue 16) ---------------------------------


def user_run(tmp_path, text: str, name: str = "u1"):
    """An exact-engine run on a user's table (CSV ``text``)."""
    data = tmp_path / f"{name}.csv"
    data.write_text(text)
    out = tmp_path / name
    write_run(run_fit(RunConfig(engine="exact", data=data)), out, plots=False)
    return out


def test_a_run_with_one_outcome_is_designed_on_it(tmp_path):
    run = user_run(tmp_path, "Trial,Responders,Patients\nA,3,10\nB,5,12\nC,2,9\n")
    out = tmp_path / "d"
    result = CliRunner().invoke(design_command, [str(run), "--out", str(out),
                                                 "--no-sensitivity", "-q"])
    assert result.exit_code == 0, result.output
    assert ("note: the design's outcome is 'events', the run's only outcome (the bundled "
            "config names 'success', which the run did not analyse)") in result.stderr
    assert "no safety rule: the run has no outcome 'severe_ae'" in result.stderr
    assert load_design(out).manifest["config"]["outcome"] == "events"
    # Asked for by name, 'success' is not replaced by the run's outcome.
    assert_user_error(CliRunner().invoke(design_command, [str(run), "--outcome", "success",
                                                          "--out", str(tmp_path / "e")]),
                      "--outcome 'success'", "did not analyse", "its outcomes: 'events'")


def test_a_run_with_several_outcomes_and_no_success_needs_outcome(tmp_path):
    run = user_run(tmp_path, "study,outcome,events,total\nA,remission,3,10\nB,remission,5,12"
                             "\nA,relapse,1,10\nB,relapse,2,12\n")
    result = CliRunner().invoke(design_command, [str(run), "--out", str(tmp_path / "d"),
                                                 "--no-sensitivity"])
    assert_user_error(result, "'outcome' is 'success'", "several outcomes",
                      "'relapse' or 'remission'", "pass --outcome")
    result = CliRunner().invoke(design_command, [str(run), "--out", str(tmp_path / "d"),
                                                 "--no-sensitivity", "--outcome", "Relapse",
                                                 "-q"])
    assert result.exit_code == 0, result.output
    assert load_design(tmp_path / "d").manifest["config"]["outcome"] == "relapse"


def test_outcome_flag_takes_hyphens_and_suggests_the_nearest(exact_run, tmp_path):
    out = tmp_path / "d"
    result = CliRunner().invoke(design_command, [str(exact_run), "--outcome", "severe-ae",
                                                 "--out", str(out), "--no-sensitivity", "-q"])
    assert result.exit_code == 0, result.output
    design = load_design(out)
    assert design.manifest["config"]["outcome"] == "severe_ae"
    assert "safety" not in design.manifest["config"]
    assert ("no safety rule: 'severe_ae', the bundled config's safety outcome, is the "
            "design's outcome") in result.stderr
    assert_user_error(CliRunner().invoke(design_command, [str(exact_run), "--outcome",
                                                          "sucess", "--out",
                                                          str(tmp_path / "e")]),
                      "--outcome 'sucess'", "(did you mean 'success'?)")


def test_plan_outcomes_are_matched_to_the_run():
    from types import SimpleNamespace

    from bayes_dress.design.study import plan_for_run

    run = SimpleNamespace(outcomes=["success", "severe_ae"], path="r")
    raw = {"outcome": "Success", "safety": {"outcome": "severe-ae"}}
    plan, notes = plan_for_run(run, plan_from_dict(raw, where="my.toml"))
    assert (plan.outcome, plan.safety.outcome, notes) == ("success", "severe_ae", [])
    raw = {"outcome": "success", "safety": {"outcome": "Success"}}
    with pytest.raises(SpecError, match=r"^my\.toml: 'safety\.outcome' \('success'\) must "
                                        r"differ from the design's outcome"):
        plan_for_run(run, plan_from_dict(raw, where="my.toml"))
    with pytest.raises(SpecError, match=r"^my\.toml: 'safety\.outcome' is 'severe', which run "
                                        r"'r' did not analyse \(did you mean 'severe_ae'\?\)"):
        plan_for_run(run, plan_from_dict({"safety": {"outcome": "severe"}}, where="my.toml"))
    # A config of the user's is not second-guessed: its 'success' must be in the run.
    one = SimpleNamespace(outcomes=["events"], path="r")
    with pytest.raises(SpecError, match=r"'outcome' is 'success', which run 'r' did not "
                                        r"analyse; its outcomes: 'events'"):
        plan_for_run(one, plan_from_dict({}, where="my.toml"))
    plan, notes = plan_for_run(one, load_plan())
    assert plan.outcome == "events" and plan.safety is None and len(notes) == 2
