"""Read and write mixtures in RBesT's JSON format (``write_mix_json``/``read_mix_json``,
R/mixjson.R, RBesT >= 1.8-2, "experimental" there).

RBesT writes ``jsonlite::toJSON(list(meta = attributes(mix), comp = unclass(mix)))``:
``comp`` is the 3 x K parameter matrix as an array of its three rows (jsonlite's default
row-major layout: weights, then a (or means), then b (or sds)); ``meta`` holds the R
attributes, each an array unless auto-unboxed, e.g. for ``mixbeta(rob = c(0.2, 1, 1),
inf = c(0.8, 10, 2))``::

    {"meta": {"dim": [3, 2], "dimnames": [["w", "a", "b"], ["rob", "inf"]],
              "link": ["identity"], "class": ["betaMix", "mix"],
              "likelihood": ["binomial"]},
     "comp": [[0.2, 0.8], [1, 10], [1, 2]]}

Normal mixtures (``normMix``) carry their reference scale as ``"sigma"``. Reading
accepts scalars or one-element arrays, a column-major matrix (K arrays of 3), and
rescales the weights to sum to 1 unless ``rescale=False`` (RBesT's ``rescale``).
Writing uses full precision unless ``digits`` is given.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from bayes_dress.design.mixture import BetaMixture, NormalMixture
from bayes_dress.errors import SpecError

Mixture = BetaMixture | NormalMixture


def _num(x: float, digits: int | None):
    x = float(x)
    if digits is not None:
        x = float(round(x, digits))
    return int(x) if x.is_integer() and abs(x) < 2**53 else x


def mix_to_dict(mix: Mixture, *, digits: int | None = None) -> dict:
    """The RBesT JSON structure of ``mix`` as a Python dict."""
    if isinstance(mix, BetaMixture):
        rows = [mix.weights, mix.a, mix.b]
        meta = {"dim": [3, mix.n_components], "dimnames": [["w", "a", "b"], list(mix.names)],
                "link": ["identity"], "class": ["betaMix", "mix"],
                "likelihood": ["binomial"]}
    elif isinstance(mix, NormalMixture):
        rows = [mix.weights, mix.means, mix.sds]
        meta = {"dim": [3, mix.n_components], "dimnames": [["w", "m", "s"], list(mix.names)],
                "link": ["identity"], "class": ["normMix", "mix"],
                "likelihood": ["normal"]}
        if mix.sigma is not None:
            meta["sigma"] = [_num(mix.sigma, digits)]
    else:
        raise SpecError("only Beta and normal mixtures can be written as RBesT JSON")
    return {"meta": meta, "comp": [[_num(v, digits) for v in row] for row in rows]}


def mix_to_json(mix: Mixture, *, digits: int | None = None, pretty: bool = True) -> str:
    """RBesT JSON text of ``mix``."""
    return json.dumps(mix_to_dict(mix, digits=digits), indent=2 if pretty else None)


def write_mix_json(mix: Mixture, path: str | os.PathLike, *, digits: int | None = None,
                   pretty: bool = True) -> None:
    """Write ``mix`` to ``path`` in RBesT's JSON format (see the module notes)."""
    Path(path).write_text(mix_to_json(mix, digits=digits, pretty=pretty) + "\n",
                          encoding="utf-8")


def _scalar(value, what: str):
    if isinstance(value, list):
        if len(value) != 1:
            raise SpecError(f"RBesT JSON: {what} should be a single value, got {value!r}")
        value = value[0]
    return value


def mix_from_dict(data: dict, *, rescale: bool = True) -> Mixture:
    """Build a mixture from the RBesT JSON structure (see the module notes)."""
    if not isinstance(data, dict) or "comp" not in data or "meta" not in data:
        raise SpecError("RBesT JSON: expected an object with 'meta' and 'comp'")
    meta = data["meta"]
    if not isinstance(meta, dict):
        raise SpecError("RBesT JSON: 'meta' must be an object")
    classes = meta.get("class", [])
    classes = [classes] if isinstance(classes, str) else list(classes)
    link = _scalar(meta.get("link", "identity"), "link")
    if link != "identity":
        raise SpecError(f"RBesT JSON: link {link!r} is not supported (only 'identity')")
    try:
        comp = np.asarray(data["comp"], dtype=float)
    except (TypeError, ValueError) as exc:
        raise SpecError("RBesT JSON: 'comp' must be a numeric matrix") from exc
    if comp.ndim == 1 and comp.size == 3:
        comp = comp.reshape(3, 1)
    dim = meta.get("dim")
    k = int(dim[1]) if isinstance(dim, list) and len(dim) == 2 else None
    if comp.ndim != 2:
        raise SpecError("RBesT JSON: 'comp' must be a 3 x K matrix")
    if comp.shape[0] != 3 and comp.shape[1] == 3:
        comp = comp.T  # column-major layout: K arrays of (w, a, b)
    if comp.shape[0] != 3 or (k is not None and comp.shape[1] != k):
        raise SpecError(f"RBesT JSON: 'comp' has shape {comp.shape}, expected 3 x "
                        f"{k if k is not None else 'K'}")
    names = None
    dimnames = meta.get("dimnames")
    if isinstance(dimnames, list) and len(dimnames) == 2 and isinstance(dimnames[1], list):
        if len(dimnames[1]) == comp.shape[1]:
            names = [str(n) for n in dimnames[1]]
    w = comp[0]
    if not rescale and abs(w.sum() - 1.0) > 1e-9:
        raise SpecError(f"RBesT JSON: weights sum to {w.sum():.12g}; read with rescale=True")
    if "betaMix" in classes:
        lik = _scalar(meta.get("likelihood", "binomial"), "likelihood")
        if lik != "binomial":
            raise SpecError(f"RBesT JSON: a Beta mixture with likelihood {lik!r}")
        return BetaMixture(w, comp[1], comp[2], names=names)
    if "normMix" in classes:
        sigma = meta.get("sigma")
        sigma = None if sigma is None else float(_scalar(sigma, "sigma"))
        return NormalMixture(w, comp[1], comp[2], names=names, sigma=sigma)
    raise SpecError(f"RBesT JSON: mixture class {classes!r} is not supported "
                    "(Beta or normal mixtures only)")


def mix_from_json(text: str, *, rescale: bool = True) -> Mixture:
    """Parse RBesT JSON text."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"RBesT JSON: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    return mix_from_dict(data, rescale=rescale)


def read_mix_json(path: str | os.PathLike, *, rescale: bool = True) -> Mixture:
    """Read a mixture written by RBesT's ``write_mix_json`` (or by :func:`write_mix_json`)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read mixture file {os.fspath(path)!r}: "
                        f"{exc.strerror}") from exc
    return mix_from_json(text, rescale=rescale)
