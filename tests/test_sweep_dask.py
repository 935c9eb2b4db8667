"""Sweeps beyond one machine: the same tables from this machine's processes, a Dask
LocalCluster and a real cluster (a ``dask scheduler`` and two ``dask worker`` processes on
127.0.0.1, started here as separate processes and stopped after)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

pytest.importorskip("distributed")

from bayes_dress.cli import main
from bayes_dress.executors._selftest import start_dask_cluster

TABLES = ("sensitivity.csv", "probabilities.csv", "robustness.csv")
SMALL_SWEEP = """
combine = "one_at_a_time"
[primary.sampler]
draws = 400
tune = 400
chains = 2
seed = 99
[dimensions]
model = ["beta_binomial", "logit_normal"]
leave_one_out = ["Joly2012"]
[dimensions.heterogeneity_prior]
beta_binomial = ["HalfNormal(0.5)", "HalfNormal(1)"]
"""


def sweep(out, *args):
    result = CliRunner().invoke(main, ["sensitivity", "--out", str(out), *map(str, args)])
    assert result.exit_code == 0, result.output + result.stderr
    return out


def same_tables(a, b):
    for name in TABLES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.mark.slow
def test_a_nuts_sweep_on_a_real_cluster_equals_the_local_one(tmp_path):
    spec = tmp_path / "sweep.toml"
    spec.write_text(SMALL_SWEEP)
    local = sweep(tmp_path / "local", "--config", spec)
    with start_dask_cluster(tmp_path / "cluster", workers=2) as address:
        assert address.startswith("tcp://127.0.0.1:")
        remote = sweep(tmp_path / "remote", "--config", spec, "--scheduler", address)
    same_tables(local, remote)


@pytest.mark.slow
def test_a_full_cross_on_a_local_cluster_equals_the_default_executor(tmp_path):
    default = sweep(tmp_path / "default", "--engine", "exact", "--combine", "cross")
    cluster = sweep(tmp_path / "cluster", "--engine", "exact", "--combine", "cross",
                    "--scheduler", "local")
    same_tables(default, cluster)
