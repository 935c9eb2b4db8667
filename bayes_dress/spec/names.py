"""Matching the names a user types (outcomes, definitions, studies, columns) to the names
that exist, and the "did you mean" hint when one matches none (model parameters too).

A name matches exactly; else, as :func:`bayes_dress.errors.canonical_name` allows, with
hyphens for underscores; else without regard to case when that picks out one name
(``joly2012`` for ``Joly2012``, ``Severe-AE`` for ``severe_ae``). Names that differ only
in case are never merged: such a spelling matches nothing and the error says why.
When nothing matches, :func:`nearest` gives the closest name for a "did you mean" hint.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from bayes_dress.errors import DataError, choices, shorten


def fold(name: object) -> str:
    """``name`` as compared when case is ignored: stripped, case-folded, with hyphens as
    underscores."""
    return str(name).strip().casefold().replace("-", "_")


def match_name(name: str, valid: Iterable[str]) -> str | None:
    """The one valid name that ``name`` spells, or None.

    Parameters
    ----------
    name : str
        What the user typed.
    valid : iterable of str
        The names that exist.

    Returns
    -------
    str or None
        ``name`` itself if valid; the valid name it spells with hyphens for underscores;
        the one valid name equal to it without regard to case (and surrounding spaces);
        None if there is none, or several.
    """
    valid = list(valid)
    if name in valid:
        return name
    underscored = str(name).replace("-", "_")
    if underscored in valid:
        return underscored
    folded = [v for v in valid if fold(v) == fold(name)]
    return folded[0] if len(folded) == 1 else None


def nearest(name: str, valid: Iterable[str], *, cutoff: float = 0.6) -> str | None:
    """The valid name closest to ``name`` (compared without regard to case), or None
    when none is close."""
    folded: dict[str, str] = {}
    for v in valid:
        folded.setdefault(fold(v), v)
    close = difflib.get_close_matches(fold(name), list(folded), n=1, cutoff=cutoff)
    return folded[close[0]] if close else None


def did_you_mean(name: str, valid: Iterable[str]) -> str:
    """A hint naming the closest valid name, e.g. `` (did you mean 'phi'?)``, or ``""``.

    Names equal to ``name`` without regard to case are listed together: ``name`` matched
    none of them because it cannot choose between them.
    """
    valid = list(valid)
    same = sorted(v for v in valid if fold(v) == fold(name))
    if len(same) > 1:
        return (f" (names differing only in case: {choices(same)}; write one exactly as "
                "it is spelled)")
    close = nearest(name, valid)
    return f" (did you mean '{shorten(close)}'?)" if close else ""


def resolve_name(name: str, valid: Iterable[str], *, what: str, where: str = "",
                 listed: str = "available", error: type = DataError) -> str:
    """The valid name ``name`` spells (see :func:`match_name`).

    Parameters
    ----------
    name : str
    valid : iterable of str
    what, where, listed : str
        For the message: "unknown WHAT 'name'WHERE (did you mean ...?); LISTED: ...".
    error : type
        The :class:`~bayes_dress.errors.BayesDressError` subclass raised.

    Returns
    -------
    str

    Raises
    ------
    BayesDressError
        ``error``, one line, when ``name`` spells no valid name.
    """
    valid = list(valid)
    found = match_name(name, valid)
    if found is not None:
        return found
    # The message of errors.canonical_name, with a hint that also finds a misspelling
    # in another case ('SUCESS' for 'success').
    raise error(f"unknown {what} '{shorten(name)}'{where}{did_you_mean(name, valid)}; "
                f"{listed}: {choices(valid)}")
