"""The committed primary analysis (results/primary) is what a fresh run gives, and the
committed results (results/primary, results/sensitivity) are the files their manifests
vouch for.

A fresh fit with the manifest's recorded config and seed must reproduce every row of the
committed summary.csv. With the same package versions the draws are identical; across
versions (a new nutpie or NumPy may change the random stream) they differ by Monte Carlo
error, so each statistic is compared within 5 standard errors of the difference of two
independent estimates: sqrt(2) x MCSE, with the MCSE of a mean from summary.csv and,
for a quantile, the MCSE of a quantile of a distribution with that SD, about
sd x sqrt(p (1 - p) / ESS) / density ~ 2.5 sd / sqrt(ESS) at the 2.5/97.5% points of a
normal (a generous bound for the skewed rates here). 5 of these SEs over ~100 numbers
would be exceeded by chance with probability ~6e-5.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayes_dress.fitting import run_fit
from bayes_dress.spec.config import config_from_dict

RESULTS = Path(__file__).resolve().parents[1] / "results" / "primary"
SENSITIVITY = RESULTS.parent / "sensitivity"
Z = 5.0
#: Files a manifest lists that .gitignore keeps out of the repository (the ~5 MB of
#: posterior draws, which `bayes-dress fit` recreates).
NOT_COMMITTED = ("posterior-*.nc",)


@pytest.fixture(scope="module")
def committed():
    if not (RESULTS / "manifest.json").is_file():
        pytest.fail("results/primary is missing: run `bayes-dress fit --report --out "
                    "results/primary` and commit it")
    manifest = json.loads((RESULTS / "manifest.json").read_text())
    return manifest, pd.read_csv(RESULTS / "summary.csv", keep_default_na=False,
                                 na_values=[""])


def test_committed_run_is_the_bundled_primary_analysis(committed):
    manifest, _ = committed
    from bayes_dress.data import load_table

    assert manifest["data"]["sha256"] == load_table().sha256, (
        "the bundled data changed since results/primary was written: rerun it")
    assert manifest["config"]["model"] == "beta_binomial"
    assert manifest["config"]["engine"] == "nuts"
    for name in ("summary.csv", "probabilities.csv", "diagnostics.json", "report.html",
                 "plots/index.json", "plots/forest-success.png"):
        assert (RESULTS / name).is_file(), name
    assert json.loads((RESULTS / "diagnostics.json").read_text())["passed"]


@pytest.mark.slow
def test_fresh_run_with_the_recorded_seed_reproduces_the_summary(committed):
    manifest, old = committed
    raw = dict(manifest["config"])
    raw.pop("data")  # the bundled table (its hash is checked above)
    raw = {k: v for k, v in raw.items() if v is not None}
    config = config_from_dict(raw)
    assert config.sampler.seed == manifest["seed"]
    new = run_fit(config).summary
    key = ["outcome", "parameter", "study"]
    old = old.assign(study=old["study"].fillna("")).set_index(key)
    new = new.assign(study=new["study"].fillna("")).set_index(key)
    assert list(new.index) == list(old.index)
    mean_se = np.sqrt(2.0) * old["mcse_mean"]
    quantile_se = np.sqrt(2.0) * 2.5 * old["sd"] / np.sqrt(old["ess_tail"].clip(lower=1))
    checks = {"mean": mean_se, "median": quantile_se, "q2.5": quantile_se,
              "q97.5": quantile_se}
    for column, se in checks.items():
        difference = (new[column] - old[column]).abs()
        bound = Z * se + 1e-12  # constants (a zero SD) must match exactly
        bad = difference > bound
        assert not bad.any(), (column, pd.DataFrame({"old": old[column], "new": new[column],
                                                     "bound": bound})[bad])


@pytest.mark.parametrize("directory", [RESULTS, SENSITIVITY], ids=["primary", "sensitivity"])
def test_committed_files_match_their_manifest_hashes(directory):
    """Every committed file the manifest lists is there, byte for byte: a file edited or
    regenerated without its manifest (or the reverse) fails here, without refitting."""
    files = json.loads((directory / "manifest.json").read_text())["files"]
    committed = {name: digest for name, digest in files.items()
                 if not any(fnmatch.fnmatch(name, p) for p in NOT_COMMITTED)}
    assert committed, f"{directory.name}/manifest.json lists no committed files"
    stale = [name for name, digest in committed.items()
             if not (directory / name).is_file()
             or hashlib.sha256((directory / name).read_bytes()).hexdigest() != digest]
    assert not stale, f"{directory.name}: missing or not as the manifest records: {stale}"
