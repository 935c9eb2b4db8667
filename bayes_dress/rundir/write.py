"""Writing run and sweep directories: one writer, atomic, with what reproduces them.

:class:`RunWriter` writes every file of a directory into a hidden temporary sibling and
moves it into place only when the block succeeds (:mod:`bayes_dress.rundir.atomic`).
CSV files neutralise cells a spreadsheet would execute: a text cell that begins with
``=``, ``+``, ``-``, ``@``, a tab, a carriage return or ``'`` gets a leading ``'`` (the
spreadsheet convention for "this is text", which spreadsheets do not display); the
reader takes it off again. netCDF and JSON files keep every name exact.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

import pandas as pd

from bayes_dress.models.base import STUDY_DIM
from bayes_dress.rundir import layout
from bayes_dress.rundir.atomic import atomic_directory, file_hashes

#: Packages whose versions are recorded in every manifest.
RECORDED_PACKAGES = ("bayes-dress", "pymc", "pytensor", "nutpie", "arviz", "arviz-base",
                     "arviz-stats", "arviz-plots", "numpy", "scipy", "pandas", "xarray",
                     "netcdf4", "click", "matplotlib", "dask", "distributed")
#: A text cell beginning with one of these is prefixed with a quote in CSV files.
SPREADSHEET_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "'")
#: netCDF variables are compressed (the shuffle filter groups bytes of like
#: significance, which zlib then finds alike).
NETCDF_COMPRESSION = {"zlib": True, "complevel": 2, "shuffle": True}
#: Per-study draws (a variable with a study dimension: a study's rate, its replicated
#: count) keep 23 significant bits, the precision of a float32 (relative error below
#: 6e-8, far under any Monte Carlo error), and are still read as float64: their random
#: low-order bits are what makes draws incompressible, and at 1,000 studies they are
#: nearly all of the file (about half the size). Hyperparameters and derived scalars
#: are kept whole.
PER_STUDY_QUANTIZE = {"significant_digits": 23, "quantize_mode": "BitRound"}


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages a result depends on."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in RECORDED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def provenance() -> dict:
    """What every manifest records about how and where it was made."""
    return {"created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
            "packages": package_versions(),
            "platform": {"system": platform.platform(), "machine": platform.machine(),
                         "cpu_count": os.cpu_count()}}


def default_run_dir(model: str, root: str | Path = "results") -> Path:
    """A new, time-stamped run directory under ``root`` that does not exist yet."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{layout.safe_name(model)}-{stamp}"
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with text cells that a spreadsheet would run as a formula prefixed with
    a quote (see the module docstring)."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = [f"'{v}" if isinstance(v, str) and v.startswith(SPREADSHEET_TRIGGERS)
                           else v for v in out[column]]
    return out


def json_text(payload) -> str:
    return json.dumps(payload, indent=2, default=str, ensure_ascii=False,
                      allow_nan=False) + "\n"


def _json_safe(value):
    """NaN and infinities as null (strict JSON), recursively."""
    if isinstance(value, float) and (value != value or abs(value) == float("inf")):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


class RunWriter:
    """Write a run or sweep directory atomically.

    Use as a context manager; files written inside the block appear at ``out`` only when
    it ends without an error, with ``manifest.json`` hashing every file but the plots.

    Parameters
    ----------
    out : str or Path
    overwrite : bool
        Replace an existing directory (atomically, once the new one is complete).
    """

    def __init__(self, out: str | Path, *, overwrite: bool = False):
        self.out = Path(out)
        self.overwrite = overwrite
        self.path: Path | None = None
        self._context = None

    def __enter__(self) -> RunWriter:
        self._context = atomic_directory(self.out, overwrite=self.overwrite)
        self.path = self._context.__enter__()
        return self

    def __exit__(self, *exc):
        return self._context.__exit__(*exc)

    def csv(self, name: str, frame: pd.DataFrame) -> Path:
        path = self.path / name
        spreadsheet_safe(frame).to_csv(path, index=False)
        return path

    def json(self, name: str, payload) -> Path:
        path = self.path / name
        path.write_text(json_text(_json_safe(payload)), encoding="utf-8")
        return path

    def netcdf(self, name: str, tree) -> Path:
        """A DataTree, every numeric variable compressed."""
        path = self.path / name
        encoding = {}
        for node in tree.subtree:
            variables = {v: {**NETCDF_COMPRESSION, **(
                PER_STUDY_QUANTIZE if array.dtype.kind == "f" and STUDY_DIM in array.dims
                else {})} for v, array in node.data_vars.items() if array.dtype.kind in "biuf"}
            if variables:
                encoding[node.path] = variables
        tree.to_netcdf(path, engine="netcdf4", encoding=encoding)
        return path

    def manifest(self, payload: dict, *, kind: str) -> Path:
        """Write ``manifest.json``: ``payload`` with the format version, provenance and
        the SHA-256 of every file written so far (plots excepted: they have their own
        index and can be redrawn)."""
        files = file_hashes(self.path, skip=(layout.PLOTS_DIR, layout.REPORT,
                                             layout.MANIFEST))
        return self.json(layout.MANIFEST, {"format": layout.FORMAT_VERSION, "kind": kind,
                                           **provenance(), **payload, "files": files})
