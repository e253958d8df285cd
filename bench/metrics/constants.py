"""Constants of the metrics that light modules (the suite parser, the CLI's argument parser)
need without importing the metric stack. Metric names, labels and directions are declared by
the metric families themselves (:mod:`aebench.metrics.family`, :mod:`aebench.metrics.families`).
"""

from __future__ import annotations

#: nearest neighbours of precision/recall and density/coverage: Naeem et al. 2020's k = 5 for
#: all four (Kynkäänniemi et al. 2019 use k = 3 for precision/recall; bench/metrics/generation.py)
K_NEAREST = 5
#: KID's subsets and their size, as in Bińkowski et al. (2018) and torch-fidelity
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000


def min_n_samples(k_nearest: int = K_NEAREST) -> int:
    """Fewest generated (and real) images the generation metrics accept: a k-NN manifold needs
    more than k points, and KID's subsets need a few more than that."""
    return 2 * k_nearest + 2
