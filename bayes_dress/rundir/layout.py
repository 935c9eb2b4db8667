"""The run directory's layout: file names, the format version, and names made safe.

A run directory (``bayes-dress fit``) holds, per analysis, ``posterior-NAME.nc``; for
the run, ``summary.csv``, ``probabilities.csv``, ``data_used.csv``,
``reference_comparison.csv`` (sampler runs), ``diagnostics.json`` and ``manifest.json``
(which hashes every one of them); ``plots/`` with ``plots/index.json`` (which hashes
the plots, so redrawing them leaves the manifest alone); and ``report.html`` once a
report is written. A sweep directory (``bayes-dress sensitivity``) holds
``sensitivity.csv``, ``probabilities.csv``, ``robustness.csv``, ``psense.csv``,
``diagnostics.json``, ``manifest.json`` and ``plots/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from bayes_dress.errors import OutputError

#: Written into every manifest; a reader refuses any other.
FORMAT_VERSION = 2
READABLE_VERSIONS = (2,)

MANIFEST = "manifest.json"
DIAGNOSTICS = "diagnostics.json"
SUMMARY = "summary.csv"
PROBABILITIES = "probabilities.csv"
DATA_USED = "data_used.csv"
COMPARISON = "reference_comparison.csv"
BENEFIT_RISK = "benefit_risk.csv"
PLOTS_DIR = "plots"
PLOT_INDEX = "index.json"
REPORT = "report.html"
SENSITIVITY = "sensitivity.csv"
ROBUSTNESS = "robustness.csv"
PSENSE = "psense.csv"

#: Characters kept as they are in a file-name part; every other character (and '%')
#: is percent-encoded, so different names never share a file name.
_SAFE = re.compile(r"[A-Za-z0-9._+-]")


def safe_name(name: str) -> str:
    """``name`` as a file-name part, injectively: letters, digits and ``. _ + -`` stay;
    every other character is percent-encoded as its UTF-8 bytes (``death/30d`` ->
    ``death%2F30d``, ``death 30d`` -> ``death%2030d``). A leading '.' is encoded too,
    so no name makes a hidden file."""
    out = []
    for i, char in enumerate(name):
        if _SAFE.fullmatch(char) and not (i == 0 and char == "."):
            out.append(char)
        else:
            out.extend(f"%{b:02X}" for b in char.encode("utf-8"))
    return "".join(out) or "%"


def analysis_part(outcomes: Iterable[str]) -> str:
    """The file-name part of an analysis of ``outcomes``: each outcome made safe (with
    '+' inside a name encoded), joined by '+'."""
    return "+".join(safe_name(o).replace("+", "%2B") for o in outcomes)


def posterior_file(outcomes: Iterable[str]) -> str:
    return f"posterior-{analysis_part(outcomes)}.nc"


def check_distinct_files(names: Iterable[str], *, what: str) -> None:
    """Refuse names whose files would collide where file names ignore case (macOS,
    Windows): percent-encoding keeps names apart, but not 'Death' from 'death'."""
    seen: dict[str, str] = {}
    for name in names:
        folded = safe_name(name).casefold()
        if folded in seen and seen[folded] != name:
            raise OutputError(f"{what} '{seen[folded]}' and '{name}' differ only in case: "
                              "their output files would overwrite each other on file "
                              "systems that ignore case; rename one")
        seen[folded] = name
