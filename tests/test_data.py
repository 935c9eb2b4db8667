"""Unit tests of :mod:`bayes_dress.data`: reading, validating and selecting counts."""

from __future__ import annotations

import csv
import hashlib
import io
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bayes_dress.data import (
    DEFAULT_OUTCOME,
    bundled_data_path,
    check_definitions,
    check_exclusions,
    load_table,
    select_analysis,
    select_outcome,
)
from bayes_dress.errors import DataError
from bayes_dress.spec.names import did_you_mean, match_name, resolve_name


def write_csv(path: Path, header, rows, *, lineterminator="\n", bom=False,
              quoting=csv.QUOTE_MINIMAL) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=lineterminator, quoting=quoting)
    writer.writerow(header)
    writer.writerows(rows)
    data = buffer.getvalue().encode("utf-8")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


def counts(data):
    return {s: (int(e), int(n)) for s, e, n in zip(data.studies, data.events, data.totals,
                                                     strict=True)}


# ---- the bundled DRESS/IVIG table -----------------------------------------------------


@pytest.fixture(scope="module")
def bundled():
    return load_table()


def test_bundled_table_loads(bundled):
    assert bundled.path == bundled_data_path()
    assert bundled.studies == ("Joly2012", "Sim2022")
    for outcome in ("success", "severe_ae", "death", "ivig_reaction", "rescue_steroids"):
        assert outcome in bundled.outcomes
    assert bundled.sha256 == hashlib.sha256(bundled.path.read_bytes()).hexdigest()
    assert set(bundled.definitions("success")) == {"primary", "evaluable",
                                                    "partial_or_complete",
                                                    "early_improvement"}
    # studies.csv beside the table provides per-study metadata
    assert bundled.study_info["Joly2012"]["n_enrolled"] == "6"
    assert bundled.study_info["Sim2022"]["n_enrolled"] == "18"


def test_bundled_rows_are_traceable(bundled):
    for row in bundled.rows:
        assert row.line >= 2
        if row.reported:
            assert row.extra["quote"], row
        else:
            assert row.events is None and row.total is None
    # exactly one primary row per study x outcome
    for study in bundled.studies:
        for outcome in bundled.outcomes:
            primaries = [r for r in bundled.rows
                         if r.study == study and r.outcome == outcome and r.primary]
            assert len(primaries) == 1, (study, outcome)


def test_bundled_primary_success(bundled):
    data = select_outcome(bundled, "success")
    assert data.outcome == "success"
    assert data.studies == ("Joly2012", "Sim2022")
    assert data.n_studies == 2
    assert counts(data) == {"Joly2012": (1, 6), "Sim2022": (16, 18)}
    assert data.events.dtype == np.int64 and data.totals.dtype == np.int64
    assert data.definitions == ("primary", "primary")
    assert data.notes == ()
    assert [r.line for r in data.rows] == [2, 4]


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [("severe_ae", {"Joly2012": (5, 6), "Sim2022": (1, 18)}),
     ("ivig_reaction", {"Joly2012": (2, 6), "Sim2022": (2, 18)}),
     ("rescue_steroids", {"Joly2012": (4, 6), "Sim2022": (6, 18)})],
)
def test_bundled_headline_counts(bundled, outcome, expected):
    assert counts(select_outcome(bundled, outcome)) == expected


def test_death_leaves_joly_out_not_zero(bundled):
    data = select_outcome(bundled, "death")
    assert data.studies == ("Sim2022",)
    assert counts(data) == {"Sim2022": (1, 18)}
    assert len(data.notes) == 1
    note = data.notes[0]
    assert "Joly2012" in note and "does not report" in note and "not counted as zero" in note


def test_early_improvement_leaves_joly_out(bundled):
    # Joly2012 HAS an early_improvement row, with reported=false. It is used, so Joly2012
    # is left out with a note; it does NOT fall back to its primary 1/6, which measures
    # something else.
    data = select_outcome(bundled, "success", definition="early_improvement")
    assert data.studies == ("Sim2022",)
    assert counts(data) == {"Sim2022": (18, 18)}
    assert data.definitions == ("early_improvement",)
    joly = [n for n in data.notes if n.startswith("Joly2012")]
    assert joly == ["Joly2012 does not report 'success' ('early_improvement'); left out, "
                    "not counted as zero"]
    assert "Sim2022: 'success' as 'early_improvement'" in data.notes


def test_evaluable_definition(bundled):
    data = select_outcome(bundled, "success", definition="evaluable")
    assert counts(data) == {"Joly2012": (1, 6), "Sim2022": (16, 17)}
    assert data.definitions == ("evaluable", "evaluable")
    assert all("'evaluable'" in n for n in data.notes)


def test_exclude_is_noted(bundled):
    data = select_outcome(bundled, "success", exclude=["Joly2012"])
    assert counts(data) == {"Sim2022": (16, 18)}
    assert data.notes == ("Joly2012 excluded by request",)
    assert check_exclusions(bundled, ["Sim2022", "Sim2022"]) == ("Sim2022",)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"outcome": "nope"}, r"unknown outcome 'nope'.*available: 'death'"),
     ({"outcome": "success", "definition": "nope"}, r"unknown definition 'nope'"),
     ({"outcome": "success", "exclude": ["Nope"]}, r"no such study.*'Joly2012' or 'Sim2022'"),
     ({"outcome": "success", "exclude": ["Joly2012", "Sim2022"]}, r"nothing is left"),
     ({"outcome": "death", "exclude": ["Sim2022"]}, r"no study is left for outcome 'death'")],
)
def test_select_outcome_errors(bundled, kwargs, match):
    outcome = kwargs.pop("outcome")
    with pytest.raises(DataError, match=match):
        select_outcome(bundled, outcome, **kwargs)


def test_to_frame(bundled):
    frame = bundled.to_frame()
    assert len(frame) == len(bundled.rows)
    assert {"study", "outcome", "definition", "primary", "reported", "events", "total",
            "quote"} <= set(frame.columns)


# ---- user tables -------------------------------------------------------------------------


def thirty_studies():
    rng = np.random.default_rng(20260101)
    totals = np.concatenate([[5, 200], rng.integers(5, 201, size=28)])
    events = rng.binomial(totals, 0.3)
    names = [f"Study{k:02d}" for k in rng.permutation(np.arange(1, 31))]
    years = rng.integers(1990, 2025, size=30)
    designs = rng.choice(["RCT", "cohort", "case series, retrospective"], size=30)
    return [(name, int(e), int(n), int(y), str(d))
            for name, e, n, y, d in zip(names, events, totals, years, designs, strict=True)]


def test_minimal_user_table(tmp_path):
    rows = thirty_studies()
    path = write_csv(tmp_path / "mine.csv", ["study", "events", "total", "year", "design"],
                     rows)
    table = load_table(path)
    assert table.path == path
    assert table.outcomes == (DEFAULT_OUTCOME,) == ("events",)
    assert table.definitions("events") == ("primary",)
    assert table.studies == tuple(r[0] for r in rows)
    assert table.study_info == {}
    data = select_outcome(table, "events")
    assert data.n_studies == 30
    assert data.studies == tuple(r[0] for r in rows)  # file order, not sorted
    assert data.events.tolist() == [r[1] for r in rows]
    assert data.totals.tolist() == [r[2] for r in rows]
    assert data.totals.min() == 5 and data.totals.max() == 200
    assert data.notes == ()
    assert [r.line for r in data.rows] == list(range(2, 32))
    for row, (_, _, _, year, design) in zip(data.rows, rows, strict=True):
        assert row.primary and row.reported
        assert dict(row.extra) == {"year": str(year), "design": design}


def test_outcome_and_definition_without_primary_column(tmp_path):
    path = write_csv(tmp_path / "defs.csv", ["study", "outcome", "definition", "events", "total"],
                     [("A", "success", "strict", 0, 10),
                      ("A", "success", "primary", 1, 10),
                      ("B", "success", "primary", 5, 20),
                      ("B", "death", "any", 1, 20),
                      ("C", "success", "strict", 2, 8)])
    table = load_table(path)
    assert table.outcomes == ("success", "death")
    assert table.definitions("success") == ("strict", "primary")

    data = select_outcome(table, "success")
    assert counts(data) == {"A": (1, 10), "B": (5, 20), "C": (2, 8)}
    assert data.definitions == ("primary", "primary", "strict")  # C's only row is primary

    strict = select_outcome(table, "success", definition="strict")
    assert counts(strict) == {"A": (0, 10), "B": (5, 20), "C": (2, 8)}
    assert strict.definitions == ("strict", "primary", "strict")
    assert "B does not report 'success' as 'strict'; its primary definition 'primary' " \
           "is used" in strict.notes

    death = select_outcome(table, "death")
    assert counts(death) == {"B": (1, 20)}
    assert "A has no row for 'death'; left out" in death.notes
    assert "C has no row for 'death'; left out" in death.notes


def test_several_definitions_none_primary(tmp_path):
    path = write_csv(tmp_path / "defs.csv", ["study", "outcome", "definition", "events", "total"],
                     [("A", "success", "primary", 1, 10),
                      ("B", "success", "strict", 0, 10),
                      ("B", "success", "lenient", 3, 10)])
    with pytest.raises(DataError, match=r"defs\.csv, line 3: study 'B', outcome 'success' has "
                                        r"several definitions \(strict, lenient\).*add a "
                                        r"'primary' column"):
        load_table(path)


def test_primary_column_picks_the_row(tmp_path):
    path = write_csv(tmp_path / "p.csv",
                     ["study", "definition", "primary", "events", "total"],
                     [("A", "strict", "false", 0, 10), ("A", "lenient", "true", 3, 10),
                      ("B", "strict", "", 1, 5)])
    data = select_outcome(load_table(path), "events")
    assert counts(data) == {"A": (3, 10), "B": (1, 5)}
    assert data.definitions == ("lenient", "strict")


def test_empty_counts_mean_not_reported(tmp_path):
    # data/README.md: "Leave events and total empty (not 0) for a study that does not
    # report the outcome" -- also without a 'reported' column.
    path = write_csv(tmp_path / "gap.csv", ["study", "events", "total"],
                     [("A", 1, 10), ("B", "", ""), ("C", 0, 4)])
    table = load_table(path)
    assert [r.reported for r in table.rows] == [True, False, True]
    data = select_outcome(table, "events")
    assert counts(data) == {"A": (1, 10), "C": (0, 4)}
    assert data.notes == ("B does not report 'events' ('primary'); left out, not counted "
                          "as zero",)
    with pytest.raises(DataError, match=r"line 3, column 'total': empty count"):
        load_table(write_csv(tmp_path / "half.csv", ["study", "events", "total"],
                             [("A", 1, 10), ("B", 2, "")]))


@pytest.mark.parametrize(("bom", "lineterminator"),
                         [(False, "\r\n"), (True, "\n"), (True, "\r\n"), (False, "\r")],
                         ids=["crlf", "bom", "bom-crlf", "cr"])
def test_line_endings_and_bom(tmp_path, bom, lineterminator):
    path = write_csv(tmp_path / "win.csv", ["study", "events", "total", "design"],
                     [("A", 1, 10, "RCT"), ("B", 2, 20, "cohort")],
                     lineterminator=lineterminator, bom=bom)
    table = load_table(path)
    assert table.studies == ("A", "B")
    assert [r.line for r in table.rows] == [2, 3]
    assert [dict(r.extra) for r in table.rows] == [{"design": "RCT"}, {"design": "cohort"}]
    assert counts(select_outcome(table, "events")) == {"A": (1, 10), "B": (2, 20)}


def test_whitespace_and_blank_lines(tmp_path):
    path = tmp_path / "loose.csv"
    path.write_text(" study , events , total \n\n A , 1 , 10 \n\nB,2,20\n\n", encoding="utf-8")
    table = load_table(path)
    assert table.studies == ("A", "B")
    assert [r.line for r in table.rows] == [3, 5]
    assert counts(select_outcome(table, "events")) == {"A": (1, 10), "B": (2, 20)}


@pytest.mark.parametrize(("text", "value"),
                         [("3.0", 3), ("3.", 3), (" 3 ", 3), ("+3", 3), ("0", 0), ("-0", 0)])
def test_whole_number_spellings(tmp_path, text, value):
    path = write_csv(tmp_path / "n.csv", ["study", "events", "total"],
                     [("A", text, "10.0"), ("B", 1, 10)])
    table = load_table(path)
    row = table.rows[0]
    assert row.events == value and isinstance(row.events, int)
    assert row.total == 10 and isinstance(row.total, int)
    assert counts(select_outcome(table, "events")) == {"A": (value, 10), "B": (1, 10)}


def test_large_counts_are_exact_up_to_what_the_models_hold(tmp_path):
    from bayes_dress.data import MAX_COUNT

    big = MAX_COUNT  # 2**31 - 1: the compiled models hold counts as 32-bit integers
    path = write_csv(tmp_path / "big.csv", ["study", "events", "total"], [("A", big, big)])
    row = load_table(path).rows[0]
    assert row.events == big and row.total == big
    too_big = write_csv(tmp_path / "bigger.csv", ["study", "events", "total"],
                        [("A", 1, MAX_COUNT + 1)])
    with pytest.raises(DataError, match=r"line 2, column 'total'.*too large \(at most "
                                        r"2,147,483,647\)"):
        load_table(too_big)


@pytest.mark.parametrize(
    ("events", "total", "match"),
    [("2.5", "10", "not a whole number"), ("abc", "10", "not a whole number"),
     ("-1", "10", "negative"), ("11", "10", r"events \(11\) > total \(10\)"),
     ("0", "0", "total is 0"), ("1e300", "1e301", "too large")],
)
def test_bad_counts_raise_with_line(tmp_path, events, total, match):
    path = write_csv(tmp_path / "bad.csv", ["study", "events", "total"],
                     [("A", 1, 10), ("B", events, total)])
    with pytest.raises(DataError, match=rf"bad\.csv, line 3.*{match}"):
        load_table(path)


def test_multiline_record_reports_its_first_line(tmp_path):
    path = write_csv(tmp_path / "ml.csv", ["study", "events", "total", "note"],
                     [("A", 1, 10, "two\nlines"), ("B", 1, 3, "x"), ("C", 5, 3, "y")])
    with pytest.raises(DataError, match=r"line 5: events \(5\) > total \(3\)"):
        load_table(path)
    good = write_csv(tmp_path / "ok.csv", ["study", "events", "total", "note"],
                     [("A", 1, 10, "two\nlines"), ("B", 1, 3, "x")])
    assert [r.line for r in load_table(good).rows] == [2, 4]


def test_missing_file():
    with pytest.raises(DataError, match="not found"):
        load_table("/nonexistent/table.csv")


# ---- property: what is written is what is read ---------------------------------------

study_ids = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]),
                    min_size=1, max_size=12).filter(lambda s: s == s.strip() and s != "")


@st.composite
def tables(draw):
    names = draw(st.lists(study_ids, min_size=1, max_size=40, unique=True))
    rows = []
    for name in names:
        total = draw(st.integers(1, 500))
        rows.append((name, draw(st.integers(0, total)), total))
    return rows


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=tables(), crlf=st.booleans(), bom=st.booleans())
def test_round_trip(rows, crlf, bom):
    with tempfile.TemporaryDirectory() as tmp:
        path = write_csv(Path(tmp) / "table.csv", ["study", "events", "total"], rows,
                         lineterminator="\r\n" if crlf else "\n", bom=bom,
                         # QUOTE_MINIMAL leaves a lone '\r' unquoted unless it is part
                         # of the line terminator, and any reader then splits the line.
                         quoting=csv.QUOTE_ALL)
        table = load_table(path)
    data = select_outcome(table, DEFAULT_OUTCOME)
    assert data.studies == tuple(r[0] for r in rows)
    assert data.events.tolist() == [r[1] for r in rows]
    assert data.totals.tolist() == [r[2] for r in rows]
    assert data.notes == ()


# ---- names typed by a user: columns, outcomes, definitions, studies (issue 16) -----------


def test_columns_mapping_matches_the_header_without_regard_to_case(tmp_path):
    path = write_csv(tmp_path / "site.csv", ["Site", "Responders", "Patients"],
                     [("A", 3, 10), ("B", 5, 12)])
    for spelling in ("site", " SITE ", "Site"):
        table = load_table(path, columns={"study": spelling})
        assert table.studies == ("A", "B")
    # The package's side too: 'Study' is study.
    assert load_table(path, columns={"Study": "site"}).studies == ("A", "B")
    trial = write_csv(tmp_path / "trial.csv", ["Trial", "Responders", "Patients"],
                      [("A", 3, 10)])
    assert load_table(trial, columns={"study": "trial"}).studies == ("A",)


def test_columns_mapping_suggests_the_nearest_header(tmp_path):
    path = write_csv(tmp_path / "trial.csv", ["Trial", "Responders", "Patients"],
                     [("A", 3, 10)])
    with pytest.raises(DataError, match=r"no column 'Trail' \(did you mean 'Trial'\?\) "
                                        r"\(found: Trial, Responders, Patients\)"):
        load_table(path, columns={"study": "Trail"})
    with pytest.raises(DataError, match=r"--columns stduy=\.\.\.: not a column bayes-dress "
                                        r"reads \(did you mean 'study'\?\); valid: study"):
        load_table(path, columns={"stduy": "Trial"})


def test_columns_mapping_prefers_the_exact_header_and_refuses_a_guess(tmp_path):
    path = write_csv(tmp_path / "two.csv", ["site", "Site", "events", "total"],
                     [("a", "A", 3, 10), ("b", "B", 5, 12)])
    assert load_table(path, columns={"study": "Site"}).studies == ("A", "B")
    assert load_table(path, columns={"study": "site"}).studies == ("a", "b")
    with pytest.raises(DataError, match=r"'site', 'Site' differ only in case"):
        load_table(path, columns={"study": "SITE"})


@pytest.mark.parametrize(("header", "hint"), [
    ("Study Name", "pass --columns 'study=Study Name'"),
    ("Studie", "pass --columns study=Studie"),
])
def test_missing_column_hint_is_quoted_for_the_shell(tmp_path, header, hint):
    path = write_csv(tmp_path / "named.csv", [header, "events", "total"], [("A", 3, 10)])
    with pytest.raises(DataError, match=re.escape(hint)):
        load_table(path)


def test_definitions_are_keyed_by_the_outcomes_own_names(bundled):
    outcomes = ("success", "severe_ae")
    assert check_definitions({"severe-ae": "any"}, outcomes) == {"severe_ae": "any"}
    assert check_definitions({"Severe-AE": "any"}, outcomes) == {"severe_ae": "any"}
    # Two spellings of one outcome: the later wins, as a flag overrides a config entry.
    assert check_definitions({"severe_ae": "any", "severe-ae": "ivig_attributed"},
                             outcomes) == {"severe_ae": "ivig_attributed"}
    data = select_analysis(bundled, ("severe_ae",),
                           definitions={"severe-ae": "IVIG-Attributed",
                                        "success": "evaluable"})
    assert data.single.definitions == ("ivig_attributed", "ivig_attributed")
    assert counts(data.single) == {"Joly2012": (2, 6), "Sim2022": (0, 18)}


@pytest.mark.parametrize(("definitions", "outcomes", "match"), [
    ({"sucess": "evaluable"}, ("success", "severe_ae"),
     r"--definition sucess=evaluable: outcome 'sucess' is not being analysed \(did you "
     r"mean 'success'\?\); outcomes: 'severe_ae' or 'success'"),
    ({"death": "any"}, ("success",),
     r"outcome 'death' is not being analysed; outcomes: 'success'"),
])
def test_definition_for_an_outcome_not_analysed_names_the_nearest(definitions, outcomes,
                                                                  match):
    with pytest.raises(DataError, match=match):
        check_definitions(definitions, outcomes)


def test_definition_names_match_with_hyphens_and_any_case(bundled):
    for spelling in ("early-improvement", "Early_Improvement"):
        data = select_outcome(bundled, "success", definition=spelling)
        assert "Sim2022: 'success' as 'early_improvement'" in data.notes
    with pytest.raises(DataError, match=r"unknown definition 'evalable'.*did you mean "
                                        r"'evaluable'"):
        select_outcome(bundled, "success", definition="evalable")


def test_excluded_studies_match_without_regard_to_case(bundled):
    assert check_exclusions(bundled, ["joly2012", "JOLY2012", "Joly2012"]) == ("Joly2012",)
    data = select_outcome(bundled, "success", exclude=["joly2012"])
    assert data.notes == ("Joly2012 excluded by request",)
    with pytest.raises(DataError, match=r"--exclude 'jolly2012': no such study in .*"
                                        r"\(did you mean 'Joly2012'\?\); studies: "):
        check_exclusions(bundled, ["jolly2012"])


def test_name_matching_rules():
    assert match_name("severe-ae", ["severe_ae"]) == "severe_ae"
    assert match_name(" Severe-AE ", ["severe_ae", "success"]) == "severe_ae"
    assert match_name("death", ["Death", "DEATH"]) is None  # which one? neither
    assert match_name("Death", ["Death", "death"]) == "Death"  # exact wins
    assert did_you_mean("sucess", ["success", "death"]) == " (did you mean 'success'?)"
    assert did_you_mean("SUCESS", ["success"]) == " (did you mean 'success'?)"
    assert did_you_mean("zzz", ["success"]) == ""
    assert "differing only in case: 'DEATH' or 'Death'" in did_you_mean("death",
                                                                         ["Death", "DEATH"])
    with pytest.raises(DataError, match=r"^unknown outcome 'sucess' in t\.csv \(did you mean "
                                        r"'success'\?\); available: 'death' or 'success'$"):
        resolve_name("sucess", ["success", "death"], what="outcome", where=" in t.csv")
