"""The NUTS engine: posterior draws from nutpie (or PyMC's own NUTS), for every model.

A nutpie compile costs seconds the first time a model is seen on a machine (and well
under a second after that, from the disk cache of :mod:`bayes_dress.engines.nuts.compiled`), while a
fit takes a fraction of a second, so compiled models are also kept in memory by their
*structure*: the model, the prior family of each parameter (or the families a sweep
puts into one shared graph, see :meth:`bayes_dress.spec.priors.Prior.add_to_model`) and the
number of study slots. Everything else (counts, prior arguments, study names) is
swapped in per fit. A fit with fewer studies than slots fills the rest with empty
studies (0 events of 0), which add nothing to the likelihood, so leaving a study out
needs no new compile either. ``sampler="pymc"`` uses PyMC's own NUTS and recompiles
every time; it is there as a cross-check.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections import defaultdict
from collections.abc import Mapping

import numpy as np
import xarray as xr

from bayes_dress.data.selection import AnalysisData, OutcomeData
from bayes_dress.engines.base import Engine, EngineFit, FitOptions
from bayes_dress.engines.nuts.compiled import compile_model, load_model, store_path
from bayes_dress.errors import BayesDressError
from bayes_dress.models.analysis import Analysis
from bayes_dress.models.base import STUDY_DIM, Model, SharedFamilies
from bayes_dress.posterior.draws import DrawsPosterior
from bayes_dress.spec.config import SamplerSettings
from bayes_dress.spec.priors import Prior

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


def _padded_block(block: OutcomeData, names: tuple[str, ...]) -> OutcomeData:
    zeros = np.zeros(len(names), dtype=block.events.dtype)
    return dataclasses.replace(
        block, studies=(*block.studies, *names),
        events=np.concatenate([block.events, zeros]),
        totals=np.concatenate([block.totals, zeros]),
        definitions=(*block.definitions, *("" for _ in names)))


def padded(data: AnalysisData, n_slots: int | None) -> AnalysisData:
    """``data`` with empty studies (0 of 0 in every outcome) appended up to ``n_slots``
    studies: they add nothing to any likelihood."""
    extra = (n_slots or 0) - data.n_studies
    if extra <= 0:
        return data
    names = tuple(f"__empty{i}" for i in range(extra))
    return AnalysisData(tuple(_padded_block(b, names) for b in data.blocks))


class CompiledModelCache:
    """Compiled nutpie models by :func:`structure_key`; thread-safe."""

    def __init__(self):
        self._models: dict[StructureKey, object] = {}
        self._lock = threading.Lock()
        self.compilations = 0

    def get(self, model: Model, data: AnalysisData, priors: Mapping[str, Prior],
            shared: SharedFamilies | None = None, progress=None):
        key = structure_key(model, priors, data.n_studies, shared)
        with self._lock:
            compiled = self._models.get(key)
            if compiled is None:
                store = _store(model, key)
                compiled = load_model(store) if store is not None else None
                if compiled is None:
                    if progress is not None:
                        progress(f"compiling the {model.name} model for this machine (once "
                                 "per model and study count: 10-60 s the first time, a few "
                                 "seconds after an upgrade; later runs load it in well "
                                 "under a second)")
                    compiled = compile_model(model.build(data, priors, shared=shared),
                                             store=store)
                    self.compilations += 1
                self._models[key] = compiled
        return compiled.with_data(**model.data_values(data, priors, shared=shared))


def compiled_before(model: Model, key: StructureKey) -> bool:
    """Whether a model of this structure was compiled on this machine before (its
    built functions are on disk), so that a fit will not pay the first compile."""
    store = _store(model, key)
    return store is not None and store.is_file()


def _store(model: Model, key: StructureKey):
    """Where this structure's built functions are kept on disk, by the structure key and
    the source of the model's module (a plug-in edited since is built anew); None for a
    model whose source cannot be read."""
    import inspect
    import sys

    try:
        source = inspect.getsource(sys.modules[type(model).__module__])
    except (OSError, TypeError, KeyError):
        return None
    return store_path((key, type(model).__qualname__, source))


#: The process-wide cache used unless a caller brings its own.
COMPILED_MODELS = CompiledModelCache()


#: nutpie's per-draw columns that are coordinates, not statistics. Vector-valued
#: statistics (gradients, mass matrices) are left out, as nutpie leaves them out by
#: default, and so are text columns (divergence messages), which cannot go to netCDF.
_NOT_STATISTICS = ("chain", "draw")


def _from_arrow(trace, variables: list[str], coords: Mapping[str, list]
                ) -> tuple[xr.Dataset, xr.Dataset]:
    """Posterior draws of ``variables`` and the scalar sampler statistics, warm-up
    dropped, from nutpie's raw Arrow trace.

    nutpie's own conversion builds every group, warm-up included, through ArviZ's
    ``from_dict`` (~70 ms a fit, a third of the sampling time); this reads the same
    columns straight into arrays (~10 ms). Missing values are NaN for floats and 0 for
    integers, as nutpie has them; the result equals nutpie's DataTree, value for value
    and dtype for dtype (tested).
    """
    import pyarrow as pa

    draw_batches, stat_batches = trace.get_arrow_trace()
    if len({batch.num_rows for batch in draw_batches}) > 1:  # nutpie pads; we never stop early
        raise BayesDressError("nutpie returned chains of different lengths: was sampling "
                            "interrupted?")
    draws, stats = defaultdict(list), defaultdict(list)
    dims: dict[str, list[str]] = {}
    for draw_batch, stat_batch in zip(draw_batches, stat_batches, strict=True):
        draw_batch, stat_batch = pa.record_batch(draw_batch), pa.record_batch(stat_batch)
        kept = ~stat_batch.column("tuning").to_numpy(zero_copy_only=False)
        for name in variables:
            column = draw_batch.column(name)
            metadata = draw_batch.schema.field(name).metadata or {}
            shape = [int(s) for s in metadata.get(b"shape", b"").decode().split(",") if s]
            dims[name] = [d for d in metadata.get(b"dims", b"").decode().split(",") if d]
            if shape:
                column = column.flatten()
            values = column.to_numpy(zero_copy_only=False)
            draws[name].append(values.reshape(len(kept), *shape)[kept])
        for field in stat_batch.schema:
            kind = field.type
            if field.name in _NOT_STATISTICS or not (
                    pa.types.is_floating(kind) or pa.types.is_integer(kind)
                    or pa.types.is_boolean(kind)):
                continue
            column = stat_batch.column(field.name)
            if column.null_count and not pa.types.is_floating(kind):
                column = column.fill_null(0)
            stats[field.name].append(column.to_numpy(zero_copy_only=False)[kept])
    posterior = xr.Dataset(
        {name: (["chain", "draw", *dims[name]], np.stack(arrays))
         for name, arrays in draws.items()},
        coords={name: values for name, values in coords.items()
                if any(name in d for d in dims.values())})
    statistics = xr.Dataset({name: (["chain", "draw"], np.stack(arrays))
                             for name, arrays in stats.items()})
    sample_coords = {"chain": np.arange(len(draw_batches)),
                     "draw": np.arange(statistics.sizes["draw"])}
    return posterior.assign_coords(sample_coords), statistics.assign_coords(sample_coords)


#: How often a running sampler is polled: Python's signal handlers (Ctrl-C, SIGTERM) run
#: between polls, which a blocking wait inside nutpie's Rust code would not let them do.
POLL_SECONDS = 0.02


def _finished(sampler) -> bool:
    # nutpie's ``is_finished`` property raises TimeoutError while the sampler runs.
    try:
        return bool(sampler.is_finished)
    except TimeoutError:
        return False


#: How often nutpie reports the chains' progress while sampling (ms).
PROGRESS_MS = 500


class SamplingProgress:
    """Sampling progress for a ``progress(message)`` callback: nothing for a fit that
    ends within a few seconds (most), then a line every few seconds with the draws done
    and the divergences so far. nutpie calls :meth:`record` from its own thread; the
    waiting thread calls :meth:`report`."""

    #: Seconds of sampling before the first report, and between reports.
    FIRST, EVERY = 3.0, 5.0

    def __init__(self, progress, *, what: str):
        self.progress, self.what = progress, what
        self._latest = None
        self._start = time.monotonic()
        self._next = self._start + self.FIRST

    def record(self, chains) -> None:
        # One assignment of a new tuple: the reader sees the old or the new, whole.
        self._latest = tuple((c.finished_draws, c.total_draws, c.divergences, c.tuning)
                             for c in chains)

    def report(self) -> None:
        now = time.monotonic()
        latest = self._latest
        if self.progress is None or latest is None or now < self._next:
            return
        self._next = now + self.EVERY
        done, total = sum(c[0] for c in latest), sum(c[1] for c in latest)
        divergences = sum(c[2] for c in latest)
        phase = "warm-up" if any(c[3] for c in latest) else "sampling"
        self.progress(f"{self.what}: {100 * done / max(total, 1):.0f}% ({phase}, "
                      f"{divergences} divergences so far, {now - self._start:.0f} s)")


def _wait_a_little(sampler) -> bool:
    """Wait at most :data:`POLL_SECONDS` for the sampler to finish; whether it has.

    nutpie's own sampler object waits with a timeout and returns as soon as sampling
    ends (no polling latency, which a sweep of short fits would pay on every fit); its
    public ``wait(timeout)`` would also take the results, finished or not. Without that
    object (another nutpie), sleep and ask."""
    inner = getattr(sampler, "_sampler", None)
    if inner is None or not hasattr(inner, "wait"):
        time.sleep(POLL_SECONDS)
        return _finished(sampler)
    try:
        inner.wait(POLL_SECONDS)
    except TimeoutError:
        return False
    return True


def _wait(sampler, watch: SamplingProgress | None = None):
    """The raw trace of a background nutpie sampler, waited for in short steps so that
    an interrupt or a termination stops the sampler (its threads) and propagates at
    once."""
    try:
        while not _wait_a_little(sampler):
            if watch is not None:
                watch.report()
        return sampler.wait()
    except BaseException:
        sampler.cancel()
        raise


def sample_posterior(model: Model, data: AnalysisData, priors: Mapping[str, Prior],
                     settings: SamplerSettings, *, seed: np.random.SeedSequence,
                     cache: CompiledModelCache | None = None,
                     n_slots: int | None = None,
                     shared: SharedFamilies | None = None, progress=None) -> xr.DataTree:
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

        padded_data = padded(data, n_slots)
        compiled = (cache or COMPILED_MODELS).get(model, padded_data, priors, shared,
                                                  progress=progress)
        watch = SamplingProgress(progress, what=f"sampling {settings.chains} chains x "
                                 f"({settings.tune} warm-up + {settings.draws}) draws")
        if progress is not None:
            progress(watch.what)
        sampler = nutpie.sample(compiled, draws=settings.draws, tune=settings.tune,
                                chains=settings.chains, cores=cores, seed=sampler_seed,
                                target_accept=settings.target_accept, save_warmup=False,
                                progress_bar=False, return_raw_trace=True, blocking=False,
                                progress_callback=watch.record if progress else None,
                                progress_rate=PROGRESS_MS)
        trace = _wait(sampler, watch)
        posterior, stats = _from_arrow(trace, list(model.sampled),
                                       model.coords(padded_data))
        stats.attrs.update(inference_library="nutpie",
                           inference_library_version=nutpie.__version__)
    else:
        import pymc as pm

        with model.build(data, priors):
            tree = pm.sample(draws=settings.draws, tune=settings.tune, chains=settings.chains,
                             cores=cores, random_seed=sampler_seed, nuts_sampler="pymc",
                             target_accept=settings.target_accept, progressbar=False,
                             compute_convergence_checks=False)
        posterior = tree["posterior"].to_dataset()[list(model.sampled)]
        stats = tree["sample_stats"].to_dataset()
        stats = stats.drop_vars([v for v in stats.data_vars if stats[v].dtype == object])
    if STUDY_DIM in posterior.dims:
        posterior = posterior.isel({STUDY_DIM: slice(0, data.n_studies)})
    return xr.DataTree.from_dict({"posterior": posterior, "sample_stats": stats})


class NutsEngine(Engine):
    """NUTS through nutpie: every model, every proper or improper prior its spec allows.

    The sampled parameters come from the sampler; the derived quantities and replicated
    counts from :meth:`~bayes_dress.models.base.Model.derived` and
    :meth:`~bayes_dress.models.base.Model.replicate`, drawn with the analysis's second
    random stream.
    """

    name = "nuts"
    needs_reference = True

    def supports(self, model, priors):
        return None

    def fit(self, analysis: Analysis, *, settings, seeds, options: FitOptions) -> EngineFit:
        start = time.perf_counter()
        model, data, priors = analysis.model, analysis.data, analysis.priors
        sampled = sample_posterior(model, data, priors, settings, seed=seeds[0],
                                   cache=options.cache, n_slots=options.n_slots,
                                   shared=options.shared, progress=options.progress)
        posterior_group = sampled["posterior"]
        draws = {k: posterior_group[k].values for k in model.sampled if k in posterior_group}
        rng = np.random.default_rng(seeds[1])
        quantities = model.quantities_from(draws, data, rng, priors, conditioned=True)
        replicated = model.replicate(quantities, data, rng)
        dataset = analysis.dataset(quantities)
        stats = sampled["sample_stats"].to_dataset()
        reported = [q.name for q in model.quantities if q.reported]
        posterior = DrawsPosterior(dataset, outcomes=analysis.outcomes, variables=reported,
                                   exclude=analysis.unreported())
        return EngineFit(
            posterior=posterior,
            groups={"posterior_predictive": analysis.dataset({"y": replicated}),
                    "sample_stats": stats},
            evidence={"sample_stats": stats},
            details={"sampler": settings.name, "chains": settings.chains,
                     "draws": settings.draws, "tune": settings.tune},
            seconds=time.perf_counter() - start)


ENGINE = NutsEngine()
