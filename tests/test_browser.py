"""report.html in a real browser: headless Debian Chromium, offline, driven over the
Chrome DevTools Protocol on a pipe (``--remote-debugging-pipe``: JSON messages ended by
NUL on file descriptors 3 and 4), so no websocket or browser-driver package is needed.

The browser records every request the page makes, so "self-contained" is checked by
what the page actually fetched, not by reading the HTML; a proxy that refuses every
connection keeps the machine's network out of it. .ci/run installs Chromium and sets
BAYES_DRESS_REQUIRE_BROWSER=1, so there a missing browser fails instead of skipping.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import FAST

from bayes_dress import RunConfig, run_fit, write_run
from bayes_dress.report import write_report

TIMEOUT = 60.0
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--mute-audio",
    # Every http(s) connection, loopback included, goes to a proxy that is not there.
    "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
    "--window-size=1280,900", "--remote-debugging-pipe",
)
# A PNG that is not an image, and an external resource: what the checker must catch.
BROKEN_IMG = '<img alt="broken" src="data:image/png;base64,AAAAAAAA">'
EXTERNAL_IMG = '<img alt="external" src="http://example.invalid/logo.png">'
EXTERNAL_CSS = "<style>@import url(https://example.invalid/x.css);</style>"


def chromium_path() -> str | None:
    return os.environ.get("BAYES_DRESS_CHROMIUM") or shutil.which("chromium")


@pytest.fixture(scope="module")
def chromium() -> str:
    path = chromium_path()
    if path is None:
        reason = ("chromium not found (Debian package 'chromium'; .ci/run installs it, or "
                  "set BAYES_DRESS_CHROMIUM)")
        if os.environ.get("BAYES_DRESS_REQUIRE_BROWSER"):
            pytest.fail(reason + "; BAYES_DRESS_REQUIRE_BROWSER is set")
        pytest.skip(reason)
    return path


@dataclass
class PageLoad:
    """What the browser saw when it opened a page."""

    url: str
    images: list[dict]
    requests: list[str]
    failures: list[str] = field(default_factory=list)
    screenshot: bytes = b""
    values: dict = field(default_factory=dict)

    def problems(self) -> list[str]:
        """Broken images and anything fetched from outside the file itself."""
        found = [f"image not loaded: {i['alt'] or i['src'][:60]}" for i in self.images
                 if not (i["complete"] and i["naturalWidth"] > 0)]
        found += [f"fetched from outside the file: {u[:80]}" for u in self.requests
                  if u != self.url and not u.startswith("data:")]
        found += [f"request failed: {f}" for f in self.failures]
        return found


class DevTools:
    """A headless Chromium and a CDP session over a pipe."""

    def __init__(self, binary: str):
        self.profile = tempfile.mkdtemp(prefix="bayes-dress-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def child() -> None:
            # The protocol wants the pipe ends on fds 3 (commands) and 4 (replies). Copy
            # them above 10 first, so the dup2s cannot overwrite each other.
            a = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.process = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            preexec_fn=child, pass_fds=(3, 4), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._id = 0
        self.events: list[dict] = []
        self.deadline = time.monotonic() + TIMEOUT

    def _receive(self) -> dict:
        while b"\0" not in self._buffer:
            # Wait for a reply no longer than the time left: os.read alone would block for
            # ever on a browser that has stopped talking, and hang the test run with it.
            remaining = self.deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._from_browser], [], [],
                                                   remaining)[0]:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise EOFError(f"chromium exited (status {self.process.poll()})")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, params: dict | None = None, session: str | None = None
             ) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive()
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def wait_for(self, method: str) -> None:
        while not any(e.get("method") == method for e in self.events):
            self.events.append(self._receive())

    def close(self) -> None:
        try:
            self.send("Browser.close")
            self.process.wait(10)
        except Exception:
            self.process.kill()
            self.process.wait(10)
        finally:
            os.close(self._to_browser)
            os.close(self._from_browser)
            shutil.rmtree(self.profile, ignore_errors=True)


def test_a_silent_browser_times_out():
    """A browser that never answers fails the wait at its deadline instead of hanging."""
    silent = object.__new__(DevTools)  # the reading side only: no process is started
    read_end, write_end = os.pipe()
    silent._from_browser, silent._buffer = read_end, b""
    silent.deadline = time.monotonic() + 0.2
    try:
        start = time.monotonic()
        with pytest.raises(TimeoutError, match="did not answer in time"):
            silent._receive()
        assert time.monotonic() - start < 5
    finally:
        os.close(read_end)
        os.close(write_end)


IMAGES_JS = ("JSON.stringify([...document.images].map(i => ({alt: i.alt, src: i.src, "
             "complete: i.complete, naturalWidth: i.naturalWidth})))")


def open_page(binary: str, path: Path, *, screenshot: bool = True,
              evaluate: dict[str, str] | None = None) -> PageLoad:
    """Open ``path`` offline, wait for its load event, and record images, requests,
    the JSON value of each expression in ``evaluate`` and (unless told not to) a
    full-page screenshot."""
    browser = DevTools(binary)
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget",
                               {"targetId": target, "flatten": True})["sessionId"]
        browser.send("Page.enable", session=session)
        browser.send("Network.enable", session=session)
        url = path.resolve().as_uri()
        browser.send("Page.navigate", {"url": url}, session=session)
        browser.wait_for("Page.loadEventFired")
        images = json.loads(browser.send("Runtime.evaluate", {
            "expression": IMAGES_JS, "returnByValue": True}, session=session)
            ["result"]["value"])
        values = {name: json.loads(browser.send("Runtime.evaluate", {
            "expression": f"JSON.stringify({expression})", "returnByValue": True},
            session=session)["result"]["value"]) for name, expression in
            (evaluate or {}).items()}
        shot = browser.send("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True}, session=session) \
            if screenshot else {"data": ""}
        events = browser.events
    finally:
        browser.close()
    requests = [e["params"]["request"]["url"] for e in events
                if e.get("method") == "Network.requestWillBeSent"]
    failures = [e["params"].get("errorText", "") for e in events
                if e.get("method") == "Network.loadingFailed"]
    return PageLoad(url, images, requests, failures, base64.b64decode(shot["data"]),
                    values)


@pytest.fixture(scope="module")
def nuts_report(tmp_path_factory) -> Path:
    """The real thing, end to end: a small NUTS fit, its run directory and its report."""
    out = tmp_path_factory.mktemp("browser") / "run"
    result = run_fit(RunConfig(sampler=FAST))
    write_run(result, out)
    return write_report(out)


def plot_index(run_dir: Path) -> list[dict]:
    return json.loads((run_dir / "plots" / "index.json").read_text(encoding="utf-8"))


def test_report_of_a_real_run_renders_offline_with_every_image(chromium, nuts_report,
                                                               tmp_path):
    page = open_page(chromium, nuts_report)
    html = nuts_report.read_text(encoding="utf-8")
    assert page.problems() == []
    # Every plot of the run's index, none left out.
    index = plot_index(nuts_report.parent)
    assert len(page.images) == html.count("<img ") == len(index) >= 2
    assert sorted(i["alt"] for i in page.images) == sorted(e["title"] for e in index)
    assert "missing or changed" not in html and "could not be embedded" not in html
    # The sampler is checked against the exact engine, once per analysis.
    analyses = json.loads((nuts_report.parent / "manifest.json").read_text())["analyses"]
    assert html.count("<td>reference_agreement</td>") == len(analyses) == 2
    assert page.requests[0] == page.url
    assert page.screenshot.startswith(b"\x89PNG\r\n\x1a\n") and len(page.screenshot) > 50_000
    shots = os.environ.get("BAYES_DRESS_SCREENSHOTS")  # keep it to look at, if asked
    (Path(shots) if shots else tmp_path).mkdir(parents=True, exist_ok=True)
    (Path(shots or tmp_path) / "report.png").write_bytes(page.screenshot)


@pytest.fixture(scope="module")
def sweep_report(tmp_path_factory) -> Path:
    """An exact-engine run with its real plots, and a real exact-engine sensitivity sweep
    of the bundled spec: the report with every section filled in."""
    from bayes_dress.sensitivity.spec import load_sweep_spec
    from bayes_dress.sensitivity.sweep import plan_sweep, run_sweep
    from bayes_dress.sensitivity.write import write_sweep

    root = tmp_path_factory.mktemp("browser-sweep")
    write_run(run_fit(RunConfig(engine="exact")), root / "run")
    spec = load_sweep_spec()
    plan = plan_sweep(spec, config=spec.primary.replace(engine="exact"))
    write_sweep(run_sweep(plan, jobs=1), root / "sens")
    return write_report(root / "run", root / "sens")


#: For each table in a section: how far it overflows its box (0 when it fits).
OVERFLOW_JS = ("[...document.querySelectorAll('#{}> .scroll')]"
               ".map(d => d.scrollWidth - d.clientWidth)")


def test_report_with_a_sensitivity_sweep_renders_offline(chromium, sweep_report, tmp_path):
    page = open_page(chromium, sweep_report, evaluate={
        "sensitivity_images": "document.querySelectorAll('#sensitivity img').length",
        "not_robust": "document.querySelectorAll('#sensitivity tr.flag').length",
        "posterior": OVERFLOW_JS.format("posterior"),
        "data": OVERFLOW_JS.format("data")})
    html = sweep_report.read_text(encoding="utf-8")
    assert page.problems() == []
    assert len(page.images) == html.count("<img ") >= 4
    assert page.values["sensitivity_images"] == 2  # one forest plot per outcome
    assert len(page.images) == (len(plot_index(sweep_report.parent))
                                + len(plot_index(sweep_report.parent.parent / "sens")))
    assert page.values["not_robust"] >= 1
    # At 1280 px the posterior summary fits without scrolling sideways.
    assert page.values["posterior"] and not any(page.values["posterior"])
    shots = os.environ.get("BAYES_DRESS_SCREENSHOTS")
    (Path(shots) if shots else tmp_path).mkdir(parents=True, exist_ok=True)
    (Path(shots or tmp_path) / "report-sweep.png").write_bytes(page.screenshot)


@pytest.fixture(scope="module")
def many_report(tmp_path_factory) -> Path:
    """An exact-engine run of 31 studies from a user's table without quotes, locations or
    notes, with its real plots: tables longer than 30 rows are folded."""
    root = tmp_path_factory.mktemp("browser-many")
    rows = [f"S{i:02d},{5 + i},{40 + 3 * i}" for i in range(31)]
    (root / "many.csv").write_text("study,events,total\n" + "\n".join(rows) + "\n")
    write_run(run_fit(RunConfig(engine="exact", data=root / "many.csv")), root / "run")
    return write_report(root / "run")


#: Each folded table (not a folded data note): whether it is open, and its height in px.
FOLDED_JS = ("[...document.querySelectorAll('#data details, #posterior details')]"
             ".filter(d => !d.classList.contains('note-cell'))"
             ".map(d => [d.open, d.getBoundingClientRect().height, "
             "d.querySelectorAll('tbody tr').length])")


def test_report_of_many_studies_renders_with_long_tables_folded(chromium, many_report):
    page = open_page(chromium, many_report, screenshot=False, evaluate={
        "folded": FOLDED_JS,
        "data_headers": "[...document.querySelectorAll('#data th')].map(t => t.textContent)"})
    assert page.problems() == []
    assert len(page.images) == len(plot_index(many_report.parent)) >= 2
    # The study table and the posterior summary, folded shut: a summary line on screen,
    # every row still in the page.
    folded = page.values["folded"]
    assert len(folded) == 2
    assert all(not is_open and height < 100 and rows >= 31 for is_open, height, rows in folded)
    # No quotes, locations or notes in the data: no empty columns for them.
    assert page.values["data_headers"] == ["study", "definition", "events/total",
                                           "observed rate"]


def _variant(report: Path, tmp_path: Path, extra: str) -> Path:
    page = tmp_path / "variant.html"
    page.write_text(report.read_text(encoding="utf-8").replace("</body>", extra + "</body>"),
                    encoding="utf-8")
    return page


def test_checker_catches_a_broken_image(chromium, nuts_report, tmp_path):
    problems = open_page(chromium, _variant(nuts_report, tmp_path, BROKEN_IMG),
                         screenshot=False).problems()
    assert problems == ["image not loaded: broken"]


def test_checker_catches_external_resources(chromium, nuts_report, tmp_path):
    problems = open_page(chromium, _variant(nuts_report, tmp_path, EXTERNAL_IMG + EXTERNAL_CSS),
                         screenshot=False).problems()
    assert "image not loaded: external" in problems
    assert any("outside the file: http://example.invalid/logo.png" in p for p in problems)
    assert any("outside the file: https://example.invalid/x.css" in p for p in problems)


def test_checker_catches_a_plot_linked_instead_of_embedded(chromium, nuts_report, tmp_path):
    # A relative file next to the report loads fine, but the report would not travel.
    (tmp_path / "plot.png").write_bytes(next(nuts_report.parent.rglob("*.png")).read_bytes())
    problems = open_page(chromium, _variant(nuts_report, tmp_path,
                                            '<img alt="linked" src="plot.png">'),
                         screenshot=False).problems()
    assert len(problems) == 1 and "outside the file: file://" in problems[0]
