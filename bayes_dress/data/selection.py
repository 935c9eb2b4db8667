"""Selecting the counts an analysis uses from a study table.

An analysis fits one model to one or more outcomes of one table. For each outcome
:func:`select_outcome` picks one row per study (its primary definition unless another
is asked for), noting every choice; :func:`select_analysis` puts the outcomes of an
analysis side by side (:class:`AnalysisData`). A study that reports only some of an
analysis's outcomes enters those alone: its other cells are empty (0 of 0, marked as
not reported), which adds nothing to any likelihood.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from bayes_dress.data.table import Row, StudyTable
from bayes_dress.errors import DataError, choices, shorten
from bayes_dress.spec.names import did_you_mean, match_name, resolve_name

#: Joins the outcome names of a multi-outcome analysis into its name (outcome names
#: containing it are written with it escaped in file names: see bayes_dress.rundir).
ANALYSIS_JOIN = "+"


@dataclass(frozen=True)
class OutcomeData:
    """The counts of one outcome an analysis uses: one row per included study.

    Attributes
    ----------
    outcome : str
    studies : tuple of str
        Study ids, the ``study`` dimension of every model.
    events, totals : numpy.ndarray of int
    definitions : tuple of str
        The definition used for each study (its primary one unless another was asked for).
    notes : tuple of str
        Every choice made in selecting these counts: fallbacks to a primary
        definition, studies that do not report the outcome, exclusions.
    rows : tuple of Row
        The source rows, for provenance.
    """

    outcome: str
    studies: tuple[str, ...]
    events: np.ndarray
    totals: np.ndarray
    definitions: tuple[str, ...]
    notes: tuple[str, ...] = ()
    rows: tuple[Row, ...] = ()

    @property
    def n_studies(self) -> int:
        return len(self.studies)



@dataclass(frozen=True)
class AnalysisData:
    """The counts one analysis uses: one or more outcomes of one study table.

    Attributes
    ----------
    blocks : tuple of OutcomeData
        One per outcome, in the analysis's order; each holds only the studies that
        report that outcome.
    """

    blocks: tuple[OutcomeData, ...]

    def __post_init__(self):
        if not self.blocks:
            raise ValueError("an analysis needs at least one outcome")

    @property
    def outcomes(self) -> tuple[str, ...]:
        return tuple(b.outcome for b in self.blocks)

    @property
    def name(self) -> str:
        """The analysis's name: its outcome, or its outcomes joined by '+'."""
        return ANALYSIS_JOIN.join(self.outcomes)

    @property
    def single(self) -> OutcomeData:
        """The one outcome's counts (for a single-outcome analysis)."""
        if len(self.blocks) != 1:
            raise ValueError(f"analysis '{self.name}' has {len(self.blocks)} outcomes")
        return self.blocks[0]

    def block(self, outcome: str) -> OutcomeData:
        for block in self.blocks:
            if block.outcome == outcome:
                return block
        raise KeyError(outcome)

    @cached_property
    def studies(self) -> tuple[str, ...]:
        """Every study that reports at least one of the outcomes, in table order."""
        return tuple(dict.fromkeys(s for b in self.blocks for s in b.studies))

    @property
    def n_studies(self) -> int:
        return len(self.studies)

    def _matrix(self, attribute: str) -> np.ndarray:
        index = {s: i for i, s in enumerate(self.studies)}
        out = np.zeros((len(self.blocks), len(self.studies)), dtype=np.int64)
        for j, block in enumerate(self.blocks):
            columns = [index[s] for s in block.studies]
            out[j, columns] = getattr(block, attribute)
        return out

    @cached_property
    def events(self) -> np.ndarray:
        """Events, shape (outcome, study); 0 where a study does not report an outcome."""
        return self._matrix("events")

    @cached_property
    def totals(self) -> np.ndarray:
        """Patients, shape (outcome, study); 0 where a study does not report an outcome."""
        return self._matrix("totals")

    @property
    def reported(self) -> np.ndarray:
        """Whether each study reports each outcome, shape (outcome, study)."""
        return self.totals > 0

    @property
    def notes(self) -> tuple[str, ...]:
        if len(self.blocks) == 1:
            return self.blocks[0].notes
        return tuple(f"{b.outcome}: {n}" for b in self.blocks for n in b.notes)


def check_definitions(definitions: Mapping[str, str], outcomes: Iterable[str]
                      ) -> dict[str, str]:
    """Every ``--definition OUTCOME=NAME`` must name an outcome being analysed.

    Parameters
    ----------
    definitions : mapping
        Outcome -> definition, as the user wrote them.
    outcomes : iterable of str
        The outcomes being analysed.

    Returns
    -------
    dict
        ``definitions`` keyed by the outcomes' own names: an outcome is matched as
        ``--outcome`` is, with hyphens for underscores and without regard to case
        (``severe-ae`` is ``severe_ae``). Of two spellings of one outcome the later wins,
        as a flag overrides a config file's entry. The definition names are matched
        against the table by :func:`select_outcome`.

    Raises
    ------
    DataError
        A key names no outcome being analysed (with the nearest one, if any).
    """
    outcomes = tuple(outcomes)
    resolved: dict[str, str] = {}
    for given, definition in definitions.items():
        outcome = match_name(given, outcomes)
        if outcome is None:
            raise DataError(f"--definition {shorten(given, 40)}={shorten(definition, 40)}: "
                            f"outcome '{shorten(given, 40)}' is not being analysed"
                            f"{did_you_mean(given, outcomes)}; outcomes: {choices(outcomes)}")
        resolved.pop(outcome, None)  # so that the later spelling also comes last
        resolved[outcome] = definition
    return resolved


def check_exclusions(table: StudyTable, exclude: Iterable[str]) -> tuple[str, ...]:
    """Validate ``--exclude`` against the table's studies.

    Returns
    -------
    tuple of str
        The studies, spelled as in the table (a study is matched without regard to case
        when that picks out one study), each once.

    Raises
    ------
    DataError
        A name matches no study (with the nearest one, if any), or every study is left
        out.
    """
    resolved = []
    for given in exclude:
        study = match_name(given, table.studies)
        if study is None:
            raise DataError(f"--exclude '{shorten(given, 40)}': no such study in {table.path}"
                            f"{did_you_mean(given, table.studies)}; studies: "
                            f"{choices(table.studies)}")
        resolved.append(study)
    exclude = tuple(dict.fromkeys(resolved))
    if set(exclude) >= set(table.studies):
        raise DataError(f"--exclude removes every study in {table.path}; nothing is left "
                        "to analyse")
    return exclude


def select_outcome(table: StudyTable, outcome: str, *, definition: str | None = None,
                   exclude: Iterable[str] = ()) -> OutcomeData:
    """Pick the counts for one outcome: one row per study, under one definition.

    Parameters
    ----------
    table : StudyTable
    outcome : str
        An outcome in the table.
    definition : str, optional
        Use this definition for every study that has a row for it; a study without such
        a row falls back to its primary definition, and the fallback is noted. A study
        whose row says the definition is not reported (``reported=false``) is left out
        of this outcome, with a note, not counted as zero. Default: primary.
    exclude : iterable of str
        Study ids to leave out.

    Returns
    -------
    OutcomeData

    Raises
    ------
    DataError
        Unknown outcome, definition or study; no study left.
    """
    exclude = check_exclusions(table, exclude)
    outcome = resolve_name(outcome, table.outcomes, what="outcome",
                           where=f" in {table.path}", listed="available", error=DataError)
    if definition is not None:
        definition = resolve_name(definition, table.definitions(outcome),
                                  what="definition",
                                  where=f" for outcome '{outcome}' in {table.path}",
                                  listed="available", error=DataError)
    notes: list[str] = []
    chosen: list[Row] = []
    by_study = table.rows_by_study(outcome)
    for study in table.studies:
        rows = by_study.get(study, [])
        if not rows:
            notes.append(f"{study} has no row for '{outcome}'; left out")
            continue
        if study in exclude:
            notes.append(f"{study} excluded by request")
            continue
        row = next((r for r in rows if r.definition == definition), None)
        primary = next(r for r in rows if r.primary)
        if row is None:
            row = primary
            if definition is not None:
                notes.append(f"{study} does not report '{outcome}' as '{definition}'; its "
                             f"primary definition '{primary.definition}' is used")
        elif definition is not None and row is not primary and row.reported:
            notes.append(f"{study}: '{outcome}' as '{definition}'")
        if not row.reported:
            notes.append(f"{study} does not report '{outcome}' ('{row.definition}'); left "
                         "out, not counted as zero")
            continue
        chosen.append(row)
    if not chosen:
        raise DataError(f"no study is left for outcome '{outcome}' in {table.path}"
                        + (f" ({'; '.join(notes)})" if notes else ""))
    return OutcomeData(
        outcome=outcome,
        studies=tuple(r.study for r in chosen),
        events=np.array([r.events for r in chosen], dtype=np.int64),
        totals=np.array([r.total for r in chosen], dtype=np.int64),
        definitions=tuple(r.definition for r in chosen),
        notes=tuple(notes),
        rows=tuple(chosen),
    )


def select_analysis(table: StudyTable, outcomes: Sequence[str], *,
                    definitions: Mapping[str, str] | None = None,
                    exclude: Iterable[str] = ()) -> AnalysisData:
    """The counts of one analysis over ``outcomes`` (see :func:`select_outcome`).

    ``definitions`` may hold other analyses' outcomes too (a run's definitions, for each
    of its analyses); its keys are matched to ``outcomes`` as :func:`check_definitions`
    matches them, so ``severe-ae`` applies to ``severe_ae``.
    """
    definitions = {match_name(o, outcomes) or o: d for o, d in (definitions or {}).items()}
    exclude = tuple(exclude)
    return AnalysisData(tuple(select_outcome(table, o, definition=definitions.get(o),
                                             exclude=exclude) for o in outcomes))
