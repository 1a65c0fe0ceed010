"""Which rows a fold explains: the same rows for every model of the fold.

`explain_rows` permutes a fold's test rows once; every model explains a prefix of that order, so models that
could afford fewer rows still share rows with the others.
"""

from __future__ import annotations

import numpy as np


def explain_rows(test_index: np.ndarray, seed: int) -> np.ndarray:
    """A seeded permutation of a fold's test rows; every model of the fold explains a prefix of it.

    Pass the same `seed` for every model of a fold (e.g. derived from the suite seed, repeat and fold):
    the order then depends on nothing model-specific, so a model that could afford fewer rows explains a
    subset of the rows every other model explained.
    """
    test_index = np.asarray(test_index)
    return test_index[np.random.default_rng(seed).permutation(len(test_index))]
