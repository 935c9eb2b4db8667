"""Shared fixtures: the bundled table and small, fast sampler settings."""

from __future__ import annotations

import numpy as np
import pytest

from bayes_dress.config import SamplerSettings
from bayes_dress.data import OutcomeData, load_table

#: Small but honest MCMC for tests: 2 chains x 1000 draws gives ESS in the high
#: hundreds for these models, so Monte Carlo standard errors are ~3% of a posterior SD.
FAST = SamplerSettings(draws=1000, tune=500, chains=2, seed=1234)


@pytest.fixture(scope="session")
def bundled():
    return load_table()


def outcome_data(events, totals, studies=None, outcome="events") -> OutcomeData:
    """Counts as a model sees them, without going through a CSV."""
    studies = studies or [f"S{i + 1}" for i in range(len(events))]
    return OutcomeData(outcome=outcome, studies=tuple(studies),
                       events=np.asarray(events, dtype=np.int64),
                       totals=np.asarray(totals, dtype=np.int64),
                       definitions=tuple("primary" for _ in events))
