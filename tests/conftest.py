"""Shared fixtures and helpers: the bundled table, small fast sampler settings, and the
check that a command failed with one user-facing error line."""

from __future__ import annotations

import numpy as np
import pytest

from bayes_dress.data import OutcomeData, load_table
from bayes_dress.spec.config import SamplerSettings

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


def assert_no_traceback(result):
    """A CliRunner result that ended in SystemExit: anything else would be a traceback
    to a user (CliRunner catches the exception)."""
    assert isinstance(result.exception, SystemExit), (result.exception, result.output)
    assert "Traceback" not in result.output
    assert "Traceback" not in result.stderr


def assert_user_error(result, *words):
    """Exit 2, nothing on stdout, exactly one ``error:`` line on stderr naming ``words``.

    Returns
    -------
    str
        That line (with its newline), for further checks.
    """
    assert result.exit_code == 2, result.output
    assert_no_traceback(result)
    assert result.stdout == ""
    err = result.stderr
    assert err.endswith("\n") and err.count("\n") == 1, repr(err)
    assert err.startswith("error: "), err
    assert err.strip() in result.output
    for word in words:
        assert word in err, (word, err)
    return err
