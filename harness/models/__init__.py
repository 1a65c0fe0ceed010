"""Estimators implemented by the harness itself (importing this package imports torch)."""

from harness.models.mlp import TorchMLPClassifier, TorchMLPRegressor

__all__ = ["TorchMLPClassifier", "TorchMLPRegressor"]
