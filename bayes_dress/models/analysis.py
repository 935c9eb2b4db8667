"""An analysis: one model, the counts of its outcomes, and the priors, checked together."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bayes_dress.data.selection import AnalysisData
from bayes_dress.errors import SpecError
from bayes_dress.models.base import OUTCOME_DIM, STUDY_DIM, Model
from bayes_dress.spec.priors import Prior


@dataclass(frozen=True)
class Analysis:
    """One model fitted to one or more outcomes of one study table.

    Attributes
    ----------
    model : Model
    data : AnalysisData
        As many outcomes as the model takes.
    priors : mapping of str to Prior
        One per model parameter (see :func:`bayes_dress.spec.models.resolve_priors`).
    """

    model: Model
    data: AnalysisData
    priors: Mapping[str, Prior] = field(default_factory=dict)

    def __post_init__(self):
        wanted = self.model.n_outcomes
        if len(self.data.outcomes) != wanted:
            raise SpecError(f"model '{self.model.name}' takes {wanted} outcome(s); analysis "
                            f"'{self.data.name}' has {len(self.data.outcomes)}")

    @property
    def name(self) -> str:
        return self.data.name

    @property
    def outcomes(self) -> tuple[str, ...]:
        return self.data.outcomes

    def unreported(self) -> list[tuple[str, str, str]]:
        """Keys of study rates for outcomes a study does not report (multi-outcome
        analyses): the model has them, but no count of that study informs them, so they
        are not reported as that study's rate."""
        if len(self.outcomes) == 1:
            return []
        reported = self.data.reported
        return [("theta", outcome, study)
                for j, outcome in enumerate(self.outcomes)
                for i, study in enumerate(self.data.studies) if not reported[j, i]]

    def dataset(self, arrays: Mapping, *, sample_dims: tuple[str, ...] = ("chain", "draw")):
        """Arrays shaped (chain, draw, ...) as an xarray Dataset, with the dimensions the
        model declares for each variable (its reported ones, or as sampled)."""
        import numpy as np
        import xarray as xr

        coords = {STUDY_DIM: list(self.data.studies)}
        if self.model.n_outcomes > 1:
            coords[OUTCOME_DIM] = list(self.outcomes)
        variables = {}
        for name, values in arrays.items():
            values = np.asarray(values)
            extra = values.ndim - len(sample_dims)
            try:
                quantity = self.model.quantity(name)
                dims = next(d for d in (quantity.dims, quantity.draw_dims) if len(d) == extra)
            except (KeyError, StopIteration):  # an undeclared variable: by position
                dims = (OUTCOME_DIM, STUDY_DIM)[-extra:] if extra else ()
            variables[name] = ((*sample_dims, *dims), values)
        used = {d for dims, _ in variables.values() for d in dims}
        chains, draws = next(iter(arrays.values())).shape[:2]
        coords.update(chain=np.arange(chains), draw=np.arange(draws))
        return xr.Dataset(variables, coords={k: v for k, v in coords.items() if k in used})
