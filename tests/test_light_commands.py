"""Commands that only read or list import no sampler stack (PyMC, PyTensor, nutpie, numba).

Each command runs in a fresh interpreter; afterwards ``sys.modules`` is inspected, so
anything the command imported on its way counts, not only what ``bayes_dress.cli``
imports at the top.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bayes_dress import RunConfig, run_fit, write_run

HEAVY = ("pymc", "pytensor", "nutpie", "numba")
SCRIPT = """
import json, sys
from bayes_dress.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
except SystemExit:
    pass
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(HEAVY))
print("HEAVY=" + json.dumps(heavy))
"""


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("light") / "run"
    write_run(run_fit(RunConfig(engine="exact")), out)
    return out


def imported_heavy(*args) -> list[str]:
    done = subprocess.run([sys.executable, "-c", SCRIPT.replace("HEAVY)", repr(HEAVY) + ")"),
                           *map(str, args)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("HEAVY="))
    return json.loads(line.removeprefix("HEAVY="))


@pytest.mark.parametrize("args", [["--help"], ["models"], ["data"], ["fit", "--help"],
                                  ["sensitivity", "--help"]])
def test_listing_commands_import_no_sampler(args):
    assert imported_heavy(*args) == []


@pytest.mark.parametrize("command", ["plot", "report"])
def test_reading_commands_import_no_sampler(saved_run, command):
    assert imported_heavy(command, saved_run) == []
