"""The disk-cached compile (bayes_dress.engines.nuts.compiled) and the Arrow trace reader
(bayes_dress.engines.nuts.engine._from_arrow) against nutpie's own compile and
conversion.

Both are held to *identity*, not to a Monte Carlo tolerance: the sampler calls the
same PyTensor functions with the same values, so with one seed every draw must be
bit-for-bit the same; any difference would be a bug in the data buffer or the reader.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import nutpie
import pytest

from bayes_dress.data import AnalysisData
from bayes_dress.engines.nuts.compiled import BufferedModel, compile_model
from bayes_dress.engines.nuts.engine import _from_arrow, padded
from bayes_dress.models import STUDY_DIM, get_model
from bayes_dress.spec.models import get_model_spec
from bayes_dress.spec.priors import parse_prior
from tests.conftest import outcome_data

DATA = AnalysisData((outcome_data([1, 16], [6, 18], studies=["Joly2012", "Sim2022"]),))
#: The sweep's shapes: a study slot left empty (0 of 0), and prior families that share
#: one graph (a one-hot selector), so every kind of data container is exercised.
CASES = {
    "beta_binomial": ({"phi": ("HalfNormal", "HalfCauchy", "BDA3")},
                      {"phi": "HalfCauchy(0.5)"}),
    "logit_normal": ({"tau": ("HalfNormal", "HalfCauchy")}, {"tau": "HalfNormal(0.5)"}),
    "common_effect": ({}, {"theta": "Beta(2, 3)"}),
}
SETTINGS = {"draws": 200, "tune": 200, "chains": 2, "cores": 1, "seed": 7,
            "progress_bar": False}


def _case(name):
    shared, overrides = CASES[name]
    priors = dict(get_model_spec(name).default_priors)
    priors.update({k: parse_prior(v, parameter=k) for k, v in overrides.items()})
    model = get_model(name)
    data = padded(DATA, 3)
    return model, data, priors, shared


@pytest.fixture(scope="module", params=sorted(CASES))
def both(request):
    """The case compiled by bayes_dress and by nutpie, with the same data values."""
    model, data, priors, shared = _case(request.param)
    values = model.data_values(data, priors, shared=shared)
    ours = compile_model(model.build(data, priors, shared=shared)).with_data(**values)
    theirs = nutpie.compile_pymc_model(model.build(data, priors, shared=shared)
                                       ).with_data(**values)
    return model, data, ours, theirs


def test_draws_identical_to_nutpies_compile(both):
    _, _, ours, theirs = both
    assert isinstance(ours, BufferedModel)
    a = nutpie.sample(ours, **SETTINGS)["posterior"].to_dataset()
    b = nutpie.sample(theirs, **SETTINGS)["posterior"].to_dataset()
    assert sorted(a.data_vars) == sorted(b.data_vars)
    for name in b.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


def test_arrow_reader_equals_nutpies_datatree(both):
    model, data, ours, _ = both
    raw = nutpie.sample(ours, **SETTINGS, return_raw_trace=True, save_warmup=False)
    posterior, stats = _from_arrow(raw, list(model.sampled),
                                   {STUDY_DIM: list(data.studies)})
    tree = nutpie.sample(ours, **SETTINGS, save_warmup=False)
    reference = tree["posterior"].to_dataset()[list(model.sampled)]
    reference_stats = tree["sample_stats"].to_dataset()
    reference_stats = reference_stats.drop_vars(
        [v for v in reference_stats.data_vars if reference_stats[v].dtype == object])
    assert sorted(stats.data_vars) == sorted(reference_stats.data_vars)
    for ours_, theirs_ in ((posterior, reference), (stats, reference_stats)):
        for name in theirs_.data_vars:
            assert ours_[name].dims == theirs_[name].dims, name
            assert ours_[name].dtype == theirs_[name].dtype, name
            np.testing.assert_array_equal(ours_[name].values, theirs_[name].values,
                                          err_msg=name)
    if STUDY_DIM in posterior.dims:
        assert list(posterior[STUDY_DIM].values) == list(data.studies)


def test_new_data_change_the_posterior_as_nutpie_does(both):
    """with_data writes the buffer: new counts give nutpie's draws for the new counts."""
    model, _, ours, theirs = both
    events = np.array([3, 9, 0])
    a = nutpie.sample(ours.with_data(events=events), **SETTINGS)["posterior"]
    b = nutpie.sample(theirs.with_data(events=events), **SETTINGS)["posterior"]
    name = model.sampled[0]
    np.testing.assert_array_equal(a[name].values, b[name].values)
    unchanged = nutpie.sample(ours, **SETTINGS)["posterior"]
    assert not np.array_equal(a[name].values, unchanged[name].values)


def test_with_data_rejects_what_the_buffer_cannot_hold():
    model, data, priors, shared = _case("common_effect")
    compiled = compile_model(model.build(data, priors, shared=shared))
    with pytest.raises(KeyError, match="unknown data container 'event'; this model has "
                                       "events, "):
        compiled.with_data(event=[1, 2, 3])
    with pytest.raises(ValueError, match=r"'events' must have shape \(3,\), got \(2,\)"):
        compiled.with_data(events=[1, 2])
    with pytest.raises(ValueError, match="'events' does not fit its dtype"):
        compiled.with_data(events=[1, 2, 2.5])


@pytest.mark.slow
def test_a_second_process_loads_the_compiled_model_from_disk(tmp_path):
    """The point of the module: the second process compiles nothing."""
    script = textwrap.dedent("""
        import numpy as np, pymc as pm
        from bayes_dress.engines.nuts.compiled import compile_model
        with pm.Model() as model:
            n = pm.Data("n", np.array([6, 18]))
            p = pm.Beta("p", 1, 1)
            pm.Binomial("y", n=n, p=p, observed=[1, 16])
        print(compile_model(model).loaded_from_cache)
    """)
    env = {**os.environ, "PYTENSOR_FLAGS": f"base_compiledir={tmp_path}"}

    def run():
        done = subprocess.run([sys.executable, "-c", script], env=env, text=True,
                              capture_output=True, check=True)
        return done.stdout.strip().splitlines()[-1]

    assert run() == "False"
    assert run() == "True"


@pytest.mark.slow
def test_built_functions_kept_on_disk_give_the_same_draws(tmp_path):
    """A later process loads the built PyTensor functions (no model, no graph rewrite)
    and samples exactly what the process that compiled them did, seed for seed; an
    entry that does not load is removed and reported as absent."""
    script = textwrap.dedent("""
        import sys, hashlib
        from pathlib import Path
        import nutpie
        from bayes_dress.engines.nuts.compiled import compile_model, load_model
        from bayes_dress.engines.nuts.engine import padded
        from bayes_dress.models import get_model
        from bayes_dress.spec.models import get_model_spec
        from tests.test_compiled import DATA, SETTINGS

        store = Path(sys.argv[1])
        model = get_model("logit_normal")
        priors = dict(get_model_spec("logit_normal").default_priors)
        data = padded(DATA, 3)
        compiled = load_model(store)
        if compiled is None:
            compiled = compile_model(model.build(data, priors), store=store)
        values = model.data_values(data, priors)
        draws = nutpie.sample(compiled.with_data(**values), **SETTINGS)["posterior"]
        digest = hashlib.sha256(draws["tau"].values.tobytes()).hexdigest()
        print(compiled.loaded_from_disk, digest)
    """)
    store = tmp_path / "built.pkl"
    env = {**os.environ, "PYTENSOR_FLAGS": f"base_compiledir={tmp_path}",
           "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}

    def run():
        done = subprocess.run([sys.executable, "-c", script, str(store)], env=env,
                              text=True, capture_output=True, check=True)
        return done.stdout.strip().splitlines()[-1].split()

    compiled_flag, compiled_draws = run()
    assert compiled_flag == "False" and store.is_file()
    assert run() == ["True", compiled_draws]
    store.write_bytes(b"not a pickle")
    assert run() == ["False", compiled_draws]  # removed, compiled and stored again
    assert run() == ["True", compiled_draws]
