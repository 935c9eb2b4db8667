"""A posterior saved as netCDF groups, and read back as the same interface.

Draws are saved as they are (the ``posterior`` group, ArviZ's convention). Exact
marginals are saved as their tabulated CDFs (the ``marginals`` group: per quantity its
key, mean and SD, and its points and CDF values), so a saved exact run is read back as
an exact posterior, not as stand-in draws.
"""

from __future__ import annotations

from collections.abc import Sequence

import xarray as xr

from bayes_dress.posterior.base import Posterior
from bayes_dress.posterior.draws import DrawsPosterior
from bayes_dress.posterior.marginals import MARGINALS_GROUP, Marginal, MarginalsPosterior


def from_groups(tree: xr.DataTree, *, outcomes: Sequence[str],
                variables: Sequence[str] | None = None, exclude=()) -> Posterior:
    """The posterior of a saved fit (draws or exact marginals)."""
    if MARGINALS_GROUP in tree.children:
        dataset = tree[MARGINALS_GROUP].to_dataset()
        marginals = {}
        for i in range(dataset.sizes["quantity"]):
            key = (str(dataset["name"].values[i]), str(dataset["outcome"].values[i]),
                   str(dataset["study"].values[i]))
            marginals[key] = Marginal(dataset[f"x_{i}"].values, dataset[f"cdf_{i}"].values,
                                      float(dataset["mean"].values[i]),
                                      float(dataset["sd"].values[i]))
        return MarginalsPosterior(marginals, tolerance=float(dataset.attrs["tolerance"]))
    return DrawsPosterior(tree["posterior"].to_dataset(), outcomes=outcomes,
                          variables=variables, exclude=exclude)
