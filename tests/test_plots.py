"""Plots of a saved run: what each panel shows (numbers), the files, the redraw command."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import arviz_stats as azs
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from click.testing import CliRunner
from conftest import FAST, assert_user_error
from scipy import stats

from bayes_dress import RunConfig, outputs, plots, run_fit, write_run
from bayes_dress import plot_data as data
from bayes_dress.cli import main
from bayes_dress.errors import RunDirError
from bayes_dress.models import get_model

INDEX_KEYS = ["name", "title", "caption", "outcome", "png", "svg"]


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


def tree(run, outcome="success"):
    kind = "posterior" if (run / f"posterior-{outcome}.nc").exists() else "marginals"
    return xr.load_datatree(run / f"{kind}-{outcome}.nc")


def summary_row(run, outcome, parameter, study=None):
    summary = pd.read_csv(run / "summary.csv")
    sel = (summary["outcome"] == outcome) & (summary["parameter"] == parameter)
    if study is not None:
        sel &= summary["study"] == study
    return summary[sel].iloc[0]


def index_of(run):
    return json.loads((run / "plots" / "index.json").read_text(encoding="utf-8"))


def test_run_writes_every_plot_as_png_and_svg_with_an_index(nuts_run):
    index = index_of(nuts_run)
    assert [e["name"] for e in index] == [
        "forest-success", "forest-severe_ae", "benefit-risk", "prior-posterior-success",
        "prior-posterior-severe_ae", "ppc-success", "ppc-severe_ae", "trace-success",
        "trace-severe_ae", "rank-success", "rank-severe_ae"]
    for entry in index:
        assert list(entry) == INDEX_KEYS
        assert entry["png"] == f"plots/{entry['name']}.png"
        assert entry["svg"] == f"plots/{entry['name']}.svg"
        assert (nuts_run / entry["png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert b"<svg" in (nuts_run / entry["svg"]).read_bytes()[:2000]
        assert entry["title"] and entry["caption"]
    assert [e["outcome"] for e in index][:3] == ["success", "severe_ae", None]
    assert "independent" in index[2]["caption"]
    assert not (nuts_run / "forest.png").exists() and not (nuts_run / "densities.png").exists()
    # The manifest vouches for every file, plots included, by relative path.
    files = json.loads((nuts_run / "manifest.json").read_text())["files"]
    on_disk = {p.relative_to(nuts_run).as_posix() for p in nuts_run.rglob("*")
               if p.is_file() and p.name != "manifest.json"}
    assert set(files) == on_disk and "plots/forest-success.png" in files
    for name, digest in files.items():
        assert hashlib.sha256((nuts_run / name).read_bytes()).hexdigest() == digest


def test_forest_shows_observed_rates_and_posterior_intervals(nuts_run):
    fit = tree(nuts_run)
    rows = data.forest_data(fit)
    assert [r["kind"] for r in rows] == ["observed", "study", "observed", "study",
                                         "mean_rate", "theta_new"]
    joly, sim = rows[0], rows[2]
    assert joly["label"] == "Joly2012 (1/6)" and sim["label"] == "Sim2022 (16/18)"
    assert joly["estimate"] == pytest.approx(1 / 6) and sim["estimate"] == pytest.approx(16 / 18)
    exact_ci = stats.binomtest(1, 6).proportion_ci(0.95, method="exact")
    assert (joly["lower"], joly["upper"]) == pytest.approx((exact_ci.low, exact_ci.high))
    for row in rows[1::2][:2] + rows[4:]:
        name = "theta" if row["kind"] == "study" else row["kind"]
        expected = summary_row(nuts_run, "success", name, row["study"])
        assert (row["lower"], row["estimate"], row["upper"]) == pytest.approx(
            (expected["q2.5"], expected["median"], expected["q97.5"]))
    title, _, fig = plots._forest("success", fit)
    ax = fig.axes[0]
    assert ax.get_title() == title and "Success" in title
    assert ax.get_xlabel() == "rate (proportion of patients)"
    assert [t.get_text() for t in ax.get_yticklabels()][::-1] == [r["label"] for r in rows]
    assert len(ax.lines) == 2 * len(rows) + 1  # interval and point per row, one separator
    # Kinds differ by marker and fill, not only colour (grayscale).
    styles = {(line.get_marker(), line.get_markerfacecolor()) for line in ax.lines[1::2]}
    assert len(styles) == 4


def test_prior_posterior_panels_are_bounded_densities(nuts_run):
    panels = data.prior_posterior_data(tree(nuts_run))
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
    grid, density = data.bounded_density(draws, bounds=(0.0, 1.0), window=(0.0, 1.0))
    assert grid.min() >= 0 and np.sum(density) * (grid[1] - grid[0]) == pytest.approx(1, abs=0.01)
    # A Gaussian KDE would put mass below 0 and so underestimate the density near it.
    assert density[0] > stats.gaussian_kde(draws)(grid[0])[0]
    assert data.bounded_density(np.full(10, 0.3), bounds=(0, 1), window=(0, 1)) is None


def test_ppc_compares_replicated_and_observed_counts(nuts_run):
    fit = tree(nuts_run)
    rows = data.ppc_data(fit)
    replicated = fit["posterior_predictive"]["y"]
    for row, observed, total in zip(rows, [1, 16], [6, 18], strict=True):
        assert (row["observed"], row["total"]) == (observed, total)
        assert row["pmf"].sum() == pytest.approx(1.0)
        draws = replicated.sel(study=row["study"]).values.reshape(-1)
        assert row["pmf"][observed] == pytest.approx(np.mean(draws == observed))
        assert row["p_ge"] == pytest.approx(np.mean(draws >= observed))
        assert row["p_le"] == pytest.approx(np.mean(draws <= observed))
    _, _, fig = plots._ppc("success", fit)
    assert [ax.get_title().split("\n")[0] for ax in fig.axes] == ["Joly2012 (1/6)",
                                                                   "Sim2022 (16/18)"]


def test_benefit_risk_quadrants(nuts_run):
    success, harm = tree(nuts_run, "success"), tree(nuts_run, "severe_ae")
    br = data.benefit_risk_data(success, harm, benefit_threshold=0.5, risk_threshold=0.2)
    probabilities = [q["probability"] for q in br["quadrants"]]
    assert sum(probabilities) == pytest.approx(1.0)
    p_benefit = float((success["posterior"]["theta_new"] > 0.5).mean())
    p_safe = float((harm["posterior"]["theta_new"] < 0.2).mean())
    favourable = br["quadrants"][0]
    assert favourable["benefit_above"] and favourable["risk_below"]
    assert favourable["probability"] == pytest.approx(p_benefit * p_safe)
    assert len(br["x"]) == len(br["y"]) == min(FAST.chains * FAST.draws, data.SCATTER_POINTS)
    _, caption, fig = plots._benefit_risk(success, harm, benefit_threshold=0.5,
                                          risk_threshold=0.2)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any(f"P = {favourable['probability']:.2f}" in t for t in texts)
    assert f"= {favourable['probability']:.2f}" in caption


def test_trace_shows_each_chain_of_the_sampled_parameters_apart(nuts_run):
    fit = tree(nuts_run)
    draws = data.sampled_draws(fit)
    assert list(draws.data_vars) == ["m", "phi"]
    _, caption, fig = plots._trace("success", fit)
    # One row per parameter, one column per chain: chains never overlap (grayscale).
    assert len(fig.axes) == 2 * FAST.chains
    assert [ax.get_title() for ax in fig.axes[:FAST.chains]] == [
        f"chain {c}" for c in range(FAST.chains)]
    assert [ax.get_ylabel() for ax in fig.axes[::FAST.chains]] == ["m", "phi"]
    for ax in fig.axes:
        assert len(ax.lines[0].get_xdata()) == FAST.draws
    assert not caption.startswith("Success")
    plots.figures.close(fig)


def test_rank_plot_thins_draws_to_about_the_ess(nuts_run):
    fit = tree(nuts_run)
    full = data.sampled_draws(fit)
    thinned, factor = data.thin_to_ess(full)
    # FAST's autocorrelated NUTS draws (ESS well below 2 x 1000) need thinning, and not so
    # much that MIN_RANK_DRAWS per chain would cap it.
    assert 1 < factor < FAST.draws // data.MIN_RANK_DRAWS
    # The smallest factor that keeps no more draws than the worst ESS: one less keeps more.
    worst = min(float(v) for v in azs.ess(full, method="bulk").data_vars.values())
    total = FAST.chains * FAST.draws
    assert total / factor <= worst < total / (factor - 1)
    kept = len(range(0, FAST.draws, factor))  # draws 0, factor, 2 factor, ... of each chain
    assert thinned.sizes["draw"] == kept
    np.testing.assert_array_equal(thinned["m"].values, full["m"].values[:, ::factor])
    _, caption, fig = plots._rank("success", fit)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["m", "phi"]
    for ax in panels:  # one Δ-ECDF line per chain, over the thinned draws only
        curves = [line for line in ax.lines if len(line.get_xdata()) == kept]
        assert len(curves) == FAST.chains
        assert ax.get_ylabel() and ax.yaxis.get_visible()
    assert "thinned to about the effective sample size" in caption
    assert f"one draw in {factor}: {kept} of {FAST.draws} per chain" in caption
    plots.figures.close(fig)


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


def test_benefit_risk_needs_both_outcomes(nuts_run, tmp_path):
    shutil.copy(nuts_run / "posterior-success.nc", tmp_path)
    index = plots.draw_plots(tmp_path, tmp_path / "plots")
    assert "benefit-risk" not in [e["name"] for e in index]
    assert {e["outcome"] for e in index} == {"success"}


def test_plot_command_redraws_the_same_plots(nuts_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(nuts_run, run)
    shutil.rmtree(run / "plots")
    result = CliRunner().invoke(main, ["plot", str(run)], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert f"{run / 'plots'}/" in result.output
    for entry in index_of(nuts_run):  # byte for byte what the fit drew
        for kind in ("png", "svg"):
            assert (run / entry[kind]).read_bytes() == (nuts_run / entry[kind]).read_bytes()
    manifest = json.loads((run / "manifest.json").read_text())
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((run / name).read_bytes()).hexdigest() == digest
    assert not list(run.glob(".plots*"))


@pytest.mark.parametrize(("make", "expected"), [
    ("missing", "does not exist or is not a directory"),
    ("no_manifest", "no readable manifest.json"),
    ("no_fits", "has no posterior-*.nc or marginals-*.nc file to plot"),
])
def test_plot_command_bad_run_dir_is_one_line(tmp_path, make, expected):
    run = tmp_path / "run"
    if make != "missing":
        run.mkdir()
    if make == "no_fits":
        (run / "manifest.json").write_text("{}")
    assert_user_error(CliRunner().invoke(main, ["plot", str(run)]), str(run), expected)


def _save_groups(source, target, drop=(), drop_var=None, edit=None):
    """Copy a saved fit without the groups ``drop`` and the variable ``drop_var`` (group,
    name), after ``edit`` (a function that changes the dict of groups in place)."""
    fit = xr.load_datatree(source)
    groups = {f"/{k}": c.to_dataset() for k, c in fit.children.items() if k not in drop}
    if drop_var:
        group, var = drop_var
        groups[f"/{group}"] = groups[f"/{group}"].drop_vars(var)
    if edit is not None:
        edit(groups)
    out = xr.DataTree.from_dict(groups)
    out.attrs = dict(fit.attrs)
    out.to_netcdf(target)


@pytest.mark.parametrize(("drop", "drop_var", "expected"), [
    (("posterior",), None, "no 'posterior' group"),
    (("observed_data",), None, "no 'observed_data' group"),
    ((), ("constant_data", "n"), "group 'constant_data' lacks variable(s) n"),
])
def test_plot_command_fit_without_a_group_is_one_line(nuts_run, tmp_path, drop, drop_var,
                                                      expected):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(nuts_run / "manifest.json", run)
    _save_groups(nuts_run / "posterior-success.nc", run / "posterior-success.nc", drop,
                 drop_var)
    with pytest.raises(RunDirError, match=r"posterior-success\.nc"):
        plots.load_fits(run)
    assert_user_error(CliRunner().invoke(main, ["plot", str(run)]), expected,
                      "posterior-success.nc")


def _snapshot(run):
    return {p.relative_to(run).as_posix(): p.read_bytes() for p in run.rglob("*")
            if p.is_file()}


@pytest.mark.parametrize(("name", "content", "expected"), [
    ("manifest.json", "[]", "expected a JSON object"),
    ("manifest.json", '{"files": []}', "'files' must be a JSON object"),
    ("manifest.json", '{"files": "x"}', "'files' must be a JSON object"),
    ("summary.csv", "parameter,mean\nm,0.5\n", "no 'outcome' column"),
    ("summary.csv", "", "cannot read"),
])
def test_plot_command_bad_file_changes_nothing(nuts_run, tmp_path, name, content, expected):
    run = tmp_path / "run"
    shutil.copytree(nuts_run, run)
    (run / name).write_text(content)
    before = _snapshot(run)
    assert_user_error(CliRunner().invoke(main, ["plot", str(run)]), expected, name)
    assert _snapshot(run) == before
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no half-drawn plots


def _edit_variable(group: str, name: str, change):
    """An edit of a saved fit: ``change`` maps the variable's DataArray to its new one."""
    def edit(groups):
        ds = groups[f"/{group}"]
        groups[f"/{group}"] = ds.drop_vars(name).assign({name: change(ds[name])})
    return edit


def _set_first(value):
    """A DataArray like the given one whose first element is ``value`` (a float upcasts;
    a new array, so the saved integer encoding does not turn NaN back into a number)."""
    def change(da):
        values = da.values.astype(float if isinstance(value, float) else da.dtype)
        values.flat[0] = value
        return xr.DataArray(values, dims=da.dims, coords=da.coords)
    return change


def _theta_of_other_studies(groups):
    # The study coordinate is shared within a group: replaced, not aligned with the old.
    posterior = groups["/posterior"]
    theta = posterior["theta"].assign_coords(study=["A", "B"])
    groups["/posterior"] = posterior.drop_vars(["theta", "study"]).assign(theta=theta)


@pytest.mark.parametrize(("edit", "expected"), [
    (_edit_variable("posterior_predictive", "y", _set_first(-1)),
     "posterior_predictive/y must hold whole numbers >= 0, not -1"),
    (_edit_variable("posterior_predictive", "y", _set_first(7)),
     "posterior_predictive/y exceeds constant_data/n for study Joly2012 (7 > 6)"),
    (_edit_variable("posterior", "theta", lambda da: da.isel(study=0, drop=True)),
     "posterior/theta has no 'study' dimension"),
    (_theta_of_other_studies,
     "posterior/theta lacks study(ies) Joly2012, Sim2022"),
    (_edit_variable("posterior", "theta", _set_first(1.5)),
     "posterior/theta must hold rates in [0, 1], not 1.5"),
    (_edit_variable("observed_data", "y", _set_first(float("nan"))),
     "observed_data/y must hold whole numbers >= 0, not nan"),
    (_edit_variable("observed_data", "y", _set_first(7)),
     "observed_data/y exceeds constant_data/n for study Joly2012 (7 > 6)"),
    (_edit_variable("constant_data", "n", _set_first(0)),
     "constant_data/n must hold whole numbers >= 1, not 0"),
    (_edit_variable("constant_data", "n", lambda da: da.expand_dims(extra=1)),
     "constant_data/n must have the one dimension 'study', not (extra, study)"),
])
def test_plot_command_fit_with_bad_values_is_one_line(nuts_run, tmp_path, edit, expected):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(nuts_run / "manifest.json", run)
    _save_groups(nuts_run / "posterior-success.nc", run / "posterior-success.nc", edit=edit)
    assert_user_error(CliRunner().invoke(main, ["plot", str(run)]), expected,
                      "posterior-success.nc")
    assert not (run / "plots").exists()


def test_plot_command_fit_without_a_sampled_variable_is_one_line(nuts_run, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(nuts_run / "manifest.json", run)
    model = xr.load_datatree(nuts_run / "posterior-success.nc").attrs["model"]
    sampled = get_model(model).sampled
    _save_groups(nuts_run / "posterior-success.nc", run / "posterior-success.nc",
                 drop_var=("posterior", sampled[-1]))
    with pytest.raises(RunDirError, match="sampled by its model"):
        plots.load_fits(run)
    assert_user_error(CliRunner().invoke(main, ["plot", str(run)]),
                      f"lacks variable(s) {sampled[-1]}", "posterior-success.nc")


def test_plot_command_unreadable_fit_is_one_clean_line(nuts_run, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(nuts_run / "manifest.json", run)
    (run / "posterior-success.nc").write_bytes(b"not a netCDF file")
    err = assert_user_error(CliRunner().invoke(main, ["plot", str(run)]),
                            f"cannot read '{run / 'posterior-success.nc'}': not a netCDF "
                            "file bayes-dress can open")
    assert "http" not in err and "\\n" not in err  # not xarray's multi-line message


def test_manifest_update_uses_a_unique_temp_file(nuts_run, tmp_path, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(nuts_run, run)
    # A stale file at the old fixed temp name is neither used nor clobbered.
    (run / ".manifest.json.tmp").write_text("someone else's")
    replaced = []
    real_replace = outputs.os.replace

    def spy(src, dst):
        replaced.append((Path(src).name, Path(dst).name))
        return real_replace(src, dst)

    monkeypatch.setattr(outputs.os, "replace", spy)
    manifest = json.loads((run / "manifest.json").read_text())
    plots._update_manifest(run, manifest)
    plots._update_manifest(run, manifest)
    (first, target1), (second, target2) = replaced
    assert target1 == target2 == "manifest.json"
    assert first != second and first.startswith(".manifest.json.")
    assert (run / ".manifest.json.tmp").read_text() == "someone else's"
    assert not [p for p in run.iterdir() if p.name.startswith(".manifest.json.")
                and p.name != ".manifest.json.tmp"]
    files = json.loads((run / "manifest.json").read_text())["files"]
    assert hashlib.sha256((run / "plots/index.json").read_bytes()).hexdigest() == \
        files["plots/index.json"]


def test_plot_command_notes_a_stale_report(nuts_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(nuts_run, run)
    assert plots.stale_report_note(run) is None
    (run / "report.html").write_text("<html>old plots</html>")
    result = CliRunner().invoke(main, ["plot", str(run)], catch_exceptions=False)
    assert result.exit_code == 0
    assert "report.html embeds the previous plots" in result.output
    assert f"bayes-dress report {run}" in result.output
    assert (run / "report.html").read_text() == "<html>old plots</html>"


def test_exact_run_plots_marginals_and_skips_chains(exact_run):
    assert not list(exact_run.glob("posterior-*.nc"))
    fit = tree(exact_run)
    assert "not joint draws" in fit.attrs["posterior_kind"]
    index = index_of(exact_run)
    names = [e["name"] for e in index]
    assert "benefit-risk" in names and not [n for n in names if n[:5] in ("trace", "rank-")]
    forest = next(e for e in index if e["name"] == "forest-success")
    assert "no trace or rank plots" in forest["caption"]
    for row in data.forest_data(fit)[4:]:
        expected = summary_row(exact_run, "success", row["kind"])
        assert (row["lower"], row["estimate"], row["upper"]) == pytest.approx(
            (expected["q2.5"], expected["median"], expected["q97.5"]), abs=2e-3)
    # BDA3's hyperprior is improper: no prior curve, and the panel says why.
    panels = data.prior_posterior_data(fit)
    assert all(p["prior"] is None and "BDA3" in p["note"] for p in panels)
    # Replicated counts come from the exact marginal of each study's rate.
    for row in data.ppc_data(fit):
        assert row["pmf"].sum() == pytest.approx(1.0) and "exact" in row["source"]


def test_plot_help():
    result = CliRunner().invoke(main, ["plot", "--help"])
    assert result.exit_code == 0 and "RUN_DIR" in result.output
