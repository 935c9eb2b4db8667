"""The executor seam (bayes_dress.executors) on this machine: the inline and process
executors agree, keep compiles few by key affinity, retry a task whose worker died once,
report one that kills its worker every time, and stop cleanly on Ctrl-C, SIGTERM and
the death of their parent. Toy tasks come from bayes_dress.executors._selftest."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from bayes_dress.errors import BayesDressError
from bayes_dress.executors import (
    SCHEDULER_ENV,
    InlineExecutor,
    KeyAffinity,
    ProcessExecutor,
    TaskFailed,
    cpu_count,
    get_executor,
    resolve_scheduler,
)
from bayes_dress.executors._selftest import ToyContext, ToyResult, ToyTask, toy_failed, toy_fn

ROOT = Path(__file__).resolve().parents[1]


def toy_tasks(n=24, groups="abc", compile_seconds=0.05):
    return [ToyTask(seed=i, group=groups[i % len(groups)], compile_seconds=compile_seconds)
            for i in range(n)]


def compiles_by_key(results):
    """How many workers compiled each key, from the results' ``compiled`` flags."""
    return Counter(r.seed % 3 for r in results if r.compiled)


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


# -- the interface ------------------------------------------------------------------------

def test_import_pulls_in_neither_dask_nor_pymc():
    # The package's own __init__ is another module's business: load bayes_dress as a
    # bare namespace so that only the executors' imports are checked, with the heavy
    # libraries made unimportable.
    code = textwrap.dedent(f"""
        import sys, types, importlib.abc
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {{"dask", "distributed", "pymc", "numba",
                                           "pytensor", "nutpie", "arviz"}}:
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        package = types.ModuleType("bayes_dress")
        package.__path__ = [{str(ROOT / "bayes_dress")!r}]
        sys.modules["bayes_dress"] = package
        import bayes_dress.executors as ex
        with ex.get_executor(None, jobs=2) as executor:
            assert isinstance(executor, ex.ProcessExecutor)
        try:  # without distributed, asking for Dask is a one-line error
            ex.get_executor("local")
        except sys.modules["bayes_dress.errors"].BayesDressError as err:
            assert "distributed" in str(err), err
        else:
            raise AssertionError("no error without distributed")
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
    code = ("import sys, bayes_dress.executors; print(sorted(m for m in "
            "('dask', 'distributed', 'pymc', 'numba') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def test_get_executor_resolves_the_local_default():
    with get_executor(None, jobs=1) as executor:
        assert isinstance(executor, InlineExecutor)
    with get_executor(None, jobs=4, n_tasks=1) as executor:
        assert isinstance(executor, InlineExecutor)
    with get_executor("", jobs=3) as executor:
        assert isinstance(executor, ProcessExecutor) and executor.jobs == 3
    with get_executor(None, jobs=8, n_tasks=2) as executor:
        assert executor.jobs == 2
    with get_executor(None) as executor:
        expected = ProcessExecutor if cpu_count() > 1 else InlineExecutor
        assert isinstance(executor, expected)


def test_resolve_scheduler_prefers_flag_then_config_then_environment():
    env = {SCHEDULER_ENV: "tcp://env:8786"}
    assert resolve_scheduler("local", "tcp://cfg:1", environ=env) == "local"
    assert resolve_scheduler(None, "tcp://cfg:1", environ=env) == "tcp://cfg:1"
    assert resolve_scheduler(None, None, environ=env) == "tcp://env:8786"
    assert resolve_scheduler(" ", "", environ={SCHEDULER_ENV: " local "}) == "local"
    assert resolve_scheduler(None, None, environ={}) is None


def test_key_affinity_prefers_own_then_fresh_then_crowded_keys():
    affinity = KeyAffinity(duplicate_after=3)
    for index, key in enumerate(["a"] * 4 + ["b"] * 2 + [None]):
        affinity.add(index, key)
    assert affinity.next_for("w1") == 6  # a task needing nothing is anyone's own
    assert affinity.next_for("w2") == 0  # a fresh key: the one with most waiting
    assert affinity.next_for("w1") == 4  # the other fresh key
    assert affinity.next_for("w1") == 5  # its own
    assert affinity.next_for("w1") == 1  # nothing of its own or fresh: a is crowded (3)
    assert affinity.held["w1"] == {"a", "b"}
    assert affinity.next_for("w2") == 2  # its own
    assert affinity.next_for("w3") is None  # one a left, held by two busy workers
    affinity.forget("w1")
    affinity.forget("w2")
    assert affinity.next_for("w3") == 3 and len(affinity) == 0


def test_key_affinity_leaves_a_worker_idle_rather_than_duplicating_few_tasks():
    affinity = KeyAffinity(duplicate_after=3)
    for index in range(4):
        affinity.add(index, "a")
    assert affinity.next_for("w1") == 0
    assert affinity.next_for("w2") == 1  # 3 waiting: crowded, duplicated
    assert affinity.next_for("w3") is None  # 2 waiting: w1 and w2 will take them
    affinity.add(9, "a", first=True)
    assert affinity.next_for("w1") == 9


# -- results and routing ------------------------------------------------------------------

def test_inline_and_process_executors_give_identical_results():
    tasks = toy_tasks()
    seen = []
    with InlineExecutor() as inline:
        expected = inline.execute(tasks, toy_fn, context_factory=ToyContext,
                                  progress=lambda r, done, total: seen.append((done, total)))
    assert seen == [(i + 1, len(tasks)) for i in range(len(tasks))]
    assert [r.seed for r in expected] == list(range(len(tasks)))
    assert sum(r.compiled for r in expected) == 3  # one context: each key compiled once
    with ProcessExecutor(2) as executor:
        results = executor.execute(tasks, toy_fn, context_factory=ToyContext)
        assert results == expected and all(isinstance(r, ToyResult) for r in results)
        # Routing: a key is compiled on at most both workers, not per task.
        assert all(n <= 2 for n in compiles_by_key(results).values())
        assert sum(compiles_by_key(results).values()) <= 3 + 2
        # The workers and their contexts stay for the next call: no worker compiles a
        # key twice (it may compile one that only the other holds, if crowded).
        again = executor.execute(tasks[::-1], toy_fn, context_factory=ToyContext)
        assert again == expected[::-1]
        pairs = [(r.worker, r.seed % 3) for r in results + again if r.compiled]
        assert len(pairs) == len(set(pairs)) <= 6
        assert len(executor.worker_pids) == 2


def test_process_executor_keeps_a_key_on_one_worker_when_few_of_its_tasks_wait():
    # Two keys, three tasks each: each worker takes a key and keeps it.
    tasks = [ToyTask(seed=i, group="ab"[i % 2], compile_seconds=0.2) for i in range(6)]
    with ProcessExecutor(2) as executor:
        results = executor.execute(tasks, toy_fn, context_factory=ToyContext)
    assert sum(r.compiled for r in results) == 2
    workers = {g: {r.worker for r in results if r.seed % 2 == i} for i, g in enumerate("ab")}
    assert all(len(w) == 1 for w in workers.values()) and workers["a"] != workers["b"]


def test_a_raising_task_becomes_its_on_failure_result_everywhere():
    tasks = [ToyTask(seed=1), ToyTask(seed=2, crash="raise"), ToyTask(seed=3)]
    for executor in (InlineExecutor(), ProcessExecutor(2)):
        with executor:
            results = executor.execute(tasks, toy_fn, context_factory=ToyContext)
        assert isinstance(results[1], TaskFailed) and results[1].task == tasks[1]
        assert "ValueError" in results[1].reason and "on purpose" in results[1].reason
        assert results[0].seed == 1 and results[2].seed == 3


def test_process_executor_retries_a_task_whose_worker_died_once(tmp_path):
    tasks = toy_tasks(8, compile_seconds=0)
    tasks.insert(3, ToyTask(seed=99, crash=f"once:{tmp_path / 'died'}"))
    with InlineExecutor() as inline:
        expected = inline.execute([t for t in tasks if not t.crash], toy_fn,
                                  context_factory=ToyContext)
    start = time.monotonic()
    with ProcessExecutor(2) as executor:
        results = executor.execute(tasks, toy_fn, context_factory=ToyContext,
                                   on_failure=toy_failed)
    assert time.monotonic() - start < 20
    assert (tmp_path / "died").exists()
    assert isinstance(results[3], ToyResult) and results[3].seed == 99
    assert results[:3] + results[4:] == expected


def test_process_executor_reports_a_task_that_kills_every_worker():
    tasks = [*toy_tasks(6, compile_seconds=0), ToyTask(seed=66, crash="always"),
             *toy_tasks(6, compile_seconds=0)]
    start = time.monotonic()
    with ProcessExecutor(2) as executor:
        results = executor.execute(tasks, toy_fn, context_factory=ToyContext,
                                   on_failure=toy_failed)
        # The pool is whole again for the next call.
        assert executor.execute(tasks[:2], toy_fn, context_factory=ToyContext)[1].seed == 1
    assert time.monotonic() - start < 20
    status, seed, reason = results[6]
    assert (status, seed) == ("failed", 66)
    assert "died twice" in reason and "exit code 17" in reason
    assert all(isinstance(r, ToyResult) for i, r in enumerate(results) if i != 6)


def test_process_executor_replaces_a_worker_that_died_between_calls():
    tasks = toy_tasks(6, compile_seconds=0)
    with ProcessExecutor(2) as executor:
        first = executor.execute(tasks, toy_fn, context_factory=ToyContext)
        victim = executor.worker_pids[0]
        os.kill(victim, signal.SIGKILL)
        assert not wait_dead([victim], 5)
        assert executor.execute(tasks, toy_fn, context_factory=ToyContext) == first
        assert victim not in executor.worker_pids


# -- stopping -----------------------------------------------------------------------------

#: A program that runs two long toy tasks (with different keys, so one per worker) in a
#: ProcessExecutor; the tasks print their worker's pid when they start. Ctrl-C raises
#: KeyboardInterrupt there even if this process was started with SIGINT ignored (as
#: background jobs of a shell are).
PARENT = textwrap.dedent("""
    import signal, sys
    from bayes_dress.executors import ProcessExecutor
    from bayes_dress.executors._selftest import ToyContext, ToyTask, toy_fn

    signal.signal(signal.SIGINT, signal.default_int_handler)
    tasks = [ToyTask(seed=i, group=str(i), work_seconds=60, announce=True) for i in range(2)]
    try:
        with ProcessExecutor(2) as executor:
            executor.execute(tasks, toy_fn, context_factory=ToyContext)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(130)
""")


def start_parent(tmp_path):
    """Start PARENT and return it with its workers' pids, once both tasks run."""
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    pids = []
    deadline = time.monotonic() + 45
    while len(pids) < 2 and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        if line.startswith("worker-pid"):
            pids.append(int(line.split()[1]))
    if len(set(pids)) < 2:
        process.kill()
        pytest.fail(f"the workers did not start: {process.communicate()[1][-2000:]}")
    return process, pids


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupting_the_parent_stops_its_workers(tmp_path, signum, code):
    process, pids = start_parent(tmp_path)
    try:
        start = time.monotonic()
        process.send_signal(signum)
        out, err = process.communicate(timeout=15)
        assert time.monotonic() - start < 10
        assert process.returncode == code, err
        assert ("interrupted" in out) == (signum == signal.SIGINT)
        assert "Traceback" not in err
        assert not wait_dead(pids, 5)
    finally:
        process.kill()
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_workers_exit_soon_after_their_parent_is_killed(tmp_path):
    process, pids = start_parent(tmp_path)
    try:
        process.kill()  # SIGKILL: no cleanup runs in the parent
        process.wait(timeout=10)
        assert not wait_dead(pids, 5)
    finally:
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_malformed_scheduler_address_is_a_one_line_error():
    pytest.importorskip("distributed")
    with pytest.raises(BayesDressError, match="not a Dask scheduler address") as info:
        get_executor("no-port-here")
    assert "\n" not in str(info.value) and "no-port-here" in str(info.value)
