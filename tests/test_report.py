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
from html.parser import HTMLParser
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import pytest
from click.testing import CliRunner

from bayes_dress import RunConfig, run_fit, write_run
from bayes_dress.cli import main
from bayes_dress.errors import ReportError
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


def sensitivity_dir(path: Path) -> Path:
    """A hand-built sweep in the format of the sensitivity module (one failed scenario)."""
    path.mkdir()
    rows = []
    for scenario, label, status, problems in [
            ("primary", "Primary analysis", "ok", ""),
            ("phi_hn025", "phi ~ HalfNormal(0.25)", "ok", ""),
            ("bda3", "phi ~ BDA3 <flat>", "failed", "divergences: 12 & R-hat 1.2")]:
        for outcome in ("success", "severe_ae"):
            for quantity, median in (("mean_rate", 0.55), ("sd_rates", 0.2),
                                     ("theta_new", 0.6)):
                rows.append({"scenario": scenario, "label": label,
                             "primary": scenario == "primary", "varied": "prior",
                             "model": "beta_binomial", "priors": "phi=HalfNormal(0.25)",
                             "definition": "primary", "excluded": "", "n_studies": 2,
                             "outcome": outcome, "quantity": quantity, "mean": median,
                             "median": median, "q2.5": median / 3, "q97.5": 0.9,
                             "prior_dominated": quantity == "theta_new", "status": status,
                             "problems": problems})
    pd.DataFrame(rows).to_csv(path / "sensitivity.csv", index=False)
    pd.DataFrame([{"outcome": "success", "quantity": "mean_rate", "threshold": 0.5,
                   "probability_primary": 0.66, "probability_min": 0.41,
                   "probability_max": 0.8, "min_scenario": "bda3",
                   "max_scenario": "phi_hn025", "crosses_0.5": True, "crosses_0.95": False,
                   "verdict": "conclusion depends on the prior"}]
                 ).to_csv(path / "robustness.csv", index=False)
    pd.DataFrame([{"outcome": "success", "variable": "phi", "prior": 0.12,
                   "likelihood": 0.03, "diagnosis": "potential prior-data conflict"}]
                 ).to_csv(path / "psense.csv", index=False)
    (path / "plots").mkdir()
    tiny_png(path / "plots" / "tornado.png")
    (path / "plots" / "index.json").write_text(json.dumps([{
        "name": "tornado", "title": "Tornado plot", "caption": "Scenario ranges.",
        "outcome": None, "png": "plots/tornado.png", "svg": "plots/tornado.svg"}]))
    (path / "manifest.json").write_text(json.dumps({"seed": 1, "scenarios": 3}))
    return path


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


def test_sensitivity_section_and_problem_banner(run_dir, tmp_path):
    html = render_report(run_dir, sensitivity_dir(tmp_path / "sens"))
    top = html.split('<section id="headline">')[0]
    assert "SENSITIVITY SCENARIOS WITH PROBLEMS" in top and "bda3 (success): failed" in top
    sens = section(html, "sensitivity")
    assert "3 scenarios" in sens and "divergences: 12 &amp; R-hat 1.2" in sens
    assert "phi ~ BDA3 &lt;flat&gt;" in sens
    assert "conclusion depends on the prior" in sens and "potential prior-data conflict" in sens
    assert "Tornado plot" in sens and sens.count("<img ") == 1
    assert "0.600 (0.200–0.900) †" in sens  # theta_new is flagged prior-dominated
    assert "<h4>" in sens and "(primary)" in sens


def test_limitations_follow_the_data(run_dir, tmp_path):
    bundled = text_of(section(render_report(run_dir), "limitations"))
    assert "Only 2 studies" in bundled and "stopped early for safety" in bundled
    assert "IVIG added to corticosteroids" in bundled
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


def test_write_report_is_atomic_and_changes_nothing_else(run_copy):
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in run_copy.rglob("*")
              if p.is_file()}
    out = write_report(run_copy)
    assert out == run_copy / REPORT_NAME and out.read_text().startswith("<!DOCTYPE html>")
    out.write_text("old")
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


def test_cli_report_and_one_line_errors(run_copy, tmp_path):
    done = cli("report", str(run_copy), str(sensitivity_dir(tmp_path / "sens")))
    assert done.exit_code == 0 and f"{run_copy / REPORT_NAME}" in done.output
    (run_copy / "manifest.json").write_text("{not json")
    (tmp_path / "file").write_text("")
    (tmp_path / "empty").mkdir()
    for args in ([str(tmp_path / "nope")], [str(tmp_path / "file")], [str(run_copy)],
                 [str(tmp_path / "empty")], [str(tmp_path / "empty"), str(tmp_path)]):
        result = cli("report", *args)
        assert result.exit_code == 2, args
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
        assert "Traceback" not in result.output


def test_fit_with_report_flag(tmp_path):
    out = tmp_path / "run"
    result = cli("fit", "--engine", "exact", "--outcome", "success", "--out", str(out),
                 "--report")
    assert result.exit_code == 0, result.output
    assert (out / REPORT_NAME).exists() and "Report written to" in result.output
