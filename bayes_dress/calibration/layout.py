"""A calibration directory's file names, and the words that describe its method (no
heavy imports: the reader and the report use them)."""

from __future__ import annotations

#: The manifest's ``kind``.
KIND = "calibration"
RANKS = "ranks.csv"
VERDICTS = "verdicts.csv"
REPLICATIONS = "replications.csv"
#: Plot names (plots/NAME.png and .svg).
ECDF_PLOT = "calibration-ecdf"
HISTOGRAM_PLOT = "calibration-ranks"
PNG_DPI = 120

#: How each engine's position of the true value in its posterior is computed.
RANK_METHOD = {
    "exact": "posterior CDF at the true value, F(x_true), from the exact marginal "
             "(continuous; no draws, no thinning)",
    "nuts": "rank r of the true value among the posterior draws kept after thinning "
            "each chain by s = ceil(draws / ESS) (ESS: the smaller of bulk and tail "
            "ESS of the quantity in that fit), so about ESS draws L are kept; PIT = "
            "(r + V) / (L + 1), V ~ Uniform(0, 1) (randomised, exactly uniform under "
            "calibration whatever L)",
}
