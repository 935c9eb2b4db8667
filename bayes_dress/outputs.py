"""Writing a run directory, atomically, with what is needed to reproduce it.

Files are written to a hidden sibling directory first and moved into place only when
every file is complete, so an interrupted run leaves nothing behind, and an existing
run directory is replaced only when the caller says so (and then only at the very end).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import re
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path

import pandas as pd
import xarray as xr

from bayes_dress.crosscheck import Z_BOUND
from bayes_dress.diagnostics import EBFMI_MIN, ESS_PER_CHAIN_MIN, RHAT_MAX, checks_to_records
from bayes_dress.errors import OutputError
from bayes_dress.exact import GRID_TOLERANCE
from bayes_dress.fitting import FitResult, OutcomeFit
from bayes_dress.spec import get_model_spec

#: Packages whose versions are recorded in every manifest.
RECORDED_PACKAGES = ("bayes-dress", "pymc", "pytensor", "nutpie", "arviz", "arviz-base",
                     "arviz-stats", "arviz-plots", "numpy", "scipy", "pandas", "xarray",
                     "netcdf4", "click", "matplotlib")


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages a result depends on."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in RECORDED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def default_run_dir(model: str, root: str | Path = "results") -> Path:
    """A new, time-stamped run directory under ``root`` that does not exist yet."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{model}-{stamp}"
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def check_destination(out: Path, *, overwrite: bool) -> None:
    """Fail early, before any fitting, if ``out`` cannot be written as asked."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"'{out}' exists and is not a directory")
    if out.exists() and not overwrite:
        raise OutputError(f"results directory '{out}' already exists; pass --overwrite to "
                          "replace it, or choose another --out")
    parent = next((p for p in out.absolute().parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise OutputError(f"cannot create '{out}': '{parent}' is a file, not a directory")
    if parent is not None and not os.access(parent, os.W_OK):
        raise OutputError(f"cannot create '{out}': '{parent}' is not writable")


def safe_name(name: str) -> str:
    """``name`` as a file-name part: anything but letters, digits, '.', '-' and '_' -> '_'."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


@contextlib.contextmanager
def atomic_directory(out: Path, *, overwrite: bool) -> Iterator[Path]:
    """Yield a temporary directory that becomes ``out`` only if the block succeeds."""
    check_destination(out, overwrite=overwrite)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
    except OSError as err:
        raise OutputError(f"cannot create '{out}': {err.strerror}") from None
    old = None
    try:
        yield tmp
        if out.exists():
            old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(out, old)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and old.exists() and not out.exists():
            os.replace(old, out)  # put the previous run back
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def file_hashes(directory: Path) -> dict[str, str]:
    """SHA-256 of every file below ``directory``, by its relative POSIX path."""
    return {p.relative_to(directory).as_posix(): _sha256(p)
            for p in sorted(directory.rglob("*")) if p.is_file()}


def provenance() -> dict:
    """What every manifest records about how and where it was made."""
    return {"created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
            "packages": package_versions(),
            "platform": {"system": platform.platform(), "machine": platform.machine(),
                         "cpu_count": os.cpu_count()}}


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` (UTF-8) via a unique temporary sibling moved into place
    with :func:`os.replace`, so a reader never sees half a file; the temporary file is
    removed if anything fails (and the error re-raised)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _json(path: Path, payload) -> None:
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")


def data_used(result: FitResult) -> pd.DataFrame:
    """The counts each outcome's fit used, with their provenance."""
    rows = []
    for fit in result.fits.values():
        for row in fit.data.rows:
            rows.append({"outcome": fit.outcome, "study": row.study,
                         "definition": row.definition, "primary": row.primary,
                         "events": row.events, "total": row.total,
                         "quote": row.extra.get("quote", ""),
                         "location": row.extra.get("location", ""),
                         "note": row.extra.get("note", "")})
    return pd.DataFrame(rows)


def diagnostics_payload(result: FitResult) -> dict:
    outcomes = {}
    for outcome, fit in result.fits.items():
        entry = {"passed": not fit.failures, "engine": fit.engine,
                 "checks": checks_to_records(fit.checks)}
        if fit.exact is not None:
            entry["exact_engine"] = {"grid_points": fit.exact.grid_points,
                                     "grid_error": fit.exact.grid_error if fit.engine ==
                                     "exact" else None,
                                     "seconds": round(fit.exact.seconds, 4)}
        if fit.comparison is not None:
            entry["nuts_minus_exact_in_mcse"] = fit.comparison.drop(
                columns="outcome").to_dict(orient="records")
        outcomes[outcome] = entry
    return {
        "passed": not result.failures,
        "thresholds": {"r_hat_max": RHAT_MAX, "ess_per_chain_min": ESS_PER_CHAIN_MIN,
                       "divergences_max": 0, "tree_depth_saturation_max": 0,
                       "ebfmi_min": EBFMI_MIN, "exact_agreement_max_abs_z": Z_BOUND,
                       "exact_grid_error_max": GRID_TOLERANCE},
        "outcomes": outcomes,
    }


def manifest_payload(result: FitResult, files: dict[str, str]) -> dict:
    config = result.config
    spec = get_model_spec(config.model)
    return {
        **provenance(),
        "engine": config.engine,
        "seed": config.sampler.seed,
        "config": config.to_dict(),
        "model": {"name": spec.name, "title": spec.title, "equations": list(spec.equations)},
        "priors": {name: str(p) for name, p in next(iter(result.fits.values())).priors.items()},
        "data": {"path": str(result.table.path), "sha256": result.table.sha256},
        "outcomes": {o: {"studies": list(f.data.studies),
                         "definitions": list(f.data.definitions),
                         "events": f.data.events.tolist(), "totals": f.data.totals.tolist(),
                         "notes": f.notes}
                     for o, f in result.fits.items()},
        "wall_time_seconds": round(result.wall_time, 3),
        "files": files,
    }


#: What a ``marginals-OUTCOME.nc`` file holds (its ``posterior_kind`` attribute).
MARGINALS_KIND = (
    "exact marginal quantiles, not joint draws: draw i of each quantity (and study) is the "
    "quantile at (i + 0.5) / N of that quantity's exact marginal posterior, so draws of "
    "different quantities must not be combined; summaries, densities and tail "
    "probabilities of one quantity at a time are valid")


def marginals_tree(fit: OutcomeFit) -> xr.DataTree:
    """An exact fit's tree as saved: marginal quantiles, labelled as such."""
    tree = fit.tree.copy()
    tree.attrs["posterior_kind"] = MARGINALS_KIND
    tree["posterior"].attrs["posterior_kind"] = MARGINALS_KIND
    return tree


def write_run(result: FitResult, out: str | Path, *, overwrite: bool = False,
              plot: Callable[[FitResult, Path], object] | None = None) -> Path:
    """Write a complete run directory for ``result``.

    Parameters
    ----------
    result : FitResult
    out : str or Path
        The run directory. It must not exist unless ``overwrite``.
    overwrite : bool
        Replace an existing directory, once the new one is complete.
    plot : callable, optional
        ``plot(result, directory)``, called once the fit files are in ``directory``;
        default :func:`bayes_dress.plots.plot_fit` (``plots/`` with PNG, SVG and
        ``index.json``).

    Returns
    -------
    Path
        ``out``.
    """
    out = Path(out)
    if plot is None:
        from bayes_dress.plots import plot_fit as plot
    with atomic_directory(out, overwrite=overwrite) as tmp:
        result.summary.to_csv(tmp / "summary.csv", index=False)
        result.probabilities.to_csv(tmp / "probabilities.csv", index=False)
        data_used(result).to_csv(tmp / "data_used.csv", index=False)
        for outcome, fit in result.fits.items():
            if fit.engine == "nuts":
                fit.tree.to_netcdf(tmp / f"posterior-{safe_name(outcome)}.nc",
                                   engine="netcdf4")
            else:
                marginals_tree(fit).to_netcdf(tmp / f"marginals-{safe_name(outcome)}.nc",
                                              engine="netcdf4")
        comparisons = [f.comparison for f in result.fits.values() if f.comparison is not None]
        if comparisons:
            pd.concat(comparisons, ignore_index=True).to_csv(tmp / "exact_comparison.csv",
                                                             index=False)
        plot(result, tmp)  # after the fit files: the plots are drawn from them
        _json(tmp / "diagnostics.json", diagnostics_payload(result))
        _json(tmp / "manifest.json", manifest_payload(result, file_hashes(tmp)))
    return out
