"""User-facing errors.

Every error a user can cause (bad data, bad spec, bad flag) is raised as a
:class:`BayesDressError` whose message is one line that says what is wrong and where.
The CLI prints that line and exits non-zero; it never shows a traceback for these.
"""

from __future__ import annotations

import difflib


class BayesDressError(Exception):
    """Base class for errors caused by user input, reported as one line."""


class DataError(BayesDressError):
    """A study table is malformed or a data selection is impossible."""


class SpecError(BayesDressError):
    """A model spec, prior, config file or option is invalid."""


class ImproperPosteriorError(BayesDressError):
    """The posterior implied by an improper prior and these data does not integrate."""


class OutputError(BayesDressError):
    """A results directory cannot be written as asked."""


#: Longest piece of user input echoed in an error message.
ECHO_LIMIT = 80


def shorten(text: object, limit: int = ECHO_LIMIT) -> str:
    """``text`` cut to ``limit`` characters (with the count of the rest), with control
    characters escaped, for echoing user input in a one-line message."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit:,} more characters)"


def choices(valid) -> str:
    """Format valid choices for an error message, e.g. ``'a', 'b' or 'c'``."""
    items = [f"'{v}'" for v in sorted(valid)]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]


class RunDirError(BayesDressError):
    """A saved run or sweep directory is missing, incomplete, of another format version,
    or unreadable (the one error of :mod:`bayes_dress.rundir`'s reader)."""


#: The report reads runs through the run-directory reader: one error type for both.
ReportError = RunDirError


def canonical_name(name: str, valid, *, what: str, where: str = "",
                   listed: str = "valid", error: type[BayesDressError] = SpecError) -> str:
    """``name`` if valid; a hyphenated spelling of a valid underscored name is accepted;
    otherwise a one-line error naming the nearest valid name and listing them all
    ("unknown WHAT 'name'WHERE (did you mean ...?); LISTED: ...")."""
    valid = list(valid)
    if name in valid:
        return name
    underscored = str(name).replace("-", "_")
    if underscored in valid:
        return underscored
    close = difflib.get_close_matches(underscored, valid, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise error(f"unknown {what} '{shorten(name)}'{where}{hint}; {listed}: {choices(valid)}")
