"""report.html: contents in reading order, self-contained, escaped, atomic; bad input.

Runs come from the exact engine (no sampling) with a stand-in plot function that writes
one tiny matplotlib PNG and a plots/index.json, so these tests do not depend on the
real plots; tests/test_browser.py renders a real run in Chromium.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from html import escape
from html.parser import HTMLParser
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import assert_user_error

from bayes_dress import RunConfig, outputs, run_fit, write_run
from bayes_dress.cli import main
from bayes_dress.errors import ReportError
from bayes_dress.labels import quantity_label
from bayes_dress.report import REPORT_NAME, render_report, write_report

SECTION_IDS = ["headline", "diagnostics", "data", "models", "plots", "posterior",
               "sensitivity", "limitations", "reproducibility"]


def tiny_png(path: Path) -> None:
    fig, ax = plt.subplots(figsize=(1, 1), dpi=20)
    ax.plot([0, 1], [0, 1])
    fig.savefig(path)
    plt.close(fig)


def fixture_plots(result, directory: Path) -> None:
    """Stand-in for bayes_dress.plots.plot_fit: one PNG per outcome and an index."""
    (directory / "plots").mkdir()
    index = []
    for outcome in result.fits:
        tiny_png(directory / "plots" / f"forest-{outcome}.png")
        index.append({"name": f"forest-{outcome}", "title": f"Forest plot <{outcome}>",
                      "caption": "Rates & intervals.", "outcome": outcome,
                      "png": f"plots/forest-{outcome}.png",
                      "svg": f"plots/forest-{outcome}.svg"})
    (directory / "plots" / "index.json").write_text(json.dumps(index))


def exact_run(out: Path, **config) -> Path:
    result = run_fit(RunConfig(engine="exact", **config))
    return write_run(result, out, plot=fixture_plots)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return exact_run(tmp_path_factory.mktemp("report") / "run")


@pytest.fixture
def run_copy(run_dir, tmp_path) -> Path:
    return Path(shutil.copytree(run_dir, tmp_path / "run"))


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
    from bayes_dress.sensitivity.outputs import write_sweep
    from bayes_dress.sensitivity.spec import load_sweep_spec
    from bayes_dress.sensitivity.sweep import plan_sweep, run_sweep

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
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def with_failed_scenario(sens: Path, scenario: str = "S05") -> Path:
    """The sweep as if one scenario had failed its diagnostics (the writer's format)."""
    frame = read_text_csv(sens / "sensitivity.csv")
    rows = frame["scenario"] == scenario
    frame.loc[rows, "status"] = "diagnostics failed"
    frame.loc[rows, "problems"] = "divergences: 12 & R-hat 1.2"
    frame.loc[rows, "label"] = "phi ~ BDA3 <flat>"
    frame.to_csv(sens / "sensitivity.csv", index=False)
    rob = read_text_csv(sens / "robustness.csv")
    rob["not_counted"] = f"{scenario} (diagnostics failed)"
    rob.to_csv(sens / "robustness.csv", index=False)
    return sens


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
    summary = pd.read_csv(run_dir / "summary.csv")
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
    used = pd.read_csv(run_dir / "data_used.csv")
    for quote in used["quote"]:
        assert f"“{quote}”".replace("'", "&#x27;") in data
    assert "Results, para 2" in data and "1/6" in data and "16/18" in data


def test_models_section_shows_equations_priors_used_and_rationale(tmp_path):
    run = exact_run(tmp_path / "ln", model="logit_normal", outcomes=("success",),
                    priors={"tau": "HalfNormal(0.5)"})
    models = section(render_report(run), "models")
    assert "logit(θ<sub>i</sub>) = μ + τ z<sub>i</sub>" in models
    assert "HalfNormal(sigma=0.5)" in models and "changed from the default" in models
    assert "Friede" in models


def test_values_from_files_are_escaped(tmp_path):
    data = tmp_path / "nasty.csv"
    data.write_text('study,events,total,quote,location\n"<b>A&B</b>",3,10,"<script>x</script>'
                    '",p <1>\nB,5,12,plain,p2\n')
    run = exact_run(tmp_path / "run", data=data, model="common_effect")
    html = render_report(run)
    assert "<b>A&B</b>" not in html and "<script>" not in html
    assert "&lt;b&gt;A&amp;B&lt;/b&gt;" in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert "Forest plot &lt;events&gt;" in html  # plot titles from index.json too


def test_failed_diagnostics_show_a_banner_at_the_top(run_copy):
    diagnostics = json.loads((run_copy / "diagnostics.json").read_text())
    diagnostics["passed"] = False
    check = diagnostics["outcomes"]["success"]["checks"][0]
    check.update(passed=False, detail="grid error 0.01 > 1e-4", remedy="use NUTS")
    diagnostics["outcomes"]["success"]["passed"] = False
    (run_copy / "diagnostics.json").write_text(json.dumps(diagnostics))
    html = render_report(run_copy)
    banner = html.index('class="banner"')
    assert banner < html.index('<section id="headline">')
    assert "DIAGNOSTICS FAILED" in html[banner:banner + 300]
    diag = section(html, "diagnostics")
    assert "FAIL" in diag and "use NUTS" in diag and 'class=fail' in diag


def test_passing_run_has_no_banner(run_dir):
    html = render_report(run_dir)
    assert 'class="banner' not in html.split('<section id="headline">')[0]
    assert "PASS: every check passed" in html


def test_a_check_that_was_not_measured_is_neither_pass_nor_fail(run_copy):
    diagnostics = json.loads((run_copy / "diagnostics.json").read_text())
    check = diagnostics["outcomes"]["success"]["checks"][0]
    check.update(passed=None, value=None, detail="not measured", remedy="use NUTS")
    (run_copy / "diagnostics.json").write_text(json.dumps(diagnostics))
    html = render_report(run_copy)
    diag = section(html, "diagnostics")
    assert "<td>not measured</td>" in diag and ">FAIL<" not in diag
    assert "class=fail" not in diag and "use NUTS" not in diag
    assert "PASS: every check passed" in diag and 'class="banner' not in html
    check.update(passed=True, value=float("nan"))  # a sweep's exact fit: grid not checked
    (run_copy / "diagnostics.json").write_text(json.dumps(diagnostics))
    diag = section(render_report(run_copy), "diagnostics")
    assert "<td>not measured</td>" in diag and ">FAIL<" not in diag


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
    used = pd.read_csv(run_dir / "data_used.csv", keep_default_na=False)
    for note in used["note"]:
        assert escape(note) in data
    sim = used[(used["outcome"] == "severe_ae") & (used["study"] == "Sim2022")].iloc[0]
    assert "lower bound" in sim["note"]  # the one death; not an all-cause count
    assert "1/18 <strong>(lower bound)</strong>" in data
    assert "<details" in data  # long notes are folded


def test_numbers_are_escaped_once(run_dir):
    html = render_report(run_dir)
    assert "&amp;lt;" not in html and "&amp;gt;" not in html and "&amp;#x27;" not in html


def test_plots_without_an_index_or_with_bad_entries(run_copy):
    shutil.rmtree(run_copy / "plots")
    tiny_png(run_copy / "forest.png")
    plots = section(render_report(run_copy), "plots")
    assert "no plots/index.json" in plots and plots.count("<img ") == 1
    (run_copy / "plots").mkdir()
    tiny_png(run_copy / "plots" / "ok.png")
    (run_copy / "plots" / "fake.png").write_text("not a png")
    (run_copy / "plots" / "index.json").write_text(json.dumps([
        {"name": "ok", "title": "OK", "caption": "", "outcome": None, "png": "plots/ok.png"},
        {"name": "gone", "title": "Gone", "png": "plots/gone.png", "svg": "plots/gone.svg"},
        {"name": "fake", "title": "Fake", "png": "plots/fake.png"},
        {"name": "escape", "title": "Escape", "png": "../../../etc/hostname"}]))
    plots = section(render_report(run_copy), "plots")
    assert plots.count("<img ") == 1 and 'alt="OK"' in plots
    for name in ("gone", "fake", "escape"):
        assert f"plot &#x27;{name}&#x27; could not be embedded" in plots


def test_sensitivity_section_and_problem_banner(run_dir, sweep_copy):
    html = render_report(run_dir, with_failed_scenario(sweep_copy))
    top = html.split('<section id="headline">')[0]
    assert "SENSITIVITY SCENARIOS WITH PROBLEMS" in top
    assert "S05 (success): diagnostics failed" in top
    assert "DOES NOT MATCH" not in html  # same data and model as the run
    sens = section(html, "sensitivity")
    assert "30 scenarios" in sens and "divergences: 12 &amp; R-hat 1.2" in sens
    assert "phi ~ BDA3 &lt;flat&gt;" in sens and "<flat>" not in sens
    # The scenarios left out of the verdicts are named in the robustness table.
    assert "<li>S05 (diagnostics failed)</li>" in sens
    assert "exact engine: no posterior draws to reweight" in sens  # psense.csv
    plots = json.loads((sweep_copy / "plots" / "index.json").read_text())
    assert len(plots) == 2 and sens.count("<img ") == 2
    assert all(f"<strong>{escape(p['title'])}.</strong>" in sens for p in plots)
    assert " †" in sens  # theta_new is prior-dominated in the primary analysis
    assert "<h4>" in sens and "(primary)" in sens


def robustness_rows(html: str) -> list[str]:
    sens = section(html, "sensitivity")
    part = sens.split("<h3>Are the conclusions robust?</h3>", 1)[1].split("<h3>", 1)[0]
    return re.findall(r"<tr(?: class=\w+)?><td>.*?</tr>", part, flags=re.S)


def test_not_robust_rows_are_flagged_and_name_the_scenarios_that_cross(run_dir, sweep_dir):
    html = render_report(run_dir, sweep_dir)
    rob = read_text_csv(sweep_dir / "robustness.csv")
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


def test_limitations_follow_the_data(run_dir, tmp_path):
    bundled = text_of(section(render_report(run_dir), "limitations"))
    assert "Only 2 studies" in bundled and "stopped early for safety" in bundled
    assert "IVIG added to corticosteroids" in bundled
    assert "one patient moves its rate by 17 percentage points" in bundled
    assert "mostly prior for: Success (remission), Severe adverse events." in bundled
    rows = [f"S{i:02d},{5 + i},{40 + 3 * i}" for i in range(12)]
    (tmp_path / "many.csv").write_text("study,events,total\n" + "\n".join(rows) + "\n")
    many = text_of(section(render_report(exact_run(tmp_path / "run", data=tmp_path /
                                                   "many.csv")), "limitations"))
    assert "12 or more studies" in many
    assert "Joly2012" not in many and "Small samples" not in many


def test_reproducibility_has_manifest_table_and_raw_json(run_dir):
    repro = section(render_report(run_dir), "reproducibility")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["data"]["sha256"] in repro and "<details>" in repro
    assert f"<td>{manifest['seed']}</td>" in repro


def test_write_report_is_atomic_and_changes_nothing_else(run_copy, monkeypatch):
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in run_copy.rglob("*")
              if p.is_file()}
    out = write_report(run_copy)
    assert out == run_copy / REPORT_NAME and out.read_text().startswith("<!DOCTYPE html>")
    out.write_text("old")

    def fail(src, dst):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:  # the move into place fails: old report intact
        patch.setattr(outputs.os, "replace", fail)
        with pytest.raises(ReportError, match=r"cannot write .*No space left"):
            write_report(run_copy)
    assert out.read_text() == "old"
    assert not [p for p in run_copy.iterdir() if p.name.startswith(".")]
    write_report(run_copy)
    assert out.read_text() != "old"
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in run_copy.rglob("*")
             if p.is_file() and p != out}
    assert after == before
    assert not [p for p in run_copy.iterdir() if p.name.startswith(".")]


def test_bad_directories_raise_report_errors(run_dir, run_copy, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportError, match=r"not a sensitivity directory.*sensitivity\.csv"):
        render_report(run_dir, tmp_path / "empty")
    with pytest.raises(ReportError, match="does not exist"):
        write_report(tmp_path / "nope")
    (run_copy / "summary.csv").write_text("outcome,parameter\nsuccess,m\n")
    with pytest.raises(ReportError, match="missing column"):
        write_report(run_copy)


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
            ([run_copy], "manifest.json: cannot read as JSON"),
            ([tmp_path / "empty"], "it has no manifest.json"),
            ([run_dir, tmp_path / "empty"], "not a sensitivity directory")):  # run dir fine
        assert_user_error(cli("report", *map(str, args)), expected)
    assert not (run_dir / REPORT_NAME).exists()


def edit_json(path: Path, change) -> None:
    payload = json.loads(path.read_text())
    path.write_text(json.dumps(change(payload)))


@pytest.mark.parametrize(("name", "change", "expected"), [
    ("manifest.json", lambda m: {**m, "outcomes": list(m["outcomes"])}, "'outcomes'"),
    ("manifest.json", lambda m: {**m, "data": "outcomes.csv"}, "'data'"),
    ("manifest.json", lambda m: {**m, "config": [1]}, "'config'"),
    ("manifest.json", lambda m: {**m, "outcomes": {"success": 3}}, "outcomes.success"),
    ("diagnostics.json", lambda d: {**d, "outcomes": list(d["outcomes"])}, "'outcomes'"),
    ("diagnostics.json", lambda d: {**d, "outcomes": {"success": {"checks": "ok"}}},
     "checks"),
    # Nested keys the sections read, each of the wrong type.
    ("manifest.json", lambda m: {**m, "config": {**m["config"], "exclude": 5}},
     "'config.exclude' must be a JSON list of strings, not number"),
    ("manifest.json", lambda m: {**m, "config": {**m["config"], "exclude": [1]}},
     "'config.exclude' must be a JSON list of strings, not list"),
    ("manifest.json", lambda m: {**m, "config": {**m["config"], "definitions": [1]}},
     "'config.definitions' must be a JSON object, not list"),
    ("manifest.json", lambda m: {**m, "config": {**m["config"], "sampler": "nutpie"}},
     "'config.sampler' must be a JSON object, not string"),
    ("manifest.json", lambda m: {**m, "model": {**m["model"], "equations": 5}},
     "'model.equations' must be a JSON list of strings, not number"),
    ("manifest.json", lambda m: {**m, "model": {**m["model"], "name": 3}},
     "'model.name' must be a JSON string, not number"),
    ("manifest.json", lambda m: {**m, "data": {**m["data"], "sha256": 5}},
     "'data.sha256' must be a JSON string, not number"),
    ("manifest.json", lambda m: {**m, "outcomes": {"success": {"notes": "x"}}},
     "'outcomes.success.notes' must be a JSON list, not string"),
    ("diagnostics.json", lambda d: {**d, "outcomes": {"success": {"exact_engine": []}}},
     "'outcomes.success.exact_engine' must be a JSON object, not list"),
])
def test_cli_report_wrong_shaped_json_is_one_line(run_copy, name, change, expected):
    edit_json(run_copy / name, change)
    assert_user_error(cli("report", str(run_copy)), name, expected)
    assert not (run_copy / REPORT_NAME).exists()


def test_null_diagnostics_entry_reads_as_nothing_recorded(run_copy):
    edit_json(run_copy / "diagnostics.json",
              lambda d: {**d, "outcomes": {**d["outcomes"], "success": None}})
    diag = section(render_report(run_copy), "diagnostics")
    assert "<strong>not measured</strong>" in diag and "FAIL" not in diag


def test_cli_report_sweep_manifest_not_an_object(run_copy, sweep_copy):
    (sweep_copy / "manifest.json").write_text("[]")
    assert_user_error(cli("report", str(run_copy), str(sweep_copy)), "manifest.json",
                      "expected a JSON object")
    (sweep_copy / "manifest.json").write_text('{"data": "x"}')
    assert_user_error(cli("report", str(run_copy), str(sweep_copy)), "'data'")
    (sweep_copy / "manifest.json").write_text('{"primary_config": {"model": 1}}')
    assert_user_error(cli("report", str(run_copy), str(sweep_copy)),
                      "'primary_config.model' must be a JSON string")


@pytest.mark.parametrize(("column", "value", "expected"), [
    ("events", "twelve", "column 'events' must hold numbers"),
    ("total", "twelve", "column 'total' must hold numbers"),
    ("events", "", "'events' is empty"),
    ("total", "", "'total' is empty"),
    ("events", "-1", "'events' must be a whole number >= 0, not -1"),
    ("events", "2.5", "'events' must be a whole number >= 0, not 2.5"),
    ("total", "inf", "'total' must be a whole number >= 0, not inf"),
    ("total", "0", "'total' is 0"),
    ("events", "7", "events (7) > total (6)"),
])
def test_cli_report_bad_counts_is_one_line(run_copy, column, value, expected):
    frame = read_text_csv(run_copy / "data_used.csv")
    assert (frame.loc[0, "study"], frame.loc[0, "total"]) == ("Joly2012", "6")
    frame.loc[0, column] = value
    frame.to_csv(run_copy / "data_used.csv", index=False)
    err = assert_user_error(cli("report", str(run_copy)), "data_used.csv", expected)
    if "must hold numbers" not in expected:  # checked per row: the row is named
        assert "row 1 (success, Joly2012)" in err
    assert not (run_copy / REPORT_NAME).exists()


def test_cli_report_skips_a_plot_with_an_invalid_path(run_copy):
    tiny_png(run_copy / "plots" / "ok.png")
    (run_copy / "plots" / "index.json").write_text(json.dumps([
        {"name": "ok", "title": "OK", "png": "plots/ok.png"},
        {"name": "nul", "title": "NUL", "png": "plots/a\u0000b.png", "svg": "x\u0000.svg"}]))
    result = cli("report", str(run_copy))
    assert result.exit_code == 0, result.output
    plots = section((run_copy / REPORT_NAME).read_text(), "plots")
    assert plots.count("<img ") == 1
    assert "plot &#x27;nul&#x27; could not be embedded" in plots


def test_fit_with_report_flag(tmp_path):
    out = tmp_path / "run"
    result = cli("fit", "--engine", "exact", "--outcome", "success", "--out", str(out),
                 "--report")
    assert result.exit_code == 0, result.output
    assert (out / REPORT_NAME).exists() and "Report written to" in result.output
