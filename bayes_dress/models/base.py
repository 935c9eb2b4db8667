"""What every model is: a PyMC graph of an analysis's counts, and the quantities it reports.

A model does two things and nothing else:

* :meth:`Model.build` returns a PyMC model for an analysis's counts. Data and prior
  arguments are ``pm.Data`` containers, so a compiled model can be re-run on new counts
  or new prior values (without recompiling).
* :meth:`Model.derived` turns draws of the sampled parameters into the reported
  quantities, with NumPy, for posterior and prior draws alike.

and declares, in :attr:`Model.quantities`, every variable of its posterior: name,
dimensions (``outcome``, ``study``), support, and whether it is a parameter with a prior,
a structural latent (``z ~ Normal(0, 1)``) or derived. Every model reports
``theta`` (each study's rate), ``mean_rate`` (the population mean rate), ``theta_new``
(the rate in a new study, the predictive distribution) and ``sd_rates`` (the
between-study SD of rates), per outcome, plus its own parameters.

A single-outcome model (:class:`SingleOutcomeModel`) sees one outcome's counts as
arrays over studies and its variables have no ``outcome`` dimension; a model of several
outcomes sees (outcome, study) arrays, with 0 of 0 where a study does not report an
outcome, and gives its per-outcome variables an ``outcome`` dimension.

Sampling, output and plotting live elsewhere.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from bayes_dress.data.selection import AnalysisData
from bayes_dress.spec.models import ModelSpec, get_model_spec
from bayes_dress.spec.priors import Prior

OUTCOME_DIM = "outcome"
STUDY_DIM = "study"
#: Reported quantities shared by every model, in reporting order.
POPULATION_QUANTITIES = ("mean_rate", "theta_new", "sd_rates")

Draws = Mapping[str, np.ndarray]
#: Parameter -> the prior families one compiled graph holds for it.
SharedFamilies = Mapping[str, tuple[str, ...]]


@dataclass(frozen=True)
class Quantity:
    """One variable of a model's posterior.

    Attributes
    ----------
    name : str
    dims : tuple of str
        Beyond (chain, draw): a subset of ``("outcome", "study")``, in that order.
    support : str
        ``"unit"``, ``"positive"``, ``"real"`` or ``"correlation"``.
    kind : str
        ``"parameter"`` (sampled, with a prior from the spec), ``"latent"`` (sampled,
        structural, not reported: the standardised study effects) or ``"derived"``.
    """

    name: str
    dims: tuple[str, ...] = ()
    support: str = "real"
    kind: str = "derived"
    #: Dimensions of the sampled variable when they differ from the reported ones (the
    #: common-effect rate: sampled once, reported per study).
    sampled_dims: tuple[str, ...] | None = None

    @property
    def draw_dims(self) -> tuple[str, ...]:
        """Dimensions of the variable as the sampler draws it."""
        return self.dims if self.sampled_dims is None else self.sampled_dims

    @property
    def sampled(self) -> bool:
        return self.kind in ("parameter", "latent")

    @property
    def reported(self) -> bool:
        return self.kind != "latent"


def rate(name: str, *dims: str) -> Quantity:
    return Quantity(name, tuple(dims), "unit")


class Model(ABC):
    """A model of study-level event counts over one or more outcomes."""

    #: The model's name: its spec is ``NAME.toml`` (or registered with it).
    name: str
    #: Every variable of the posterior, in reporting order within its kind.
    quantities: tuple[Quantity, ...]

    # -- declarations ------------------------------------------------------------------
    @property
    def spec(self) -> ModelSpec:
        return get_model_spec(self.name)

    @property
    def n_outcomes(self) -> int:
        return self.spec.outcomes

    @property
    def observation_dims(self) -> tuple[str, ...]:
        """Dimensions of the counts the model sees."""
        return (STUDY_DIM,) if self.n_outcomes == 1 else (OUTCOME_DIM, STUDY_DIM)

    def quantity(self, name: str) -> Quantity:
        for quantity in self.quantities:
            if quantity.name == name:
                return quantity
        raise KeyError(f"model '{self.name}' has no quantity '{name}'")

    @property
    def sampled(self) -> tuple[str, ...]:
        """Variables the sampler draws: parameters and structural latents."""
        return tuple(q.name for q in self.quantities if q.sampled)

    @property
    def parameters(self) -> tuple[str, ...]:
        """Variables with a prior from the spec (the hyperparameters)."""
        return tuple(q.name for q in self.quantities if q.kind == "parameter")

    @property
    def study_level(self) -> tuple[str, ...]:
        """Sampled variables with a study dimension."""
        return tuple(q.name for q in self.quantities
                     if q.sampled and STUDY_DIM in q.draw_dims)

    def coords(self, data: AnalysisData) -> dict[str, list[str]]:
        coords = {STUDY_DIM: list(data.studies)}
        if self.n_outcomes > 1:
            coords[OUTCOME_DIM] = list(data.outcomes)
        return coords

    # -- the counts, as the model sees them ---------------------------------------------
    def counts(self, data: AnalysisData) -> tuple[np.ndarray, np.ndarray]:
        """(events, totals) with :attr:`observation_dims`."""
        if self.n_outcomes == 1:
            block = data.single
            return block.events, block.totals
        return data.events, data.totals

    # -- the PyMC side ------------------------------------------------------------------
    @abstractmethod
    def build(self, data: AnalysisData, priors: Mapping[str, Prior], *,
              shared: SharedFamilies | None = None):
        """The PyMC model for ``data`` under ``priors``; ``shared`` maps a parameter to
        the prior families its graph holds (see :meth:`Prior.add_to_model`)."""

    def data_containers(self, data: AnalysisData):
        """``pm.Data`` containers of the counts (call inside the model context)."""
        import pymc as pm

        events, totals = self.counts(data)
        dims = self.observation_dims
        return pm.Data("events", events, dims=dims), pm.Data("totals", totals, dims=dims)

    def data_values(self, data: AnalysisData, priors: Mapping[str, Prior], *,
                    shared: SharedFamilies | None = None) -> dict:
        """Values of every ``pm.Data`` container, for re-running a compiled model."""
        events, totals = self.counts(data)
        values = {"events": events, "totals": totals}
        for name, prior in priors.items():
            values.update(prior.data_values(name, (shared or {}).get(name)))
        return values

    def prior_variable(self, name: str, priors: Mapping[str, Prior],
                       shared: SharedFamilies | None, **kwargs):
        """Add parameter ``name`` with its prior to the PyMC model in context."""
        return priors[name].add_to_model(name, shared=(shared or {}).get(name), **kwargs)

    # -- the NumPy side -----------------------------------------------------------------
    @abstractmethod
    def log_likelihood(self, draws: Draws, events: np.ndarray, totals: np.ndarray
                       ) -> np.ndarray:
        """Log-likelihood of each count at each draw, shape (..., *observation_dims):
        the likelihood the sampler used (marginal over study rates where it integrates
        them out); 0 where a study does not report an outcome."""

    @abstractmethod
    def derived(self, draws: Draws, events: np.ndarray, totals: np.ndarray,
                rng: np.random.Generator, priors: Mapping[str, Prior]) -> dict[str, np.ndarray]:
        """Reported quantities from draws of the sampled parameters.

        ``events`` and ``totals`` (:attr:`observation_dims`) are the counts the draws are
        conditioned on; prior draws pass zeros, so conditional draws reduce to draws from
        the prior.
        """

    def quantities_from(self, draws: Draws, data: AnalysisData, rng: np.random.Generator,
                        priors: Mapping[str, Prior], *, conditioned: bool
                        ) -> dict[str, np.ndarray]:
        """Sampled and derived quantities for draws conditioned on ``data`` (posterior
        draws) or on nothing (prior draws)."""
        events, totals = self.counts(data)
        if not conditioned:
            events, totals = np.zeros_like(events), np.zeros_like(totals)
        quantities = dict(draws)
        quantities.update(self.derived(draws, events, totals, rng, priors))
        return quantities

    def replicate(self, quantities: Draws, data: AnalysisData, rng: np.random.Generator
                  ) -> np.ndarray:
        """Replicated counts: Binomial(n, theta) per study (and outcome), the posterior
        (or prior) predictive distribution of the data."""
        _, totals = self.counts(data)
        return rng.binomial(totals, quantities["theta"])

    def prior_draws(self, priors: Mapping[str, Prior], data: AnalysisData,
                    rng: np.random.Generator, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
        """Draws of the sampled variables from their priors (latents from N(0, 1))."""
        sizes = {STUDY_DIM: data.n_studies, OUTCOME_DIM: len(data.outcomes)}
        draws = {}
        for quantity in self.quantities:
            if not quantity.sampled:
                continue
            size = (*shape, *(sizes[d] for d in quantity.draw_dims))
            draws[quantity.name] = (priors[quantity.name].draw(rng, size)
                                    if quantity.name in priors else rng.standard_normal(size))
        return draws

    def sampled_draws(self, posterior):
        """The sampled variables (those present) in a saved posterior, an xarray
        Dataset that also holds the derived quantities: a parameter the derived ones
        repeat per study (the common-effect rate, stored as theta[study]) is taken once.
        """
        draws = {}
        for name in self.sampled:
            if name not in posterior:
                continue
            values = posterior[name]
            if STUDY_DIM in values.dims and STUDY_DIM not in self.quantity(name).draw_dims:
                values = values.isel({STUDY_DIM: 0}, drop=True)
            draws[name] = values
        return type(posterior)(draws)


class SingleOutcomeModel(Model):
    """A model of one outcome's counts: its variables have no outcome dimension."""

    def build(self, data: AnalysisData, priors: Mapping[str, Prior], *,
              shared: SharedFamilies | None = None):
        import pymc as pm

        with pm.Model(coords=self.coords(data)) as model:
            events, totals = self.data_containers(data)
            self.build_likelihood(events, totals, priors, shared)
        return model

    @abstractmethod
    def build_likelihood(self, events, totals, priors: Mapping[str, Prior],
                         shared: SharedFamilies | None) -> None:
        """Add the priors and the likelihood of ``events`` out of ``totals`` (``pm.Data``
        over studies) to the PyMC model in context."""

