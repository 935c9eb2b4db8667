"""``bayes-dress fit`` as a user runs it: files written, their contents, reproducibility."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from click.testing import CliRunner

from bayes_dress.cli import main
from bayes_dress.fitting.summaries import SUMMARY_COLUMNS

SMALL = ["--draws", "300", "--tune", "300", "--chains", "2"]
RUN_FILES = {"summary.csv", "probabilities.csv", "data_used.csv", "diagnostics.json",
             "manifest.json", "plots", "posterior-success.nc",
             "posterior-severe_ae.nc", "reference_comparison.csv", "benefit_risk.csv"}


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("fit") / "run"
    result = run("fit", *SMALL, "--seed", "7", "--out", str(out))
    assert result.exit_code == 0, result.output + (result.stderr or "")
    return out, result


def test_fit_writes_a_complete_run_directory(default_run):
    out, result = default_run
    assert {p.name for p in out.iterdir()} == RUN_FILES
    assert f"Results written to {out}" in result.output
    # The headline never shows a pooled rate without its spread and predictive interval.
    for phrase in ("population mean rate", "between-study SD of rates",
                   "new-study rate (predictive)"):
        assert result.output.count(phrase) >= 2
    assert not list(out.parent.glob(".*tmp*"))


def test_summary_is_tidy_and_named_after_studies(default_run):
    out, _ = default_run
    summary = pd.read_csv(out / "summary.csv", keep_default_na=False, na_values=[""])
    assert list(summary.columns) == SUMMARY_COLUMNS
    assert set(summary["outcome"]) == {"success", "severe_ae"}
    assert (summary["analysis"] == summary["outcome"]).all()  # one analysis per outcome
    theta = summary[summary["parameter"] == "theta"]
    assert set(theta["study"]) == {"Joly2012", "Sim2022"}
    population = summary[summary["parameter"].isin(["mean_rate", "theta_new", "sd_rates",
                                                    "phi", "kappa", "m"])]
    assert population["study"].isna().all()
    assert (summary["q2.5"] <= summary["median"]).all()
    assert (summary["median"] <= summary["q97.5"]).all()


def test_probabilities_cover_thresholds_and_quantities(default_run):
    out, _ = default_run
    probs = pd.read_csv(out / "probabilities.csv")
    assert len(probs) == 2 * 2 * 4
    assert set(probs["threshold"]) == {0.1, 0.25, 0.5, 0.75}
    # P(rate > t) falls as t rises.
    for _, group in probs.groupby(["outcome", "quantity"]):
        assert np.all(np.diff(group.sort_values("threshold")["probability"]) <= 0)


def test_posterior_file_has_the_arviz_groups(default_run):
    out, _ = default_run
    tree = xr.open_datatree(out / "posterior-success.nc")
    assert {"posterior", "prior", "posterior_predictive", "prior_predictive",
            "observed_data", "constant_data", "sample_stats"} <= set(tree.children)
    # Counts are (outcome, study), whatever the number of outcomes an analysis takes.
    assert tree["observed_data"]["y"].values.tolist() == [[1, 16]]
    assert tree.attrs["format"] == 2 and json.loads(tree.attrs["outcomes"]) == ["success"]
    assert list(tree["posterior"]["theta"]["study"].values) == ["Joly2012", "Sim2022"]
    summary = pd.read_csv(out / "summary.csv")
    row = summary[(summary["outcome"] == "success") & (summary["parameter"] == "mean_rate")]
    assert float(tree["posterior"]["mean_rate"].mean()) == pytest.approx(row["mean"].item())


def test_manifest_records_what_reproduces_the_run(default_run):
    out, _ = default_run
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 7
    assert manifest["engine"] == "nuts"
    from bayes_dress.data import bundled_data_path

    # The bundled table by name, not by this machine's path; its hash identifies it.
    assert manifest["data"]["path"] == "bundled: data/outcomes.csv"
    assert manifest["data"]["bundled"] is True
    assert manifest["data"]["sha256"] == hashlib.sha256(
        bundled_data_path().read_bytes()).hexdigest()
    assert manifest["format"] == 2 and manifest["kind"] == "run"
    assert manifest["priors"] == {"m": "Beta(alpha=1, beta=1)", "phi": "HalfNormal(sigma=0.5)"}
    assert manifest["packages"]["pymc"] and manifest["packages"]["nutpie"]
    counts = manifest["analyses"]["success"]["counts"]["success"]
    assert counts["events"] == [1, 16] and counts["studies"] == ["Joly2012", "Sim2022"]
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest


def test_diagnostics_json_lists_every_check(default_run):
    out, _ = default_run
    diagnostics = json.loads((out / "diagnostics.json").read_text())
    entry = diagnostics["analyses"]["success"]
    checks = {c["check"] for c in entry["checks"]}
    assert checks == {"divergences", "r_hat", "ess_bulk", "ess_tail", "tree_depth", "ebfmi",
                      "reference_agreement"}
    assert entry["reference"] == "exact"
    comparison = entry["reference_comparison"]
    assert {"mean_rate", "theta_new", "sd_rates", "phi", "theta"} <= {
        c["parameter"] for c in comparison}


def test_same_seed_same_summary(default_run, tmp_path):
    out, _ = default_run
    again = tmp_path / "again"
    assert run("fit", *SMALL, "--seed", "7", "--out", str(again)).exit_code == 0
    assert (again / "summary.csv").read_bytes() == (out / "summary.csv").read_bytes()
    assert (again / "probabilities.csv").read_bytes() == (out / "probabilities.csv").read_bytes()
    other = tmp_path / "other"
    assert run("fit", *SMALL, "--seed", "8", "--out", str(other)).exit_code == 0
    assert (other / "summary.csv").read_bytes() != (out / "summary.csv").read_bytes()


def test_strict_turns_failed_diagnostics_into_exit_1(tmp_path):
    # 2 x 30 draws cannot reach the ESS threshold of 100 per chain.
    result = run("fit", "--draws", "30", "--tune", "200", "--chains", "2", "--strict",
                 "--outcome", "success", "--out", str(tmp_path / "run"))
    assert result.exit_code == 1
    assert "WARNING" in result.stderr and "ess" in result.stderr.lower()
    assert "Remedy" in result.stderr
    # Results are still written, so the failure can be inspected.
    diagnostics = json.loads((tmp_path / "run" / "diagnostics.json").read_text())
    assert diagnostics["passed"] is False


def test_overwrite_replaces_only_when_asked(tmp_path, default_run):
    out = tmp_path / "run"
    shutil.copytree(default_run[0], out)
    (out / "mine.txt").write_text("keep me")
    refused = CliRunner().invoke(main, ["fit", *SMALL, "--out", str(out)])
    assert refused.exit_code == 2 and (out / "mine.txt").read_text() == "keep me"
    replaced = run("fit", *SMALL, "--out", str(out), "--overwrite", "--outcome", "success")
    assert replaced.exit_code == 0
    assert not (out / "mine.txt").exists()
    assert (out / "posterior-success.nc").exists()
    assert not (out / "posterior-severe_ae.nc").exists()


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    import bayes_dress.plots.make

    def broken(run, directory, **kwargs):
        Path(directory).mkdir()
        (Path(directory) / "forest-success.png").write_bytes(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(bayes_dress.plots.make, "draw_plots", broken)
    # Ctrl-C: one line, exit status 130, nothing left behind.
    result = CliRunner().invoke(main, ["fit", *SMALL, "--outcome", "success", "--out",
                                       str(tmp_path / "run")])
    assert result.exit_code == 130
    assert "interrupted" in result.stderr and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_config_file_with_flag_override(tmp_path):
    config = tmp_path / "spec.toml"
    config.write_text('model = "logit_normal"\noutcomes = ["severe_ae"]\n'
                      '[priors]\ntau = "HalfNormal(0.5)"\n[definitions]\n'
                      'severe_ae = "ivig_attributed"\n[sampler]\ndraws = 300\ntune = 300\n'
                      'chains = 2\nseed = 3\n')
    out = tmp_path / "run"
    result = run("fit", "--config", str(config), "--prior", "mu=Normal(0, 2)",
                 "--out", str(out))
    assert result.exit_code == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["priors"] == {"mu": "Normal(mu=0, sigma=2)", "tau": "HalfNormal(sigma=0.5)"}
    assert manifest["analyses"]["severe_ae"]["counts"]["severe_ae"]["events"] == [2, 0]
    assert manifest["config"]["sampler"]["seed"] == 3


@pytest.mark.slow
def test_thirty_study_user_csv(tmp_path):
    rng = np.random.default_rng(30)
    totals = rng.integers(5, 200, size=30)
    events = rng.binomial(totals, rng.beta(4, 8, size=30))
    pd.DataFrame({"study": [f"Study{i:02d}" for i in range(30)], "outcome": "x",
                  "events": events, "total": totals, "year": 1990 + np.arange(30)}
                 ).to_csv(tmp_path / "my.csv", index=False)
    out = tmp_path / "run"
    result = run("fit", "--data", str(tmp_path / "my.csv"), "--outcome", "x",
                 "--draws", "500", "--tune", "500", "--chains", "2", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    summary = pd.read_csv(out / "summary.csv")
    assert (summary["parameter"] == "theta").sum() == 30
    mean_rate = summary[summary["parameter"] == "mean_rate"].iloc[0]
    # 30 studies of Beta(4, 8) rates (mean 1/3): the data, not the prior, place the mean.
    assert mean_rate["q2.5"] < 1 / 3 < mean_rate["q97.5"]
    assert not mean_rate["prior_dominated"]


def test_installed_script_runs(tmp_path):
    script = Path(sys.executable).with_name("bayes-dress")
    assert script.exists(), "the console script is not installed"
    done = subprocess.run([str(script), "fit", *SMALL, "--outcome", "success", "--out",
                           str(tmp_path / "run")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "run" / "summary.csv").exists()
    broken = subprocess.run([str(script), "fit", "--model", "nope"], capture_output=True,
                            text=True, timeout=600)
    assert broken.returncode == 2
    assert broken.stderr.strip().count("\n") == 0 and "Traceback" not in broken.stderr


def test_help_on_every_command():
    for command in ([], ["fit"], ["data"], ["models"]):
        result = run(*command, "--help")
        assert result.exit_code == 0 and "Usage" in result.output


def test_models_command_lists_priors_with_rationale():
    result = run("models")
    assert "phi ~ HalfNormal(sigma=0.5)" in result.output
    assert "Friede" in result.output and "BDA3" in result.output


def test_exact_engine_for_every_model_writes_a_run(tmp_path):
    for model in ("common_effect", "independent"):
        out = tmp_path / model
        result = run("fit", "--engine", "exact", "--model", model, "--out", str(out))
        assert result.exit_code == 0, result.stderr
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["engine"] == "exact"
        tree = xr.open_datatree(out / "posterior-success.nc")
        assert "marginals" in tree.children and "posterior" not in tree.children
        summary = pd.read_csv(out / "summary.csv")
        assert (summary["mcse_mean"] == 0).all()


def test_outcome_names_are_safe_and_distinct_file_names(tmp_path):
    (tmp_path / "odd.csv").write_text("study,outcome,events,total\nA,a/b,3,10\nB,a/b,5,12\n"
                                      "A,a b,1,10\nB,a b,2,12\n")
    out = tmp_path / "run"
    result = run("fit", "--data", str(tmp_path / "odd.csv"), "--engine", "exact",
                 "--out", str(out))
    assert result.exit_code == 0, result.stderr
    # Percent-encoded: 'a/b' and 'a b' map to different files, never one over the other.
    assert (out / "posterior-a%2Fb.nc").exists() and (out / "posterior-a%20b.nc").exists()
    assert {e["name"] for e in json.loads((out / "plots/index.json").read_text())} >= {
        "forest-a%2Fb", "forest-a%20b"}


def test_out_below_a_file_fails_before_fitting(tmp_path):
    (tmp_path / "afile").write_text("")
    result = CliRunner().invoke(main, ["fit", *SMALL, "--out", str(tmp_path / "afile" / "x")])
    assert result.exit_code == 2
    assert "is a file" in result.stderr and "Traceback" not in result.output
