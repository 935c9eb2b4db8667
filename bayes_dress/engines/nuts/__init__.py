"""The NUTS engine: nutpie-compiled PyMC models, cached on disk, sampled for every model."""

from bayes_dress.engines.nuts.engine import (
    COMPILED_MODELS,
    ENGINE,
    CompiledModelCache,
    compiled_before,
    padded,
    sample_posterior,
    structure_key,
)

__all__ = ["COMPILED_MODELS", "ENGINE", "CompiledModelCache", "compiled_before", "padded",
           "sample_posterior", "structure_key"]
