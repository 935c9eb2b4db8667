"""Readable names of outcomes, shared by the plots and the report (no heavy imports)."""

from __future__ import annotations

#: Outcome name -> readable label; outcomes not listed are shown by their own name.
OUTCOME_LABELS = {"success": "Success (remission)", "severe_ae": "Severe adverse events",
                  "death": "Death", "ivig_reaction": "Reaction to IVIG",
                  "rescue_steroids": "Rescue corticosteroids"}


def outcome_label(outcome: str) -> str:
    """A readable name for an outcome (its own name if none is known)."""
    return OUTCOME_LABELS.get(outcome, outcome)
