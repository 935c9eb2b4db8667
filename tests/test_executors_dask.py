"""DaskExecutor on a LocalCluster and on a real two-worker cluster started here
(``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1): results equal the
inline ones, keys are compiled on few workers, a task whose worker dies is retried once
and then reported, an unreachable scheduler is a one-line error, and Ctrl-C stops a
local cluster's workers. Toy tasks come from bayes_dress.executors._selftest, which the
separate worker processes can import."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from bayes_dress.errors import BayesDressError
from bayes_dress.executors import DaskExecutor, InlineExecutor, dask_cluster, get_executor
from bayes_dress.executors._selftest import (
    ToyContext,
    ToyResult,
    ToyTask,
    start_dask_cluster,
    toy_failed,
    toy_fn,
)


def keyed_tasks(keys=4, per_key=3, compile_seconds=0.2):
    """``per_key`` tasks for each of ``keys`` keys, interleaved: fewer per key than it
    takes to duplicate a key, so each key should be compiled on one worker only."""
    return [ToyTask(seed=i, group=f"k{i % keys}", compile_seconds=compile_seconds)
            for i in range(keys * per_key)]


def inline(tasks):
    with InlineExecutor() as executor:
        return executor.execute(tasks, toy_fn, context_factory=ToyContext)


def compiles(results):
    return sum(r.compiled for r in results)


def crash_tasks(tmp_path):
    return [*keyed_tasks(2, 3, 0), ToyTask(seed=100, crash=f"once:{tmp_path / 'died'}"),
            ToyTask(seed=101, crash="always"), ToyTask(seed=102, crash="raise"),
            *[ToyTask(seed=i, group="k0") for i in range(6, 10)]]


def check_crash_results(tasks, results):
    by_seed = {t.seed: r for t, r in zip(tasks, results, strict=True)}
    assert isinstance(by_seed[100], ToyResult)  # retried, and fine the second time
    status, seed, reason = by_seed[101]
    assert (status, seed) == ("failed", 101) and "died twice" in reason
    status, seed, reason = by_seed[102]
    assert (status, seed) == ("failed", 102) and "ValueError" in reason
    healthy = [t for t in tasks if not t.crash]
    assert [by_seed[t.seed] for t in healthy] == inline(healthy)


# -- LocalCluster -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def local_dask():
    with DaskExecutor("local", workers=2) as executor:
        yield executor


@pytest.mark.slow
def test_local_cluster_matches_inline_and_routes_by_key(local_dask):
    tasks = keyed_tasks()
    seen = []
    results = local_dask.execute(tasks, toy_fn, context_factory=ToyContext,
                                 progress=lambda r, done, total: seen.append(done))
    assert results == inline(tasks)
    assert seen == list(range(1, len(tasks) + 1))
    assert compiles(results) <= 4 + 1  # each key on one worker (one duplicate allowed)
    # The workers keep their contexts, and the executor where each key is held.
    again = local_dask.execute(tasks[::-1], toy_fn, context_factory=ToyContext)
    assert again == results[::-1] and compiles(again) == 0


@pytest.mark.slow
def test_local_cluster_retries_a_dead_worker_once_then_reports(local_dask, tmp_path):
    tasks = crash_tasks(tmp_path)
    start = time.monotonic()
    results = local_dask.execute(tasks, toy_fn, context_factory=ToyContext,
                                 on_failure=toy_failed)
    assert time.monotonic() - start < 45
    check_crash_results(tasks, results)


# -- a real cluster -----------------------------------------------------------------------

def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_dead(pids, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def dask_cluster_address(tmp_path_factory):
    """A scheduler and two single-threaded workers, as separate processes (with
    distributed's default config: allowed-failures 3, work stealing on); the scheduler's
    address. Stopped, with everything they started, at the end."""
    with start_dask_cluster(tmp_path_factory.mktemp("dask-cluster"), workers=2) as address:
        yield address


@pytest.mark.slow
def test_external_cluster_matches_inline_and_compiles_each_key_on_few_workers(
        dask_cluster_address):
    tasks = keyed_tasks()
    expected = inline(tasks)
    with get_executor(dask_cluster_address) as executor:
        assert isinstance(executor, DaskExecutor)
        results = executor.execute(tasks, toy_fn, context_factory=ToyContext)
        assert results == expected
        per_key = Counter(t.group for t, r in zip(tasks, results, strict=True) if r.compiled)
        assert compiles(results) <= 4 + 2, per_key
        assert len({r.worker for r in results}) == 2  # both workers were used
        again = executor.execute(tasks, toy_fn, context_factory=ToyContext)
        assert again == expected and compiles(again) == 0
    # Closing the executor left the scheduler and its workers alone; a new client's
    # run finds the workers' contexts (registered again, idempotently) still warm.
    with DaskExecutor(dask_cluster_address) as executor:
        assert len(executor.workers()) == 2
        third = executor.execute(tasks, toy_fn, context_factory=ToyContext)
        assert third == expected
        assert compiles(third) <= 4  # at most once more per key: routing learns anew


@pytest.mark.slow
def test_external_cluster_retries_a_dead_worker_once_then_reports(
        dask_cluster_address, tmp_path):
    # The scheduler has distributed's default allowed-failures (3), so it reruns a task
    # itself; the executor fails it at its second dead worker. One task per call: a
    # task queued behind it on both dying workers would be failed with it (see
    # DaskExecutor), which the local-cluster test covers.
    start = time.monotonic()
    with DaskExecutor(dask_cluster_address) as executor:
        always = [ToyTask(seed=101, crash="always")]
        status, seed, reason = executor.execute(always, toy_fn, context_factory=ToyContext,
                                                on_failure=toy_failed)[0]
        assert (status, seed) == ("failed", 101) and "died twice" in reason
        once = [ToyTask(seed=100, crash=f"once:{tmp_path / 'died'}")]
        assert executor.execute(once, toy_fn, context_factory=ToyContext) == inline(once)
        assert (tmp_path / "died").exists()
        # Both workers came back (their nannies restarted them) and work as before.
        tasks = keyed_tasks(2, 3, 0)
        assert executor.execute(tasks, toy_fn, context_factory=ToyContext) == inline(tasks)
    assert time.monotonic() - start < 55


EXTERNAL_PARENT = textwrap.dedent("""
    import signal, sys
    from bayes_dress.executors import DaskExecutor
    from bayes_dress.executors._selftest import ToyContext, ToyTask, toy_fn

    signal.signal(signal.SIGINT, signal.default_int_handler)
    tasks = [ToyTask(seed=i, group=str(i), work_seconds=2) for i in range(8)]
    try:
        with DaskExecutor(sys.argv[1]) as executor:
            print("connected", flush=True)
            executor.execute(tasks, toy_fn, context_factory=ToyContext)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(130)
""")


@pytest.mark.slow
def test_ctrl_c_leaves_an_external_scheduler_and_its_workers_alone(
        dask_cluster_address, tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(EXTERNAL_PARENT)
    process = subprocess.Popen([sys.executable, str(script), dask_cluster_address],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "connected"
        time.sleep(1)  # two tasks running, two queued
        start = time.monotonic()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
        assert time.monotonic() - start < 10
        assert process.returncode == 130 and "interrupted" in out, err[-2000:]
    finally:
        process.kill()
        process.wait(timeout=10)
    # The cancelled tasks were not rerun; the running ones end within their 2 s.
    with DaskExecutor(dask_cluster_address) as executor:
        assert len(executor.workers()) == 2
        tasks = keyed_tasks(2, 2, 0)
        assert executor.execute(tasks, toy_fn, context_factory=ToyContext) == inline(tasks)


def test_an_unreachable_scheduler_is_a_one_line_error(monkeypatch):
    monkeypatch.setattr(dask_cluster, "CONNECT_SECONDS", 2.0)
    address = f"tcp://127.0.0.1:{free_port()}"
    start = time.monotonic()
    with pytest.raises(BayesDressError) as info:
        get_executor(address)
    assert time.monotonic() - start < 15
    message = str(info.value)
    assert "\n" not in message and address in message and "within 2 s" in message


# -- Ctrl-C -------------------------------------------------------------------------------

LOCAL_PARENT = textwrap.dedent("""
    import signal, sys
    from bayes_dress.executors import DaskExecutor
    from bayes_dress.executors._selftest import ToyContext, ToyTask, toy_fn

    def main():
        signal.signal(signal.SIGINT, signal.default_int_handler)
        tasks = [ToyTask(seed=i, group=str(i), work_seconds=60, announce=True)
                 for i in range(2)]
        try:
            with DaskExecutor("local", workers=2) as executor:
                executor.execute(tasks, toy_fn, context_factory=ToyContext)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(130)

    if __name__ == "__main__":
        main()
""")


@pytest.mark.slow
def test_ctrl_c_stops_a_local_cluster(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(LOCAL_PARENT)
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 45
        while len(set(pids)) < 2 and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            if line.startswith("worker-pid"):
                pids.append(int(line.split()[1]))
        assert len(set(pids)) == 2, process.stderr.read()[-2000:] if not line else pids
        start = time.monotonic()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
        assert time.monotonic() - start < 20
        assert process.returncode == 130 and "interrupted" in out, err[-2000:]
        assert not wait_dead(pids, 10)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
