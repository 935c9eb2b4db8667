"""Simulation-based calibration (bayes_dress.calibration, ``bayes-dress calibrate``).

* the bands: the simultaneous band holds uniform samples at its level and agrees with
  arviz-stats'; the tail test and the ranks of draws do what they say;
* calibrated settings are called calibrated (exact engine, 150 replications; NUTS, a
  few dozen), and deliberately miscalibrated ones are flagged: a prior simulated from
  that differs from the one fitted, and NUTS without warm-up on short chains (with a
  control that differs only in its tuning steps);
* results do not depend on the executor (inline and worker processes agree to the bit);
* improper priors are refused with the reason before any fit;
* the directory written reads back, refuses tampering, and renders in the report.

The 500-replication run of the issue's "done when" is not a test (about a minute on two
cores): ``bayes-dress calibrate --replications 500`` (see the report of the change).
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from bayes_dress.calibration import (
    CalibrationContext,
    default_settings,
    load_calibration,
    plan_calibration,
    run_calibration,
    run_replication,
    write_calibration,
)
from bayes_dress.calibration.cli import calibrate_command
from bayes_dress.calibration.ranks import draws_rank, thinning
from bayes_dress.calibration.uniformity import assess, simulate_bands, tail_p_value
from bayes_dress.errors import RunDirError, SpecError
from bayes_dress.executors import InlineExecutor, ProcessExecutor
from bayes_dress.spec.config import RunConfig

POPULATION = ("mean_rate", "m", "phi", "kappa", "sd_rates")


def config(engine="exact", **sampler) -> RunConfig:
    return RunConfig(engine=engine, sampler=dataclasses.replace(default_settings(),
                                                                **sampler))


def verdict(result, label) -> pd.Series:
    rows = result.verdicts[result.verdicts["label"] == label]
    assert len(rows) == 1, (label, result.verdicts["label"].tolist())
    return rows.iloc[0]


# -- the statistics -----------------------------------------------------------------------

def test_the_simultaneous_band_holds_uniform_samples_at_its_level():
    bands = simulate_bands(100, rng=np.random.default_rng(7), n_simulations=4000)
    rng = np.random.default_rng(8)
    trials = 1000
    inside = sum(bands.inside(rng.uniform(size=100), 0.95) for _ in range(trials))
    assert abs(inside / trials - 0.95) < 0.025  # 3.6 binomial SEs
    p_values = np.array([bands.p_value(rng.uniform(size=100)) for _ in range(400)])
    assert abs(np.mean(p_values < 0.05) - 0.05) < 0.035
    # A sample of 100 values all below 0.7 is far outside.
    assert not bands.inside(rng.uniform(0, 0.7, size=100), 0.95)


def test_the_band_agrees_with_arviz_stats():
    from arviz_stats.ecdf_utils import ecdf_pit

    n = 200
    _, _, lower, upper = ecdf_pit(np.linspace(0, 1, n), 0.95, 2000,
                                  rng=np.random.default_rng(3))
    ours = simulate_bands(n, rng=np.random.default_rng(3), n_simulations=2000)
    low, high = ours.band(0.95)
    # Same method and random draws; arviz-stats drops the upper tail of simulated
    # samples with an empty first bin (see uniformity), so the bands may differ by a
    # count at a few points.
    assert np.max(np.abs(lower[1:-1] - low)) <= 2 / n
    assert np.max(np.abs(upper[1:-1] - high)) <= 2 / n


def test_the_tail_test_catches_one_impossible_value_the_band_cannot_see():
    rng = np.random.default_rng(1)
    pit = rng.uniform(size=100)
    assert tail_p_value(pit) > 0.01
    pit[0] = 2e-14  # the posterior put no mass where the truth was
    bands = simulate_bands(100, rng=np.random.default_rng(2), n_simulations=2000)
    result = assess(pit, bands, display_level=0.95, verdict_level=0.99)
    assert result.inside_verdict_band and not result.tails_ok and not result.calibrated
    assert tail_p_value(pit) < 1e-10


def test_draws_are_thinned_to_about_their_ess_and_ranked_with_ties_broken():
    assert thinning(2000, 400.0) == 5
    assert thinning(2000, 3000.0) == 1 and thinning(2000, float("nan")) == 1
    draws = np.arange(2000, dtype=float).reshape(2, 1000)
    rank = draws_rank(draws, 500.5, ess=400.0, rng=np.random.default_rng(0))
    assert (rank.thin, rank.n_ranked) == (5, 400)
    assert rank.rank == 101  # draws 0, 5, ..., 500 of the first chain are below
    assert 101 / 401 <= rank.pit <= 102 / 401
    # A true value equal to every draw (a point mass) gets a uniform rank.
    pits = [draws_rank(np.zeros((2, 50)), 0.0, ess=100.0,
                       rng=np.random.default_rng(i)).pit for i in range(400)]
    assert abs(np.mean(pits) - 0.5) < 0.05 and min(pits) < 0.1 and max(pits) > 0.9


# -- calibrated settings -------------------------------------------------------------------

@pytest.fixture(scope="module")
def exact_result():
    """150 replications of the primary model, exact engine, default priors."""
    plan = plan_calibration(config("exact"), replications=150)
    return run_calibration(plan, jobs=2)


def test_exact_engine_is_calibrated_on_the_population_quantities(exact_result):
    result = exact_result
    plan = result.plan
    assert [a.name for a in plan.analyses] == ["success"]  # severe_ae: same study sizes
    assert any("severe_ae has the study sizes of success" in n for n in plan.notes)
    assert len(result.results) == 150 and result.count("not fitted") == 0
    assert set(result.verdicts["label"]) == {
        "mean_rate", "theta_new", "sd_rates", "m", "phi", "kappa", "theta[Joly2012]",
        "theta[Sim2022]"}
    for label in POPULATION:
        row = verdict(result, label)
        assert row["verdict"] == "calibrated", row.to_dict()
        assert row["n"] == 150
    # Every quantity's ECDF stays inside the verdict band. The exact engine's tabulated
    # CDFs of rates stop resolving the mass within ~1e-15 of 0 and 1, where a Beta
    # with a shape below 1 (large simulated heterogeneity) puts a few percent of it, so
    # a true rate drawn there gets a PIT of ~0 or 1: the tail test flags exactly that.
    assert result.verdicts["inside_verdict_band"].all()
    for row in result.verdicts.itertuples():
        if row.verdict != "calibrated":
            assert row.quantity in ("theta", "theta_new") and "extreme PIT" in row.note
    ranks = result.ranks
    assert ranks["rank"].isna().all() and ranks["pit"].between(0, 1).all()
    # mean_rate is m, and kappa = phi^-2 ranks in reverse: the same CDF values.
    m, mean = (ranks[ranks["quantity"] == q]["pit"].to_numpy() for q in ("m", "mean_rate"))
    assert np.allclose(m, mean)
    phi, kappa = (ranks[ranks["quantity"] == q]["pit"].to_numpy() for q in ("phi", "kappa"))
    assert np.max(np.abs(phi - (1 - kappa))) < 2e-3  # two tabulated CDFs, interpolated


def test_nuts_few_replications_ranks_thinned_draws_and_is_calibrated():
    plan = plan_calibration(config("nuts"), replications=24)
    with InlineExecutor() as executor:
        result = run_calibration(plan, executor=executor)
    assert result.calibrated, result.verdicts[["label", "band_p_value", "note"]]
    ranks = result.ranks
    assert (ranks["n_ranked"] >= 50).all() and (ranks["n_ranked"] <= 2000).all()
    assert (ranks["rank"] <= ranks["n_ranked"]).all() and (ranks["thin"] >= 1).all()
    assert ranks["pit"].between(0, 1, inclusive="neither").all()
    # Statuses: every fit is there, diagnostics failures counted, none lost.
    assert len(result.results) == 24 and result.count("not fitted") == 0
    assert set(ranks["status"]) <= {"ok", "diagnostics failed"}


# -- miscalibrated settings are flagged ----------------------------------------------------

def test_simulating_from_another_prior_is_flagged():
    plan = plan_calibration(config("exact"), replications=150,
                            simulate_priors={"phi": "HalfNormal(0.1)"})
    assert plan.misspecified == ["phi"]
    assert any("simulated from a prior other than the fitted one" in n for n in plan.notes)
    result = run_calibration(plan, jobs=2)
    assert not result.calibrated
    for label in ("phi", "sd_rates", "kappa"):
        row = verdict(result, label)
        assert row["verdict"] == "miscalibrated" and not row["inside_verdict_band"]
        assert row["band_p_value"] < 0.001
    # Heterogeneity simulated smaller than the prior fitted expects: true phi lie low in
    # their posteriors (the fitted posteriors overestimate it), so kappa's lie high.
    assert "overestimate" in verdict(result, "phi")["note"]
    assert "underestimate" in verdict(result, "kappa")["note"]
    assert verdict(result, "m")["verdict"] == "calibrated"


def test_a_mean_rate_prior_mismatch_is_flagged():
    plan = plan_calibration(config("exact"), replications=120,
                            simulate_priors={"m": "Beta(4, 1)"})
    result = run_calibration(plan, jobs=2)
    for label in ("m", "mean_rate"):
        assert verdict(result, label)["verdict"] == "miscalibrated"
        assert "underestimate" in verdict(result, label)["note"]
    for label in ("phi", "kappa"):
        assert verdict(result, label)["verdict"] == "calibrated"


def test_nuts_without_warm_up_is_flagged():
    # One tuning step and 10 draws a chain: the chains are still near their random
    # starting points, so the heterogeneity's ranks are off.
    plan = plan_calibration(config("nuts", tune=1, draws=10), replications=60)
    result = run_calibration(plan, jobs=2)
    flagged = set(result.miscalibrated["label"])
    assert {"phi", "kappa"} <= flagged, result.verdicts[["label", "band_p_value"]]
    assert result.count("diagnostics failed") == 60  # and every fit said so itself


@pytest.mark.slow
def test_the_same_short_chains_after_warm_up_are_calibrated():
    # The control: only the tuning differs. Ranks among draws thinned to their ESS stay
    # uniform even with 10 draws a chain, although every fit fails its ESS checks.
    plan = plan_calibration(config("nuts", tune=300, draws=10), replications=60)
    result = run_calibration(plan, jobs=2)
    assert result.calibrated, result.verdicts[["label", "band_p_value", "note"]]


# -- executors -----------------------------------------------------------------------------

def test_inline_and_process_executors_give_identical_results():
    plan = plan_calibration(config("nuts"), replications=8)
    with InlineExecutor() as executor:
        inline = run_calibration(plan, executor=executor)
    with ProcessExecutor(2) as executor:
        processes = run_calibration(plan, executor=executor)
    pd.testing.assert_frame_equal(inline.ranks, processes.ranks)
    pd.testing.assert_frame_equal(inline.verdicts, processes.verdicts)
    assert inline.replications.drop(columns="seconds").equals(
        processes.replications.drop(columns="seconds"))


def test_a_replication_is_the_same_wherever_and_whenever_it_runs():
    plan = plan_calibration(config("exact"), replications=3)
    again = plan_calibration(config("exact"), replications=3)
    task = plan.tasks[2]
    assert task.truth == again.tasks[2].truth
    assert np.array_equal(task.events, again.tasks[2].events)
    assert task.key() is None  # exact: nothing to compile
    first = run_replication(task, CalibrationContext())
    second = run_replication(again.tasks[2], CalibrationContext())
    assert first.ranks == second.ranks
    nuts = plan_calibration(config("nuts"), replications=2)
    assert len({t.key() for t in nuts.tasks}) == 1 and nuts.tasks[0].key() is not None
    assert {t.settings.cores for t in nuts.tasks} == {1}
    assert len({t.settings.seed for t in nuts.tasks}) == 2


# -- refusals ------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [
    {"config": RunConfig(priors={"phi": "BDA3"})},
    {"config": RunConfig(), "simulate_priors": {"phi": "BDA3"}},
])
def test_improper_priors_are_refused(kwargs):
    with pytest.raises(SpecError, match="improper"):
        plan_calibration(kwargs.pop("config"), replications=10, **kwargs)


def test_the_command_refuses_an_improper_prior_in_one_line(tmp_path):
    result = CliRunner().invoke(calibrate_command, ["--prior", "phi=BDA3", "--out",
                                                    str(tmp_path / "c")])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "improper" in lines[0]
    assert "SBC" in lines[0] or "prior draws" in lines[0] or "draws from" in lines[0]
    assert not (tmp_path / "c").exists()


def test_too_few_replications_are_refused():
    with pytest.raises(SpecError, match="at least 2"):
        plan_calibration(config(), replications=1)


# -- the directory, the reader, the report -------------------------------------------------

def test_the_directory_reads_back_and_renders(exact_result, tmp_path):
    out = write_calibration(exact_result, tmp_path / "cal")
    for name in ("ranks.csv", "verdicts.csv", "replications.csv", "diagnostics.json",
                 "manifest.json", "plots/index.json", "plots/calibration-ecdf.png",
                 "plots/calibration-ecdf.svg", "plots/calibration-ranks.png"):
        assert (out / name).is_file(), name
    saved = load_calibration(out)
    assert saved.engine == "exact" and saved.n_replications == 150
    assert saved.manifest["kind"] == "calibration"
    assert len(saved.ranks) == len(exact_result.ranks)
    assert np.allclose(saved.ranks["pit"], exact_result.ranks["pit"])
    assert list(saved.verdicts["verdict"]) == list(exact_result.verdicts["verdict"])
    assert saved.verdicts["inside_verdict_band"].dtype == bool
    assert [p["name"] for p in saved.plots] == ["calibration-ecdf", "calibration-ranks"]
    diagnostics = json.loads((out / "diagnostics.json").read_text())
    assert diagnostics["fits"] == 150 and diagnostics["failed_diagnostics_included"]
    replications = saved.replications
    assert len(replications) == 150 and {"events", "phi", "theta[Joly2012]"} <= set(
        replications.columns)

    from bayes_dress.report.calibration_section import calibration_section

    html = calibration_section(saved)
    assert "data:image/png;base64" in html and "Säilynoja" in html
    assert "theta[Sim2022]" in html and "150" in html

    (out / "verdicts.csv").write_text("tampered\n")
    with pytest.raises(RunDirError, match="changed after it was written"):
        load_calibration(out).verdicts  # noqa: B018
    with pytest.raises(RunDirError, match=r"not a calibration directory|no manifest"):
        load_calibration(tmp_path)


def test_the_report_section_escapes_and_says_not_calibrated(exact_result, tmp_path):
    out = write_calibration(exact_result, tmp_path / "cal")
    saved = load_calibration(out)
    saved.verdicts.loc[0, "note"] = "<script>alert(1)</script>"
    saved.verdicts.loc[0, "verdict"] = "miscalibrated"
    from bayes_dress.report.calibration_section import calibration_section

    html = calibration_section(saved)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "NOT CALIBRATED" in html


def test_the_command_writes_a_small_calibration(tmp_path):
    out = tmp_path / "cal"
    result = CliRunner().invoke(calibrate_command, [
        "--engine", "exact", "--replications", "20", "--jobs", "1", "--out", str(out),
        "--quiet", "--seed", "5"])
    assert result.exit_code == 0, result.output
    assert "m: calibrated" in result.stdout and f"results written to {out}" in result.stdout
    saved = load_calibration(out)
    assert saved.manifest["seed"] == 5 and saved.manifest["replications"] == 20
    assert saved.manifest["priors"] == {"m": "Beta(alpha=1, beta=1)",
                                        "phi": "HalfNormal(sigma=0.5)"}
    # Refuses to overwrite without --overwrite, before any fitting.
    again = CliRunner().invoke(calibrate_command, ["--engine", "exact", "--out", str(out)])
    assert again.exit_code == 2 and "exists" in again.stderr
