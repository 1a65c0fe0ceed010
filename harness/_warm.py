"""Imported by the fork server of worker processes when a run explains folds: import shap once, before forking.

Every worker forked afterwards starts with shap (and the matplotlib and numba it imports, about 0.5 s)
already loaded. Its numba kernels are not compiled here: only the permutation explainer needs them, and
compiling them (about 4 s) in the fork server would hold up the first worker of every run that explains,
including runs whose models all have a fast exact explainer. A worker compiles them on its first permutation
explanation instead, off that fold's budget clock (`harness.explain.warm_up`).
"""

from harness.explain import import_shap

import_shap()
