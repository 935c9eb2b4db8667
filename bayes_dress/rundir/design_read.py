"""Reading a design directory (``bayes-dress design``): the one reader, with the run
reader's checks and its one error type.

A design directory passes when its manifest is of a format this version reads and of
kind "design", and every file it lists is unchanged since it was written (SHA-256);
anything else is a one-line :class:`~bayes_dress.errors.RunDirError`. Tables are read
with the run reader's CSV rules (text columns stay text, the spreadsheet-safety quote
comes off). :meth:`SavedDesign.run_matches` says whether a run directory is the one the
design was made from (its manifest's SHA-256, as the design recorded it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pandas as pd

from bayes_dress.errors import RunDirError
from bayes_dress.rundir import layout
from bayes_dress.rundir.atomic import sha256
from bayes_dress.rundir.read import read_csv, read_manifest, read_plot_index, verified

KIND = "design"
DESIGN_JSON = "design.json"
#: Tables every design directory has.
REQUIRED_TABLES = ("map_summary.csv", "ess.csv", "verdicts.csv", "boundary.csv",
                   "boundaries.csv", "oc.csv")
#: Columns read back as text besides the run reader's (so that empty cells stay "").
TEXT = ("prior", "method", "warnings", "basis", "level", "message", "boundary", "design",
        "curve", "component", "critical", "note", "ess_level", "treatment_prior",
        "control_prior", "outcome")
WHAT = "design directory (written by bayes-dress design)"


def _directory(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise RunDirError(f"design directory '{path}' does not exist")
    if not path.is_dir():
        raise RunDirError(f"design directory '{path}' is not a directory")
    return path


def read_design_manifest(path: Path) -> dict:
    """``manifest.json`` of a design directory, of a readable format version."""
    return read_manifest(path, kind=KIND)


def _table(path: Path, manifest: dict, name: str) -> pd.DataFrame:
    frame = read_csv(verified(path, manifest, name))
    for column in TEXT:
        if column in frame.columns:
            frame[column] = frame[column].fillna("").astype(str)
    return frame


@dataclass
class SavedDesign:
    """A design directory, read and verified.

    Attributes
    ----------
    path : Path
    manifest : dict
    summary : dict
        ``design.json`` (verdicts, boundary, OC at null and alternative, ...).
    tables : dict of str to DataFrame
        Every CSV of the directory by file name (``map_summary.csv``, ``ess.csv``, ...).
    mixtures : dict of str to dict
        The RBesT JSON mixtures by file name (``map-OUTCOME.json``, ``robust-...``).
    """

    path: Path
    manifest: dict
    summary: dict
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    mixtures: dict[str, dict] = field(default_factory=dict)

    def table(self, name: str) -> pd.DataFrame | None:
        """A table by file name (``"scenarios.csv"``), or None when the design has none."""
        return self.tables.get(name)

    @property
    def outcome(self) -> str:
        return str(self.summary.get("outcome") or (self.manifest.get("design") or {})
                   .get("outcome", ""))

    @property
    def config(self) -> dict:
        return dict(self.manifest.get("config") or {})

    @property
    def run_record(self) -> dict:
        """What the design recorded about its run: path, manifest_sha256, engine."""
        return dict(self.manifest.get("run") or {})

    def run_matches(self, run_dir: str | Path) -> bool:
        """Whether ``run_dir``'s manifest is the one this design was made from."""
        file = Path(run_dir) / layout.MANIFEST
        try:
            return file.is_file() and sha256(file) == self.run_record.get("manifest_sha256")
        except OSError:
            return False

    @cached_property
    def plots(self) -> tuple[list[dict], list[str]]:
        """(plot index entries present and unchanged, notes on the others)."""
        return read_plot_index(self.path)


def load_design(path: str | Path) -> SavedDesign:
    """Read and verify a design directory written by ``bayes-dress design``.

    Raises
    ------
    RunDirError
        Not a design directory, another format version, a file missing or changed.
    """
    path = _directory(path)
    manifest = read_design_manifest(path)
    file = verified(path, manifest, DESIGN_JSON)
    try:
        summary = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise RunDirError(f"{file}: cannot be read as JSON ({err})") from None
    if not isinstance(summary, dict):
        raise RunDirError(f"{file}: expected a JSON object")
    for name in REQUIRED_TABLES:
        verified(path, manifest, name)
    tables = {name: _table(path, manifest, name) for name in sorted(manifest["files"])
              if name.endswith(".csv") and "/" not in name}
    mixtures = {}
    for name in sorted(manifest["files"]):
        if name.endswith(".json") and (name.startswith("map-") or name.startswith("robust-")):
            try:
                mixtures[name] = json.loads(verified(path, manifest, name).read_text(
                    encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValueError) as err:
                raise RunDirError(f"{path / name}: cannot be read as JSON ({err})") from None
    return SavedDesign(path=path, manifest=manifest, summary=summary, tables=tables,
                       mixtures=mixtures)
