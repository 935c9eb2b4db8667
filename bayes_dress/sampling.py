"""MCMC: turn a model, counts and priors into posterior draws.

nutpie compiles a PyMC model once (seconds) and re-runs it on new counts or prior values
in a fraction of a second, so compiled models are cached by their *structure*: the
model, the prior family of each parameter and the number of studies. Everything else
(counts, prior arguments, study names) is swapped in per fit. ``sampler="pymc"`` uses
PyMC's own NUTS and recompiles every time; it is there as a cross-check.
"""

from __future__ import annotations

import os
import threading
import zlib
from collections.abc import Mapping

import numpy as np
import xarray as xr

from bayes_dress.config import SamplerSettings
from bayes_dress.data import OutcomeData
from bayes_dress.models import STUDY_DIM, Model
from bayes_dress.priors import Prior

StructureKey = tuple


def structure_key(model: Model, priors: Mapping[str, Prior], n_studies: int) -> StructureKey:
    """What a compiled model depends on: everything that is not a ``pm.Data`` value."""
    return (model.name, tuple(sorted((k, p.family) for k, p in priors.items())), n_studies)


class CompiledModelCache:
    """Compiled nutpie models by :func:`structure_key`; thread-safe."""

    def __init__(self):
        self._models: dict[StructureKey, object] = {}
        self._lock = threading.Lock()
        self.compilations = 0

    def get(self, model: Model, data: OutcomeData, priors: Mapping[str, Prior]):
        import nutpie

        key = structure_key(model, priors, data.n_studies)
        with self._lock:
            compiled = self._models.get(key)
            if compiled is None:
                compiled = nutpie.compile_pymc_model(model.build(data, priors))
                self._models[key] = compiled
                self.compilations += 1
        return compiled.with_data(**model.data_values(data, priors))


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
                     cache: CompiledModelCache | None = None) -> xr.DataTree:
    """Draw from the posterior of ``model``'s sampled parameters.

    Returns
    -------
    xarray.DataTree
        With ``posterior`` (the sampled parameters) and ``sample_stats`` groups.
    """
    cores = settings.cores or min(settings.chains, os.cpu_count() or 1)
    sampler_seed = int(seed.generate_state(1)[0])
    if settings.name == "nutpie":
        import nutpie

        compiled = (cache or COMPILED_MODELS).get(model, data, priors)
        tree = nutpie.sample(compiled, draws=settings.draws, tune=settings.tune,
                             chains=settings.chains, cores=cores, seed=sampler_seed,
                             target_accept=settings.target_accept, save_warmup=False,
                             progress_bar=False)
        tree = _relabel(tree, list(data.studies))
    else:
        import pymc as pm

        with model.build(data, priors):
            tree = pm.sample(draws=settings.draws, tune=settings.tune, chains=settings.chains,
                             cores=cores, random_seed=sampler_seed, nuts_sampler="pymc",
                             target_accept=settings.target_accept, progressbar=False,
                             compute_convergence_checks=False)
    posterior = tree["posterior"].to_dataset()[list(model.sampled)]
    stats = tree["sample_stats"].to_dataset()
    # Free-text columns (nutpie's divergence messages) cannot go to netCDF as they are.
    stats = stats.drop_vars([v for v in stats.data_vars if stats[v].dtype == object])
    return xr.DataTree.from_dict({"posterior": posterior, "sample_stats": stats})
