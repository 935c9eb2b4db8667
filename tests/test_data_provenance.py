"""Provenance and integrity checks for the bundled data tables in ``data/``.

These tests deliberately do not import ``bayes_dress``: they check the CSV
files directly so that the data can be validated on its own.

The quote checks need the source papers (plain-text extractions), which are
not copied into the project.  They are looked up in ``$BAYES_DRESS_SEEDS`` if
that variable is set, otherwise in ``<repo>/../shared/seeds``; when the folder
is absent those tests are skipped.  The structural checks and pinned counts
run everywhere.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"

STUDIES_COLUMNS = [
    "study",
    "citation",
    "doi",
    "design",
    "background_steroids",
    "ivig_dose_reported",
    "n_considered",
    "n_enrolled",
    "seed_file",
    "dose_quote",
    "enrolled_quote",
]
OUTCOMES_COLUMNS = [
    "study",
    "outcome",
    "definition",
    "primary",
    "reported",
    "events",
    "total",
    "quote",
    "location",
    "note",
]


def _read(name: str) -> pd.DataFrame:
    # Read everything as text and keep empty cells as "" (not NaN), so that an
    # empty events/total is distinguishable from a written zero.
    return pd.read_csv(DATA / name, dtype=str, keep_default_na=False)


STUDIES = _read("studies.csv")
OUTCOMES = _read("outcomes.csv")


def _seeds_dir() -> Path:
    env = os.environ.get("BAYES_DRESS_SEEDS")
    return Path(env) if env else ROOT.parent / "shared" / "seeds"


def _normalise(text: str) -> str:
    # The papers are PDF/HTML extractions with hard line breaks (and, in one
    # case, page breaks) in the middle of sentences, plus non-breaking spaces
    # (e.g. "n = 2" in Joly 2012).  Collapse every run of whitespace, including
    # Unicode whitespace such as U+00A0, to a single ASCII space on BOTH the
    # paper and the quote before matching; nothing else is altered, so dashes,
    # quotes and other characters must match exactly.
    return re.sub(r"\s+", " ", text).strip()


@pytest.fixture(scope="module")
def papers() -> dict[str, str]:
    seeds = _seeds_dir()
    if not seeds.is_dir():
        pytest.skip(
            f"source papers not found at {seeds} (they are not shipped with the "
            "project); set BAYES_DRESS_SEEDS to the folder holding the seed .txt files"
        )
    texts = {}
    for study, seed_file in zip(STUDIES["study"], STUDIES["seed_file"], strict=True):
        path = seeds / seed_file
        if not path.is_file():
            pytest.skip(f"seed file {path} for study {study} is missing")
        texts[study] = _normalise(path.read_text(encoding="utf-8"))
    return texts


# --------------------------------------------------------------------------
# Quotes stand verbatim in the papers (need the seeds)
# --------------------------------------------------------------------------

_OUTCOME_QUOTES = [
    pytest.param(r.study, r.quote, id=f"{r.study}-{r.outcome}-{r.definition}")
    for r in OUTCOMES.itertuples()
    if r.quote.strip()
]
_STUDY_QUOTES = [
    pytest.param(r.study, getattr(r, col), id=f"{r.study}-{col}")
    for r in STUDIES.itertuples()
    for col in ("dose_quote", "enrolled_quote")
]


@pytest.mark.parametrize(("study", "quote"), _OUTCOME_QUOTES)
def test_outcome_quote_is_verbatim(papers: dict[str, str], study: str, quote: str) -> None:
    assert _normalise(quote) in papers[study], f"quote not found in {study}: {quote!r}"


@pytest.mark.parametrize(("study", "quote"), _STUDY_QUOTES)
def test_study_quote_is_verbatim(papers: dict[str, str], study: str, quote: str) -> None:
    assert quote.strip(), f"{study}: empty dose/enrolled quote"
    assert _normalise(quote) in papers[study], f"quote not found in {study}: {quote!r}"


# --------------------------------------------------------------------------
# Structural checks (no seeds needed)
# --------------------------------------------------------------------------


def test_columns_exact() -> None:
    assert list(STUDIES.columns) == STUDIES_COLUMNS
    assert list(OUTCOMES.columns) == OUTCOMES_COLUMNS


def test_studies_unique_and_complete() -> None:
    assert STUDIES["study"].is_unique
    for col in ("citation", "doi", "design", "background_steroids", "seed_file"):
        assert (STUDIES[col].str.strip() != "").all(), f"empty {col} in studies.csv"
    for value in STUDIES["n_enrolled"]:
        assert value.isdigit() and int(value) > 0
    for considered, enrolled in zip(STUDIES["n_considered"], STUDIES["n_enrolled"], strict=True):
        if considered:
            assert considered.isdigit() and int(considered) >= int(enrolled)


def test_boolean_columns() -> None:
    for col in ("primary", "reported"):
        bad = OUTCOMES.loc[~OUTCOMES[col].isin(["true", "false"]), col]
        assert bad.empty, f"{col} must be 'true' or 'false', got {sorted(set(bad))}"


def test_no_duplicate_rows() -> None:
    key = ["study", "outcome", "definition"]
    dup = OUTCOMES[OUTCOMES.duplicated(key, keep=False)]
    assert dup.empty, f"duplicate (study, outcome, definition):\n{dup[key]}"


def test_exactly_one_primary_per_study_outcome() -> None:
    counts = (
        OUTCOMES.assign(is_primary=OUTCOMES["primary"] == "true")
        .groupby(["study", "outcome"])["is_primary"]
        .sum()
    )
    bad = counts[counts != 1]
    assert bad.empty, f"(study, outcome) without exactly one primary row:\n{bad}"


def test_unreported_rows_have_no_counts() -> None:
    unreported = OUTCOMES[OUTCOMES["reported"] == "false"]
    for r in unreported.itertuples():
        label = f"{r.study}/{r.outcome}/{r.definition}"
        assert r.events == "" and r.total == "", f"{label}: unreported row must leave counts empty"
        assert r.quote == "", f"{label}: unreported row must have no quote"
        assert r.note.strip(), f"{label}: unreported row needs a note explaining the gap"


def test_reported_rows_have_valid_counts() -> None:
    reported = OUTCOMES[OUTCOMES["reported"] == "true"]
    for r in reported.itertuples():
        label = f"{r.study}/{r.outcome}/{r.definition}"
        assert r.events.isdigit() and r.total.isdigit(), f"{label}: counts must be integers"
        events, total = int(r.events), int(r.total)
        assert total > 0, f"{label}: total must be positive"
        assert 0 <= events <= total, f"{label}: need 0 <= events <= total"
        assert r.quote.strip(), f"{label}: reported row needs a supporting quote"
        assert r.location.strip(), f"{label}: reported row needs a location"


def test_outcome_studies_are_known() -> None:
    unknown = set(OUTCOMES["study"]) - set(STUDIES["study"])
    assert not unknown, f"studies in outcomes.csv missing from studies.csv: {unknown}"


def test_totals_do_not_exceed_enrolment() -> None:
    enrolled = dict(zip(STUDIES["study"], STUDIES["n_enrolled"].astype(int), strict=True))
    reported = OUTCOMES[OUTCOMES["reported"] == "true"]
    for r in reported.itertuples():
        assert int(r.total) <= enrolled[r.study], f"{r.study}/{r.outcome}/{r.definition}"


# --------------------------------------------------------------------------
# Pinned headline counts: catches accidental edits to the tables
# --------------------------------------------------------------------------

PINNED = {
    # (study, outcome, definition): (events, total); None = not reported
    ("Joly2012", "success", "primary"): (1, 6),
    ("Sim2022", "success", "primary"): (16, 18),
    ("Joly2012", "success", "evaluable"): (1, 6),
    ("Sim2022", "success", "evaluable"): (16, 17),
    ("Joly2012", "success", "partial_or_complete"): (2, 6),
    ("Sim2022", "success", "partial_or_complete"): (16, 18),
    ("Joly2012", "success", "early_improvement"): None,
    ("Sim2022", "success", "early_improvement"): (18, 18),
    ("Joly2012", "severe_ae", "any"): (5, 6),
    ("Sim2022", "severe_ae", "any"): (1, 18),
    ("Joly2012", "severe_ae", "ivig_attributed"): (2, 6),
    ("Sim2022", "severe_ae", "ivig_attributed"): (0, 18),
    ("Joly2012", "death", "any"): None,
    ("Sim2022", "death", "any"): (1, 18),
    ("Joly2012", "ivig_reaction", "any"): (2, 6),
    ("Sim2022", "ivig_reaction", "any"): (2, 18),
    ("Joly2012", "rescue_steroids", "any"): (4, 6),
    ("Sim2022", "rescue_steroids", "any"): (6, 18),
}

PINNED_PRIMARY = {
    ("Joly2012", "success"): "primary",
    ("Sim2022", "success"): "primary",
    ("Joly2012", "severe_ae"): "any",
    ("Sim2022", "severe_ae"): "any",
    ("Joly2012", "death"): "any",
    ("Sim2022", "death"): "any",
    ("Joly2012", "ivig_reaction"): "any",
    ("Sim2022", "ivig_reaction"): "any",
    ("Joly2012", "rescue_steroids"): "any",
    ("Sim2022", "rescue_steroids"): "any",
}


@pytest.mark.parametrize(
    ("key", "expected"),
    [pytest.param(k, v, id="-".join(k)) for k, v in PINNED.items()],
)
def test_pinned_counts(key: tuple[str, str, str], expected: tuple[int, int] | None) -> None:
    study, outcome, definition = key
    sel = OUTCOMES[
        (OUTCOMES["study"] == study)
        & (OUTCOMES["outcome"] == outcome)
        & (OUTCOMES["definition"] == definition)
    ]
    assert len(sel) == 1, f"row {key} missing"
    r = sel.iloc[0]
    if expected is None:
        assert r["reported"] == "false"
        assert r["events"] == "" and r["total"] == ""
    else:
        assert r["reported"] == "true"
        assert (int(r["events"]), int(r["total"])) == expected


@pytest.mark.parametrize(
    ("key", "definition"),
    [pytest.param(k, v, id="-".join(k)) for k, v in PINNED_PRIMARY.items()],
)
def test_pinned_primary_definition(key: tuple[str, str], definition: str) -> None:
    study, outcome = key
    sel = OUTCOMES[
        (OUTCOMES["study"] == study)
        & (OUTCOMES["outcome"] == outcome)
        & (OUTCOMES["primary"] == "true")
    ]
    assert list(sel["definition"]) == [definition]


def test_pinned_study_sizes() -> None:
    s = STUDIES.set_index("study")
    assert s.loc["Joly2012", "n_considered"] == "10"
    assert s.loc["Joly2012", "n_enrolled"] == "6"
    assert s.loc["Sim2022", "n_considered"] == ""
    assert s.loc["Sim2022", "n_enrolled"] == "18"
    assert s.loc["Joly2012", "background_steroids"] == "none"
    assert s.loc["Sim2022", "background_steroids"] == "systemic corticosteroids"
