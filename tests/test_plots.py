"""Plots of a saved run: what each panel shows (numbers), the files, the redraw command."""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from conftest import FAST, assert_user_error
from scipy import stats

from bayes_dress import RunConfig, run_fit, write_run
from bayes_dress.cli import main
from bayes_dress.errors import RunDirError
from bayes_dress.plots import data, draw, figures, make
from bayes_dress.posterior import mcmc_stats
from bayes_dress.posterior.draws import bounded_density
from bayes_dress.rundir import load_run

INDEX_KEYS = ["name", "title", "caption", "outcome", "png", "svg", "png_sha256",
              "svg_sha256"]


@pytest.fixture(scope="module")
def nuts_run(tmp_path_factory):
    """One small NUTS fit of both default outcomes, written with its plots."""
    out = tmp_path_factory.mktemp("plots") / "run"
    write_run(run_fit(RunConfig(sampler=FAST)), out)
    return out


@pytest.fixture(scope="module")
def exact_run(tmp_path_factory):
    """An exact-engine fit under BDA3's improper hyperprior: no prior draws."""
    out = tmp_path_factory.mktemp("plots") / "exact"
    write_run(run_fit(RunConfig(engine="exact", priors={"phi": "BDA3"})), out)
    return out


def summary_row(run, outcome, parameter, study=""):
    summary = load_run(run).summary
    sel = ((summary["outcome"] == outcome) & (summary["parameter"] == parameter)
           & (summary["study"] == study))
    return summary[sel].iloc[0]


def index_of(run):
    return json.loads((run / "plots" / "index.json").read_text(encoding="utf-8"))


def test_run_writes_every_plot_as_png_and_svg_with_an_index(nuts_run):
    index = index_of(nuts_run)
    assert [e["name"] for e in index] == [
        "forest-success", "forest-severe_ae", "benefit-risk", "benefit-risk-acceptability",
        "prior-posterior-success",
        "prior-posterior-severe_ae", "ppc-success", "ppc-severe_ae", "trace-success",
        "rank-success", "trace-severe_ae", "rank-severe_ae"]
    for entry in index:
        assert list(entry) == INDEX_KEYS
        assert entry["png"] == f"plots/{entry['name']}.png"
        assert entry["svg"] == f"plots/{entry['name']}.svg"
        assert (nuts_run / entry["png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert b"<svg" in (nuts_run / entry["svg"]).read_bytes()[:2000]
        assert entry["title"] and entry["caption"]
        for kind in ("png", "svg"):  # the index vouches for its files
            digest = hashlib.sha256((nuts_run / entry[kind]).read_bytes()).hexdigest()
            assert entry[f"{kind}_sha256"] == digest
    assert [e["outcome"] for e in index][:4] == ["success", "severe_ae", None, None]
    assert "independent" in index[2]["caption"]
    # The manifest vouches for every file of the fit, by relative path; the plots have
    # their own index, so a redraw leaves the manifest alone.
    files = json.loads((nuts_run / "manifest.json").read_text())["files"]
    on_disk = {p.relative_to(nuts_run).as_posix() for p in nuts_run.rglob("*")
               if p.is_file() and p.name != "manifest.json" and p.parts[-2] != "plots"}
    assert set(files) == on_disk and "posterior-success.nc" in files
    for name, digest in files.items():
        assert hashlib.sha256((nuts_run / name).read_bytes()).hexdigest() == digest


def test_forest_shows_observed_rates_and_posterior_intervals(nuts_run):
    run = load_run(nuts_run)
    forest = data.forest_data(run, "success")
    assert not forest["caterpillar"]
    joly, sim = forest["studies"]
    assert joly["label"] == "Joly2012 (1/6)" and sim["label"] == "Sim2022 (16/18)"
    assert joly["observed"] == pytest.approx(1 / 6)
    assert sim["observed"] == pytest.approx(16 / 18)
    exact_ci = stats.binomtest(1, 6).proportion_ci(0.95, method="exact")
    assert (joly["observed_lower"], joly["observed_upper"]) == pytest.approx(
        (exact_ci.low, exact_ci.high))
    for study in forest["studies"]:
        expected = summary_row(nuts_run, "success", "theta", study["study"])
        assert (study["lower"], study["estimate"], study["upper"]) == pytest.approx(
            (expected["q2.5"], expected["median"], expected["q97.5"]))
    for row in forest["population"]:
        expected = summary_row(nuts_run, "success", row["kind"])
        assert (row["lower"], row["estimate"], row["upper"]) == pytest.approx(
            (expected["q2.5"], expected["median"], expected["q97.5"]))
    title, _, fig = draw._forest(run, "success")
    ax = fig.axes[0]
    assert ax.get_title() == title and "Success" in title
    assert ax.get_xlabel() == "rate (proportion of patients)"
    labels = [t.get_text() for t in ax.get_yticklabels()][::-1]
    assert labels == ["Joly2012 (1/6)", "Joly2012, model", "Sim2022 (16/18)",
                      "Sim2022, model", "Population mean", "New study"]
    assert len(ax.lines) == 2 * len(labels) + 1  # interval and point per row, one separator
    # Kinds differ by marker and fill, not only colour (grayscale).
    styles = {(line.get_marker(), line.get_markerfacecolor()) for line in ax.lines[1::2]}
    assert len(styles) == 4


def test_prior_posterior_panels_are_bounded_densities(nuts_run):
    analysis = load_run(nuts_run).analyses["success"]
    panels = data.prior_posterior_data(analysis)
    assert [p["parameter"] for p in panels] == ["m", "phi", "theta_new"]
    for panel in panels:
        grid, density = panel["posterior"]
        lo, hi = panel["bounds"]
        assert grid.min() >= lo and grid.max() <= hi and (density >= 0).all()
        assert panel["prior"] is not None and panel["note"] is None
        expected = summary_row(nuts_run, "success", panel["parameter"])
        assert panel["posterior_interval"] == pytest.approx(
            (expected["q2.5"], expected["median"], expected["q97.5"]))
        assert panel["prior_interval"][0] == pytest.approx(expected["prior_q2.5"])
    for panel in (panels[0], panels[2]):  # rates: the whole of [0, 1], all the mass
        grid, density = panel["posterior"]
        assert panel["window"] == (0.0, 1.0)
        assert np.sum(density) * (grid[1] - grid[0]) == pytest.approx(1.0, abs=0.01)


def test_bounded_density_does_not_leak_past_zero():
    draws = np.random.default_rng(1).beta(0.5, 3.0, size=4000)
    grid, density = bounded_density(draws, bounds=(0.0, 1.0), window=(0.0, 1.0))
    assert grid.min() >= 0 and np.sum(density) * (grid[1] - grid[0]) == pytest.approx(1, abs=0.01)
    # A Gaussian KDE would put mass below 0 and so underestimate the density near it.
    assert density[0] > stats.gaussian_kde(draws)(grid[0])[0]
    assert bounded_density(np.full(10, 0.3), bounds=(0, 1), window=(0, 1)) is None


def test_ppc_is_the_binomial_averaged_over_the_posterior_of_each_rate(nuts_run):
    run = load_run(nuts_run)
    ppc = data.ppc_data(run, "success")
    tree = run.analyses["success"].tree
    theta = tree["posterior"]["theta"]
    replicated = tree["posterior_predictive"]["y"]
    for row, observed, total in zip(ppc["rows"], [1, 16], [6, 18], strict=True):
        assert (row["observed"], row["total"]) == (observed, total)
        assert row["pmf"].sum() == pytest.approx(1.0)
        rates = theta.sel(study=row["study"]).values.reshape(-1)
        expected = stats.binom.pmf(np.arange(total + 1)[:, None], total, rates).mean(axis=1)
        np.testing.assert_allclose(row["pmf"], expected, rtol=1e-9, atol=1e-14)
        assert row["p_ge"] == pytest.approx(expected[observed:].sum())
        assert row["p_le"] == pytest.approx(expected[:observed + 1].sum())
        # The replicated draws saved beside the posterior are draws of that law.
        draws = replicated.sel(study=row["study"]).values.reshape(-1)
        se = np.sqrt(row["p_le"] * (1 - row["p_le"]) / draws.size)
        assert abs(np.mean(draws <= observed) - row["p_le"]) < 5 * se + 1e-12
    _, _, fig = draw._ppc(run, "success")
    assert [ax.get_title().split("\n")[0] for ax in fig.axes] == ["Joly2012 (1/6)",
                                                                   "Sim2022 (16/18)"]


def test_benefit_risk_quadrants(nuts_run):
    run = load_run(nuts_run)
    br = data.benefit_risk_data(run, benefit_threshold=0.5, risk_threshold=0.2)
    probabilities = [q["probability"] for q in br["quadrants"]]
    assert sum(probabilities) == pytest.approx(1.0)
    success = run.analyses["success"].tree["posterior"]["theta_new"]
    harm = run.analyses["severe_ae"].tree["posterior"]["theta_new"]
    p_benefit, p_safe = float((success > 0.5).mean()), float((harm < 0.2).mean())
    favourable = br["quadrants"][0]
    assert favourable["benefit_above"] and favourable["risk_below"]
    assert not br["joint"]  # separate fits: paired as independent
    assert favourable["probability"] == pytest.approx(p_benefit * p_safe)
    assert len(br["x"]) == len(br["y"]) == data.SCATTER_POINTS
    _, caption, fig = draw._benefit_risk(run, benefit_threshold=0.5, risk_threshold=0.2)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any(f"P = {favourable['probability']:.2f}" in t for t in texts)
    assert f"= {favourable['probability']:.2f}" in caption


def test_trace_shows_each_chain_of_the_sampled_parameters_apart(nuts_run):
    analysis = load_run(nuts_run).analyses["success"]
    draws = data.sampled_draws(analysis)
    assert list(draws.data_vars) == ["m", "phi"]
    _, caption, fig = draw._trace(analysis)
    # One row per parameter, one column per chain: chains never overlap (grayscale).
    assert len(fig.axes) == 2 * FAST.chains
    assert [ax.get_title() for ax in fig.axes[:FAST.chains]] == [
        f"chain {c}" for c in range(FAST.chains)]
    assert [ax.get_ylabel() for ax in fig.axes[::FAST.chains]] == ["m", "phi"]
    enveloped = FAST.draws > 2 * figures.TRACE_POINTS  # drawn at screen resolution
    for ax in fig.axes:
        n = len(ax.lines[0].get_xdata())
        assert n == (2 * figures.TRACE_POINTS if enveloped else FAST.draws)
    assert ("drawn at the panel's resolution" in caption) == enveloped
    assert not caption.startswith("Success")
    figures.close(fig)


def test_a_long_trace_is_drawn_as_its_envelope_at_screen_resolution():
    rng = np.random.default_rng(5)
    values = rng.normal(size=5003)
    values[1234] = 9.0  # one excursion must survive the reduction
    x = np.arange(values.size)
    xs, ys = figures.trace_envelope(x, values, 100)
    assert len(xs) == 200 and np.all(np.diff(xs) >= 0)  # in draw order
    np.testing.assert_array_equal(values[xs], ys)  # only real draws, at their positions
    assert ys.max() == 9.0 and ys.min() == values.min()
    edges = np.linspace(0, values.size, 101).astype(int)
    for a, b in itertools.pairwise(edges):  # each column's exact range
        inside = (xs >= a) & (xs < b)
        assert ys[inside].min() == values[a:b].min()
        assert ys[inside].max() == values[a:b].max()
    short = np.arange(150.0)
    assert figures.trace_envelope(short, short, 100)[0] is short  # short chains: whole


def test_rank_plot_thins_draws_to_about_the_ess(nuts_run):
    analysis = load_run(nuts_run).analyses["success"]
    full = data.sampled_draws(analysis)
    thinned, factor = data.thin_to_ess(full)
    # FAST's autocorrelated NUTS draws (ESS well below 2 x 1000) need thinning, and not so
    # much that MIN_RANK_DRAWS per chain would cap it.
    assert 1 < factor < FAST.draws // data.MIN_RANK_DRAWS
    # The smallest factor that keeps no more draws than the worst ESS: one less keeps more.
    stacked = np.stack([full[v].values for v in full.data_vars], axis=-1)
    worst = float(mcmc_stats.ess_bulk(stacked).min())
    total = FAST.chains * FAST.draws
    assert total / factor <= worst < total / (factor - 1)
    kept = len(range(0, FAST.draws, factor))  # draws 0, factor, 2 factor, ... of each chain
    assert thinned.sizes["draw"] == kept
    np.testing.assert_array_equal(thinned["m"].values, full["m"].values[:, ::factor])
    _, caption, fig = draw._rank(analysis)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["m", "phi"]
    for ax in panels:  # one Δ-ECDF line per chain, over the thinned draws only
        curves = [line for line in ax.lines if len(line.get_xdata()) == kept]
        assert len(curves) == FAST.chains
        assert ax.get_ylabel() and ax.yaxis.get_visible()
    assert "thinned to about the effective sample size" in caption
    assert f"one draw in {factor}: {kept} of {FAST.draws} per chain" in caption


def test_ess_thinning_of_independent_and_autocorrelated_draws():
    rng = np.random.default_rng(3)
    iid = xr.Dataset({"a": (("chain", "draw"), rng.normal(size=(4, 1000)))})
    assert data.ess_thinning(iid) <= 2
    walk = np.zeros((4, 1000))
    for t in range(1, 1000):  # AR(1), rho = 0.9: ESS ~ N (1 - rho) / (1 + rho)
        walk[:, t] = 0.9 * walk[:, t - 1] + rng.normal(size=4)
    factor = data.ess_thinning(xr.Dataset({"a": (("chain", "draw"), walk)}))
    assert 10 <= factor <= 35
    # Never fewer than MIN_RANK_DRAWS draws per chain; constant draws are ignored.
    stuck = xr.Dataset({"a": (("chain", "draw"), np.cumsum(rng.normal(size=(4, 200)), 1)),
                        "c": (("chain", "draw"), np.ones((4, 200)))})
    assert data.ess_thinning(stuck) == 200 // data.MIN_RANK_DRAWS


def test_captions_do_not_restate_titles(nuts_run):
    for entry in index_of(nuts_run):
        assert not entry["caption"].startswith(entry["title"].split(":")[0])


def test_benefit_risk_needs_both_outcomes(tmp_path):
    out = tmp_path / "one"
    write_run(run_fit(RunConfig(engine="exact", outcomes=("success",))), out)
    names = [e["name"] for e in index_of(out)]
    assert "benefit-risk" not in names and "forest-success" in names


def test_plot_command_redraws_the_same_plots(nuts_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(nuts_run, run)
    shutil.rmtree(run / "plots")
    manifest = (run / "manifest.json").read_bytes()
    result = CliRunner().invoke(main, ["plot", str(run)], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert f"{run / 'plots'}/" in result.output
    for entry in index_of(nuts_run):  # byte for byte what the fit drew
        for kind in ("png", "svg"):
            assert (run / entry[kind]).read_bytes() == (nuts_run / entry[kind]).read_bytes()
    assert (run / "manifest.json").read_bytes() == manifest  # one writer of the manifest
    assert not list(run.glob(".plots*"))


@pytest.mark.parametrize(("make", "expected"), [
    ("missing", "does not exist"),
    ("no_manifest", "it has no manifest.json"),
    ("old_format", "format-1 directory; this version of bayes-dress reads format 2"),
    ("sweep", "its manifest says it is a 'sweep' directory"),
])
def test_plot_command_bad_run_dir_is_one_line(tmp_path, make, expected):
    run = tmp_path / "run"
    if make != "missing":
        run.mkdir()
    if make == "old_format":  # a run written before format versions existed
        (run / "manifest.json").write_text('{"files": {}}')
    if make == "sweep":
        (run / "manifest.json").write_text('{"format": 2, "kind": "sweep", "files": {}}')
    assert_user_error(CliRunner().invoke(main, ["plot", str(run)]), str(run), expected)


def _snapshot(run):
    return {p.relative_to(run).as_posix(): p.read_bytes() for p in run.rglob("*")
            if p.is_file()}


@pytest.mark.parametrize(("name", "change"), [
    ("posterior-success.nc", lambda b: b[:-100] + bytes(100)),
    ("summary.csv", lambda b: b.replace(b"success", b"succe$$", 1)),
    ("data_used.csv", lambda b: b + b"\n"),
    ("diagnostics.json", lambda b: b"{}"),
])
def test_a_changed_file_is_refused_and_changes_nothing(nuts_run, tmp_path, name, change):
    """The reader checks every file it opens against the manifest's SHA-256: a file
    changed after it was written (by hand, or a broken copy) is one line naming it."""
    run = tmp_path / "run"
    shutil.copytree(nuts_run, run)
    (run / name).write_bytes(change((run / name).read_bytes()))
    before = _snapshot(run)
    assert_user_error(CliRunner().invoke(main, ["plot", str(run)]), name,
                      "was changed after it was written")
    assert _snapshot(run) == before
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no half-drawn plots


def test_a_missing_posterior_file_says_why(nuts_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(nuts_run, run)
    (run / "posterior-severe_ae.nc").unlink()
    err = assert_user_error(CliRunner().invoke(main, ["plot", str(run)]),
                            "posterior-severe_ae.nc", "is missing", "refit")
    assert "too old" not in err
    with pytest.raises(RunDirError):
        load_run(run).analyses["severe_ae"].tree  # noqa: B018


def test_plot_command_notes_a_stale_report(nuts_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(nuts_run, run)
    assert make.stale_report_note(run) is None
    (run / "report.html").write_text("<html>old plots</html>")
    result = CliRunner().invoke(main, ["plot", str(run)], catch_exceptions=False)
    assert result.exit_code == 0
    assert "report.html embeds the previous plots" in result.output
    assert f"bayes-dress report {run}" in result.output
    assert (run / "report.html").read_text() == "<html>old plots</html>"


def test_exact_run_plots_exact_marginals_and_skips_chains(exact_run):
    run = load_run(exact_run)
    analysis = run.analyses["success"]
    assert analysis.posterior.kind == "marginals" and analysis.posterior.joint_draws is None
    assert "marginals" in analysis.tree.children and "posterior" not in analysis.tree.children
    index = index_of(exact_run)
    names = [e["name"] for e in index]
    assert "benefit-risk" in names and not [n for n in names if n[:5] in ("trace", "rank-")]
    forest = next(e for e in index if e["name"] == "forest-success")
    assert "no trace or rank plots" in forest["caption"]
    for row in data.forest_data(run, "success")["population"]:
        expected = summary_row(exact_run, "success", row["kind"])
        assert (row["lower"], row["estimate"], row["upper"]) == pytest.approx(
            (expected["q2.5"], expected["median"], expected["q97.5"]))
    # BDA3's hyperprior is improper: no prior curve, and the panel says why.
    panels = data.prior_posterior_data(analysis)
    assert all(p["prior"] is None and "BDA3" in p["note"] for p in panels)
    # The exact density integrates to one over a rate's whole range.
    grid, density = next(p for p in panels if p["parameter"] == "theta_new")["posterior"]
    assert np.sum(density) * (grid[1] - grid[0]) == pytest.approx(1.0, abs=0.01)
    # Replicated counts: the binomial averaged over the exact marginal of each rate.
    for row in data.ppc_data(run, "success")["rows"]:
        assert row["pmf"].sum() == pytest.approx(1.0)


def test_plot_help():
    result = CliRunner().invoke(main, ["plot", "--help"])
    assert result.exit_code == 0 and "RUN_DIR" in result.output
