"""Plots embedded in the report: each image inlined as a data URI, so the file is whole."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass
class Plot:
    """One figure to embed: its title, caption and image as a data URI."""

    name: str
    title: str
    caption: str
    outcome: str | None
    data_uri: str


@dataclass
class Plots:
    """The figures of a directory, and notes on any that could not be embedded."""

    figures: list[Plot] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _image_uri(directory: Path, relative: object) -> str | None:
    """The file ``relative`` (inside ``directory``) as a data URI, or None if it is
    missing, outside the directory or not a PNG/SVG image."""
    if not isinstance(relative, str) or not relative:
        return None
    try:
        root = directory.resolve()
        path = (root / relative).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            return None  # an index must not pull in files from elsewhere
        data = path.read_bytes()
    except (OSError, ValueError):  # e.g. a NUL byte in the path, or an unreadable file
        return None
    if data.startswith(PNG_MAGIC):
        mime = "image/png"
    elif path.suffix.lower() == ".svg" and b"<svg" in data[:4096]:
        mime = "image/svg+xml"  # an <img> SVG cannot load anything itself
    else:
        return None
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def embed_plots(directory: Path, entries: list[dict], notes: list[str]) -> Plots:
    """The plot index entries of a run or sweep (see :mod:`bayes_dress.rundir.read`),
    each with its PNG (or, failing that, its SVG) inlined."""
    plots = Plots(notes=list(notes))
    for i, entry in enumerate(entries):
        name = str(entry.get("name") or f"plot {i + 1}")
        uri = _image_uri(directory, entry.get("png")) or _image_uri(directory, entry.get("svg"))
        if uri is None:
            plots.notes.append(f"plot '{name}' could not be embedded: its image file is "
                               "missing, outside the directory or not a PNG/SVG image.")
            continue
        outcome = entry.get("outcome")
        plots.figures.append(Plot(name, str(entry.get("title") or name),
                                  str(entry.get("caption") or ""),
                                  None if outcome is None else str(outcome), uri))
    return plots
