"""Compile a PyMC model for nutpie, with the machine code cached on disk.

``nutpie.compile_pymc_model`` wraps PyTensor's numba functions in C callbacks whose
closures hold the data arrays, so numba cannot cache them: every process pays the
whole compile again (3-8 s a model here) plus numba's one-off start-up (~4 s). This
module builds the same PyTensor functions (whose numba code PyTensor caches on disk)
and wraps them in C callbacks that view every data container in one byte buffer. The
wrappers' source then depends only on the model's structure, so numba caches them too,
under a key made of their source and the PyTensor functions' own cache keys: a model
compiled once on a machine loads in well under a second in every later process (a
sweep's workers, the next run), and new counts or prior values are a new buffer.

Numba's cache leaves the other half of a warm start: building the PyMC model and
rewriting its graph into the PyTensor functions (about a second a model). Given a
``store`` path, :func:`compile_model` also pickles those functions (with PyMC's seeded
initial-point function, as an object that pickles), and :func:`load_model` reads them
back in a later process without building or rewriting anything; :func:`store_path`
names the file by the caller's key for the model and everything that could change what
building gives (this module, the versions of PyMC, PyTensor, nutpie, numba and NumPy).
An entry that does not load is removed and the model compiled again.

The sampler sees exactly the functions nutpie would build: the draws are identical,
seed for seed, compiled, loaded from numba's cache or from the store (tested). Both
caches live in PyTensor's compile directory (``pytensor.config.base_compiledir``); if
nutpie's internals this relies on are missing, :func:`compile_model` falls back to
``nutpie.compile_pymc_model``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

try:  # nutpie's and PyTensor's internals: what compile_pymc_model itself uses
    from nutpie.compile_pymc import (
        CompiledPyMCModel,
        _make_functions,
        _prepare_dims_and_coords,
        _wrap_with_lock,
    )
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS, compile_numba_function_src
except ImportError:  # pragma: no cover - another nutpie or PyTensor version
    CompiledPyMCModel = None

#: Signatures nutpie's sampler calls: logp(dim, x, grad_out, logp_out, data) and
#: expand(dim, n_expanded, x, out, data), returning 0 on success.
_LOGP_SOURCE = """
def logp_callback(dim, x_, out_, logp_, data_):
    if dim != {n_dim}:
        return -1
    x = numba.carray(x_, ({n_dim},))
    out = numba.carray(out_, ({n_dim},))
    logp = numba.carray(logp_, ())
    buffer = numba.carray(data_, ({size},), np.uint8)
{unpack}
    try:
        logp_value, grad = inner({arguments})
    except Exception:
        return 1
    logp[()] = logp_value
    out[...] = grad
    if not np.all(np.isfinite(out)):
        return 3
    if not np.isfinite(logp_value):
        return 4
    return 0
"""

_EXPAND_SOURCE = """
def expand_callback(dim, expanded, x_, out_, data_):
    if dim != {n_dim}:
        return -1
    if expanded != {n_expanded}:
        return -1
    x = numba.carray(x_, ({n_dim},))
    out = numba.carray(out_, ({n_expanded},))
    buffer = numba.carray(data_, ({size},), np.uint8)
{unpack}
    try:
        (values,) = inner({arguments})
    except Exception:
        return -2
    out[...] = values
    return 0
"""


#: Each container starts at a multiple of this many bytes, so every view is aligned.
_ALIGN = 8


@dataclass(frozen=True)
class Slot:
    """Where one data container's bytes sit in the data buffer."""

    name: str
    offset: int
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=int)) * self.dtype.itemsize

    def view_expression(self) -> str:
        """Numba source viewing this container in place (no copy: the callback runs
        for every gradient, and an allocation per container would double its cost)."""
        end = self.offset + self.nbytes
        return (f"buffer[{self.offset}:{end}].view(np.{self.dtype.name})"
                f".reshape({self.shape!r})")

    def encode(self, value) -> np.ndarray:
        """``value``'s bytes, after checking its shape and that its dtype holds it."""
        array = np.asarray(value)
        if array.shape != self.shape:
            raise ValueError(f"data {self.name!r} must have shape {self.shape}, "
                             f"got {array.shape}")
        with np.errstate(invalid="ignore"):
            cast = array.astype(self.dtype)
        if not np.array_equal(cast, array):
            raise ValueError(f"data {self.name!r} does not fit its dtype {self.dtype}")
        return np.ascontiguousarray(cast).reshape(-1).view(np.uint8)


def _layout(shared_variables) -> tuple[Slot, ...]:
    names = [variable.name for variable in shared_variables]
    if None in names or len(set(names)) < len(names):
        # with_data finds containers by name: two of one name would share their bytes.
        raise ValueError(f"data containers need distinct names, got {names}")
    slots, offset = [], 0
    for variable in shared_variables:
        value = np.asarray(variable.get_value())
        if value.dtype.kind not in "fiub":
            raise TypeError(f"data {variable.name!r} of dtype {value.dtype} cannot be "
                            "viewed from a byte buffer")
        slots.append(Slot(variable.name, offset, value.shape, value.dtype))
        offset += -(-value.nbytes // _ALIGN) * _ALIGN
    return tuple(slots)


def _buffer_size(layout: tuple[Slot, ...]) -> int:
    return max(_ALIGN, layout[-1].offset + layout[-1].nbytes if layout else 0)


@dataclass(frozen=True, kw_only=True)
class BufferedModel(CompiledPyMCModel or object):
    """A nutpie model whose data live in one byte buffer (``user_data``)."""

    layout: tuple[Slot, ...] = ()
    #: Whether both callbacks were loaded from numba's on-disk cache.
    loaded_from_cache: bool = False
    #: Whether the PyTensor functions were loaded from disk (:func:`load_model`).
    loaded_from_disk: bool = False

    def with_data(self, **updates) -> BufferedModel:
        """The same compiled model with new values of some data containers."""
        slots = {slot.name: slot for slot in self.layout}
        buffer = self.user_data.copy()
        for name, value in updates.items():
            if name not in slots:
                raise KeyError(f"unknown data container {name!r}; this model has "
                               f"{', '.join(sorted(slots))}")
            slot = slots[name]
            buffer[slot.offset:slot.offset + slot.nbytes] = slot.encode(value)
        buffer.flags.writeable = False
        return dataclasses.replace(self, user_data=buffer)


def _callback(template: str, inner, shared_variables, layout: tuple[Slot, ...],
              signature, **sizes):
    import numba
    from pytensor import config

    slots = {slot.name: slot for slot in layout}
    size = _buffer_size(layout)
    unpack = [f"    data{i} = {slots[v.name].view_expression()}"
              for i, v in enumerate(shared_variables)]
    arguments = ", ".join(["x", *(f"data{i}" for i in range(len(shared_variables)))])
    source = template.format(unpack="\n".join(unpack) or "    pass", arguments=arguments,
                             size=size, **sizes)
    inner_key = CACHED_SRC_FUNCTIONS.get(inner.py_func)
    cache = bool(inner_key) and config.numba__cache
    # The module's name is in the key: numba's cached code refers to it, so a cache
    # entry written under another module path must not be found.
    key = (hashlib.sha256(f"{__name__}\n{source}\n{inner_key}".encode()).hexdigest()
           if cache else None)
    name = source.split("def ", 1)[1].split("(", 1)[0]
    # A real module name, so that numba can rebuild the callback's environment when it
    # loads it from the cache in another process.
    function = compile_numba_function_src(
        source, name, {"numba": numba, "np": np, "inner": inner, "__name__": __name__},
        cache_key=key)
    return numba.cfunc(signature, cache=cache)(function)


class _SeededInitialPoint:
    """PyMC's seeded initial-point function (``make_initial_point_fn``), as an object
    that pickles: the compiled PyTensor function, the names of its outputs, and a lock
    (nutpie calls it from every chain's thread; as ``_wrap_with_lock`` does)."""

    def __init__(self, function, names: list[str]):
        self.function, self.names = function, list(names)
        self._prepare()

    def _prepare(self) -> None:
        import threading

        from pymc.pytensorf import find_rng_nodes

        self._rngs = find_rng_nodes(self.function.maker.fgraph.outputs)
        self._lock = threading.Lock()

    def __call__(self, seed=None, *args, **kwargs):
        from pymc.pytensorf import reseed_rngs

        with self._lock:
            reseed_rngs(self._rngs, seed)
            return dict(zip(self.names, self.function(*args, **kwargs), strict=True))

    def __getstate__(self):
        return {"function": self.function, "names": self.names}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._prepare()

    @classmethod
    def of(cls, seeded) -> _SeededInitialPoint | None:
        """The parts of PyMC's closure (the compiled function it wraps and the names it
        zips with); None if PyMC's closure is not what this version expects."""
        function = getattr(seeded, "__wrapped__", None)
        cells = dict(zip(seeded.__code__.co_freevars,
                         (c.cell_contents for c in seeded.__closure__ or ()), strict=True))
        names = cells.get("varnames")
        if function is None or not hasattr(function, "maker") or names is None:
            return None
        return cls(function, names)


@dataclass(frozen=True)
class _Built:
    """What compiling a model produces before numba wraps it: the part kept on disk."""

    n_dim: int
    n_expanded: int
    logp_function: object
    expand_function: object
    initial_point: object  # seed -> {name: value}
    shape_info: tuple
    reparameterized: list
    dims: dict
    coords: dict


def _build(model) -> _Built:
    from pymc.initial_point import make_initial_point_fn

    # As nutpie.compile_pymc_model does by default: start at the support point, jittered.
    seeded = make_initial_point_fn(model=model, overrides=None,
                                   default_strategy="support_point",
                                   jitter_rvs=set(model.free_RVs), return_transformed=True)
    initial_point = _SeededInitialPoint.of(seeded) or _wrap_with_lock(seeded)
    (n_dim, n_expanded, logp_function, expand_function, _, shape_info,
     reparameterized) = _make_functions(
        model, mode="NUMBA", compute_grad=True, join_expanded=True,
        pymc_initial_point_fn=initial_point)
    dims, coords = _prepare_dims_and_coords(model, shape_info, reparameterized)
    return _Built(n_dim, n_expanded, logp_function, expand_function, initial_point,
                  shape_info, reparameterized, dims, coords)


def _finish(built: _Built, *, from_disk: bool = False) -> BufferedModel:
    """Wrap the built functions in numba callbacks over one data buffer."""
    import numba
    from nutpie.compile_pymc import _rv_dict_to_flat_array_wrapper

    logp_function, expand_function = built.logp_function, built.expand_function
    shared = list(dict.fromkeys([*logp_function.get_shared(),
                                 *expand_function.get_shared()]))
    layout = _layout(shared)
    double = numba.types.CPointer(numba.types.double)
    n_dim = built.n_dim
    logp = _callback(_LOGP_SOURCE, logp_function.vm.jit_fn, logp_function.get_shared(),
                     layout, numba.types.int64(numba.types.uint64, double, double, double,
                                               numba.types.voidptr),
                     n_dim=n_dim)
    expand = _callback(_EXPAND_SOURCE, expand_function.vm.jit_fn,
                       expand_function.get_shared(), layout,
                       numba.types.int64(numba.types.uint64, numba.types.uint64, double,
                                         double, numba.types.voidptr),
                       n_dim=n_dim, n_expanded=built.n_expanded)
    # The free variables lead the expanded vector: they are what the initial point fills.
    free = [(name, shape) for name, part, shape in zip(*built.shape_info, strict=True)
            if part.stop <= n_dim]
    initial_point_function = _rv_dict_to_flat_array_wrapper(
        built.initial_point, names=[n for n, _ in free], shapes=[s for _, s in free])
    compiled = BufferedModel(
        _n_dim=n_dim, dims=built.dims, _coords=built.coords,
        _shapes={name: tuple(shape) for name, _, shape in zip(*built.shape_info,
                                                               strict=True)},
        compiled_logp_func=logp, compiled_expand_func=expand,
        initial_point_func=initial_point_function, shared_data={}, shared_var_keys={},
        # 8-byte aligned: numpy's allocations are (16-byte), and every offset is a
        # multiple of 8.
        user_data=np.zeros(_buffer_size(layout), dtype=np.uint8),
        n_expanded=built.n_expanded, shape_info=built.shape_info,
        logp_func=logp_function, expand_func=expand_function,
        reparameterized_names=built.reparameterized, layout=layout,
        loaded_from_cache=bool(logp._cache_hits and expand._cache_hits),
        loaded_from_disk=from_disk)
    return compiled.with_data(**{v.name: v.get_value() for v in shared})


def compile_model(model, *, store: Path | None = None) -> BufferedModel:
    """Compile ``model`` (a ``pymc.Model``) for ``nutpie.sample``.

    Parameters
    ----------
    model : pymc.Model
    store : Path, optional
        Where to keep the built PyTensor functions (see :func:`load_model`), so that a
        later process skips building and rewriting the graph.

    Returns
    -------
    BufferedModel
        Supports ``with_data`` for every ``pm.Data`` container, with the shapes it
        was compiled with. (``nutpie.compile_pymc_model``'s own model, if nutpie's
        internals are not available.)
    """
    import nutpie

    if CompiledPyMCModel is None:  # pragma: no cover - another nutpie version
        return nutpie.compile_pymc_model(model)
    built = _build(model)
    compiled = _finish(built)
    if store is not None and isinstance(built.initial_point, _SeededInitialPoint):
        _save(built, store)
    return compiled


def _save(built: _Built, store: Path) -> None:
    import pickle
    import tempfile

    try:
        store.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=store.parent, prefix=".tmp-", suffix=".pkl",
                                         delete=False) as handle:
            pickle.dump(built, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(handle.name, store)
    except Exception:  # a cache that cannot be written costs the next process a compile
        with contextlib.suppress(OSError, NameError):
            os.unlink(handle.name)


def load_model(store: Path) -> BufferedModel | None:
    """The model :func:`compile_model` kept at ``store``, or None (nothing there, or
    written by other versions: then the entry is removed and the caller compiles).

    Loading skips what costs most in a warm process: building the PyMC model and
    rewriting its graph (about a second a model); numba's machine code comes from its
    own cache as before.
    """
    import pickle

    if CompiledPyMCModel is None or not store.is_file():
        return None
    try:
        with open(store, "rb") as handle:
            built = pickle.load(handle)
        if not isinstance(built, _Built):
            raise TypeError("not a built model")
        return _finish(built, from_disk=True)
    except Exception:
        with contextlib.suppress(OSError):
            store.unlink()
        return None


def store_path(parts: tuple) -> Path | None:
    """Where the built functions of a model identified by ``parts`` are kept: a file
    in PyTensor's compile directory named by a hash of ``parts`` and of everything
    that could change what building gives (this module and the versions of the
    libraries that build and run it)."""
    from importlib import metadata

    from pytensor import config

    try:
        versions = [metadata.version(p) for p in ("pymc", "pytensor", "nutpie", "numba",
                                                   "numpy")]
        source = Path(__file__).read_bytes()
    except (metadata.PackageNotFoundError, OSError):
        return None
    digest = hashlib.sha256(repr((parts, versions, sys.version, source)).encode()
                            ).hexdigest()[:32]
    return Path(config.base_compiledir) / "bayes-dress-compiled" / f"{digest}.pkl"
