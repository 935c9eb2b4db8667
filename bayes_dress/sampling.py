"""MCMC: turn a model, counts and priors into posterior draws.

nutpie compiles a PyMC model once (seconds) and re-runs it on new counts or prior values
in a fraction of a second, so compiled models are cached by their *structure*: the
model, the prior family of each parameter (or the families a sweep puts into one shared
graph, see :meth:`bayes_dress.priors.Prior.add_to_model`) and the number of study slots.
Everything else (counts, prior arguments, study names) is swapped in per fit. A fit
with fewer studies than slots fills the rest with empty studies (0 events of 0), which
add nothing to the likelihood, so leaving a study out needs no new compile either.
``sampler="pymc"`` uses PyMC's own NUTS and recompiles every time; it is there as a
cross-check.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import zlib
from collections.abc import Mapping

import numpy as np
import xarray as xr

from bayes_dress.config import SamplerSettings
from bayes_dress.data import OutcomeData
from bayes_dress.models import STUDY_DIM, Model, SharedFamilies
from bayes_dress.priors import Prior

StructureKey = tuple


def structure_key(model: Model, priors: Mapping[str, Prior], n_studies: int,
                  shared: SharedFamilies | None = None) -> StructureKey:
    """What a compiled model depends on: everything that is not a ``pm.Data`` value."""
    shared = shared or {}

    def families(name: str, prior: Prior) -> tuple[str, ...]:
        together = shared.get(name, ())
        return tuple(together) if len(together) > 1 else (prior.family,)

    return (model.name, tuple(sorted((k, families(k, p)) for k, p in priors.items())),
            n_studies)


def padded(data: OutcomeData, n_slots: int | None) -> OutcomeData:
    """``data`` with empty studies (0 of 0) appended up to ``n_slots`` studies."""
    extra = (n_slots or 0) - data.n_studies
    if extra <= 0:
        return data
    zeros = np.zeros(extra, dtype=data.events.dtype)
    return dataclasses.replace(
        data, studies=(*data.studies, *(f"__empty{i}" for i in range(extra))),
        events=np.concatenate([data.events, zeros]),
        totals=np.concatenate([data.totals, zeros]),
        definitions=(*data.definitions, *("" for _ in range(extra))))


class CompiledModelCache:
    """Compiled nutpie models by :func:`structure_key`; thread-safe."""

    def __init__(self):
        self._models: dict[StructureKey, object] = {}
        self._lock = threading.Lock()
        self.compilations = 0

    def get(self, model: Model, data: OutcomeData, priors: Mapping[str, Prior],
            shared: SharedFamilies | None = None):
        import nutpie

        key = structure_key(model, priors, data.n_studies, shared)
        with self._lock:
            compiled = self._models.get(key)
            if compiled is None:
                compiled = nutpie.compile_pymc_model(model.build(data, priors, shared=shared))
                self._models[key] = compiled
                self.compilations += 1
        return compiled.with_data(**model.data_values(data, priors, shared=shared))


#: The process-wide cache used unless a caller brings its own.
COMPILED_MODELS = CompiledModelCache()


def derive_seed(seed: int, *labels: str) -> np.random.SeedSequence:
    """An independent, reproducible random stream for each outcome and purpose."""
    key = tuple(zlib.crc32(label.encode()) for label in labels)
    return np.random.SeedSequence(entropy=seed, spawn_key=key)


def _relabel(tree: xr.DataTree, studies: list[str]) -> xr.DataTree:
    """Put this fit's study ids on a cached model's study dimension."""

    def relabel(ds: xr.Dataset) -> xr.Dataset:
        return ds.assign_coords({STUDY_DIM: studies}) if STUDY_DIM in ds.dims else ds

    return tree.map_over_datasets(relabel)


def sample_posterior(model: Model, data: OutcomeData, priors: Mapping[str, Prior],
                     settings: SamplerSettings, *, seed: np.random.SeedSequence,
                     cache: CompiledModelCache | None = None,
                     n_slots: int | None = None,
                     shared: SharedFamilies | None = None) -> xr.DataTree:
    """Draw from the posterior of ``model``'s sampled parameters.

    ``n_slots`` pads the compiled model to that many studies (see :func:`padded`), and
    ``shared`` puts several prior families into one graph, so that the fits of a sweep
    share compiled models; the empty studies are dropped from the draws.

    Returns
    -------
    xarray.DataTree
        With ``posterior`` (the sampled parameters) and ``sample_stats`` groups.
    """
    cores = settings.cores or min(settings.chains, os.cpu_count() or 1)
    sampler_seed = int(seed.generate_state(1)[0])
    if settings.name == "nutpie":
        import nutpie

        compiled = (cache or COMPILED_MODELS).get(model, padded(data, n_slots), priors,
                                                  shared)
        tree = nutpie.sample(compiled, draws=settings.draws, tune=settings.tune,
                             chains=settings.chains, cores=cores, seed=sampler_seed,
                             target_accept=settings.target_accept, save_warmup=False,
                             progress_bar=False)
        tree = _relabel(tree, list(padded(data, n_slots).studies))
    else:
        import pymc as pm

        with model.build(data, priors):
            tree = pm.sample(draws=settings.draws, tune=settings.tune, chains=settings.chains,
                             cores=cores, random_seed=sampler_seed, nuts_sampler="pymc",
                             target_accept=settings.target_accept, progressbar=False,
                             compute_convergence_checks=False)
    posterior = tree["posterior"].to_dataset()[list(model.sampled)]
    if STUDY_DIM in posterior.dims:
        posterior = posterior.isel({STUDY_DIM: slice(0, data.n_studies)})
    stats = tree["sample_stats"].to_dataset()
    # Free-text columns (nutpie's divergence messages) cannot go to netCDF as they are.
    stats = stats.drop_vars([v for v in stats.data_vars if stats[v].dtype == object])
    return xr.DataTree.from_dict({"posterior": posterior, "sample_stats": stats})
