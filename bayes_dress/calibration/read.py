"""Reading a calibration directory (``bayes-dress calibrate``): the run reader's checks
and its one error type.

A calibration directory passes when its manifest is of a format this version reads and
of kind "calibration", and every file it lists is unchanged since it was written
(SHA-256); anything else is a one-line :class:`~bayes_dress.errors.RunDirError`. Tables
are read with the run reader's CSV rules (text columns stay text, the
spreadsheet-safety quote comes off); plots are checked against ``plots/index.json``
(a missing or changed plot is a note, not an error).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_dress.calibration.layout import KIND, RANKS, REPLICATIONS, VERDICTS
from bayes_dress.errors import RunDirError
from bayes_dress.rundir import layout
from bayes_dress.rundir.read import read_csv, read_plot_index, verified

WHAT = "calibration directory (written by bayes-dress calibrate)"
#: Columns read back as text besides the run reader's.
TEXT = ("analysis", "quantity", "outcome", "study", "label", "status", "verdict", "note",
        "failed_checks", "problems", "events")


def _directory(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise RunDirError(f"calibration directory '{path}' does not exist")
    if not path.is_dir():
        raise RunDirError(f"calibration directory '{path}' is not a directory")
    return path


def read_calibration_manifest(path: Path) -> dict:
    """``manifest.json`` of a calibration directory, of a readable format version."""
    file = path / layout.MANIFEST
    if not file.is_file():
        raise RunDirError(f"'{path}' is not a {WHAT}: it has no {layout.MANIFEST}")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise RunDirError(f"{file}: cannot be read as JSON ({err})") from None
    if not isinstance(manifest, dict):
        raise RunDirError(f"{file}: expected a JSON object, not a bayes-dress manifest")
    version = manifest.get("format", 1)
    if version not in layout.READABLE_VERSIONS:
        readable = ", ".join(map(str, layout.READABLE_VERSIONS))
        raise RunDirError(f"'{path}' is a format-{version} directory; this version of "
                          f"bayes-dress reads format {readable}: rerun bayes-dress "
                          "calibrate to remake it")
    if manifest.get("kind") != KIND:
        raise RunDirError(f"'{path}' is not a {WHAT}: its manifest says it is a "
                          f"'{manifest.get('kind')}' directory")
    if not isinstance(manifest.get("files"), dict):
        raise RunDirError(f"{file}: 'files' must map file names to SHA-256 hashes")
    for key in ("priors", "simulate_priors", "model", "analyses", "sampler"):
        if manifest.get(key) is not None and not isinstance(manifest[key], dict):
            raise RunDirError(f"{file}: '{key}' must be a JSON object")
    return manifest


def _table(path: Path, manifest: dict, name: str) -> pd.DataFrame:
    frame = read_csv(verified(path, manifest, name))
    for column in TEXT:
        if column in frame.columns:
            frame[column] = frame[column].fillna("").astype(str)
    return frame


@dataclass
class SavedCalibration:
    """A calibration directory, verified, read on demand."""

    path: Path
    manifest: dict
    plot_notes: list[str] = field(default_factory=list)

    @cached_property
    def ranks(self) -> pd.DataFrame:
        return _table(self.path, self.manifest, RANKS)

    @cached_property
    def verdicts(self) -> pd.DataFrame:
        frame = _table(self.path, self.manifest, VERDICTS)
        for column in ("inside_95_band", "inside_verdict_band"):
            if column in frame.columns:
                frame[column] = frame[column].map(
                    lambda v: str(v).strip().lower() in ("true", "1"))
        return frame

    @cached_property
    def replications(self) -> pd.DataFrame:
        return _table(self.path, self.manifest, REPLICATIONS)

    @cached_property
    def diagnostics(self) -> dict:
        file = verified(self.path, self.manifest, layout.DIAGNOSTICS)
        try:
            payload = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise RunDirError(f"{file}: cannot be read as JSON ({err})") from None
        if not isinstance(payload, dict):
            raise RunDirError(f"{file}: expected a JSON object")
        return payload

    @cached_property
    def plots(self) -> list[dict]:
        entries, notes = read_plot_index(self.path)
        self.plot_notes.extend(notes)
        return entries

    # -- what the manifest says ---------------------------------------------------------
    @property
    def engine(self) -> str:
        return str(self.manifest.get("engine", ""))

    @property
    def model_name(self) -> str:
        return str((self.manifest.get("model") or {}).get("name", ""))

    @property
    def n_replications(self) -> int:
        return int(self.manifest.get("replications") or 0)

    @property
    def priors(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in (self.manifest.get("priors") or {}).items()}

    @property
    def simulate_priors(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in
                (self.manifest.get("simulate_priors") or {}).items()}

    @property
    def calibrated(self) -> bool:
        return bool(len(self.verdicts)) and bool(
            (self.verdicts["verdict"] == "calibrated").all())

    def pit(self, analysis: str, label: str) -> np.ndarray:
        """The PIT values of one quantity (NaN for replications not fitted)."""
        ranks = self.ranks
        mine = ranks[(ranks["analysis"] == analysis) & (ranks["label"] == label)]
        return mine["pit"].to_numpy(dtype=float)


def load_calibration(path: str | Path) -> SavedCalibration:
    """A calibration directory, its manifest and every table checked on reading.

    Raises
    ------
    RunDirError
        Not a calibration directory, another format version, or a file changed or
        missing since it was written.
    """
    path = _directory(path)
    saved = SavedCalibration(path=path, manifest=read_calibration_manifest(path))
    for name in (RANKS, VERDICTS, REPLICATIONS, layout.DIAGNOSTICS):
        verified(path, saved.manifest, name)
    return saved
