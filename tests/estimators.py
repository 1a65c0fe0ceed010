"""Test doubles named by import path in test suites (allowed with --allow-module tests)."""

from __future__ import annotations

import time

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.dummy import DummyClassifier


class RaisingClassifier(ClassifierMixin, BaseEstimator):
    """Fails in fit, like a broken model or a bad parameter combination."""

    def __init__(self, message: str = "boom"):
        self.message = message

    def fit(self, X, y):
        raise ValueError(self.message)


class SleepyClassifier(ClassifierMixin, BaseEstimator):
    """Sleeps in fit (a stand-in for a fit that runs far too long), then predicts the majority."""

    def __init__(self, seconds: float = 30.0):
        self.seconds = seconds

    def fit(self, X, y):
        time.sleep(self.seconds)
        self.model_ = DummyClassifier().fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, X):
        return self.model_.predict(X)

    def predict_proba(self, X):
        return self.model_.predict_proba(X)


class CountingClassifier(ClassifierMixin, BaseEstimator):
    """Majority-class model that appends a line to `log` on each fit (to count refits across processes)."""

    def __init__(self, log: str = "", seconds: float = 0.0):
        self.log = log
        self.seconds = seconds

    def fit(self, X, y):
        time.sleep(self.seconds)
        if self.log:
            with open(self.log, "a", encoding="utf-8") as fh:
                fh.write(f"{len(y)}\n")
        self.classes_ = np.unique(y)
        self.model_ = DummyClassifier(strategy="prior").fit(X, y)
        return self

    def predict(self, X):
        return self.model_.predict(X)

    def predict_proba(self, X):
        return self.model_.predict_proba(X)


class IndexLoggingClassifier(ClassifierMixin, BaseEstimator):
    """Logs the row labels (DataFrame index = dataset positions) of every fit; `alpha` is a dummy knob to tune."""

    def __init__(self, log: str = "", alpha: float = 0.5):
        self.log = log
        self.alpha = alpha

    def fit(self, X, y):
        with open(self.log, "a", encoding="utf-8") as fh:
            fh.write(" ".join(map(str, X.index)) + "\n")
        self.model_ = DummyClassifier(strategy="stratified", random_state=int(self.alpha * 1000)).fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, X):
        return self.model_.predict(X)


class MarkingClassifier(SleepyClassifier):
    """Sleeps in fit, then touches `mark`: a fit that was stopped in time leaves no mark."""

    def __init__(self, mark: str = "", seconds: float = 2.0):
        super().__init__(seconds)
        self.mark = mark

    def fit(self, X, y):
        super().fit(X, y)
        if self.mark:
            with open(self.mark, "a", encoding="utf-8") as fh:
                fh.write("fitted\n")
        return self


class ExitingClassifier(ClassifierMixin, BaseEstimator):
    """Ends its process in fit, like a worker killed by the kernel (OOM) or a crashing extension."""

    def fit(self, X, y):
        import os

        os._exit(7)
