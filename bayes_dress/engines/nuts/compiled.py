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

The sampler sees exactly the functions nutpie would build: the draws are identical,
seed for seed (tested). The cache lives in PyTensor's compile directory
(``pytensor.config.base_compiledir``); if nutpie's internals this relies on are
missing, :func:`compile_model` falls back to ``nutpie.compile_pymc_model``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

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


def compile_model(model) -> BufferedModel:
    """Compile ``model`` (a ``pymc.Model``) for ``nutpie.sample``.

    Returns
    -------
    BufferedModel
        Supports ``with_data`` for every ``pm.Data`` container, with the shapes it
        was compiled with. (``nutpie.compile_pymc_model``'s own model, if nutpie's
        internals are not available.)
    """
    import numba
    import nutpie

    if CompiledPyMCModel is None:  # pragma: no cover - another nutpie version
        return nutpie.compile_pymc_model(model)
    from pymc.initial_point import make_initial_point_fn

    # As nutpie.compile_pymc_model does by default: start at the support point, jittered.
    initial_point = _wrap_with_lock(make_initial_point_fn(
        model=model, overrides=None, default_strategy="support_point",
        jitter_rvs=set(model.free_RVs), return_transformed=True))
    (n_dim, n_expanded, logp_function, expand_function, initial_point_function,
     shape_info, reparameterized) = _make_functions(
        model, mode="NUMBA", compute_grad=True, join_expanded=True,
        pymc_initial_point_fn=initial_point)
    shared = list(dict.fromkeys([*logp_function.get_shared(),
                                 *expand_function.get_shared()]))
    layout = _layout(shared)
    double = numba.types.CPointer(numba.types.double)
    logp = _callback(_LOGP_SOURCE, logp_function.vm.jit_fn, logp_function.get_shared(),
                     layout, numba.types.int64(numba.types.uint64, double, double, double,
                                               numba.types.voidptr),
                     n_dim=n_dim)
    expand = _callback(_EXPAND_SOURCE, expand_function.vm.jit_fn,
                       expand_function.get_shared(), layout,
                       numba.types.int64(numba.types.uint64, numba.types.uint64, double,
                                         double, numba.types.voidptr),
                       n_dim=n_dim, n_expanded=n_expanded)
    dims, coords = _prepare_dims_and_coords(model, shape_info, reparameterized)
    compiled = BufferedModel(
        _n_dim=n_dim, dims=dims, _coords=coords,
        _shapes={name: tuple(shape) for name, _, shape in zip(*shape_info, strict=True)},
        compiled_logp_func=logp, compiled_expand_func=expand,
        initial_point_func=initial_point_function, shared_data={}, shared_var_keys={},
        # 8-byte aligned: numpy's allocations are (16-byte), and every offset is a
        # multiple of 8.
        user_data=np.zeros(_buffer_size(layout), dtype=np.uint8), n_expanded=n_expanded,
        shape_info=shape_info, logp_func=logp_function, expand_func=expand_function,
        reparameterized_names=reparameterized, layout=layout,
        loaded_from_cache=bool(logp._cache_hits and expand._cache_hits))
    return compiled.with_data(**{v.name: v.get_value() for v in shared})
