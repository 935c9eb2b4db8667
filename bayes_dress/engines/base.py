"""The engine interface: what an engine promises, and what a fit by it returns."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bayes_dress.models.analysis import Analysis
from bayes_dress.models.base import Model, SharedFamilies
from bayes_dress.posterior.base import Posterior
from bayes_dress.spec.config import SamplerSettings
from bayes_dress.spec.priors import Prior


@dataclass
class FitOptions:
    """How a fit is run, beyond the sampler settings (a sweep sets these).

    Attributes
    ----------
    cache : object, optional
        Compiled models to reuse (NUTS); the process-wide cache by default.
    n_slots : int, optional
        Study slots of a compiled model (NUTS): fits with fewer studies are padded with
        empty ones, so leaving a study out needs no new compile.
    shared : mapping, optional
        Prior families held in one compiled graph, per parameter (NUTS).
    refine : bool
        Measure the integrator's own error by refining it (exact); a sweep does so on
        its primary analysis only.
    reference : bool
        Whether the engine is being run as another engine's reference (it may then
        skip what only a user-facing fit needs).
    progress : callable, optional
        ``progress(message)`` for what takes long (a model compiled for the first time).
    """

    cache: Any = None
    n_slots: int | None = None
    shared: SharedFamilies | None = None
    refine: bool = True
    reference: bool = False
    progress: Any = None


@dataclass
class EngineFit:
    """What an engine returns for one analysis.

    Attributes
    ----------
    posterior : Posterior
    groups : dict of str to xarray.Dataset
        Groups saved with the posterior besides it (``posterior_predictive``,
        ``sample_stats``).
    evidence : dict
        What the checks judge: ``sample_stats`` (a sampler's statistics), ``grid_error``
        (an integrator's measured error; NaN when not measured), ``importance`` (k-hat and
        ESS of importance weights).
    details : dict
        JSON-ready facts for diagnostics.json (grid points, timings).
    notes : list of str
    """

    posterior: Posterior
    groups: dict = field(default_factory=dict)
    evidence: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


class Engine(ABC):
    """Turns an analysis into a posterior."""

    #: The name ``--engine`` takes.
    name: str
    #: Whether a user may choose it with ``--engine`` (else it serves as a reference only).
    selectable: bool = True
    #: Whether it computes to a stated error of its own without Markov chains, so that a
    #: sampler's fit can be checked against it.
    reference: bool = False
    #: Whether its fits must be checked against a reference engine.
    needs_reference: bool = False

    @abstractmethod
    def supports(self, model: Model, priors: Mapping[str, Prior]) -> str | None:
        """None if this engine can fit ``model`` under ``priors``, else why not."""

    @abstractmethod
    def fit(self, analysis: Analysis, *, settings: SamplerSettings,
            seeds: Sequence[np.random.SeedSequence], options: FitOptions) -> EngineFit:
        """Fit ``analysis``. ``seeds`` are the analysis's random streams (the first for
        sampling, the second for derived quantities)."""
