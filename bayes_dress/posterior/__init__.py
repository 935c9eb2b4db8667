"""One interface to a posterior, whichever engine computed it: draws or exact marginals."""

from bayes_dress.posterior.base import Key, Posterior, key_label

__all__ = ["Key", "Posterior", "key_label"]
