"""User-facing errors.

Every error a user can cause (bad data, bad spec, bad flag) is raised as a
:class:`BayesDressError` whose message is one line that says what is wrong and where.
The CLI prints that line and exits non-zero; it never shows a traceback for these.
"""

from __future__ import annotations


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


def choices(valid) -> str:
    """Format valid choices for an error message, e.g. ``'a', 'b' or 'c'``."""
    items = [f"'{v}'" for v in sorted(valid)]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]


class ReportError(BayesDressError):
    """A run or sensitivity directory cannot be read into a report."""


class RunDirError(BayesDressError):
    """A saved run directory is missing, incomplete or unreadable."""
