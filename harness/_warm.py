"""Imported by the fork server of timed folds: compile shap's numba kernels once, before forking.

A fold with a time limit runs in a child forked from a fork server; without this, every
such child would spend several seconds compiling the same kernels for its explanation.
"""

from harness.explain import warm_up

warm_up()
