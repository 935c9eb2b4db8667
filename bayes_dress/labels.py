"""Readable names of outcomes and quantities, shared by the headline, the plots and the
report (no heavy imports), so the three never word the same thing differently."""

from __future__ import annotations

#: Outcome name -> readable label; outcomes not listed are shown by their own name.
OUTCOME_LABELS = {"success": "Success (remission)", "severe_ae": "Severe adverse events",
                  "death": "Death", "ivig_reaction": "Reaction to IVIG",
                  "rescue_steroids": "Rescue corticosteroids"}

#: Reported quantity or model parameter -> readable label, with the symbol the model
#: equations use where they use one; a parenthesised gloss follows the name. Quantities
#: not listed are shown by their own name.
QUANTITY_LABELS = {
    "mean_rate": "population mean rate",
    "theta_new": "new-study rate (predictive)",
    "sd_rates": "between-study SD of rates",
    "theta": "study rate θ",
    "m": "mean rate m",
    "mu": "mean logit μ",
    "phi": "heterogeneity φ",
    "kappa": "concentration κ",
    "tau": "heterogeneity τ (logit SD)",
    "rho": "between-outcome correlation ρ",
}

#: Parameter names the model equations spell in ASCII -> their Greek letters.
GREEK = {"theta": "θ", "kappa": "κ", "phi": "φ", "tau": "τ", "mu": "μ", "alpha": "α",
         "beta": "β", "sigma": "σ", "rho": "ρ", "eta": "η"}


def terminal_safe(text: object) -> str:
    """``text`` with control characters (terminal escape sequences, carriage returns,
    bidirectional overrides) written as escapes, for printing names from a user's file."""
    return "".join(c if c.isprintable() else repr(c)[1:-1].replace("'", "") for c in
                   str(text))


def outcome_label(outcome: str) -> str:
    """A readable name for an outcome (its own name if none is known)."""
    return OUTCOME_LABELS.get(outcome, outcome)


def quantity_label(name: str, *, short: bool = False) -> str:
    """A readable name for a quantity (its own name if none is known).

    Parameters
    ----------
    name : str
        The quantity as the files name it (``theta_new``, ``phi``, ...).
    short : bool
        Without the parenthesised gloss, for use inside a formula or before a unit:
        ``P(new-study rate > 0.5)`` rather than ``P(new-study rate (predictive) > 0.5)``.
    """
    label = QUANTITY_LABELS.get(name, name)
    return label.split(" (")[0] if short else label


def key_text(name: str, study: str = "", outcome: str = "") -> str:
    """A quantity of one study and outcome in words, for messages: ``study rate θ in
    Joly2012``, ``severe_ae: population mean rate``."""
    text = quantity_label(name, short=True) + (f" in {study}" if study else "")
    return f"{outcome}: {text}" if outcome else text
