"""Calibration on Dask: a real cluster (``dask scheduler`` and two ``dask worker``
processes on 127.0.0.1, started here as separate processes and always stopped) through
``bayes-dress calibrate --scheduler tcp://...``, and a LocalCluster (``--scheduler
local``): the ranks, verdicts and true values equal those of this process, to the bit.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("distributed")

from bayes_dress.calibration import (
    default_settings,
    load_calibration,
    plan_calibration,
    run_calibration,
)
from bayes_dress.executors import InlineExecutor
from bayes_dress.executors._selftest import start_dask_cluster
from bayes_dress.spec.config import RunConfig

REPLICATIONS = 8
SEED = 77


def command() -> list[str]:
    """``bayes-dress calibrate`` once registered on the group, else its module."""
    from bayes_dress.cli import main

    if "calibrate" in main.commands:
        return [sys.executable, "-m", "bayes_dress.cli", "calibrate"]
    return [sys.executable, "-m", "bayes_dress.calibration.cli"]


def plan():
    return plan_calibration(RunConfig(engine="nuts", sampler=dataclasses.replace(
        default_settings(), seed=SEED)), replications=REPLICATIONS)


@pytest.fixture(scope="module")
def local_result():
    with InlineExecutor() as executor:
        return run_calibration(plan(), executor=executor)


@pytest.fixture(scope="module")
def dask_cluster_address(tmp_path_factory):
    """A scheduler and two single-threaded workers, as separate processes; stopped,
    with everything they started, at the end, whatever happens."""
    with start_dask_cluster(tmp_path_factory.mktemp("dask-cluster"), workers=2) as address:
        yield address


def same_results(saved_ranks: pd.DataFrame, local_ranks: pd.DataFrame) -> None:
    assert len(saved_ranks) == len(local_ranks)
    for column in ("replication", "quantity", "study", "status"):
        assert list(saved_ranks[column]) == list(local_ranks[column]), column
    for column in ("true_value", "pit"):
        assert np.array_equal(saved_ranks[column].to_numpy(dtype=float),
                              local_ranks[column].to_numpy(dtype=float)), column
    for column in ("rank", "n_ranked", "thin"):
        assert np.array_equal(saved_ranks[column].to_numpy(dtype=float),
                              local_ranks[column].to_numpy(dtype=float)), column


@pytest.mark.slow
def test_calibrate_through_an_external_scheduler_matches_this_process(
        dask_cluster_address, local_result, tmp_path):
    out = tmp_path / "cal"
    done = subprocess.run(
        [*command(), "--replications", str(REPLICATIONS), "--seed", str(SEED),
         "--scheduler", dask_cluster_address, "--out", str(out), "--quiet"],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "DaskExecutor" in done.stdout and "results written to" in done.stdout
    saved = load_calibration(out)
    same_results(saved.ranks, local_result.ranks)
    assert list(saved.verdicts["verdict"]) == list(local_result.verdicts["verdict"])
    assert saved.manifest["executor"].startswith("DaskExecutor")
    # The cluster is still there for others (the command closed only its client).
    from bayes_dress.executors import DaskExecutor

    with DaskExecutor(dask_cluster_address) as executor:
        assert len(executor.workers()) == 2


@pytest.mark.slow
def test_calibrate_on_a_local_dask_cluster_matches_this_process(local_result):
    result = run_calibration(plan(), scheduler="local", jobs=2)
    assert result.executor.startswith("DaskExecutor")
    pd.testing.assert_frame_equal(result.ranks, local_result.ranks)
    pd.testing.assert_frame_equal(result.verdicts, local_result.verdicts)
