"""Everything a report shows, read once from the results store (nothing is refitted).

Why one loader: report.html, stats.json and summary.md must agree on every number. They
all read the same `ReportData`: the leaderboards, the statistical analysis (computed with
the suite's own `analysis:` settings, stored with the run), the run's settings and
package versions, and the stored SHAP explanations rebuilt as `Explanation` objects.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from typing import Any

import pandas as pd

from harness.analysis import AnalysisOptions, analyse_store
from harness.explain import Explanation
from harness.explain.lime import LimeExplanation
from harness.leaderboard import Leaderboards, load_leaderboards
from harness.store import OK, Store


@dataclass
class FoldExplanation:
    """One fold's stored SHAP values, labelled with the fold they came from."""

    fold: int
    repeat: int
    seed: int
    explanation: Explanation

    @property
    def label(self) -> str:
        return f"fold {self.fold}" if self.repeat == 0 else f"repeat {self.repeat} fold {self.fold}"


@dataclass
class FoldLime:
    """One fold's stored LIME weights (beside its SHAP values in the store), labelled with its fold."""

    fold: int
    repeat: int
    seed: int
    explanation: LimeExplanation


@dataclass
class ReportData:
    """The inputs of every report file (all read from the store)."""

    boards: Leaderboards
    stats: dict[str, Any]
    suite: dict[str, Any]
    settings: dict[str, Any]
    versions: dict[str, Any]
    # dataset -> estimator -> explained folds (first repeat of the first seed, as the engine explains)
    explanations: dict[str, dict[str, list[FoldExplanation]]] = field(default_factory=dict)
    # dataset -> estimator -> distinct reasons a fold could not be explained
    explain_failures: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    # dataset -> estimator -> LIME explanations of the explained folds (explain.method lime or both)
    lime: dict[str, dict[str, list[FoldLime]]] = field(default_factory=dict)
    # dataset -> its check-data result against its `reference:` dataset
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def folds(self) -> pd.DataFrame:
        return self.boards.folds

    @property
    def datasets(self) -> list[str]:
        """The datasets of the leaderboards, in the suite's order."""
        return list(self.boards.per_dataset)

    def dataset_stats(self, ds: str) -> dict[str, Any]:
        """`ds`'s entry of the analysis (stats.json's per_dataset), empty when it has none."""
        return self.stats.get("per_dataset", {}).get(ds, {})

    def primary(self, ds: str) -> str:
        """`ds`'s primary metric (from the leaderboards, else from the analysis)."""
        return self.boards.primary_for(ds) if ds in self.boards.datasets else self.dataset_stats(ds).get("primary", "")

    def direction(self, metric: str) -> bool:
        """True when higher is better."""
        return bool(self.boards.directions.get(metric, True))

    def estimator_spec(self, name: str) -> dict[str, Any]:
        for spec in self.suite.get("estimators", []):
            if spec.get("name") == name:
                return spec
        return {}


def analysis_options(suite: dict[str, Any]) -> AnalysisOptions:
    """The suite's `analysis:` section as AnalysisOptions (keys the options do not know are ignored)."""
    known = {f.name for f in fields(AnalysisOptions)}
    section = suite.get("analysis") or {}
    return AnalysisOptions(**{k: v for k, v in section.items() if k in known and v is not None})


def load_report_data(store: Store) -> ReportData:
    """Read the latest suite version's folds, analysis inputs and explanations from `store`."""
    boards = load_leaderboards(store)
    run = boards.run
    suite = json.loads(run["suite_json"]) if run.get("suite_json") else {}
    settings = json.loads(run["settings"]) if run.get("settings") else {}
    versions = json.loads(run["versions"]) if run.get("versions") else {}
    stats = analyse_store(store, analysis_options(suite))
    data = ReportData(boards, stats, suite, settings, versions)
    _attach_explanations(data, store)
    current = {d.get("name") for d in suite.get("datasets", []) if d.get("reference")}
    for name, (_, payload) in sorted(store.checks().items()):
        dataset = payload.get("dataset", name.split(":", 1)[-1])
        if dataset in current:
            data.checks[dataset] = payload
    return data


def _attach_explanations(data: ReportData, store: Store) -> None:
    folds = data.folds
    if folds.empty:
        return
    ok = folds[folds["status"] == OK]
    stored = store.explanations(ok["key"].tolist())
    for rec in ok.to_dict("records"):
        ds, est = str(rec["dataset"]), str(rec["estimator"])
        seed = rec.get("seed")
        seed = int(seed) if seed is not None and not (isinstance(seed, float) and math.isnan(seed)) else 0
        if rec["key"] in stored:
            arrays, meta = stored[rec["key"]]
            if "values" in arrays:  # explain.method: lime stores LIME's arrays alone
                expl = Explanation.from_arrays(arrays, meta)
                fe = FoldExplanation(int(rec["fold"]), int(rec["repeat"]), seed, expl)
                data.explanations.setdefault(ds, {}).setdefault(est, []).append(fe)
            lime = LimeExplanation.from_arrays(arrays, meta)
            if lime is not None:
                fl = FoldLime(int(rec["fold"]), int(rec["repeat"]), seed, lime)
                data.lime.setdefault(ds, {}).setdefault(est, []).append(fl)
        for method in ("shap", "lime"):
            reason = (rec.get("notes") or {}).get(method)
            if reason:
                reasons = data.explain_failures.setdefault(ds, {}).setdefault(est, [])
                if str(reason) not in reasons:
                    reasons.append(str(reason))
    for per_est in [*data.explanations.values(), *data.lime.values()]:
        for items in per_est.values():
            items.sort(key=lambda f: (f.seed, f.repeat, f.fold))
