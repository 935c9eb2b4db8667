"""A self-contained HTML report of a run directory (and, optionally, a sensitivity sweep).

``report.html`` is one file that reads anywhere, offline and printed: CSS inline, plots
embedded as base64 data URIs, no scripts, fonts or other network resources. Every value
read from a file is HTML-escaped. The sections are rendered in
:mod:`bayes_dress.report_sections`; this module reads and checks the directories and
writes the file.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bayes_dress.errors import ReportError
from bayes_dress.outputs import atomic_write_text

REPORT_NAME = "report.html"
#: Files a run directory must have, with the columns the report reads from each CSV.
RUN_CSVS = {
    "summary.csv": ("outcome", "parameter", "study", "mean", "q2.5", "median", "q97.5",
                    "prior_dominated"),
    "probabilities.csv": ("outcome", "quantity", "threshold", "probability"),
    "data_used.csv": ("outcome", "study", "events", "total"),
}
RUN_JSONS = ("manifest.json", "diagnostics.json")
#: Columns that must be numbers, per run CSV.
RUN_NUMERIC = {"data_used.csv": ("events", "total")}
#: The JSON type of each key the report reads from a run's manifest.json, by dotted path
#: ("*" stands for every key of an object); parents come before their children. A key
#: that is absent or null is not checked: the report shows it as missing.
MANIFEST_TYPES = {
    "outcomes": "object", "outcomes.*": "object", "outcomes.*.notes": "list",
    "data": "object", "data.path": "string", "data.sha256": "string",
    "config": "object", "config.model": "string", "config.sampler": "object",
    "config.definitions": "object", "config.exclude": "list of strings",
    "model": "object", "model.name": "string", "model.title": "string",
    "model.equations": "list of strings",
    "priors": "object", "packages": "object", "platform": "object", "files": "object",
}
#: The same for diagnostics.json.
DIAGNOSTICS_TYPES = {"outcomes": "object", "outcomes.*": "object",
                     "outcomes.*.checks": "list of objects",
                     "outcomes.*.exact_engine": "object"}
#: The same for a sweep's manifest.json.
SWEEP_MANIFEST_TYPES = {"data": "object", "data.sha256": "string",
                        "primary_config": "object", "primary_config.model": "string"}
#: What each JSON type name of the tables above accepts.
JSON_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "list": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "list of strings": lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v),
    "list of objects": lambda v: isinstance(v, list) and all(isinstance(i, dict) for i in v),
}
SENSITIVITY_CSVS = {
    "sensitivity.csv": ("scenario", "outcome", "quantity", "median", "q2.5", "q97.5",
                        "status"),
    "robustness.csv": ("outcome", "quantity", "threshold", "probability_primary",
                       "probability_min", "probability_max"),
}
#: Optional in a sensitivity directory: shown when present, noted when absent.
PSENSE_CSV, PSENSE_COLUMNS = "psense.csv", ("outcome", "variable", "diagnosis")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: Columns read as text, so that a study called "NA" or "None" stays a name.
TEXT_COLUMNS = ("outcome", "parameter", "study", "definition", "quote", "location",
                "scenario", "label", "varied", "model", "priors", "excluded", "quantity",
                "status", "problems", "variable", "diagnosis", "verdict", "min_scenario",
                "max_scenario", "crosses_0.5", "crosses_0.95", "not_counted", "note")


@dataclass
class Plot:
    """One figure to embed: its title, caption and image as a data URI."""

    name: str
    title: str
    caption: str
    outcome: str | None
    data_uri: str


@dataclass
class Plots:
    """The figures of a directory, and notes on any that could not be embedded."""

    figures: list[Plot] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class RunFiles:
    """What the report reads from a run directory."""

    path: Path
    manifest: dict
    diagnostics: dict
    summary: pd.DataFrame
    probabilities: pd.DataFrame
    data_used: pd.DataFrame
    plots: Plots


@dataclass
class SensitivityFiles:
    """What the report reads from a sensitivity directory."""

    path: Path
    sensitivity: pd.DataFrame
    robustness: pd.DataFrame
    psense: pd.DataFrame | None
    manifest: dict | None
    plots: Plots


def _directory(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise ReportError(f"{what} '{path}' does not exist")
    if not path.is_dir():
        raise ReportError(f"{what} '{path}' is not a directory")
    return path


def _read_json(path: Path, what: str):
    if not path.is_file():
        raise ReportError(f"'{path.parent}' is not a {what}: it has no {path.name}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ReportError(f"{path}: cannot read as JSON ({err})") from None


def _read_csv(path: Path, columns: tuple[str, ...], what: str,
              numeric: tuple[str, ...] = ()) -> pd.DataFrame:
    if not path.is_file():
        raise ReportError(f"'{path.parent}' is not a {what}: it has no {path.name}")
    try:
        # pandas ignores the dtype of a column the file does not have.
        frame = pd.read_csv(path, dtype=dict.fromkeys(TEXT_COLUMNS, str),
                            keep_default_na=False, na_values=[""])
    except (OSError, UnicodeDecodeError, pd.errors.ParserError,
            pd.errors.EmptyDataError) as err:
        raise ReportError(f"{path}: cannot read as CSV ({err})") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ReportError(f"{path}: missing column(s) {', '.join(missing)}")
    for column in numeric:
        try:
            frame[column] = pd.to_numeric(frame[column], errors="raise")
        except (ValueError, TypeError):
            raise ReportError(f"{path}: column '{column}' must hold numbers") from None
    for column in TEXT_COLUMNS:
        if column in frame.columns:
            frame[column] = frame[column].fillna("")
    return frame


def _check_counts(path: Path, frame: pd.DataFrame) -> None:
    """Every row of data_used.csv counts 0 <= events <= total patients, total > 0, in
    whole numbers: the report sums, divides and prints them as such."""
    rows = frame[["outcome", "study", "events", "total"]].itertuples(index=False, name=None)
    for i, (outcome, study, events, total) in enumerate(rows, start=1):
        where = f"{path}: row {i} ({outcome}, {study})"
        for column, value in (("events", events), ("total", total)):
            if math.isnan(value):
                raise ReportError(f"{where}: '{column}' is empty")
            if not (math.isfinite(value) and float(value).is_integer() and value >= 0):
                raise ReportError(f"{where}: '{column}' must be a whole number >= 0, not "
                                  f"{value:g}")
        if total == 0:
            raise ReportError(f"{where}: 'total' is 0: a study needs patients")
        if events > total:
            raise ReportError(f"{where}: events ({events:g}) > total ({total:g})")


def _image_uri(directory: Path, relative: object) -> str | None:
    """The file ``relative`` (inside ``directory``) as a data URI, or None if it is
    missing, outside the directory or not a PNG/SVG image."""
    if not isinstance(relative, str) or not relative:
        return None
    try:
        root = directory.resolve()
        path = (root / relative).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            return None  # an index must not pull in files from elsewhere
        data = path.read_bytes()
    except (OSError, ValueError):  # e.g. a NUL byte in the path, or an unreadable file
        return None
    if data.startswith(PNG_MAGIC):
        mime = "image/png"
    elif path.suffix.lower() == ".svg" and b"<svg" in data[:4096]:
        mime = "image/svg+xml"  # an <img> SVG cannot load anything itself
    else:
        return None
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def load_plots(directory: Path) -> Plots:
    """The figures listed in ``directory/plots/index.json``.

    Without an index (runs written before it existed), the PNG files at the top of
    ``directory`` are embedded instead, titled by file name.
    """
    index = directory / "plots" / "index.json"
    plots = Plots()
    if not index.exists():
        pngs = sorted(directory.glob("*.png"))
        plots.notes.append(f"{directory.name} has no plots/index.json"
                           + ("; the PNG files found in it are shown." if pngs else
                              "; there are no plots to show."))
        for png in pngs:
            uri = _image_uri(directory, png.name)
            if uri is not None:
                plots.figures.append(Plot(png.stem, png.stem.replace("_", " "), "", None, uri))
        return plots
    entries = _read_json(index, "plot index")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ReportError(f"{index}: expected a JSON list of objects with name, title, "
                          "caption, outcome, png and svg")
    for i, entry in enumerate(entries):
        name = str(entry.get("name") or f"plot {i + 1}")
        # Relative to the run directory ("plots/NAME.png"); PNG first, SVG if no PNG.
        uri = _image_uri(directory, entry.get("png")) or _image_uri(directory, entry.get("svg"))
        if uri is None:
            plots.notes.append(f"plot '{name}' could not be embedded: its image file is "
                               "missing, outside the directory or not a PNG/SVG image.")
            continue
        outcome = entry.get("outcome")
        plots.figures.append(Plot(name, str(entry.get("title") or name),
                                  str(entry.get("caption") or ""),
                                  None if outcome is None else str(outcome), uri))
    return plots


def _values_at(payload: dict, key: str) -> list[tuple[str, object]]:
    """(dotted name, value) of every value at ``key`` in ``payload``, ``*`` standing for
    every key of an object; a value under a parent that is not an object is not reached
    (its parent is checked first)."""
    found: list[tuple[str, object]] = [("", payload)]
    for part in key.split("."):
        found = [(f"{name}.{k}" if name else str(k), v)
                 for name, parent in found if isinstance(parent, dict)
                 for k, v in (parent.items() if part == "*" else [(part, parent.get(part))])]
    return found


def _json_type(value: object) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", int: "number",
            float: "number"}.get(type(value), type(value).__name__)


def _check_types(path: Path, payload: dict, types: dict[str, str]) -> None:
    """Each key of ``types`` in ``payload``, when present and not null, has its JSON type,
    so the sections can read it without checking again."""
    for key, kind in types.items():
        for name, value in _values_at(payload, key):
            if value is not None and not JSON_TYPES[kind](value):
                raise ReportError(f"{path}: '{name}' must be a JSON {kind}, not "
                                  f"{_json_type(value)}")


def load_run(run_dir: str | Path) -> RunFiles:
    """Read and check the files of a run directory written by ``bayes-dress fit``."""
    path = _directory(run_dir, "run directory")
    what = "run directory (written by bayes-dress fit)"
    jsons = {name: _read_json(path / name, what) for name in RUN_JSONS}
    for name, payload in jsons.items():
        if not isinstance(payload, dict):
            raise ReportError(f"{path / name}: expected a JSON object")
    _check_types(path / "manifest.json", jsons["manifest.json"], MANIFEST_TYPES)
    _check_types(path / "diagnostics.json", jsons["diagnostics.json"], DIAGNOSTICS_TYPES)
    csvs = {name: _read_csv(path / name, columns, what, RUN_NUMERIC.get(name, ()))
            for name, columns in RUN_CSVS.items()}
    _check_counts(path / "data_used.csv", csvs["data_used.csv"])
    return RunFiles(path, jsons["manifest.json"], jsons["diagnostics.json"],
                    csvs["summary.csv"], csvs["probabilities.csv"], csvs["data_used.csv"],
                    load_plots(path))


def load_sensitivity(sensitivity_dir: str | Path) -> SensitivityFiles:
    """Read and check the files of a sensitivity directory."""
    path = _directory(sensitivity_dir, "sensitivity directory")
    what = "sensitivity directory"
    csvs = {name: _read_csv(path / name, columns, what)
            for name, columns in SENSITIVITY_CSVS.items()}
    psense = (_read_csv(path / PSENSE_CSV, PSENSE_COLUMNS, what)
              if (path / PSENSE_CSV).exists() else None)
    manifest = _read_json(path / "manifest.json", what) if (path / "manifest.json").exists() \
        else None
    if manifest is not None:
        if not isinstance(manifest, dict):
            raise ReportError(f"{path / 'manifest.json'}: expected a JSON object")
        _check_types(path / "manifest.json", manifest, SWEEP_MANIFEST_TYPES)
    return SensitivityFiles(path, csvs["sensitivity.csv"], csvs["robustness.csv"], psense,
                            manifest, load_plots(path))


def render_report(run_dir: str | Path, sensitivity_dir: str | Path | None = None, *,
                  title: str | None = None, date: dt.date | None = None) -> str:
    """The report of a run as one HTML document (a string); nothing is written.

    Parameters and errors as :func:`write_report`; ``date`` defaults to today.
    """
    run = load_run(run_dir)
    sensitivity = load_sensitivity(sensitivity_dir) if sensitivity_dir is not None else None
    from bayes_dress.report_sections import render  # it imports this module's classes

    return render(run, sensitivity, title=title, date=date or dt.date.today())


def write_report(run_dir: str | Path, sensitivity_dir: str | Path | None = None, *,
                 title: str | None = None, date: dt.date | None = None) -> Path:
    """Write ``RUN_DIR/report.html``, a self-contained HTML report of a run.

    The file is written to a temporary name and moved into place, so a reader never sees
    half a report; an existing report is replaced. Nothing else in the run directory
    changes (``manifest.json`` is embedded in the report, not updated).

    Parameters
    ----------
    run_dir : str or Path
        A run directory written by ``bayes-dress fit`` (or :func:`bayes_dress.write_run`).
    sensitivity_dir : str or Path, optional
        A sensitivity-sweep directory (``sensitivity.csv``, ``robustness.csv``, optionally
        ``psense.csv``, ``plots/index.json`` and ``manifest.json``); adds a section.
    title : str, optional
        The report's title. Default: the model's title and the outcomes.
    date : datetime.date, optional
        The date printed on the report. Default: today.

    Returns
    -------
    Path
        The path of ``report.html``.

    Raises
    ------
    ReportError
        A directory is missing, or lacks a file, or a file cannot be read or lacks columns.
    """
    html = render_report(run_dir, sensitivity_dir, title=title, date=date)
    out = Path(run_dir) / REPORT_NAME
    try:
        atomic_write_text(out, html)
    except OSError as err:
        raise ReportError(f"cannot write '{out}': {err.strerror or err}") from None
    return out
