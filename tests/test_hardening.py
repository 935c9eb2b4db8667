"""Extreme inputs, interrupts, concurrent runs and hostile text, through the installed CLI.

Every case ends as a user would expect: one short ``error:`` line naming the input, a
non-zero exit, no traceback, and nothing written or half-written; signals end a run with
exit 130 (SIGINT) or 143 (SIGTERM) and leave no temporary directory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import xarray as xr

SCRIPT = str(Path(sys.executable).with_name("bayes-dress"))
FAST = ["--draws", "300", "--tune", "300", "--chains", "2"]


def cli(*args, env=None, stdin=None, timeout=300):
    return subprocess.run([SCRIPT, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, input=stdin)


def assert_one_line_error(done, *words, code=2):
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    err = done.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert len(err) < 500, err  # the offending input is echoed cut short
    for word in words:
        assert word in err, (word, err)
    return err


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("prior", "words"), [
    ("tau=HalfNormal(" + "9" * 401 + ")", ["413 characters long"]),
    ("tau=HalfNormal(" + "9" * 150 + ")", ["finite numbers within"]),
    ("tau=HalfNormal(1e308)", ["finite numbers within +-1e+06"]),
    ("tau=HalfNormal(5e-324)", ["at least 1e-06"]),
    ("tau=HalfNormal(" + "1" * 100_000 + ")", ["characters long"]),
])
def test_numbers_at_the_edges_of_their_types(tmp_path, prior, words):
    done = cli("fit", "--model", "logit_normal", "--prior", prior, "--out", tmp_path / "r")
    assert_one_line_error(done, "'tau'", *words)
    assert not (tmp_path / "r").exists()


def test_counts_beyond_what_the_models_hold(tmp_path):
    data = write(tmp_path / "big.csv", f"study,events,total\nA,1,{2**63 - 5}\nB,2,9\n")
    assert_one_line_error(cli("data", "--data", data), "line 2", "'total'", "too large")


def test_one_chain_runs_without_a_rank_plot(tmp_path):
    out = tmp_path / "one"
    done = cli("fit", "--chains", "1", "--draws", "400", "--tune", "300", "--outcome",
               "success", "--out", out)
    assert done.returncode == 0, done.stderr
    names = [e["name"] for e in json.loads((out / "plots/index.json").read_text())]
    assert "trace-success" in names and "rank-success" not in names


def test_names_unsafe_for_files_stay_apart(tmp_path):
    data = write(tmp_path / "odd.csv", "study,outcome,events,total\nA,death/30d,1,10\n"
                 "B,death/30d,2,12\nA,death 30d,5,10\nB,death 30d,6,12\n")
    out = tmp_path / "run"
    done = cli("fit", "--engine", "exact", "--data", data, "--out", out)
    assert done.returncode == 0, done.stderr
    a = xr.open_datatree(out / "posterior-death%2F30d.nc")
    b = xr.open_datatree(out / "posterior-death%2030d.nc")
    assert a.attrs["analysis"] == "death/30d" and b.attrs["analysis"] == "death 30d"
    assert a["observed_data"]["y"].values.tolist() == [[1, 2]]
    assert b["observed_data"]["y"].values.tolist() == [[5, 6]]


def test_names_that_differ_only_in_case_are_refused_before_fitting(tmp_path):
    data = write(tmp_path / "case.csv", "study,outcome,events,total\nA,Death,1,10\n"
                 "A,death,2,10\n")
    out = tmp_path / "run"
    assert_one_line_error(cli("fit", "--engine", "exact", "--data", data, "--out", out),
                          "'Death' and 'death' differ only in case")
    assert not out.exists() and not list(tmp_path.glob(".run*"))


@pytest.mark.parametrize("overwrite", [False, True])
def test_two_runs_into_one_destination(tmp_path, overwrite):
    out = tmp_path / "same"
    flags = ["--overwrite"] if overwrite else []
    runs = [subprocess.Popen([SCRIPT, "fit", "--engine", "exact", "--seed", str(seed),
                              "--out", str(out), *flags], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for seed in (1, 2)]
    results = [(run.wait(timeout=300), run.communicate()[1]) for run in runs]
    codes = sorted(code for code, _ in results)
    if overwrite:
        assert codes == [0, 0]  # the last complete one wins
    else:
        assert codes == [0, 2]  # exactly one wins; the other fails cleanly
        err = next(err for code, err in results if code == 2)
        assert "already exists" in err and "Traceback" not in err
    from bayes_dress.rundir import load_run

    run = load_run(out)  # complete and consistent: every file matches the manifest
    assert run.manifest["seed"] in (1, 2)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code", "word"), [(signal.SIGINT, 130, "interrupted"),
                                                   (signal.SIGTERM, 143, "terminated")])
def test_a_signal_ends_a_run_cleanly(tmp_path, sig, code, word):
    out = tmp_path / "run"
    run = subprocess.Popen([SCRIPT, "fit", "--draws", "400000", "--out", str(out)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(8)  # well into sampling
    run.send_signal(sig)
    start = time.monotonic()
    _, err = run.communicate(timeout=60)
    assert run.returncode == code, err
    assert time.monotonic() - start < 15
    assert err.strip() == f"{word}: nothing was written"
    assert list(tmp_path.iterdir()) == []  # no run, no temporary directory


def test_a_stale_temporary_directory_is_removed_by_the_next_run(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".old.tmp-{dead.pid}-0123abcd"
    stale.mkdir()
    (stale / ".bayes-dress-incomplete").touch()
    (stale / "summary.csv").write_text("half")
    foreign = tmp_path / f".other.tmp-{dead.pid}-0123abcd"  # not ours: no marker
    foreign.mkdir()
    done = cli("fit", "--engine", "exact", "--outcome", "success", "--out", tmp_path / "new")
    assert done.returncode == 0, done.stderr
    assert not stale.exists() and foreign.exists()


@pytest.mark.parametrize("kind", ["fifo", "device", "directory"])
def test_data_that_is_not_a_regular_file_is_refused_unread(tmp_path, kind):
    if kind == "fifo":
        target = tmp_path / "pipe"
        os.mkfifo(target)
    elif kind == "device":
        target = Path("/dev/zero")
    else:
        target = tmp_path
    done = cli("data", "--data", target, timeout=30)
    assert_one_line_error(done, str(target), "directory" if kind == "directory"
                          else "not a regular file")


def test_data_size_cap_is_stated_and_can_be_raised(tmp_path):
    data = write(tmp_path / "t.csv", "study,events,total\nA,1,6\nB,16,18\n" + "#" * 2000)
    small = {"BAYES_DRESS_MAX_DATA_MB": "0.001"}
    assert_one_line_error(cli("data", "--data", data, env=small), "larger than 0.001 MB",
                          "BAYES_DRESS_MAX_DATA_MB")
    done = cli("data", "--data", "-", stdin="study,events,total\nA,1,6\n")
    assert done.returncode == 0 and "<stdin>: 1 rows" in done.stdout


def test_terminal_output_escapes_control_characters(tmp_path):
    data = write(tmp_path / "t.csv", "study,events,total\n\"A\x1b[31mred\x07\",1,6\nB,2,9\n")
    done = cli("data", "--data", data)
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout and "\x07" not in done.stdout
    assert "A\\x1b[31mred\\x07" in done.stdout


def test_spreadsheet_formulas_are_neutralised_in_csv_but_exact_elsewhere(tmp_path):
    data = write(tmp_path / "t.csv", "study,events,total\n=HYPERLINK(1),1,6\n+1,2,9\n-2,3,9\n")
    out = tmp_path / "run"
    done = cli("fit", "--engine", "exact", "--data", data, "--out", out)
    assert done.returncode == 0, done.stderr
    raw = pd.read_csv(out / "data_used.csv", dtype=str, keep_default_na=False)
    assert list(raw["study"]) == ["'=HYPERLINK(1)", "'+1", "'-2"]
    tree = xr.open_datatree(out / "posterior-events.nc")
    assert list(tree["observed_data"]["study"].values) == ["=HYPERLINK(1)", "+1", "-2"]
    from bayes_dress.rundir import load_run

    assert list(load_run(out).data_used["study"]) == ["=HYPERLINK(1)", "+1", "-2"]


def test_threshold_replaces_the_sweep_headlines_on_user_data(tmp_path):
    data = write(tmp_path / "own.csv", "study,events,total\nA,3,20\nB,7,25\nC,2,18\n")
    done = cli("sensitivity", "--data", data, "--engine", "exact", "--threshold", "0.5",
               "--jobs", "1", "--out", tmp_path / "sweep")
    assert done.returncode == 0, done.stderr
    robustness = pd.read_csv(tmp_path / "sweep" / "robustness.csv")
    assert set(robustness["outcome"]) == {"events"}
    assert set(robustness["threshold"]) == {0.5}


# ---- names typed by a user (issue 16) ------------------------------------------------------


def test_columns_flag_matches_the_header_without_regard_to_case(tmp_path):
    data = write(tmp_path / "t.csv", "Trial,Responders,Patients\nA,3,10\nB,5,12\nC,2,9\n")
    done = cli("data", "--data", data, "--columns", "study=trial")
    assert done.returncode == 0, done.stderr
    assert "3 rows, 3 studies" in done.stdout
    assert_one_line_error(cli("data", "--data", data, "--columns", "study=Trail"),
                          "no column 'Trail'", "(did you mean 'Trial'?)")


def test_missing_column_hint_can_be_pasted_into_a_shell(tmp_path):
    data = write(tmp_path / "s.csv", "Study Name,events,total\nA,3,10\nB,5,12\n")
    err = assert_one_line_error(cli("data", "--data", data), "missing column 'study'")
    assert err.endswith("pass --columns 'study=Study Name'")
    done = cli("data", "--data", data, "--columns", "study=Study Name")
    assert done.returncode == 0, done.stderr


def test_misspelt_outcome_of_a_definition_names_the_nearest():
    assert_one_line_error(cli("data", "--definition", "sucess=evaluable"),
                          "--definition sucess=evaluable", "(did you mean 'success'?)")
    assert_one_line_error(cli("data", "--definition", "success=evalable"),
                          "'evalable'", "(did you mean 'evaluable'?)")


def test_fit_takes_hyphens_and_any_case_in_definitions(tmp_path):
    out = tmp_path / "run"
    done = cli("fit", "--engine", "exact", "--outcome", "severe-ae", "--definition",
               "Severe-AE=IVIG-attributed", "--out", out)
    assert done.returncode == 0, done.stderr
    used = pd.read_csv(out / "data_used.csv")
    assert set(used["definition"]) == {"ivig_attributed"}


def test_data_takes_hyphens_in_definitions():
    done = cli("data", "--outcome", "severe-ae", "--definition", "severe-ae=ivig-attributed")
    assert done.returncode == 0, done.stderr
    assert "Joly2012: 'severe_ae' as 'ivig_attributed'" in done.stdout


def test_excluded_study_matches_without_regard_to_case():
    done = cli("data", "--outcome", "success", "--exclude", "joly2012")
    assert done.returncode == 0, done.stderr
    assert "note: Joly2012 excluded by request" in done.stdout
    assert_one_line_error(cli("data", "--exclude", "jolly2012"), "no such study",
                          "(did you mean 'Joly2012'?)")


def test_misspelt_prior_parameter_names_the_nearest(tmp_path):
    assert_one_line_error(cli("fit", "--engine", "exact", "--prior", "ph=HalfNormal(1)",
                              "--out", tmp_path / "r"),
                          "no parameter 'ph'", "(did you mean 'phi'?)", "'m' or 'phi'")
