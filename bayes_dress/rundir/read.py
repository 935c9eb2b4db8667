"""Reading run and sweep directories: the one reader, with one error type.

Everything that reads a saved run (``plot``, ``report``, ``design``) goes through
:func:`load_run` or :func:`load_sweep`. The reader checks what the writer promised: a
manifest of a format version it reads, and every file it opens unchanged since it was
written (its SHA-256 as the manifest records it). A run that passes is exactly what
bayes-dress wrote, so its contents need no second validation; anything else is a
one-line :class:`~bayes_dress.errors.RunDirError` saying which file and why. Posterior
files are read only when asked for (a report needs none).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_dress.errors import RunDirError, SpecError
from bayes_dress.rundir import layout
from bayes_dress.rundir.atomic import sha256
from bayes_dress.rundir.write import SPREADSHEET_TRIGGERS

#: Columns read as text, so that a study called "NA" or "None" stays a name.
TEXT_COLUMNS = ("analysis", "outcome", "parameter", "study", "definition", "quote",
                "location", "note", "scenario", "label", "varied", "model", "priors",
                "excluded", "quantity", "status", "problems", "variable", "diagnosis",
                "verdict", "min_scenario", "max_scenario", "crosses_0.5", "crosses_0.95",
                "not_counted", "statistic", "kind", "event")


def _directory(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise RunDirError(f"{what} '{path}' does not exist")
    if not path.is_dir():
        raise RunDirError(f"{what} '{path}' is not a directory")
    return path


def read_manifest(path: Path, *, kind: str) -> dict:
    """``manifest.json`` of a directory of ``kind`` ("run", "sweep", "design" or
    "calibration"), of a readable format version."""
    what = {"run": "run directory (written by bayes-dress fit)",
            "sweep": "sensitivity directory (written by bayes-dress sensitivity)",
            "design": "design directory (written by bayes-dress design)",
            "calibration": "calibration directory (written by bayes-dress calibrate)",
            }[kind]
    file = path / layout.MANIFEST
    if not file.is_file():
        raise RunDirError(f"'{path}' is not a {what}: it has no {layout.MANIFEST}")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise RunDirError(f"{file}: cannot be read as JSON ({err})") from None
    if not isinstance(manifest, dict):
        raise RunDirError(f"{file}: expected a JSON object, not a bayes-dress manifest")
    version = manifest.get("format", 1)
    if version not in layout.READABLE_VERSIONS:
        readable = ", ".join(map(str, layout.READABLE_VERSIONS))
        command = {"run": "fit", "sweep": "sensitivity", "design": "design",
                   "calibration": "calibrate"}[kind]
        raise RunDirError(f"'{path}' is a format-{version} directory; this version of "
                          f"bayes-dress reads format {readable}: rerun bayes-dress "
                          f"{command} to remake it")
    if manifest.get("kind") != kind:
        raise RunDirError(f"'{path}' is not a {what}: its manifest says it is a "
                          f"'{manifest.get('kind')}' directory")
    if not isinstance(manifest.get("files"), dict):
        raise RunDirError(f"{file}: 'files' must map file names to SHA-256 hashes")
    _check_types(file, manifest, MANIFEST_TYPES)
    return manifest


#: The JSON type of each manifest key a reader uses, by dotted path ("*": every key of an
#: object); parents before children. Absent or null keys are not checked. The manifest
#: holds the other files' hashes but none of its own, so its shape is checked here.
MANIFEST_TYPES = {
    "analyses": "object", "analyses.*": "object", "analyses.*.outcomes": "list of strings",
    "analyses.*.notes": "list", "analyses.*.file": "string",
    "data": "object", "data.path": "string", "data.sha256": "string",
    "config": "object", "config.model": "string", "config.sampler": "object",
    "config.definitions": "object", "config.exclude": "list of strings",
    "config.priors": "object", "primary_config": "object", "primary_config.model": "string",
    "model": "object", "model.name": "string", "model.title": "string",
    "model.equations": "list of strings", "priors": "object", "packages": "object",
    "platform": "object", "command": "list", "benefit_risk": "object",
}
_JSON_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "list": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "list of strings": lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v),
}


def _values_at(payload: dict, key: str) -> list[tuple[str, object]]:
    found: list[tuple[str, object]] = [("", payload)]
    for part in key.split("."):
        found = [(f"{name}.{k}" if name else str(k), v)
                 for name, parent in found if isinstance(parent, dict)
                 for k, v in (parent.items() if part == "*" else [(part, parent.get(part))])]
    return found


def _check_types(file: Path, payload: dict, types: dict[str, str]) -> None:
    for key, kind in types.items():
        for name, value in _values_at(payload, key):
            if value is not None and not _JSON_TYPES[kind](value):
                raise RunDirError(f"{file}: '{name}' must be a JSON {kind}, not "
                                  f"{type(value).__name__}")


def verified(path: Path, manifest: dict, name: str, *, required: bool = True) -> Path | None:
    """``path/name``, checked to be the file the manifest hashed."""
    file = path / name
    expected = manifest["files"].get(name)
    if expected is None:
        if required:
            raise RunDirError(f"'{path}' has no {name} in its manifest: not a complete "
                              "bayes-dress directory")
        return None
    if not file.is_file():
        hint = (" (posterior files are left out of copies that keep only tables and "
                "plots, such as the repository's results/: refit to make them)"
                if name.startswith("posterior-") else "")
        raise RunDirError(f"'{file}' is missing, although the manifest lists it{hint}")
    try:
        actual = sha256(file)
    except OSError as err:
        raise RunDirError(f"cannot read '{file}': {err.strerror or err}") from None
    if actual != expected:
        raise RunDirError(f"'{file}' was changed after it was written (its SHA-256 differs "
                          f"from the one in {layout.MANIFEST}); rerun to remake it")
    return file


def read_csv(file: Path) -> pd.DataFrame:
    """A CSV written by :class:`~bayes_dress.rundir.write.RunWriter`: text columns as
    text, with the spreadsheet-safety quote taken off."""
    try:
        frame = pd.read_csv(file, dtype=dict.fromkeys(TEXT_COLUMNS, str),
                            keep_default_na=False, na_values=[""])
    except (OSError, UnicodeDecodeError, pd.errors.ParserError,
            pd.errors.EmptyDataError) as err:
        raise RunDirError(f"{file}: cannot be read as CSV "
                          f"({str(err).splitlines()[0] if str(err) else type(err).__name__})"
                          ) from None
    for column in TEXT_COLUMNS:
        if column in frame.columns:
            frame[column] = [_unquoted(v) for v in frame[column].fillna("")]
    return frame


def _unquoted(value: str) -> str:
    if isinstance(value, str) and value.startswith("'") and value[1:].startswith(
            SPREADSHEET_TRIGGERS):
        return value[1:]
    return value


def _json_file(file: Path):
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise RunDirError(f"{file}: cannot be read as JSON ({err})") from None


def read_plot_index(path: Path) -> tuple[list[dict], list[str]]:
    """The entries of ``plots/index.json`` whose files exist and are unchanged, and notes
    on any that are not (plots are redrawable, so a missing one is a note, not an
    error)."""
    index_file = path / layout.PLOTS_DIR / layout.PLOT_INDEX
    if not index_file.is_file():
        return [], [f"{path.name} has no {layout.PLOTS_DIR}/{layout.PLOT_INDEX}: no plots "
                    "to show (bayes-dress plot draws them)"]
    try:
        entries = _json_file(index_file)
    except RunDirError as err:
        return [], [f"{err}: no plots to show (bayes-dress plot redraws them)"]
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        return [], [f"{index_file} is not a list of plot entries: no plots to show "
                    "(bayes-dress plot redraws them)"]
    kept, notes = [], []
    root = path.resolve()
    for entry in entries:
        name = str(entry.get("name", "?"))
        good = True
        for kind in ("png", "svg"):
            relative = entry.get(kind)
            if not isinstance(relative, str):
                good = False
                continue
            try:
                file = (root / relative).resolve()
                inside = file.is_relative_to(root) and file.is_file()
            except (OSError, ValueError):  # a NUL byte, or a path the system rejects
                inside = False
            if not inside:
                good = False
            elif entry.get(f"{kind}_sha256") not in (None, sha256(file)):
                good = False
        if good:
            kept.append(entry)
        else:
            notes.append(f"plot '{name}' is missing or changed since it was drawn; "
                         "bayes-dress plot redraws it")
    return kept, notes


@dataclass
class SavedAnalysis:
    """One analysis of a saved run; its posterior file is read on first use."""

    run: SavedRun
    name: str
    outcomes: tuple[str, ...]
    file_name: str

    @cached_property
    def tree(self):
        import xarray as xr

        file = verified(self.run.path, self.run.manifest, self.file_name)
        try:
            return xr.load_datatree(file)
        except (OSError, ValueError, RuntimeError, KeyError, TypeError) as err:
            raise RunDirError(f"cannot read '{file}': {str(err).splitlines()[0]}") from None

    @property
    def attrs(self) -> dict:
        return dict(self.tree.attrs)

    @property
    def engine(self) -> str:
        return str(self.attrs.get("engine", ""))

    @property
    def model_name(self) -> str:
        return str(self.run.manifest.get("model", {}).get("name", ""))

    @cached_property
    def model(self):
        """The model, or None when this version of bayes-dress does not know it (a
        plug-in registered in the process that wrote the run)."""
        from bayes_dress.models import get_model

        try:
            return get_model(self.model_name)
        except SpecError:
            return None

    @property
    def priors(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in (self.run.manifest.get("priors") or {}).items()}

    @cached_property
    def data(self):
        """The counts, rebuilt as an :class:`~bayes_dress.data.AnalysisData`."""
        from bayes_dress.data.selection import AnalysisData, OutcomeData

        tree = self.tree
        y = tree["observed_data"]["y"]
        n = tree["constant_data"]["n"]
        definitions = tree["constant_data"]["definition"]
        studies = [str(s) for s in y["study"].values]
        blocks = []
        for j, outcome in enumerate(str(o) for o in y["outcome"].values):
            totals = np.asarray(n.values[j], dtype=np.int64)
            keep = totals > 0
            blocks.append(OutcomeData(
                outcome=outcome, studies=tuple(s for s, k in zip(studies, keep, strict=True)
                                               if k),
                events=np.asarray(y.values[j], dtype=np.int64)[keep], totals=totals[keep],
                definitions=tuple(str(d) for d, k in zip(definitions.values[j], keep,
                                                         strict=True) if k)))
        return AnalysisData(tuple(blocks))

    def _reported(self) -> tuple[list[str] | None, list]:
        model = self.model
        if model is None:
            return None, []
        variables = [q.name for q in model.quantities if q.reported]
        exclude = []
        if len(self.outcomes) > 1:
            reported = self.data.reported
            exclude = [("theta", o, s) for j, o in enumerate(self.data.outcomes)
                       for i, s in enumerate(self.data.studies) if not reported[j, i]]
        return variables, exclude

    @cached_property
    def posterior(self):
        from bayes_dress.posterior.io import from_groups

        variables, exclude = self._reported()
        return from_groups(self.tree, outcomes=self.outcomes, variables=variables,
                           exclude=exclude)

    @cached_property
    def prior(self):
        """Prior draws (None when a prior was improper)."""
        from bayes_dress.posterior.draws import DrawsPosterior

        if "prior" not in self.tree.children:
            return None
        variables, exclude = self._reported()
        return DrawsPosterior(self.tree["prior"].to_dataset(), outcomes=self.outcomes,
                              variables=variables, exclude=exclude)


@dataclass
class SavedRun:
    """A run directory, read and verified."""

    path: Path
    manifest: dict
    diagnostics: dict
    summary: pd.DataFrame
    probabilities: pd.DataFrame
    data_used: pd.DataFrame
    comparison: pd.DataFrame | None = None
    benefit_risk: pd.DataFrame | None = None
    analyses: dict[str, SavedAnalysis] = field(default_factory=dict)

    @property
    def outcomes(self) -> list[str]:
        return [o for a in self.analyses.values() for o in a.outcomes]

    @property
    def engine(self) -> str:
        return str(self.manifest.get("engine", ""))

    @cached_property
    def plots(self) -> tuple[list[dict], list[str]]:
        """(plot index entries that are present and unchanged, notes on the others)."""
        return read_plot_index(self.path)

    def analysis_of(self, outcome: str) -> SavedAnalysis:
        for analysis in self.analyses.values():
            if outcome in analysis.outcomes:
                return analysis
        raise KeyError(outcome)


def load_run(path: str | Path) -> SavedRun:
    """Read and verify a run directory written by ``bayes-dress fit``.

    Raises
    ------
    RunDirError
        Not a run directory, another format version, a file missing or changed.
    """
    path = _directory(path, "run directory")
    manifest = read_manifest(path, kind="run")
    analyses_meta = manifest.get("analyses")
    if not isinstance(analyses_meta, dict) or not analyses_meta:
        raise RunDirError(f"{path / layout.MANIFEST}: lists no analyses")
    diagnostics = _json_file(verified(path, manifest, layout.DIAGNOSTICS))
    tables = {name: read_csv(verified(path, manifest, name))
              for name in (layout.SUMMARY, layout.PROBABILITIES, layout.DATA_USED)}
    optional = {name: verified(path, manifest, name, required=False)
                for name in (layout.COMPARISON, layout.BENEFIT_RISK)}
    run = SavedRun(path=path, manifest=manifest, diagnostics=diagnostics,
                   summary=tables[layout.SUMMARY],
                   probabilities=tables[layout.PROBABILITIES],
                   data_used=tables[layout.DATA_USED],
                   comparison=read_csv(optional[layout.COMPARISON])
                   if optional[layout.COMPARISON] else None,
                   benefit_risk=read_csv(optional[layout.BENEFIT_RISK])
                   if optional[layout.BENEFIT_RISK] else None)
    for name, meta in analyses_meta.items():
        if not isinstance(meta, dict) or not isinstance(meta.get("file"), str):
            raise RunDirError(f"{path / layout.MANIFEST}: analysis '{name}' has no file")
        run.analyses[str(name)] = SavedAnalysis(run, str(name),
                                                tuple(map(str, meta.get("outcomes", ()))),
                                                meta["file"])
    return run


@dataclass
class SavedSweep:
    """A sensitivity-sweep directory, read and verified."""

    path: Path
    manifest: dict
    sensitivity: pd.DataFrame
    probabilities: pd.DataFrame
    robustness: pd.DataFrame
    psense: pd.DataFrame | None
    diagnostics: dict
    extra: dict[str, pd.DataFrame] = field(default_factory=dict)

    @cached_property
    def plots(self) -> tuple[list[dict], list[str]]:
        return read_plot_index(self.path)


def load_sweep(path: str | Path) -> SavedSweep:
    """Read and verify a sweep directory written by ``bayes-dress sensitivity``."""
    path = _directory(path, "sensitivity directory")
    manifest = read_manifest(path, kind="sweep")
    tables = {name: read_csv(verified(path, manifest, name))
              for name in (layout.SENSITIVITY, layout.PROBABILITIES, layout.ROBUSTNESS)}
    psense = verified(path, manifest, layout.PSENSE, required=False)
    extra = {name: read_csv(verified(path, manifest, name))
             for name in manifest["files"] if name.endswith(".csv") and name not in
             (layout.SENSITIVITY, layout.PROBABILITIES, layout.ROBUSTNESS, layout.PSENSE)}
    return SavedSweep(path=path, manifest=manifest,
                      sensitivity=tables[layout.SENSITIVITY],
                      probabilities=tables[layout.PROBABILITIES],
                      robustness=tables[layout.ROBUSTNESS],
                      psense=read_csv(psense) if psense else None,
                      diagnostics=_json_file(verified(path, manifest, layout.DIAGNOSTICS)),
                      extra=extra)
