"""Study tables: reading a CSV and validating every row into a :class:`StudyTable`.

What an analysis then takes from a table is chosen in :mod:`bayes_dress.data.selection`.

A table is long: one row per study x outcome x definition. Only ``study``, ``events``
and ``total`` are required; ``outcome``, ``definition``, ``primary`` and ``reported`` are
optional, and any other column is kept as a study-level covariate. The bundled DRESS/IVIG
table adds ``quote``, ``location`` and ``note`` so that every count can be traced to the
sentence it came from (see ``data/README.md``).
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import math
import os
import shlex
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bayes_dress.errors import DataError, shorten
from bayes_dress.resources import bundled_path
from bayes_dress.spec.names import did_you_mean, match_name

REQUIRED_COLUMNS = ("study", "events", "total")
#: Column names matched to the package's own, besides a case-insensitive match: common
#: spellings of study-level event counts (r/n as in RBesT and BUGS examples).
COLUMN_ALIASES = {
    "study": ("study", "studies", "study_id", "studyid", "trial", "id", "author", "source"),
    "events": ("events", "event", "r", "x", "y", "responders", "responses", "cases",
               "successes", "count", "counts"),
    "total": ("total", "totals", "n", "size", "sample_size", "patients", "subjects", "denom",
              "denominator", "trials"),
    "outcome": ("outcome", "outcomes", "endpoint"),
    "definition": ("definition", "definitions"),
    "primary": ("primary",),
    "reported": ("reported",),
}
#: Largest data file read, in MB (a study table of 1,000 studies is well under 1 MB);
#: raise it with the environment variable BAYES_DRESS_MAX_DATA_MB.
MAX_DATA_MB = 50
STDIN = "-"
#: Longest study, outcome or definition name: they label tables, plots and file names.
MAX_NAME = 200
#: Outcome name given to a table that has no ``outcome`` column.
DEFAULT_OUTCOME = "events"
#: Definition name given to rows of a table that has no ``definition`` column.
DEFAULT_DEFINITION = "primary"
#: Largest count accepted: the compiled models hold counts as 32-bit integers (no
#: study of event counts comes near two billion patients).
MAX_COUNT = 2**31 - 1
_TRUE = {"true", "yes", "1", "y", "t"}
_FALSE = {"false", "no", "0", "n", "f"}


@dataclass(frozen=True)
class Row:
    """One validated row: a study's count for one outcome under one definition."""

    line: int
    study: str
    outcome: str
    definition: str
    primary: bool
    reported: bool
    events: int | None
    total: int | None
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StudyTable:
    """A validated long table of study counts.

    Attributes
    ----------
    path : Path
        The file it was read from.
    sha256 : str
        Hash of the file's bytes, recorded in every run's manifest.
    rows : tuple of Row
    studies : tuple of str
        Study ids in order of first appearance.
    study_info : dict
        Per-study metadata (citation, design...) when a ``studies.csv`` accompanies it.
    """

    path: Path
    sha256: str
    rows: tuple[Row, ...]
    studies: tuple[str, ...]
    study_info: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @property
    def outcomes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.outcome for r in self.rows))

    def definitions(self, outcome: str) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.definition for r in self.rows if r.outcome == outcome))

    def rows_by_study(self, outcome: str) -> dict[str, list[Row]]:
        """The rows of ``outcome``, grouped by study (one pass over the table)."""
        grouped: dict[str, list[Row]] = {}
        for row in self.rows:
            if row.outcome == outcome:
                grouped.setdefault(row.study, []).append(row)
        return grouped

    def to_frame(self):
        """The table as a pandas DataFrame (one row per study x outcome x definition)."""
        import pandas as pd

        return pd.DataFrame([
            {"study": r.study, "outcome": r.outcome, "definition": r.definition,
             "primary": r.primary, "reported": r.reported, "events": r.events,
             "total": r.total, **r.extra}
            for r in self.rows
        ])


def bundled_data_path() -> Path:
    """Path of the bundled DRESS/IVIG outcome table (``data/outcomes.csv``)."""
    return bundled_path("data") / "outcomes.csv"


def _decode(path: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        column = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        raise DataError(f"{path}, line {line}, column {column}: byte "
                        f"0x{raw[err.start]:02x} is not valid UTF-8; save the file as "
                        "UTF-8") from None


def _parse_bool(value: str, *, where: str, column: str) -> bool:
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise DataError(f"{where}, column '{column}': '{shorten(value)}' is not true or false")


def _parse_count(value: str, *, where: str, column: str) -> int:
    text = value.strip()
    if not text:
        raise DataError(f"{where}, column '{column}': empty count")
    # ASCII digits only: int() would also take "1_000" and non-Latin digits.
    plain = text.lstrip("+")
    number = int(plain) if plain.isascii() and plain.isdigit() else None
    if number is None:  # "3.0", "1e2": accepted when they are whole numbers
        try:
            real = float(text)
        except ValueError:
            real = math.nan
        if not math.isfinite(real) or not real.is_integer():
            raise DataError(f"{where}, column '{column}': '{shorten(value)}' is not a whole "
                            "number")
        number = int(real)
    if number < 0:
        raise DataError(f"{where}, column '{column}': count {value} is negative")
    if number > MAX_COUNT:
        raise DataError(f"{where}, column '{column}': count {shorten(value)} is too large "
                        f"(at most {MAX_COUNT:,})")
    return number


def max_data_bytes() -> int:
    """The size cap on a data file: :data:`MAX_DATA_MB`, or BAYES_DRESS_MAX_DATA_MB."""
    text = os.environ.get("BAYES_DRESS_MAX_DATA_MB", "").strip()
    try:
        megabytes = float(text) if text else MAX_DATA_MB
    except ValueError:
        raise DataError(f"BAYES_DRESS_MAX_DATA_MB must be a number of megabytes, not "
                        f"'{shorten(text, 20)}'") from None
    return int(max(megabytes, 0.001) * 1_000_000)


def _too_large(where: str, limit: int) -> DataError:
    return DataError(f"{where} is larger than {limit / 1e6:g} MB, the size cap for a data "
                     "file; a study table is far smaller: check the file, or raise the cap "
                     "with BAYES_DRESS_MAX_DATA_MB")


def read_data_bytes(path: Path) -> bytes:
    """The bytes of a data file: a regular file (or standard input for '-'), read up to
    the size cap; a FIFO, device or directory is refused at once, never read."""
    limit = max_data_bytes()
    if str(path) == STDIN:
        raw = sys.stdin.buffer.read(limit + 1)
        if len(raw) > limit:
            raise _too_large("standard input", limit)
        return raw
    try:
        info = path.stat()
    except FileNotFoundError:
        raise DataError(f"data file '{shorten(path, 200)}' not found") from None
    except OSError as err:
        raise DataError(f"cannot read data file '{shorten(path, 200)}': "
                        f"{err.strerror or err}") from None
    if stat.S_ISDIR(info.st_mode):
        raise DataError(f"data file '{shorten(path, 200)}' is a directory, not a CSV file")
    if not stat.S_ISREG(info.st_mode):
        raise DataError(f"data file '{shorten(path, 200)}' is not a regular file (a pipe, "
                        "device or socket); save the table to a file, or pass it on "
                        "standard input with --data -")
    if info.st_size > limit:
        raise _too_large(f"data file '{shorten(path, 200)}'", limit)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(limit + 1)
    except OSError as err:
        raise DataError(f"cannot read data file '{shorten(path, 200)}': "
                        f"{err.strerror or err}") from None
    if len(raw) > limit:  # grew while being read
        raise _too_large(f"data file '{shorten(path, 200)}'", limit)
    return raw


def match_columns(header: list[str], path: Path, columns: Mapping[str, str] | None = None
                  ) -> list[str]:
    """The header with its columns renamed to the package's names: an explicit mapping
    (``--columns events=Responders``) first, then a case-insensitive match of the name
    or of a common alias (:data:`COLUMN_ALIASES`).

    Both sides of a mapping are matched as the automatic match is: ``--columns
    Study=trial`` finds a column ``Trial``. A header spelled exactly as given wins over
    one that differs only in case.
    """
    renamed = list(header)
    taken: set[int] = set()
    for ours_given, theirs in (columns or {}).items():
        ours = match_name(ours_given, COLUMN_ALIASES)
        if ours is None:
            raise DataError(f"--columns {shorten(ours_given, 30)}=...: not a column "
                            f"bayes-dress reads{did_you_mean(ours_given, COLUMN_ALIASES)}; "
                            f"valid: {', '.join(COLUMN_ALIASES)}")
        theirs = theirs.strip()
        found = [i for i, h in enumerate(header) if h.strip() == theirs]
        if not found:
            found = [i for i, h in enumerate(header)
                     if h.strip().casefold() == theirs.casefold()]
        listing = shorten(', '.join(h for h in header if h), 200)
        if len(found) > 1:
            raise DataError(f"{path}: --columns {ours}={shorten(theirs, 40)}: columns "
                            f"{', '.join(repr(header[i]) for i in found)} differ only in "
                            "case; write the one meant exactly as it is spelled")
        if not found:
            hint = did_you_mean(theirs, [h for h in header if h.strip()])
            raise DataError(f"{path}: --columns {ours}={shorten(theirs, 40)}: no column "
                            f"'{shorten(theirs, 40)}'{hint} (found: {listing})")
        renamed[found[0]] = ours
        taken.add(found[0])
    for ours, aliases in COLUMN_ALIASES.items():
        if ours in (renamed[i] for i in taken) or ours in renamed:
            continue
        for alias in aliases:
            found = [i for i, h in enumerate(header) if i not in taken
                     and h.strip().lower().replace(" ", "_") == alias]
            if len(found) == 1:
                renamed[found[0]] = ours
                taken.add(found[0])
                break
    return renamed


def _missing_column_error(path: Path, header: list[str], missing: list[str]) -> DataError:
    found = [h for h in header if h]
    hints = []
    for name in missing:
        close = difflib.get_close_matches(name, [h.lower() for h in found], n=1, cutoff=0.5)
        if close:
            original = next(h for h in found if h.lower() == close[0])
            # Quoted for the shell: a header such as 'Study Name' must reach --columns as
            # one argument.
            hints.append(f"is '{shorten(original, 40)}' the {name} column? pass --columns "
                         f"{shorten(shlex.quote(f'{name}={original}'), 60)}")
    hint = "; " + "; ".join(hints) if hints else (
        "; name them, or map yours with --columns study=NAME --columns events=NAME "
        "--columns total=NAME")
    return DataError(f"{path}: missing column {', '.join(repr(m) for m in missing)} "
                     f"(required: {', '.join(REQUIRED_COLUMNS)}; found: "
                     f"{shorten(', '.join(found) or 'none', 200)}){hint}")


def load_table(path: str | Path | None = None, *,
               columns: Mapping[str, str] | None = None) -> StudyTable:
    """Read and validate a study table.

    Parameters
    ----------
    path : str or Path, optional
        A CSV file (``"-"``: standard input); the bundled DRESS/IVIG table when omitted.
    columns : mapping, optional
        The package's column name -> the file's, for columns the automatic match
        (case-insensitive, with common aliases such as ``r`` and ``n``) does not find.

    Returns
    -------
    StudyTable

    Raises
    ------
    DataError
        With the file, line and column of the first problem found.
    """
    path = Path(path) if path is not None else bundled_data_path()
    raw = read_data_bytes(path)
    if str(path) == STDIN:
        path = Path("<stdin>")
    text = _decode(path, raw)
    if not text.strip():
        raise DataError(f"{path} is empty: expected a header with at least "
                        f"{', '.join(REQUIRED_COLUMNS)} and one row per study")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        original = [h.strip() for h in next(reader)]
    except csv.Error as err:
        raise DataError(f"{path}, line 1: {err}") from None
    header = match_columns(original, path, columns)
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise _missing_column_error(path, original, missing)
    duplicated = sorted({h for h in header if header.count(h) > 1})
    if duplicated:
        raise DataError(f"{path}, line 1: column {', '.join(map(repr, duplicated))} "
                        "appears more than once")
    has_primary = "primary" in header

    parsed: list[dict] = []
    seen: dict[tuple[str, str, str], int] = {}
    end = reader.line_num
    try:
        for record in reader:
            # A quoted field may span lines: report the line the record starts on.
            line, end = end + 1, reader.line_num
            if not any(cell.strip() for cell in record):
                continue
            where = f"{path}, line {line}"
            if len(record) != len(header):
                raise DataError(f"{where}: expected {len(header)} fields (as in the "
                                f"header), found {len(record)}")
            cells = dict(zip(header, record, strict=True))
            study = cells["study"].strip()
            if not study:
                raise DataError(f"{where}, column 'study': empty study id")
            outcome = cells.get("outcome", DEFAULT_OUTCOME).strip() or DEFAULT_OUTCOME
            definition = (cells.get("definition", DEFAULT_DEFINITION).strip()
                          or DEFAULT_DEFINITION)
            for column, name in (("study", study), ("outcome", outcome),
                                 ("definition", definition)):
                if len(name) > MAX_NAME:
                    raise DataError(f"{where}, column '{column}': '{shorten(name)}' is "
                                    f"{len(name):,} characters long; names are at most "
                                    f"{MAX_NAME}")
            if "reported" in header and cells["reported"].strip():
                reported = _parse_bool(cells["reported"], where=where, column="reported")
            else:
                # Without a 'reported' flag, empty events and total mean "not reported"
                # (never zero); one of the two empty is an error, caught below.
                reported = bool(cells["events"].strip() or cells["total"].strip())
            if reported:
                events = _parse_count(cells["events"], where=where, column="events")
                total = _parse_count(cells["total"], where=where, column="total")
                if total == 0:
                    raise DataError(f"{where}, column 'total': total is 0 for study "
                                    f"'{study}'; a study without patients carries no "
                                    "information, remove the row")
                if events > total:
                    raise DataError(f"{where}: events ({events}) > total ({total}) for "
                                    f"study '{study}'")
            else:
                if cells["events"].strip() or cells["total"].strip():
                    raise DataError(f"{where}: reported is false but events/total are "
                                    "filled in; leave them empty for an unreported outcome")
                events = total = None
            key = (study, outcome, definition)
            if key in seen:
                raise DataError(f"{where}: duplicate row for study '{study}', outcome "
                                f"'{outcome}', definition '{definition}' (first at line "
                                f"{seen[key]})")
            seen[key] = line
            primary = (_parse_bool(cells["primary"], where=where, column="primary")
                       if has_primary and cells["primary"].strip() else None)
            extra = {k: v for k, v in cells.items() if k not in REQUIRED_COLUMNS
                     and k not in ("outcome", "definition", "primary", "reported")}
            parsed.append(dict(line=line, study=study, outcome=outcome,
                               definition=definition, primary=primary, reported=reported,
                               events=events, total=total, extra=extra))
    except csv.Error as err:
        raise DataError(f"{path}, line {reader.line_num}: {err}") from None
    if not parsed:
        raise DataError(f"{path} has a header but no data rows")

    rows = _resolve_primary(path, parsed)
    studies = tuple(dict.fromkeys(r.study for r in rows))
    return StudyTable(path=path, sha256=hashlib.sha256(raw).hexdigest(), rows=rows,
                      studies=studies, study_info=_study_info(path))


def _resolve_primary(path: Path, parsed: list[dict]) -> tuple[Row, ...]:
    """Decide each study x outcome's primary definition, or say why it cannot be."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for p in parsed:
        groups.setdefault((p["study"], p["outcome"]), []).append(p)
    for (study, outcome), group in groups.items():
        flagged = [p for p in group if p["primary"]]
        if len(flagged) > 1:
            lines = ", ".join(str(p["line"]) for p in flagged)
            raise DataError(f"{path}, lines {lines}: study '{study}', outcome '{outcome}' "
                            "has more than one row marked primary")
        if flagged:
            chosen = flagged[0]
        elif len(group) == 1:
            chosen = group[0]
        else:
            named = [p for p in group if p["definition"] == DEFAULT_DEFINITION]
            if not named:
                defs = ", ".join(p["definition"] for p in group)
                raise DataError(f"{path}, line {group[0]['line']}: study '{study}', "
                                f"outcome '{outcome}' has several definitions ({defs}) and "
                                "none is marked primary; add a 'primary' column")
            chosen = named[0]
        for p in group:
            p["primary"] = p is chosen
    return tuple(Row(**p) for p in parsed)


def _study_info(path: Path) -> dict[str, dict[str, str]]:
    """Per-study metadata from a ``studies.csv`` beside the table, if there is one."""
    info_path = path.with_name("studies.csv")
    if info_path == path or not info_path.is_file():
        return {}
    try:
        with info_path.open(encoding="utf-8-sig", newline="") as handle:
            return {row["study"]: dict(row) for row in csv.DictReader(handle)
                    if row.get("study")}
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{info_path} (study metadata read alongside {path.name}): cannot "
                        f"be read as a UTF-8 CSV ({err})") from None


