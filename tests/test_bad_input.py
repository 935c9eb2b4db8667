"""Every bad input ends in one line on stderr (``error: ...``), exit status 2, no traceback.

Data errors go through ``bayes-dress data`` (validation only); fit-only flags go through
``bayes-dress fit``, whose input errors are raised by ``prepare()`` before any sampling.
Nothing here samples.
"""

from __future__ import annotations

import os
import sys

import pytest
from click.testing import CliRunner
from conftest import assert_no_traceback, assert_user_error

from bayes_dress.cli import main

FAST = ["--draws", "10", "--tune", "10", "--chains", "1"]
HEADER = "study,events,total\n"


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def write(tmp_path, text, name="table.csv"):
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


# ---- data errors: `bayes-dress data --data FILE` ------------------------------------


def test_missing_required_column_lists_required(tmp_path):
    path = write(tmp_path, "study,events\nA,1\nB,2\n", "no_total.csv")
    err = assert_user_error(invoke("data", "--data", path), "no_total.csv", "'total'")
    assert "required: study, events, total" in err


@pytest.mark.parametrize(
    ("row", "words"),
    [
        ("B,2.5,10", ["line 3", "'events'", "2.5", "whole number"]),
        ("B,abc,10", ["line 3", "'events'", "abc", "whole number"]),
        ("B,3,ten", ["line 3", "'total'", "ten", "whole number"]),
        ("B,-1,10", ["line 3", "'events'", "negative"]),
        ("B,1,-10", ["line 3", "'total'", "negative"]),
        ("B,11,10", ["line 3", "events (11) > total (10)", "'B'"]),
        ("B,0,0", ["line 3", "'total'", "total is 0", "'B'"]),
        ("B,inf,10", ["line 3", "'events'", "whole number"]),
        ("B,nan,10", ["line 3", "'events'", "whole number"]),
        ("B,1e300,1e301", ["line 3", "'events'", "too large"]),
        ("B,1,", ["line 3", "'total'", "empty"]),
        (",1,10", ["line 3", "'study'", "empty study id"]),
    ],
)
def test_bad_count(tmp_path, row, words):
    path = write(tmp_path, f"{HEADER}A,1,10\n{row}\n", "counts.csv")
    assert_user_error(invoke("data", "--data", path), "counts.csv", *words)


def test_duplicate_row_names_first_line(tmp_path):
    path = write(tmp_path, "study,outcome,definition,events,total\n"
                           "A,death,any,1,10\nB,death,any,2,10\nA,death,any,1,10\n", "dup.csv")
    assert_user_error(invoke("data", "--data", path), "dup.csv", "line 4", "duplicate",
                      "'A'", "'death'", "'any'", "first at line 2")


@pytest.mark.parametrize(
    ("content", "words"),
    [(b"", ["empty"]), (b"  \n\t\n\r\n", ["empty"]), (HEADER.encode(), ["no data rows"])],
    ids=["zero-bytes", "whitespace-only", "header-only"],
)
def test_empty_files(tmp_path, content, words):
    path = write(tmp_path, content, "empty.csv")
    assert_user_error(invoke("data", "--data", path), "empty.csv", *words)


def test_non_utf8_names_the_line(tmp_path):
    path = write(tmp_path, HEADER.encode() + b"A,1,10\nM\xfcller\xff,1,3\n", "latin.csv")
    assert_user_error(invoke("data", "--data", path), "latin.csv", "line 3", "column 2",
                      "0xfc", "UTF-8")


def test_utf16_file_is_not_utf8(tmp_path):
    path = write(tmp_path, (HEADER + "A,1,10\n").encode("utf-16"), "utf16.csv")
    assert_user_error(invoke("data", "--data", path), "utf16.csv", "line 1", "UTF-8")


@pytest.mark.parametrize("row", ["B,1,3,4", "B,1"])
def test_wrong_number_of_fields(tmp_path, row):
    path = write(tmp_path, f"{HEADER}A,1,10\n{row}\n", "fields.csv")
    assert_user_error(invoke("data", "--data", path), "fields.csv", "line 3",
                      "expected 3 fields", f"found {row.count(',') + 1}")


def test_error_from_a_quoted_multiline_value_stays_on_one_line(tmp_path):
    # The study id spans lines 3-4: the message names the line the record starts on,
    # and the line break inside the value is escaped, not printed.
    path = write(tmp_path, f'{HEADER}A,1,10\n"B\nC",5,3\n', "multiline.csv")
    assert_user_error(invoke("data", "--data", path), "multiline.csv", "line 3",
                      "events (5) > total (3)", r"'B\nC'")


def test_duplicate_header_column(tmp_path):
    path = write(tmp_path, "study,events,total,events\nA,1,10,2\n", "header.csv")
    assert_user_error(invoke("data", "--data", path), "header.csv", "line 1", "'events'",
                      "more than once")


@pytest.mark.parametrize(
    ("rows", "words"),
    [
        ("A,maybe,true,1,10", ["line 2", "'primary'", "maybe", "true or false"]),
        ("A,true,perhaps,1,10", ["line 2", "'reported'", "perhaps", "true or false"]),
        ("A,true,false,1,10", ["line 2", "reported is false", "leave them empty"]),
    ],
)
def test_bad_flags_in_table(tmp_path, rows, words):
    path = write(tmp_path, f"study,primary,reported,events,total\n{rows}\n", "flags.csv")
    assert_user_error(invoke("data", "--data", path), "flags.csv", *words)


def test_two_primary_rows(tmp_path):
    path = write(tmp_path, "study,definition,primary,events,total\n"
                           "A,x,true,1,10\nA,y,true,2,10\n", "primary.csv")
    assert_user_error(invoke("data", "--data", path), "primary.csv", "lines 2, 3",
                      "more than one row marked primary")


def test_unknown_outcome_lists_available(tmp_path):
    err = assert_user_error(invoke("data", "--outcome", "nope"), "'nope'", "available")
    for outcome in ("success", "severe_ae", "death", "ivig_reaction", "rescue_steroids"):
        assert f"'{outcome}'" in err
    path = write(tmp_path, f"{HEADER}A,1,10\n", "single.csv")
    assert_user_error(invoke("data", "--data", path, "--outcome", "nope"), "single.csv",
                      "'nope'", "available: 'events'")


def test_unknown_definition_lists_available():
    assert_user_error(invoke("data", "--definition", "success=nope"), "'nope'", "'success'",
                      "'primary'", "'evaluable'", "'partial_or_complete'",
                      "'early_improvement'")


@pytest.mark.parametrize("value", ["success", "success=", "=evaluable"])
def test_malformed_definition(value):
    assert_user_error(invoke("data", "--definition", value), f"'{value}'", "OUTCOME=NAME")


def test_definition_for_an_outcome_not_shown():
    assert_user_error(invoke("data", "--outcome", "death", "--definition", "success=evaluable"),
                      "--definition", "'success'", "'death'")


def test_exclude_unknown_study_lists_studies():
    assert_user_error(invoke("data", "--exclude", "Nobody2020"), "'Nobody2020'", "no such study",
                      "'Joly2012'", "'Sim2022'")


def test_exclude_every_study():
    assert_user_error(invoke("data", "--exclude", "Joly2012", "--exclude", "Sim2022"),
                      "every study", "nothing is left")


def test_nothing_left_for_an_outcome():
    # Joly2012 does not report death and Sim2022 is excluded.
    assert_user_error(invoke("data", "--outcome", "death", "--exclude", "Sim2022"),
                      "no study is left", "'death'", "not counted as zero")


def test_data_file_not_found(tmp_path):
    assert_user_error(invoke("data", "--data", tmp_path / "absent.csv"), "absent.csv",
                      "not found")


def test_data_is_a_directory(tmp_path):
    result = invoke("data", "--data", tmp_path)
    assert result.exit_code == 2
    assert_no_traceback(result)
    assert "directory" in result.stderr


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0,
                    reason="file permissions are not enforced")
def test_unreadable_data_file(tmp_path):
    path = write(tmp_path, f"{HEADER}A,1,10\n", "locked.csv")
    path.chmod(0)
    try:
        assert_user_error(invoke("data", "--data", path), "locked.csv", "cannot read")
    finally:
        path.chmod(0o600)


def test_unreadable_studies_csv_beside_the_table(tmp_path):
    path = write(tmp_path, f"{HEADER}A,1,10\n", "counts.csv")
    write(tmp_path, b"study,design\nA,caf\xe9\n", "studies.csv")
    assert_user_error(invoke("data", "--data", path), "studies.csv", "UTF-8")


# ---- fit-only flags: `bayes-dress fit` (errors raised before sampling) ---------------


def fit(tmp_path, *args):
    return invoke("fit", *FAST, "--out", tmp_path / "run", *args)


def test_unknown_model_lists_valid(tmp_path):
    assert_user_error(fit(tmp_path, "--model", "nope"), "'nope'", "'beta_binomial'",
                      "'logit_normal'", "'common_effect'", "'independent'")
    assert not (tmp_path / "run").exists()


def test_unknown_prior_parameter_lists_parameters(tmp_path):
    assert_user_error(fit(tmp_path, "--prior", "nope=Normal(0,1)"), "'nope'",
                      "'beta_binomial'", "'m'", "'phi'")
    assert_user_error(fit(tmp_path, "--model", "logit_normal", "--prior", "nope=Normal(0,1)"),
                      "'nope'", "'mu'", "'tau'")


def test_unknown_distribution_suggests_a_family(tmp_path):
    err = assert_user_error(fit(tmp_path, "--model", "logit_normal",
                                "--prior", "tau=HalfNormel(1)"),
                            "'HalfNormel'", "did you mean 'HalfNormal'", "valid:")
    for family in ("'Beta'", "'Normal'", "'HalfCauchy'", "'Exponential'", "'BDA3'"):
        assert family in err


@pytest.mark.parametrize(
    ("prior", "words"),
    [
        ("tau=HalfNormal(-1)", ["sigma must be > 0"]),
        ("tau=HalfNormal(0)", ["sigma must be > 0"]),
        ("tau=HalfNormal(1, 2)", ["takes 1 argument", "got 2"]),
        ("tau=HalfNormal()", ["missing sigma"]),
        ("tau=HalfNormal(scale=1)", ["no argument 'scale'"]),
        ("tau=HalfNormal(1, sigma=2)", ["'sigma' given twice"]),
        ("tau=HalfNormal('1')", ["finite numbers"]),
        ("tau=HalfNormal(1e999)", ["finite numbers"]),
        ("tau=HalfNormal(True)", ["finite numbers"]),
        ("tau=HalfNormal(**{'sigma': 1})", ["cannot parse"]),
        ("tau", ["PARAM=DIST(ARGS)"]),
        ("tau=", ["PARAM=DIST(ARGS)"]),
    ],
)
def test_bad_prior_arguments(tmp_path, prior, words):
    assert_user_error(fit(tmp_path, "--model", "logit_normal", "--prior", prior), *words)


@pytest.mark.parametrize(
    "prior",
    [
        "tau=__import__('os').system('echo hi')",
        "tau=HalfNormal(__import__('os').getpid())",
        "tau=(lambda: 1)()",
        "tau=HalfNormal(1)+1",
        "tau=HalfNormal(",
        "tau=" + "-" * 100_000 + "1",
    ],
    ids=["import", "import-in-arg", "lambda", "expression", "unbalanced", "too-deep"],
)
def test_code_is_never_run(tmp_path, capfd, prior):
    result = fit(tmp_path, "--model", "logit_normal", "--prior", prior)
    words = (["finite numbers"] if "HalfNormal(__import__" in prior
             else ["characters long"] if len(prior) > 200 else ["cannot parse"])
    err = assert_user_error(result, "'tau'", *words)
    assert len(err) < 400  # the input is echoed cut short, never whole
    assert "hi" not in capfd.readouterr().out


def test_improper_prior_where_not_allowed(tmp_path):
    assert_user_error(fit(tmp_path, "--model", "logit_normal", "--prior", "tau=BDA3"),
                      "BDA3", "'tau'", "improper", "'logit_normal'")


def test_prior_outside_support(tmp_path):
    assert_user_error(fit(tmp_path, "--prior", "m=Normal(0,1)"), "'m'", "outside",
                      "0 < x < 1")
    assert_user_error(fit(tmp_path, "--prior", "phi=Normal(0,1)"), "'phi'", "outside",
                      "x > 0")


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--draws", "0"), ("--draws", "many"), ("--tune", "-1"), ("--tune", "0"), ("--chains", "0"),
     ("--seed", "-1"), ("--target-accept", "1.5"), ("--target-accept", "1.0"),
     ("--target-accept", "0.1"), ("--sampler", "stan"), ("--threshold", "0"),
     ("--threshold", "1.5")],
)
def test_bad_flag_values(tmp_path, flag, value):
    """Click's usage errors are one ``error:`` line too, naming the flag."""
    assert_user_error(fit(tmp_path, flag, value), flag, "--help lists the options")
    assert not (tmp_path / "run").exists()


def test_out_is_an_existing_file(tmp_path):
    path = write(tmp_path, "not a directory", "run")
    result = invoke("fit", *FAST, "--out", path)
    assert result.exit_code == 2
    assert_no_traceback(result)
    assert path.read_text() == "not a directory"


def test_unknown_data_column_for_fit(tmp_path):
    path = write(tmp_path, "study,events\nA,1\n", "no_total.csv")
    assert_user_error(fit(tmp_path, "--data", path), "no_total.csv", "'total'")


def test_definition_for_outcome_not_fitted(tmp_path):
    assert_user_error(fit(tmp_path, "--outcome", "success", "--definition", "death=any"),
                      "'death'", "not being analysed")


def write_config(tmp_path, text, name="run.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('modle = "beta_binomial"\n', ["unknown key 'modle'", "'model'", "'priors'"]),
        ("[sampler]\nwarmup = 10\n", ["unknown key 'sampler.warmup'", "'tune'"]),
        ("sampler = 3\n", ["'sampler' must be a table"]),
        ("[sampler]\ndraws = 0\n", ["draws", ">= 1"]),
        ("[sampler]\ndraws = 2.5\n", ["draws", "whole number"]),
        ("[sampler]\ncores = 0\n", ["cores", ">= 1"]),
        ("[sampler]\ntarget_accept = 1.5\n", ["target_accept"]),
        ('[sampler]\nname = "stan"\n', ["unknown sampler 'stan'", "'nutpie'"]),
        ("data = 3\n", ["'data' must be a string"]),
        ("model = 3\n", ["'model' must be a string"]),
        ('thresholds = ["a"]\n', ["'thresholds'", "numbers"]),
        ("thresholds = [1.5]\n", ["thresholds", "between 0 and 1"]),
        ("thresholds = 0.5\n", ["'thresholds' must be a list"]),
        ("outcomes = [1]\n", ["'outcomes'", "strings"]),
        ('priors = "HalfNormal(1)"\n', ["[priors]", "strings"]),
        ("[priors]\nphi = 1\n", ["[priors]", "strings"]),
        ('[priors]\nphi = "HalfNormel(1)"\n', ["'HalfNormel'", "HalfNormal"]),
        ('engine = "bayes"\n', ["unknown engine 'bayes'"]),
    ],
)
def test_bad_config(tmp_path, text, words):
    path = write_config(tmp_path, text)
    assert_user_error(fit(tmp_path, "--config", path), *words)


def test_config_unknown_key_names_the_file(tmp_path):
    path = write_config(tmp_path, 'model = "beta_binomial"\nfoo = 1\n', "spec.toml")
    assert_user_error(fit(tmp_path, "--config", path), "spec.toml", "unknown key 'foo'")


def test_config_not_toml(tmp_path):
    path = write_config(tmp_path, 'model = "beta_binomial"\nthis is not toml\n', "bad.toml")
    assert_user_error(fit(tmp_path, "--config", path), "bad.toml", "not valid TOML", "line 2")


def test_config_not_utf8(tmp_path):
    path = tmp_path / "latin.toml"
    path.write_bytes(b'model = "caf\xe9"\n')
    assert_user_error(fit(tmp_path, "--config", path), "latin.toml")


def test_config_not_found(tmp_path):
    assert_user_error(fit(tmp_path, "--config", tmp_path / "absent.toml"), "absent.toml",
                      "not found")


def test_config_data_not_found_is_relative_to_config(tmp_path):
    (tmp_path / "sub").mkdir()
    path = write_config(tmp_path / "sub", 'data = "counts.csv"\n')
    assert_user_error(fit(tmp_path, "--config", path), str(tmp_path / "sub" / "counts.csv"),
                      "not found")


def test_existing_out_without_overwrite_is_untouched(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    sentinel = out / "sentinel.bin"
    payload = bytes(range(256)) * 4
    sentinel.write_bytes(payload)
    (out / "nested").mkdir()
    (out / "nested" / "keep.txt").write_text("keep", encoding="utf-8")
    before = sorted(p.relative_to(out) for p in out.rglob("*"))

    result = invoke("fit", *FAST, "--out", out)
    assert_user_error(result, str(out), "already exists", "--overwrite")

    assert sentinel.read_bytes() == payload
    assert (out / "nested" / "keep.txt").read_text(encoding="utf-8") == "keep"
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    # No temporary sibling was left behind either.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
