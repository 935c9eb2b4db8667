"""Where the bundled study tables live.

A wheel carries them inside the package (``bayes_dress/_bundled``); an editable install
or a checkout reads them from the repository's ``data/`` folder.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def bundled_path(kind: str) -> Path:
    """Folder of bundled ``"data"``."""
    for candidate in (_PACKAGE / "_bundled" / kind, _PACKAGE.parent / kind):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"bundled {kind}/ folder not found next to {_PACKAGE}")
