"""report.html: contents in reading order, self-contained, escaped, atomic; what it refuses.

Runs come from the exact engine (no sampling), written by ``write_run(..., plots=False)``
with a stand-in ``plots/index.json`` and tiny PNG/SVG files in the writer's format, so
these tests do not depend on the real plots; tests/test_browser.py renders a real run in
Chromium.

The report reads runs and sweeps through the one reader (:mod:`bayes_dress.rundir.read`),
which refuses any file changed since bayes-dress wrote it. Tests that edit a file to
make an unusual but legitimate run (a failed check, a failed scenario) therefore
:func:`reseal` the directory afterwards, as if bayes-dress had written the edit.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from html import escape, unescape
from html.parser import HTMLParser
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import assert_user_error

from bayes_dress import RunConfig, run_fit, write_run
from bayes_dress.checks.diagnostics import checks_to_records, grid_check
from bayes_dress.cli import main
from bayes_dress.errors import OutputError, ReportError, RunDirError
from bayes_dress.labels import quantity_label
from bayes_dress.report import REPORT_NAME, render_report, write_report
from bayes_dress.rundir import atomic
from bayes_dress.rundir.atomic import sha256
from bayes_dress.rundir.read import load_run, read_csv
from bayes_dress.spec.config import SamplerSettings

SECTION_IDS = ["headline", "diagnostics", "data", "models", "plots", "posterior",
               "sensitivity", "limitations", "reproducibility"]
TINY_SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>\n'


def tiny_png(path: Path) -> None:
    fig, ax = plt.subplots(figsize=(1, 1), dpi=20)
    ax.plot([0, 1], [0, 1])
    fig.savefig(path)
    plt.close(fig)


def plot_entry(directory: Path, name: str, *, title: str | None = None, caption: str = "",
               outcome: str | None = None, png: bytes | None = None,
               svg: str | None = TINY_SVG) -> dict:
    """Write plots/NAME.png (a tiny plot, or ``png``) and plots/NAME.svg, and return their
    index entry as the plot writer makes it (with hashes)."""
    plots = directory / "plots"
    plots.mkdir(exist_ok=True)
    png_file, svg_file = plots / f"{name}.png", plots / f"{name}.svg"
    if png is None:
        tiny_png(png_file)
    else:
        png_file.write_bytes(png)
    svg_file.write_text(svg)
    return {"name": name, "title": title or name, "caption": caption, "outcome": outcome,
            "png": f"plots/{name}.png", "svg": f"plots/{name}.svg",
            "png_sha256": sha256(png_file), "svg_sha256": sha256(svg_file)}


def write_index(directory: Path, entries: list[dict]) -> None:
    (directory / "plots").mkdir(exist_ok=True)
    (directory / "plots" / "index.json").write_text(json.dumps(entries))


def fixture_plots(result, directory: Path) -> None:
    """Stand-in for the real plots: one tiny PNG and SVG per outcome, and an index."""
    write_index(directory, [
        plot_entry(directory, f"forest-{outcome}", title=f"Forest plot <{outcome}>",
                   caption="Rates & intervals.", outcome=outcome)
        for fit in result.fits.values() for outcome in fit.outcomes])


def exact_run(out: Path, **config) -> Path:
    result = run_fit(RunConfig(engine="exact", **config))
    write_run(result, out, plots=False)
    fixture_plots(result, out)
    return out


def reseal(directory: Path) -> Path:
    """Record the current hashes of a run's or sweep's files in its manifest.json, as if
    bayes-dress had written them: for tests that edit files on purpose."""
    path = directory / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["files"] = {name: sha256(directory / name) for name in manifest["files"]}
    path.write_text(json.dumps(manifest, indent=2))
    return directory


def edit_json(path: Path, change) -> None:
    payload = json.loads(path.read_text())
    path.write_text(json.dumps(change(payload)))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return exact_run(tmp_path_factory.mktemp("report") / "run")


@pytest.fixture
def run_copy(run_dir, tmp_path) -> Path:
    return Path(shutil.copytree(run_dir, tmp_path / "run"))


@pytest.fixture(scope="module")
def many_run(tmp_path_factory) -> Path:
    """User data of 31 studies with no provenance columns: long tables, no quotes."""
    root = tmp_path_factory.mktemp("many")
    rows = [f"S{i:02d},{5 + i},{40 + 3 * i}" for i in range(31)]
    (root / "many.csv").write_text("study,events,total\n" + "\n".join(rows) + "\n")
    return exact_run(root / "run", data=root / "many.csv")


class Collector(HTMLParser):
    """Tags, attributes and text of a page, for checks by structure rather than regex."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)


def parse(html: str) -> Collector:
    collector = Collector()
    collector.feed(html)
    return collector


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html))


def section(html: str, key: str) -> str:
    return html[html.index(f'<section id="{key}">'):].split("</section>", 1)[0]


def exact_sweep(out: Path) -> Path:
    """A real sweep (the bundled spec, every scenario on the exact engine), written by the
    sensitivity module's own writer: the report reads the format it is given."""
    from bayes_dress.sensitivity.spec import load_sweep_spec
    from bayes_dress.sensitivity.sweep import plan_sweep, run_sweep
    from bayes_dress.sensitivity.write import write_sweep

    spec = load_sweep_spec()
    plan = plan_sweep(spec, config=spec.primary.replace(engine="exact"))
    return write_sweep(run_sweep(plan, jobs=1), out)


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory) -> Path:
    return exact_sweep(tmp_path_factory.mktemp("sweep") / "sens")


@pytest.fixture
def sweep_copy(sweep_dir, tmp_path) -> Path:
    return Path(shutil.copytree(sweep_dir, tmp_path / "sens"))


def read_text_csv(path: Path) -> pd.DataFrame:
    """A CSV as the text in the file (spreadsheet-safety quotes kept), for editing."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def with_failed_scenario(sens: Path, scenario: str = "S05") -> Path:
    """The sweep as if one scenario had failed its diagnostics (the writer's format),
    resealed."""
    frame = read_text_csv(sens / "sensitivity.csv")
    rows = frame["scenario"] == scenario
    assert rows.any()
    frame.loc[rows, "status"] = "diagnostics failed"
    frame.loc[rows, "problems"] = "divergences: 12 & R-hat 1.2"
    frame.loc[rows, "label"] = "phi ~ BDA3 <flat>"
    frame.to_csv(sens / "sensitivity.csv", index=False)
    rob = read_text_csv(sens / "robustness.csv")
    rob["not_counted"] = f"{scenario} (diagnostics failed)"
    rob.to_csv(sens / "robustness.csv", index=False)
    return reseal(sens)


def test_sections_in_reading_order(run_dir):
    html = render_report(run_dir)
    positions = [html.index(f'<section id="{key}">') for key in SECTION_IDS]
    assert positions == sorted(positions)
    assert "<title>" in html and "report date" in html


def test_headline_never_shows_the_mean_without_spread_and_predictive(run_dir):
    headline = text_of(section(render_report(run_dir), "headline"))
    for outcome in ("success", "severe_ae"):
        part = headline.split(f"({outcome})", 1)[1][:800]
        mean = part.index("Pooled mean rate")
        assert part.index("Between-study SD of rates") > mean
        assert part.index("new study (predictive)") > mean
    summary = read_csv(run_dir / "summary.csv")
    row = summary[(summary["outcome"] == "success") & (summary["parameter"] == "mean_rate")]
    assert f"{100 * row['median'].item():.0f}%" in headline
    # The bundled data leave the new-study rate prior-dominated; the report says so.
    assert "Prior-dominated: new-study rate (predictive)" in headline
    assert "cannot be told apart from the prior" in headline


def test_report_is_self_contained(run_dir):
    page = parse(render_report(run_dir))
    tags = {tag for tag, _ in page.tags}
    assert not tags & {"script", "link", "iframe", "object", "embed", "base"}
    images = [attrs for tag, attrs in page.tags if tag == "img"]
    assert len(images) == 2 and all(a["src"].startswith("data:image/png;base64,")
                                    and a["alt"] for a in images)
    for tag, attrs in page.tags:
        assert all(attrs[k].startswith("#") for k in ("href", "action") if k in attrs), tag
        assert "srcset" not in attrs and "style" not in attrs
    assert "url(" not in "".join(page.styles) and "@import" not in "".join(page.styles)
    figures = [tag for tag, _ in page.tags if tag in ("figure", "figcaption")]
    assert figures == ["figure", "figcaption"] * 2


def test_study_table_has_quotes_and_data_notes(run_dir):
    data = section(render_report(run_dir), "data")
    used = read_csv(run_dir / "data_used.csv")
    assert list(used["analysis"]) == list(used["outcome"])  # one analysis per outcome
    for quote in used["quote"]:
        assert f"“{escape(quote)}”" in data
    assert "Results, para 2" in data and "1/6" in data and "16/18" in data
    # The bundled table has provenance: all three columns are shown.
    for header in ("provenance quote", "location", "how the count was derived"):
        assert f"<th>{header}</th>" in data
    assert "(open to show)" not in data  # two studies: nothing folded


def test_models_section_shows_equations_priors_used_and_rationale(tmp_path):
    run = exact_run(tmp_path / "ln", model="logit_normal", outcomes=("success",),
                    priors={"tau": "HalfNormal(0.5)"})
    models = section(render_report(run), "models")
    assert "logit(θ<sub>i</sub>) = μ + τ z<sub>i</sub>" in models
    assert "HalfNormal(sigma=0.5)" in models and "changed from the default" in models
    assert "Friede" in models


def test_one_analysis_of_two_outcomes(tmp_path):
    """A joint model fits both outcomes in one analysis (exact engine: rho fixed at 0):
    diagnostics per analysis, estimates and data per outcome."""
    run = exact_run(tmp_path / "joint", model="joint_logit_normal",
                    priors={"rho": "Fixed(0)"})
    manifest = json.loads((run / "manifest.json").read_text())
    assert list(manifest["analyses"]) == ["success+severe_ae"]
    html = render_report(run)
    diag = section(html, "diagnostics")
    assert diag.count("<h3>") == 1 and "<h3>success+severe_ae</h3>" in diag
    assert "PASS: every check passed" in diag
    for key in ("headline", "data", "posterior"):
        part = section(html, key)
        assert part.count("<h3>") == 2, key
        assert "(<code>success</code>)" in part and "(<code>severe_ae</code>)" in part, key
    assert "for the outcomes together" in section(html, "models")
    used = read_csv(run / "data_used.csv")
    assert set(used["analysis"]) == {"success+severe_ae"}
    assert section(html, "plots").count("<img ") == 2


def test_values_from_files_are_escaped(tmp_path):
    data = tmp_path / "nasty.csv"
    data.write_text('study,events,total,quote,location\n"<b>A&B</b>",3,10,"<script>x</script>'
                    "\",p <1>\n=1+1,5,12,'quoted',-p2\n")
    run = exact_run(tmp_path / "run", data=data, model="common_effect")
    html = render_report(run)
    assert "<b>A&B</b>" not in html and "<script>" not in html
    assert "&lt;b&gt;A&amp;B&lt;/b&gt;" in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert "Forest plot &lt;events&gt;" in html  # plot titles from index.json too
    # Cells a spreadsheet would run are quoted in the CSV, and shown as they were given.
    raw = (run / "data_used.csv").read_text()
    assert "'=1+1" in raw and "''quoted'" in raw and "'-p2" in raw
    data_part = section(html, "data")
    assert "<td>=1+1</td>" in data_part and "<td>-p2</td>" in data_part
    assert "“&#x27;quoted&#x27;”" in data_part  # a leading quote of the data itself stays
    assert "&#x27;=1+1" not in html and "&#x27;-p2" not in html
    # Quote and location given, no notes: the empty column is left out.
    assert "<th>provenance quote</th>" in data_part and "<th>location</th>" in data_part
    assert "how the count was derived" not in data_part


def test_failed_diagnostics_show_a_banner_at_the_top(run_copy):
    diagnostics = json.loads((run_copy / "diagnostics.json").read_text())
    diagnostics["passed"] = False
    entry = diagnostics["analyses"]["success"]
    entry["checks"][0].update(passed=False, detail="grid error 0.01 > 1e-4",
                              remedy="use NUTS")
    entry["passed"] = False
    (run_copy / "diagnostics.json").write_text(json.dumps(diagnostics))
    html = render_report(reseal(run_copy))
    banner = html.index('class="banner"')
    assert banner < html.index('<section id="headline">')
    assert "DIAGNOSTICS FAILED" in html[banner:banner + 300]
    assert "<li>success: grid error 0.01 &gt; 1e-4</li>" in html[banner:banner + 600]
    diag = section(html, "diagnostics")
    assert "FAIL" in diag and "use NUTS" in diag and 'class=fail' in diag
    assert "Some diagnostics failed" in section(html, "limitations")


def test_passing_run_has_no_banner(run_dir):
    html = render_report(run_dir)
    assert 'class="banner' not in html.split('<section id="headline">')[0]
    assert "PASS: every check passed" in html
    assert "<td>grid_error</td><td>PASS</td>" in section(html, "diagnostics")


def test_a_check_that_was_not_measured_is_neither_pass_nor_fail(run_copy):
    diagnostics = json.loads((run_copy / "diagnostics.json").read_text())
    check = diagnostics["analyses"]["success"]["checks"][0]
    check.update(passed=None, value=None, detail="not measured", remedy="use NUTS")
    (run_copy / "diagnostics.json").write_text(json.dumps(diagnostics))
    html = render_report(reseal(run_copy))
    diag = section(html, "diagnostics")
    assert "<td>not measured</td>" in diag and ">FAIL<" not in diag
    assert "class=fail" not in diag and "use NUTS" not in diag
    assert "PASS: every check passed" in diag and 'class="banner' not in html


def test_a_passed_check_without_a_value_is_not_measured(run_copy):
    """What a fit writes for a grid error it did not measure (grid_check's own record,
    NaN turned into null), shown as "not measured", never as a pass."""
    record = checks_to_records([grid_check(float("nan"), 1e-4, None,
                                           analysis="success")])[0]
    assert record["passed"] is True and record["value"] is None
    edit_json(run_copy / "diagnostics.json", lambda d: {**d, "analyses": {
        **d["analyses"], "success": {**d["analyses"]["success"], "checks": [record]}}})
    diag = section(render_report(reseal(run_copy)), "diagnostics")
    assert "<td>grid_error</td><td>not measured</td>" in diag


def test_diagnostics_name_the_exact_engines_grid(run_dir):
    diag = section(render_report(run_dir), "diagnostics")
    engine = json.loads((run_dir / "diagnostics.json").read_text()
                        )["analyses"]["success"]["details"]["engine"]
    assert f"Exact engine: {engine['grid_points']} grid points per axis" in diag


def test_posterior_table_fits_and_hides_the_mean_of_kappa(run_dir):
    posterior = section(render_report(run_dir), "posterior")
    first = posterior.split("<table>", 1)[1].split("</table>", 1)[0]
    headers = re.findall(r"<th(?: class=num)?>(.*?)</th>", first.split("</thead>")[0])
    assert headers == ["quantity", "study", "mean", "median", "95% interval",
                       "ESS · R-hat", "prior mass", "prior-dominated"]
    kappa = next(tr for tr in re.findall(r"<tr>.*?</tr>", first)
                 if f"<td>{quantity_label('kappa')}</td>" in tr)
    assert re.findall(r"<td[^>]*>(.*?)</td>", kappa)[2] == "—"


def test_study_table_shows_how_each_count_was_derived(run_dir):
    data = section(render_report(run_dir), "data")
    used = read_csv(run_dir / "data_used.csv")
    for note in used["note"]:
        assert escape(note) in data
    sim = used[(used["outcome"] == "severe_ae") & (used["study"] == "Sim2022")].iloc[0]
    assert "lower bound" in sim["note"]  # the one death; not an all-cause count
    assert "1/18 <strong>(lower bound)</strong>" in data
    assert "<details" in data  # long notes are folded


def test_long_tables_are_folded_and_empty_provenance_is_hidden(many_run):
    html = render_report(many_run)
    data = section(html, "data")
    assert "<details><summary>31 studies (open to show)</summary>" in data
    assert data.count("<tr><td>S") == 31  # folded, not cut
    # User data without quotes, locations or notes: no empty provenance columns.
    for header in ("provenance quote", "location", "how the count was derived"):
        assert header not in data
    assert "sentence it was taken from" not in data
    posterior = section(html, "posterior")
    assert re.search(r"<details><summary>\d+ quantities \(open to show\)</summary>",
                     posterior)
    # The short tables of the same run (tail probabilities) are not folded.
    assert posterior.count("(open to show)") == 1


def test_numbers_are_escaped_once(run_dir):
    html = render_report(run_dir)
    assert "&amp;lt;" not in html and "&amp;gt;" not in html and "&amp;#x27;" not in html


def test_plots_without_an_index_or_with_bad_entries(run_copy):
    shutil.rmtree(run_copy / "plots")
    (run_copy / "plots").mkdir()
    tiny_png(run_copy / "plots" / "stray.png")  # a PNG the index does not list
    plots = section(render_report(run_copy), "plots")
    assert "has no plots/index.json" in plots and "<img " not in plots
    changed = plot_entry(run_copy, "changed")
    changed["png_sha256"] = "0" * 64
    svg_only = plot_entry(run_copy, "svg_only", title="SVG only", png=b"not a png")
    write_index(run_copy, [
        plot_entry(run_copy, "ok", title="OK"),
        {"name": "gone", "title": "Gone", "png": "plots/gone.png", "svg": "plots/gone.svg"},
        changed,
        {"name": "escape", "title": "Escape", "png": "../../../etc/hostname",
         "svg": "../../../etc/hostname"},
        plot_entry(run_copy, "fake", title="Fake", png=b"not a png", svg="not an svg"),
        svg_only])
    plots = section(render_report(run_copy), "plots")
    page = parse(plots)
    sources = {a["alt"]: a["src"] for tag, a in page.tags if tag == "img"}
    assert set(sources) == {"OK", "SVG only"}
    assert sources["OK"].startswith("data:image/png;base64,")
    assert sources["SVG only"].startswith("data:image/svg+xml;base64,")  # the fallback
    for name in ("gone", "changed", "escape"):  # the reader leaves these out
        assert f"plot &#x27;{name}&#x27; is missing or changed since it was drawn" in plots
    assert "plot &#x27;fake&#x27; could not be embedded" in plots  # not an image


def test_a_plot_changed_after_it_was_drawn_is_left_out(run_copy):
    with open(run_copy / "plots" / "forest-success.png", "ab") as handle:
        handle.write(b"\0")
    plots = section(render_report(run_copy), "plots")
    assert plots.count("<img ") == 1 and 'alt="Forest plot &lt;severe_ae&gt;"' in plots
    assert "plot &#x27;forest-success&#x27; is missing or changed" in plots


def test_a_copy_without_posterior_files_still_reports(run_dir, run_copy):
    """Like the repository's results/: tables and plots kept, posteriors left out. The
    report reads no posterior file."""
    for file in run_copy.glob("posterior-*.nc"):
        file.unlink()
    assert run_copy.name == run_dir.name
    assert render_report(run_copy) == render_report(run_dir)


def test_sensitivity_section_and_problem_banner(run_dir, sweep_copy):
    html = render_report(run_dir, with_failed_scenario(sweep_copy))
    top = html.split('<section id="headline">')[0]
    assert "SENSITIVITY SCENARIOS WITH PROBLEMS" in top
    assert "S05 (success): diagnostics failed" in top
    assert "DOES NOT MATCH" not in html  # same data and model as the run
    sens = section(html, "sensitivity")
    # The same exact-engine fit: the sweep's primary analysis is this run's, to the digit.
    assert "primary analysis is this run&#x27;s fit" in sens
    assert "30 scenarios" in sens and "divergences: 12 &amp; R-hat 1.2" in sens
    assert "phi ~ BDA3 &lt;flat&gt;" in sens and "<flat>" not in sens
    # The scenarios left out of the verdicts are named in the robustness table.
    assert "<li>S05 (diagnostics failed)</li>" in sens
    assert "exact engine: no posterior draws to reweight" in sens  # psense.csv
    plots = json.loads((sweep_copy / "plots" / "index.json").read_text())
    assert len(plots) == 2 and sens.count("<img ") == 2
    assert all(p["png_sha256"] == sha256(sweep_copy / p["png"]) for p in plots)
    assert all(f"<strong>{escape(p['title'])}.</strong>" in sens for p in plots)
    assert " †" in sens  # theta_new is prior-dominated in the primary analysis
    # The primary row is the run's own fit here, and says so (issue 16).
    assert "<h4>" in sens and "(primary: this run&#x27;s fit)" in sens


def robustness_rows(html: str) -> list[str]:
    sens = section(html, "sensitivity")
    part = sens.split("<h3>Are the conclusions robust?</h3>", 1)[1].split("<h3>", 1)[0]
    return re.findall(r"<tr(?: class=\w+)?><td>.*?</tr>", part, flags=re.S)


def test_not_robust_rows_are_flagged_and_name_the_scenarios_that_cross(run_dir, sweep_dir):
    html = render_report(run_dir, sweep_dir)
    rob = read_csv(sweep_dir / "robustness.csv")
    rows = robustness_rows(html)
    assert len(rows) == len(rob)
    not_robust = rob[rob["verdict"].str.startswith("NOT robust")]
    assert len(not_robust)  # the bundled data: the sweep changes conclusions
    for (_, r), row in zip(rob.iterrows(), rows, strict=True):
        crossing = [s for c in ("crosses_0.5", "crosses_0.95") for s in
                    r[c].split("; ") if s]
        assert row.startswith("<tr class=flag>") == bool(crossing), row[:200]
        for name in crossing:
            assert f"<li>{escape(name)}</li>" in row, name
        assert ">yes<" not in row and ">no<" not in row
    # The first NOT robust row, as the CSV gives it, and in plain words in the headline.
    r = not_robust.iloc[0]
    n05 = len([s for s in r["crosses_0.5"].split("; ") if s])
    assert f"<strong>{n05} of {r['n_scenarios']}</strong>" in rows[not_robust.index[0]]
    headline = section(html, "headline")
    assert "Sensitivity sweep" in headline and "Not robust:</span> P(" in headline
    assert (f"moves across 50% in {n05} of {r['n_scenarios']} scenarios"
            in headline)
    # A scenario that moves a conclusion is marked in the estimates table as well.
    first = r["crosses_0.5"].split("; ")[0]
    label = first.split(" ", 1)[1]
    estimates = section(html, "sensitivity").split("<h3>Estimates by scenario</h3>")[1]
    row = next(tr for tr in re.findall(r"<tr[^>]*>.*?</tr>", estimates, flags=re.S)
               if f"<strong>{label}</strong>" in tr.replace("&gt;", ">"))
    assert row.startswith("<tr class=flag>") and "‡ changes:" in row


def test_a_sweep_of_other_data_or_model_gets_a_warning(run_dir, sweep_copy):
    # manifest.json holds the hashes and is not hashed itself: no reseal needed.
    manifest = json.loads((sweep_copy / "manifest.json").read_text())
    manifest["data"]["sha256"] = "0" * 64
    manifest["primary_config"]["model"] = "logit_normal"
    (sweep_copy / "manifest.json").write_text(json.dumps(manifest))
    html = render_report(run_dir, sweep_copy)
    top = html.split('<section id="headline">')[0]
    assert 'class="banner warn"' in top and "DOES NOT MATCH THIS RUN" in top
    assert "different data file" in top and "logit_normal" in top
    assert "DIAGNOSTICS FAILED" not in top  # a warning, not an error
    assert "is not the run reported above" in section(html, "sensitivity")
    assert "this run&#x27;s fit" not in html


# --- whose fit the sweep's primary values are (issue 16) -----------------------------------

#: A NUTS sweep small enough for a test: the primary analysis and one other prior, with
#: the new-study rate of each outcome as its headlines (and, as every sweep of the two
#: outcomes, their joint probability).
TINY_SWEEP = """\
combine = "one_at_a_time"

[primary]
model = "beta_binomial"

[dimensions]
model = ["beta_binomial"]

[dimensions.heterogeneity_prior]
beta_binomial = ["HalfNormal(0.5)", "HalfNormal(1)"]

[[headline]]
outcome = "success"
quantity = "theta_new"
thresholds = [0.5]

[[headline]]
outcome = "severe_ae"
quantity = "theta_new"
thresholds = [0.2]
"""
#: The tiny sweep's sampler (and the default seed): a run with these settings is the
#: sweep's primary fit to the digit; any other draws make the sweep's a refit.
SWEEP_SAMPLER = {"draws": 300, "tune": 300, "chains": 2}


def nuts_run(out: Path, **sampler) -> Path:
    result = run_fit(RunConfig(sampler=SamplerSettings(**sampler)))
    write_run(result, out, plots=False)
    fixture_plots(result, out)
    return out


@pytest.fixture(scope="module")
def nuts_sweep(tmp_path_factory) -> Path:
    from bayes_dress.sensitivity.spec import load_sweep_spec
    from bayes_dress.sensitivity.sweep import plan_sweep, run_sweep
    from bayes_dress.sensitivity.write import write_sweep

    root = tmp_path_factory.mktemp("nuts_sweep")
    (root / "sweep.toml").write_text(TINY_SWEEP)
    spec = load_sweep_spec(root / "sweep.toml")
    config = spec.primary.replace(**{f"sampler_{k}": v for k, v in SWEEP_SAMPLER.items()})
    return write_sweep(run_sweep(plan_sweep(spec, config=config), jobs=1), root / "sens")


@pytest.fixture(scope="module")
def nuts_run_dir(tmp_path_factory) -> Path:
    """A NUTS run with fewer draws than :func:`nuts_sweep`: the same analysis, other
    draws."""
    return nuts_run(tmp_path_factory.mktemp("nuts_run") / "run",
                    **{**SWEEP_SAMPLER, "draws": 200})


def plain(html: str) -> str:
    """The text of a page as a reader sees it (tags dropped, entities decoded)."""
    return unescape(text_of(html))


def worded(html: str) -> str:
    """The plain text of the headline and sensitivity sections, without the sweep's raw
    manifest (which quotes the command line that ran, here pytest's)."""
    sens = section(html, "sensitivity").split("manifest.json</summary>", 1)[0]
    return plain(section(html, "headline") + sens)


def headline_rows(sens: Path) -> list[pd.Series]:
    """The rows of robustness.csv that the headline words as a sentence with the
    primary value (those with scenarios to judge)."""
    rob = read_csv(sens / "robustness.csv")
    return [r for _, r in rob.iterrows() if r["n_scenarios"] > 0
            and r["outcome"] in ("success", "severe_ae")]


def sweep_primary_row(sens: Path, outcome: str, quantity: str, threshold: float
                      ) -> pd.Series:
    p = read_csv(sens / "probabilities.csv")
    rows = p[p["primary"].astype(bool) & (p["outcome"] == outcome)
             & (p["quantity"] == quantity) & ((p["threshold"] - threshold).abs() < 1e-9)]
    return rows.iloc[0]


def run_value(run: Path, outcome: str, quantity: str, threshold: float
              ) -> pd.Series | None:
    p = read_csv(run / "probabilities.csv")
    rows = p[(p["outcome"] == outcome) & (p["quantity"] == quantity)
             & ((p["threshold"] - threshold).abs() < 1e-9)]
    return None if rows.empty else rows.iloc[0]


def primary_column(html: str) -> str:
    """The header of the robustness table's column of the sweep's primary values."""
    sens = section(html, "sensitivity")
    part = sens.split("<h3>Are the conclusions robust?</h3>", 1)[1]
    return unescape(re.findall(r"<th(?: class=num)?>(.*?)</th>", part)[2])


@pytest.mark.parametrize(("config", "differs"), [
    ({"model": "logit_normal"}, "model: beta_binomial, not this run's logit_normal"),
    ({"priors": {"phi": "HalfNormal(1)"}},
     "prior of phi: HalfNormal(sigma=0.5), not this run's HalfNormal(sigma=1)"),
    ({"definitions": {"success": "evaluable"}},
     "definition of success: primary, not this run's evaluable"),
    ({"exclude": ("Joly2012",)}, "excluded studies: none, not this run's Joly2012"),
], ids=["model", "prior", "definition", "exclude"])
def test_the_primary_of_a_sweep_of_another_analysis_is_not_another_set_of_draws(
        sweep_dir, tmp_path, config, differs):
    """Defect 1: a run of another model (or prior, definition, exclusion) than the
    sweep's primary analysis is named as a different analysis, with what differs."""
    html = render_report(exact_run(tmp_path / "run", **config), sweep_dir)
    text = worded(html)
    assert "DOES NOT MATCH THIS RUN" in plain(html.split('<section id="headline">')[0])
    headline = plain(section(html, "headline"))
    rows = headline_rows(sweep_dir)
    assert rows
    for r in rows:
        assert (f"{r['probability_primary']:.2f} (the exact engine's value, no Monte Carlo "
                "error) in the sweep's primary analysis, a different analysis from this "
                f"run's ({differs}") in headline
    # The run's own value, where it has one, is beside the sweep's, as another analysis's.
    own = run_value(tmp_path / "run", "success", "theta_new", 0.5)
    assert f"{differs}; this run's value: {own['probability']:.2f} (exact))" in headline
    assert "another set of draws" not in text and "refit" not in headline
    assert "second Monte Carlo estimate" not in text
    assert primary_column(html) == "primary (sweep's, another analysis)"
    assert "(the sweep's primary analysis, not this run's)" in plain(section(html,
                                                                             "sensitivity"))


def test_a_nuts_refit_shows_its_own_monte_carlo_error(nuts_run_dir, nuts_sweep):
    """Defect 2 (and 4, 5): the sweep's refit of the primary analysis is labelled, with
    the Monte Carlo error the sweep stored, and the run's value and why it differs
    beside it; "not stored" where the sweep has none."""
    html = render_report(nuts_run_dir, nuts_sweep)
    headline = plain(section(html, "headline"))
    rows = headline_rows(nuts_sweep)
    assert {r["outcome"] for r in rows} == {"success", "severe_ae"}
    for r in rows:
        mine = sweep_primary_row(nuts_sweep, r["outcome"], r["quantity"], r["threshold"])
        assert mine["mcse"] > 0
        said = (f"{mine['probability']:.2f} ± {mine['mcse']:.3f} in the sweep's refit of "
                "the primary analysis")
        own = run_value(nuts_run_dir, r["outcome"], r["quantity"], r["threshold"])
        if own is None:  # severe_ae at 20%: not a threshold of the run (defect 5)
            assert said + " (this run" not in headline and said in headline
        else:
            assert own["probability"] != mine["probability"]  # other draws
            assert (f"{said} (this run: {own['probability']:.2f} ± {own['mcse']:.3f}, the "
                    "same analysis estimated from another set of draws)") in headline
    sens = section(html, "sensitivity")
    assert primary_column(html) == "primary (sweep's refit)"
    assert "(primary: the sweep's refit)" in plain(sens)
    assert ("The sweep refitted the primary analysis (settings that differ: sampler "
            "draws): its probabilities are a second Monte Carlo estimate") in plain(sens)
    # The joint probability of two separate fits: the sweep stores no Monte Carlo error.
    joint = next(row for row in robustness_rows(html) if "and severe_ae" in row)
    assert "(Monte Carlo error not stored)" in joint
    assert "this run's fit (also" not in headline


def test_an_identical_nuts_sweep_is_the_runs_own_fit(nuts_sweep, tmp_path):
    """Defect 4: the same settings give the same numbers, and the report says they are
    this run's fit, not a refit."""
    html = render_report(nuts_run(tmp_path / "run", **SWEEP_SAMPLER), nuts_sweep)
    text = worded(html)
    assert "The sweep's primary analysis is this run's fit" in text
    assert primary_column(html) == "primary (this run's fit)"
    assert "(primary: this run's fit)" in text
    headline = plain(section(html, "headline"))
    assert headline.count("in this run's fit (also the sweep's primary analysis)") == len(
        headline_rows(nuts_sweep))
    assert "refit" not in text and " ± " not in headline  # one value: nothing to explain


def test_an_exact_sweep_is_not_called_a_monte_carlo_estimate(nuts_run_dir, sweep_dir):
    """Defect 3: an exact-engine sweep has no Monte Carlo error; the NUTS run's value is
    the Monte Carlo estimate of it."""
    html = render_report(nuts_run_dir, sweep_dir)
    text = worded(html)
    assert "another set of draws" not in text and "second Monte Carlo" not in text
    headline = plain(section(html, "headline"))
    r = next(r for r in headline_rows(sweep_dir)
             if (r["outcome"], r["quantity"], r["threshold"]) == ("success", "theta_new", 0.5))
    own = run_value(nuts_run_dir, "success", "theta_new", 0.5)
    assert (f"{r['probability_primary']:.2f} (the exact engine's value, no Monte Carlo "
            "error) in the sweep's refit of the primary analysis (this run: "
            f"{own['probability']:.2f} ± {own['mcse']:.3f}, a Monte Carlo estimate of "
            "the same quantity)") in headline
    sens = plain(section(html, "sensitivity"))
    assert ("The sweep refitted the primary analysis (settings that differ: engine): its "
            "probabilities are the exact engine's values, with no Monte Carlo error") in sens
    assert primary_column(html) == "primary (sweep's refit)"
    assert f"{r['probability_primary']:.2f} (exact)" in robustness_rows(html)[0]
    assert ("In the sweep's plots, PRIMARY marks the sweep's refit of the primary "
            "analysis, not this run's fit.") in sens


def with_rho_scenario(sens: Path, scenario: str = "S02") -> Path:
    """The sweep as if one scenario had varied the prior of rho (the writer's format),
    resealed: the report's rho section then lists it."""
    frame = read_text_csv(sens / "sensitivity.csv")
    assert (frame["scenario"] == scenario).any()
    frame.loc[frame["scenario"] == scenario, "varied"] = "correlation_prior"
    frame.to_csv(sens / "sensitivity.csv", index=False)
    return reseal(sens)


def test_a_value_the_run_lacks_is_still_labelled_by_whose_fit_it_is(
        run_dir, nuts_run_dir, sweep_copy):
    """Defect 5: a sweep's value at a threshold the run does not report (severe_ae at
    20%), and the joint probability across priors of rho, say whose fit they are."""
    sens = with_rho_scenario(sweep_copy)
    assert run_value(run_dir, "severe_ae", "theta_new", 0.2) is None
    p = sweep_primary_row(sens, "severe_ae", "theta_new", 0.2)["probability"]
    joint = read_csv(sens / "probabilities.csv")
    joint = joint[joint["primary"].astype(bool) & joint["quantity"].str.startswith("P(")]
    p_joint = joint["probability"].iloc[0]
    # The run's own fit (the exact engine both times): said so, with no refit label.
    same = render_report(run_dir, sens)
    assert f"is {p:.2f} in this run's fit (also the sweep's primary analysis) and moves" \
        in plain(section(same, "headline"))
    rho = plain(section(same, "benefit_risk"))
    assert "Across priors of rho (sensitivity sweep)" in rho
    assert f"{p_joint:.2f} in this run's fit (also the sweep's primary analysis)." in rho
    # The sweep's refit: labelled as such, the run's own joint value beside it.
    refit = render_report(nuts_run_dir, sens)
    assert (f"is {p:.2f} (the exact engine's value, no Monte Carlo error) in the sweep's "
            "refit of the primary analysis and moves") in plain(section(refit, "headline"))
    own = read_csv(nuts_run_dir / "benefit_risk.csv")
    own = own[(own["kind"] == "joint") & (own["quantity"] == "theta_new")]["probability"]
    assert (f"{p_joint:.2f} (the exact engine's value, no Monte Carlo error) in the sweep's "
            f"refit of the primary analysis (this run: {own.iloc[0]:.2f} (Monte Carlo "
            "error not stored), a Monte Carlo estimate of the same quantity).") \
        in plain(section(refit, "benefit_risk"))
    for html in (same, refit):
        assert not re.search(r"\d in the primary analysis", plain(html))


def test_limitations_follow_the_data(run_dir, many_run):
    bundled = text_of(section(render_report(run_dir), "limitations"))
    assert "Only 2 studies" in bundled and "stopped early for safety" in bundled
    assert "IVIG added to corticosteroids" in bundled
    assert "one patient moves its rate by 17 percentage points" in bundled
    assert "mostly prior for: Success (remission), Severe adverse events." in bundled
    many = text_of(section(render_report(many_run), "limitations"))
    assert "31 or more studies" in many
    assert "Joly2012" not in many and "Small samples" not in many


def test_reproducibility_has_manifest_table_and_raw_json(run_dir):
    repro = section(render_report(run_dir), "reproducibility")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert (manifest["format"], manifest["kind"]) == (2, "run")
    assert manifest["data"]["sha256"] in repro and "<details>" in repro
    assert f"<td>{manifest['seed']}</td>" in repro
    # The bundled table is named as such, with no path of the machine that ran it.
    assert manifest["data"]["path"] == "bundled: data/outcomes.csv"
    assert "<td>data file</td><td>bundled: data/outcomes.csv</td>" in repro
    assert "&quot;format&quot;: 2" in repro and "&quot;kind&quot;: &quot;run&quot;" in repro


def test_write_report_is_atomic_and_changes_nothing_else(run_copy, monkeypatch):
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in run_copy.rglob("*")
              if p.is_file()}
    out = write_report(run_copy)
    assert out == run_copy / REPORT_NAME and out.read_text().startswith("<!DOCTYPE html>")
    out.write_text("old")

    def fail(src, dst):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:  # the move into place fails: old report intact
        patch.setattr(atomic.os, "replace", fail)
        with pytest.raises(OutputError, match=r"cannot write .*No space left"):
            write_report(run_copy)
    assert out.read_text() == "old"
    assert not [p for p in run_copy.iterdir() if p.name.startswith(".")]
    write_report(run_copy)
    assert out.read_text() != "old"
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in run_copy.rglob("*")
             if p.is_file() and p != out}
    assert after == before
    assert not [p for p in run_copy.iterdir() if p.name.startswith(".")]
    load_run(run_copy)  # the report is not one of the run's files: still a valid run


def test_the_reader_refuses_what_bayes_dress_did_not_write(run_dir, run_copy, sweep_dir,
                                                           tmp_path):
    assert ReportError is RunDirError  # one error type for the reader and the report
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportError, match=r"is not a sensitivity directory.*it has no "
                                          r"manifest\.json"):
        render_report(run_dir, tmp_path / "empty")
    with pytest.raises(ReportError, match="does not exist"):
        write_report(tmp_path / "nope")
    # A directory of the other kind.
    with pytest.raises(ReportError, match=r"not a run directory.*says it is a 'sweep'"):
        render_report(sweep_dir)
    with pytest.raises(ReportError, match=r"not a sensitivity directory.*says it is a "
                                          r"'run'"):
        render_report(run_dir, run_dir)
    # Another format version: a manifest without "format" is format 1.
    manifest = json.loads((run_copy / "manifest.json").read_text())
    for version, manifest_now in ((1, {k: v for k, v in manifest.items() if k != "format"}),
                                  (3, {**manifest, "format": 3})):
        (run_copy / "manifest.json").write_text(json.dumps(manifest_now))
        with pytest.raises(ReportError, match=rf"is a format-{version} directory; this "
                                              r"version of bayes-dress reads format 2: "
                                              r"rerun bayes-dress fit"):
            render_report(run_copy)
    assert not (run_copy / REPORT_NAME).exists()


def cli(*args):
    return CliRunner().invoke(main, list(args))


def test_cli_report_and_one_line_errors(run_dir, run_copy, sweep_dir, tmp_path):
    done = cli("report", str(run_copy), str(sweep_dir))
    assert done.exit_code == 0 and f"{run_copy / REPORT_NAME}" in done.output
    (run_copy / "manifest.json").write_text("{not json")
    (tmp_path / "file").write_text("")
    (tmp_path / "empty").mkdir()
    for args, expected in (
            ([tmp_path / "nope"], "does not exist"),
            ([tmp_path / "file"], "is not a directory"),
            ([run_copy], "manifest.json: cannot be read as JSON"),
            ([tmp_path / "empty"], "it has no manifest.json"),
            ([sweep_dir], "its manifest says it is a 'sweep' directory"),
            ([run_dir, tmp_path / "empty"], "not a sensitivity directory")):  # run dir fine
        assert_user_error(cli("report", *map(str, args)), expected)
    assert not (run_dir / REPORT_NAME).exists()


def _replace(old: str, new: str):
    def change(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)
    return change


@pytest.mark.parametrize(("which", "name", "change"), [
    # A count edited by hand (formerly checked for sense by the report itself).
    ("run", "data_used.csv", _replace("Joly2012,primary,True,1,6,", "Joly2012,primary,True,7,6,")),
    ("run", "summary.csv", _replace(",mean,", ",average,")),  # a column renamed
    ("run", "probabilities.csv", lambda t: t + "success,success,mean_rate,0.9,0.5,0.0\n"),
    ("run", "diagnostics.json", _replace('"passed": true', '"passed": false')),
    ("run", "data_used.csv", None),  # deleted
    ("sweep", "sensitivity.csv", _replace(",ok,", ",diagnostics failed,")),
    ("sweep", "robustness.csv", _replace("NOT robust", "robust")),
    ("sweep", "psense.csv", lambda t: t + "\n"),  # even a harmless blank line
    ("sweep", "diagnostics.json", _replace('"passed": true', '"passed": false')),
])
def test_cli_report_refuses_a_changed_or_missing_file_in_one_line(run_copy, sweep_copy,
                                                                  which, name, change):
    """The reader hashes every file it opens: any edit is refused, naming the file."""
    file = (run_copy if which == "run" else sweep_copy) / name
    if change is None:
        file.unlink()
        expected = "is missing, although the manifest lists it"
    else:
        text = file.read_text()
        assert change(text) != text
        file.write_text(change(text))
        expected = "was changed after it was written"
    assert_user_error(cli("report", str(run_copy), str(sweep_copy)), str(file), expected)
    assert not (run_copy / REPORT_NAME).exists()


@pytest.mark.parametrize("change", [
    lambda m: {**m, "config": [1]},
    lambda m: {**m, "data": "outcomes.csv"},
    lambda m: {**m, "priors": ["m"]},
    lambda m: {**m, "config": {**m["config"], "exclude": 5}},
    lambda m: {**m, "model": {**m["model"], "equations": 5}},
], ids=["config", "data", "priors", "config.exclude", "model.equations"])
def test_cli_report_wrong_shaped_manifest_is_one_line(run_copy, change):
    edit_json(run_copy / "manifest.json", change)
    assert_user_error(cli("report", str(run_copy)), "manifest.json")
    assert not (run_copy / REPORT_NAME).exists()


def test_null_diagnostics_entry_reads_as_nothing_recorded(run_copy):
    edit_json(run_copy / "diagnostics.json",
              lambda d: {**d, "analyses": {**d["analyses"], "success": None}})
    diag = section(render_report(reseal(run_copy)), "diagnostics")
    assert "<strong>not measured</strong>" in diag and "FAIL" not in diag


def test_cli_report_sweep_manifest_not_a_sweep_manifest(run_copy, sweep_copy):
    manifest = sweep_copy / "manifest.json"
    manifest.write_text("[]")
    assert_user_error(cli("report", str(run_copy), str(sweep_copy)), "manifest.json",
                      "expected a JSON object")
    manifest.write_text('{"data": "x"}')  # no "format": a format-1 manifest
    assert_user_error(cli("report", str(run_copy), str(sweep_copy)),
                      "is a format-1 directory", "rerun bayes-dress sensitivity")
    manifest.write_text('{"format": 2, "kind": "sweep"}')
    assert_user_error(cli("report", str(run_copy), str(sweep_copy)), "manifest.json",
                      "'files' must map file names to SHA-256 hashes")
    assert not (run_copy / REPORT_NAME).exists()


def test_cli_report_skips_a_plot_with_an_invalid_path(run_copy):
    write_index(run_copy, [
        plot_entry(run_copy, "ok", title="OK"),
        {"name": "nul", "title": "NUL", "png": "plots/a\u0000b.png", "svg": "x\u0000.svg"}])
    result = cli("report", str(run_copy))
    assert result.exit_code == 0, result.output
    plots = section((run_copy / REPORT_NAME).read_text(), "plots")
    assert plots.count("<img ") == 1
    assert "plot &#x27;nul&#x27; is missing or changed" in plots


def test_fit_with_report_flag(tmp_path):
    out = tmp_path / "run"
    result = cli("fit", "--engine", "exact", "--outcome", "success", "--out", str(out),
                 "--report")
    assert result.exit_code == 0, result.output
    assert (out / REPORT_NAME).exists() and "Report written to" in result.output
    # The real plots, every one of them embedded.
    index = json.loads((out / "plots" / "index.json").read_text())
    plots = section((out / REPORT_NAME).read_text(), "plots")
    assert index and plots.count("<img ") == len(index)
    assert "missing or changed" not in plots and "could not be embedded" not in plots
