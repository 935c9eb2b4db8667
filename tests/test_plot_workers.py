"""Plot workers: the same files as drawing alone, and plots a dead worker left undone
are drawn by the caller. Run in fresh interpreters: workers are forked only from a
process without threads, which a test process that has sampled is not."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from conftest import FAST

from bayes_dress import RunConfig, run_fit, write_run

SCRIPT = textwrap.dedent("""
    import json, os, signal, sys, tempfile
    from bayes_dress.plots.workers import PlotWorkers

    workers = PlotWorkers.start(int(sys.argv[2]))
    from bayes_dress.plots.make import draw_plots
    from bayes_dress.rundir import load_run

    if sys.argv[3] == "kill":  # one worker: the first, which forks no others
        os.kill(workers._process.pid, signal.SIGKILL)
        workers._process.join()
    run = load_run(sys.argv[1])
    index = draw_plots(run, tempfile.mkdtemp(), workers=workers)
    workers.close()
    print(json.dumps({"workers": workers_started, "index": index}))
""").replace("workers_started", "int(sys.argv[2])")


@pytest.fixture(scope="module")
def nuts_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("workers") / "run"
    write_run(run_fit(RunConfig(sampler=FAST)), out)
    return out


def _draw(run_dir, workers: int, mode: str = "share") -> dict:
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(run_dir), str(workers), mode],
                          capture_output=True, text=True, timeout=300, check=True)
    return json.loads(done.stdout)


@pytest.mark.slow
def test_workers_draw_the_same_files_as_one_process(nuts_run):
    alone = _draw(nuts_run, 0)["index"]
    shared = _draw(nuts_run, 2)["index"]
    assert [e["name"] for e in shared] == [e["name"] for e in alone]
    assert shared == alone  # captions, order and the PNG and SVG bytes (hashes)
    saved = json.loads((nuts_run / "plots" / "index.json").read_text())
    assert [e["png_sha256"] for e in saved] == [e["png_sha256"] for e in alone]


@pytest.mark.slow
def test_plots_of_a_dead_worker_are_drawn_by_the_caller(nuts_run):
    alone = _draw(nuts_run, 0)["index"]
    assert _draw(nuts_run, 1, "kill")["index"] == alone


def test_no_workers_are_forked_from_a_process_with_threads():
    import threading

    from bayes_dress.plots.workers import PlotWorkers

    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        workers = PlotWorkers.start(2)
        assert workers.count == 0
        workers.close()
    finally:
        stop.set()
        thread.join()
