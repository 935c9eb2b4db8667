"""The README's two commands and its prior table stay in step with CI and the specs."""

from __future__ import annotations

import re
from pathlib import Path

from bayes_dress.spec.models import _bundled_specs

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_readme_starts_with_exactly_two_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.index("```bash") < text.index("\n## ")
    commands = readme_commands()
    assert len(commands) == 2
    assert commands[0].endswith("bayes-dress fit")


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    last = [line for line in ci.splitlines() if line.strip()][-1]
    assert last == readme_commands()[1]


def test_readme_documents_every_default_prior():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for spec in _bundled_specs().values():  # not a plug-in another test registered
        for param in spec.parameters.values():
            args = ", ".join(f"{v:g}" for v in param.default.args.values())
            written = f"{param.default.family}({args})"
            assert f"| {param.name} | {written} |" in text, (spec.name, written)
