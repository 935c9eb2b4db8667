"""Every shell and Python example in README.md runs as printed.

What runs
    Every ```bash block after the first (the top two commands are `.ci/run` itself, checked
    by tests/test_readme.py) and every ```python block, in README order, one test case
    each (id ``README.md:LINE-LANG``, LINE the block's opening fence). A block whose
    preceding non-blank line is ``<!-- not run -->`` is skipped (pip installs, a
    ``tcp://`` Dask address, commands that write into the repository); ```text and
    ```toml blocks are never run. Every ```bash block, run or not, must parse
    (``bash -n``).

Where it runs
    All blocks share one scratch directory (module-scoped), as a reader typing them in a
    terminal would: a later block may use what an earlier one wrote (``runs/exact`` is
    fitted once and then plotted, swept, designed and reported). The README's examples
    are written to run from any directory and use no path of the checkout (repository
    paths appear in prose only, and test_readme_paths_exist checks those), so nothing
    is copied or linked from the repository; that also keeps ``import bayes_dress``
    pointed at the installed package. The venv's bin directory
    (``Path(sys.executable).parent``) comes first on PATH, so ``bayes-dress``,
    ``python`` and ``dask`` are this environment's. BAYES_DRESS_SCHEDULER and
    BAYES_DRESS_MAX_DATA_MB are removed from the environment, so a developer's setting
    cannot redirect the examples.

How it runs
    A bash block runs as one script, ``bash -euo pipefail``; a Python block is written
    to a file in the scratch directory and run by this interpreter. Each must exit 0;
    on failure the assertion shows the block as run, its stdout and its stderr.

Kept small
    The README shows commands at their real defaults (2000 draws x 4 chains, 200 SBC
    replications). Before running, each ``bayes-dress fit``, ``sensitivity`` and
    ``calibrate`` command line without ``--engine exact`` gets ``--draws 200 --tune 200
    --chains 2`` (each flag only where the line has none), and each ``calibrate`` line
    ``--replications 20`` where it has none; flags win over a config file, so a config's
    [sampler] table is overridden too. ``design`` does not sample and runs as printed.
    Such a command must end its line (no pipe or redirection after it), so that the
    flags can be appended; the rewriting refuses anything else rather than guess.
    Examples use ``--engine exact`` wherever it shows the point as well as NUTS does.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BIN = Path(sys.executable).parent
NOT_RUN = "<!-- not run -->"
#: Seconds one block may take (the slowest, a design with its sensitivity scenarios,
#: takes well under a minute).
TIMEOUT = 900

#: Flags appended to sampling commands that lack them.
SMALL_DRAWS = (("--draws", "200"), ("--tune", "200"), ("--chains", "2"))
SMALL_REPLICATIONS = ("--replications", "20")

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Block:
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    run: bool

    @property
    def id(self) -> str:
        return f"README.md:{self.line}-{self.lang}"


def readme_blocks(text: str | None = None) -> list[Block]:
    """Every fenced block of the README, with whether it is marked not to be run."""
    lines = (README.read_text(encoding="utf-8") if text is None else text).splitlines()
    blocks, i = [], 0
    while i < len(lines):
        opening = re.fullmatch(r"```(\w*)\s*", lines[i])
        if not opening:
            i += 1
            continue
        start, lang = i, opening[1]
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            i += 1
        before = [line for line in lines[:start] if line.strip()]
        marked = bool(before) and before[-1].strip() == NOT_RUN
        blocks.append(Block(start + 1, lang, "\n".join(lines[start + 1:i]) + "\n",
                            not marked))
        i += 1
    return blocks


def runnable() -> list[Block]:
    blocks = readme_blocks()
    first_bash = next(b for b in blocks if b.lang == "bash")
    return [b for b in blocks
            if b.run and b is not first_bash and b.lang in ("bash", "python")]


_SAMPLING = re.compile(r"(?:^|[\s;&|(])bayes-dress\s+(fit|sensitivity|calibrate)\b")


def _has_flag(line: str, flag: str) -> bool:
    return re.search(rf"(?:^|\s){re.escape(flag)}(?:[\s=]|$)", line) is not None


def small(script: str) -> str:
    """``script`` with small-run flags appended to its sampling commands (module notes)."""
    out, heredoc = [], None
    for line in script.splitlines():
        if heredoc is not None:  # a here-document's body is data, not commands
            out.append(line)
            if line.strip() == heredoc:
                heredoc = None
            continue
        here = re.search(r"<<-?\s*['\"]?(\w+)['\"]?", line)
        if here:
            heredoc = here[1]
        match = _SAMPLING.search(line)
        if match and not line.lstrip().startswith("#"):
            rest = line[match.end():]
            if re.search(r"[|;&>]|\\$", rest.split(" #")[0]):
                raise ValueError(f"cannot append small-run flags to {line!r}: end the "
                                 "line with the bayes-dress command")
            extra = []
            if match[1] == "calibrate" and not _has_flag(line, SMALL_REPLICATIONS[0]):
                extra += SMALL_REPLICATIONS
            if not re.search(r"--engine[\s=]+exact\b", line):
                for flag, value in SMALL_DRAWS:
                    if not _has_flag(line, flag):
                        extra += [flag, value]
            line = " ".join([line.rstrip(), *extra]) if extra else line
        out.append(line)
    return "\n".join(out) + "\n"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("readme")


def environment() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("BAYES_DRESS_SCHEDULER", "BAYES_DRESS_MAX_DATA_MB"):
        env.pop(name, None)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(BIN.parent)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.mark.parametrize("block", runnable(), ids=lambda b: b.id)
def test_readme_example_runs(block: Block, workdir: Path):
    if block.lang == "bash":
        code = small(block.code)
        command = ["/bin/bash", "-euo", "pipefail", "-c", code]
    else:
        code = block.code
        script = workdir / f"readme_{block.line}.py"
        script.write_text(code, encoding="utf-8")
        command = [sys.executable, str(script)]
    done = subprocess.run(command, cwd=workdir, env=environment(), capture_output=True,
                          text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, (
        f"{block.id} exited {done.returncode}\n--- as run ---\n{code}"
        f"--- stdout ---\n{done.stdout[-4000:]}\n--- stderr ---\n{done.stderr[-8000:]}")


def test_every_bash_block_parses():
    for block in readme_blocks():
        if block.lang == "bash":
            done = subprocess.run(["/bin/bash", "-n"], input=block.code, text=True,
                                  capture_output=True)
            assert done.returncode == 0, f"{block.id}: {done.stderr}"


def test_readme_paths_exist():
    """Every repository path the README names in backticks exists (globs match)."""
    text = README.read_text(encoding="utf-8")
    top = r"(?:bayes_dress|data|tests|benchmarks|results|\.ci)"
    named = set(re.findall(rf"`({top}/[\w./*+-]*)`", text))
    named |= set(re.findall(rf"\(({top}/[\w./*+-]*\.py)\)", text))
    assert named, "expected the README to name repository paths"
    missing = []
    for path in sorted(named):
        # Placeholders (NAME, OUTCOME) stand for any name; results/MODEL-TIMESTAMP and
        # the like are where commands write by default, not files of the checkout.
        pattern = re.sub(r"\b[A-Z][A-Z_]{2,}\b", "*", path.rstrip("/"))
        if pattern != path.rstrip("/") and path.startswith("results/"):
            continue
        if not any(ROOT.glob(pattern)):
            missing.append(path)
    assert not missing, f"README names paths that do not exist: {missing}"


def test_small_run_flags():
    assert small("bayes-dress fit --out a\n") == (
        "bayes-dress fit --out a --draws 200 --tune 200 --chains 2\n")
    assert small("bayes-dress fit --engine exact --out a\n") == (
        "bayes-dress fit --engine exact --out a\n")
    assert small("bayes-dress calibrate --engine exact\n") == (
        "bayes-dress calibrate --engine exact --replications 20\n")
    assert small("X=1 bayes-dress sensitivity --draws 50\n") == (
        "X=1 bayes-dress sensitivity --draws 50 --tune 200 --chains 2\n")
    heredoc = "cat > a.toml <<'EOF'\nbayes-dress fit\nEOF\nbayes-dress models\n"
    assert small(heredoc) == heredoc
    with pytest.raises(ValueError):
        small("bayes-dress fit | tail\n")
