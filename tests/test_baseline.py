"""Baselines and the regression gate: save, check, mismatches, champion, bad input.

Four small runs (wine + diabetes, a decision tree and a 20-tree forest, 5 folds) are
made once per module: the reference, an identical rerun in another directory, a run
with a much shallower tree (a real regression) and a run whose forest has another
random_state (noise). Expected values come from the SQLite files read directly and
from the corrected t-test written out here, never from harness.baseline itself.
"""

from __future__ import annotations

import io
import itertools
import json
import math
import re
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import sklearn
import yaml
from scipy import stats

from harness.baseline import CheckOptions, check_run, load_baseline, save_baseline
from harness.runner import RunOptions, run_suite
from harness.spec import load_suite

SUITE = {
    "name": "gate",
    "seed": 0,
    "cv": {"scheme": "stratified_kfold", "folds": 5},
    "metrics": {"classification": ["accuracy", "log_loss"], "regression": ["rmse", "r2"]},
    "explain": {"enabled": False},
    "datasets": [{"name": "wine", "source": "sklearn:wine"}, {"name": "diabetes", "source": "sklearn:diabetes"}],
    "estimators": [
        {"name": "tree", "model": "decision_tree", "params": {"max_depth": 8}},
        {"name": "rf", "model": "random_forest", "params": {"n_estimators": 20}},
    ],
}


def _run(root: Path, name: str, tree: dict | None = None, rf: dict | None = None) -> Path:
    suite = json.loads(json.dumps(SUITE))
    suite["estimators"][0]["params"].update(tree or {})
    suite["estimators"][1]["params"].update(rf or {})
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(suite))
    out = root / name
    run_suite(load_suite(path), RunOptions(out=out, argv=["test"]))
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gate")
    return {
        "base": _run(root, "base"),
        "rerun": _run(root, "rerun"),
        "worse": _run(root, "worse", tree={"max_depth": 1}),
        "noisy": _run(root, "noisy", rf={"random_state": 3}),
    }


@pytest.fixture
def cli(cli):
    """`harness ARGS` in this process, as (exit code, stdout, stderr)."""

    def invoke(*args: str | Path) -> tuple[int, str, str]:
        proc = cli(*args)
        return proc.returncode, proc.stdout, proc.stderr

    return invoke


def _fold_scores(out: Path, dataset: str, estimator: str, metric: str) -> dict[tuple, tuple[float, int, int]]:
    """(seed, repeat, fold) -> (score, n_train, n_test), straight from results.db."""
    with sqlite3.connect(out / "results.db") as con:
        rows = con.execute(
            "SELECT seed, repeat, fold, metrics, n_train, n_test FROM results WHERE dataset=? AND estimator=?",
            (dataset, estimator),
        ).fetchall()
    return {(s, r, f): (json.loads(m)[metric], a, b) for s, r, f, m, a, b in rows}


def _hand_corrected(diff: np.ndarray, n_train: float, n_test: float) -> tuple[float, float]:
    """Nadeau–Bengio: t = mean / sqrt((1/J + n_test/n_train) s^2); one-sided P(T <= t), df = J - 1."""
    j = len(diff)
    t = diff.mean() / math.sqrt((1 / j + n_test / n_train) * diff.var(ddof=1))
    return t, float(stats.t.cdf(t, j - 1))


def _comparison(report: dict, dataset: str, estimator: str) -> dict:
    (match,) = [c for c in report["comparisons"] if c["dataset"] == dataset and c["estimator"] == estimator]
    return match


def _edited(base: Path, tmp_path: Path, edit) -> Path:
    data = json.loads((base / "baseline.json").read_text())
    edit(data)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(scope="module")
def saved(runs: dict[str, Path]) -> Path:
    return save_baseline(runs["base"])


def test_save_writes_sorted_json_with_the_stored_folds(runs, saved):
    text = saved.read_text()
    assert saved == runs["base"] / "baseline.json"
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"  # diff-friendly, stable order
    data = json.loads(text)
    assert data["format"] == "harness-baseline" and data["suite"] == "gate"
    assert data["versions"]["scikit-learn"] == sklearn.__version__
    assert data["datasets"]["wine"]["split"] == {"scheme": "stratified_kfold", "folds": 5, "repeats": 1, "seeds": [0]}
    assert data["datasets"]["diabetes"]["split"]["scheme"] == "kfold"  # regression target: plain KFold
    with sqlite3.connect(runs["base"] / "results.db") as con:
        fps = dict(con.execute("SELECT name, fingerprint FROM datasets"))
    assert data["datasets"]["wine"]["fingerprint"] == fps["wine"]
    cell = data["cells"]["wine"]["tree"]
    assert cell["config"]["params"]["max_depth"] == 8
    expected = _fold_scores(runs["base"], "wine", "tree", "accuracy")
    assert len(cell["folds"]) == 5
    for f in cell["folds"]:
        score, n_train, n_test = expected[(f["seed"], f["repeat"], f["fold"])]
        assert (f["scores"]["accuracy"], f["n_train"], f["n_test"], f["status"]) == (score, n_train, n_test, "ok")


def test_identical_rerun_passes(runs, saved, cli):
    code, out, err = cli("check", runs["rerun"], "--baseline", saved)
    assert code == 0, out + err
    report = json.loads((runs["rerun"] / "check.json").read_text())
    assert len(report["comparisons"]) == 4
    assert {c["verdict"] for c in report["comparisons"]} == {"unchanged"}
    assert all(c["mean_diff"] == 0 and c["test"] == "paired (corrected t)" for c in report["comparisons"])
    assert report["mismatches"] == []
    assert (runs["rerun"] / "check.md").read_text().splitlines()[2].startswith("**OK: no regressions")


def test_shallower_tree_is_a_regression(runs, saved, cli):
    code, out, err = cli("check", runs["worse"], "--baseline", saved)
    assert code == 1, out + err
    report = json.loads((runs["worse"] / "check.json").read_text())
    comp = _comparison(report, "wine", "tree")
    assert comp["verdict"] == "regressed"
    old = _fold_scores(runs["base"], "wine", "tree", "accuracy")
    new = _fold_scores(runs["worse"], "wine", "tree", "accuracy")
    keys = sorted(old)
    diff = np.array([new[k][0] - old[k][0] for k in keys])
    t, p_worse = _hand_corrected(diff, np.mean([old[k][1] for k in keys]), np.mean([old[k][2] for k in keys]))
    assert comp["mean_diff"] == pytest.approx(diff.mean()) and diff.mean() < -0.1
    assert comp["t"] == pytest.approx(t) and comp["p_worse"] == pytest.approx(p_worse) and p_worse < 0.05
    assert _comparison(report, "wine", "rf")["verdict"] == "unchanged"  # same config, same folds
    md = (runs["worse"] / "check.md").read_text()
    assert md.splitlines()[2].startswith("**REGRESSED")
    regressions = md.split("### Regressions")[1].split("###")[0]
    assert "| wine | tree |" in regressions
    assert md.index("### Regressions") < md.index("### Unchanged") < md.index("### Mismatches")
    config = [m for m in report["mismatches"] if m["kind"] == "config" and m["dataset"] == "wine"]
    assert config and config[0]["severity"] == "info" and "max_depth: 8 → 1" in config[0]["detail"]


def test_noisy_drop_within_fold_variance_is_not_flagged(runs, tmp_path):
    # The forest with random_state 3 as baseline: seed 0's forest scores lower on both datasets.
    baseline = save_baseline(runs["noisy"], tmp_path / "noisy.json")
    result = check_run(runs["base"], baseline, CheckOptions(tolerance=0.0, write=False))
    assert result.exit_code == 0
    for ds, metric, sign in (("wine", "accuracy", 1), ("diabetes", "rmse", -1)):
        old = _fold_scores(runs["noisy"], ds, "rf", metric)
        new = _fold_scores(runs["base"], ds, "rf", metric)
        diff = np.array([sign * (new[k][0] - old[k][0]) for k in sorted(old)])
        assert diff.mean() < 0  # a real drop...
        _, p_worse = _hand_corrected(diff, np.mean([v[1] for v in old.values()]), np.mean([v[2] for v in old.values()]))
        assert p_worse > 0.05  # ...within the fold variance
        (comp,) = [c for c in result.comparisons if c.dataset == ds and c.estimator == "rf"]
        assert comp.verdict == "unchanged" and comp.mean_diff == pytest.approx(diff.mean())


@pytest.mark.parametrize(("factor", "verdict"), [(1.2, "improved"), (0.8, "regressed")])
def test_lower_is_better_metric_is_oriented(runs, saved, tmp_path, factor, verdict):
    def scale_rmse(data):  # baseline rmse 20 % higher: the run is better (lower error), and vice versa
        for f in data["cells"]["diabetes"]["rf"]["folds"]:
            f["scores"]["rmse"] *= factor

    result = check_run(runs["rerun"], _edited(runs["base"], tmp_path, scale_rmse), CheckOptions(write=False))
    (comp,) = [c for c in result.comparisons if c.dataset == "diabetes" and c.estimator == "rf"]
    assert comp.metric == "rmse" and not comp.greater_is_better
    assert comp.verdict == verdict
    assert result.exit_code == (1 if verdict == "regressed" else 0)


def test_mismatches_are_reported_and_unpaired_is_labelled(runs, saved, tmp_path):
    def edit(data):
        data["datasets"]["wine"]["fingerprint"] = "0" * 24
        data["datasets"]["diabetes"]["split"]["folds"] = 10
        data["versions"]["scikit-learn"] = "0.1"
        data["cells"]["wine"]["knn"] = data["cells"]["wine"].pop("rf")  # rf new in the run, knn missing

    result = check_run(runs["rerun"], _edited(runs["base"], tmp_path, edit), CheckOptions(write=False))
    kinds = {(m.kind, m.dataset, m.estimator) for m in result.mismatches}
    assert ("fingerprint", "wine", None) in kinds
    assert ("split", "diabetes", None) in kinds
    assert ("estimator missing", "wine", "knn") in kinds and ("estimator new", "wine", "rf") in kinds
    (versions,) = [m for m in result.mismatches if m.kind == "versions"]
    assert "scikit-learn 0.1 → " + sklearn.__version__ in versions.detail
    assert {c.test for c in result.comparisons} == {"unpaired (Welch)"}  # neither dataset can be paired
    (comp,) = [c for c in result.comparisons if c.dataset == "diabetes" and c.estimator == "tree"]
    values = [v[0] for v in _fold_scores(runs["base"], "diabetes", "tree", "rmse").values()]
    welch = stats.ttest_ind(values, values, equal_var=False)
    assert comp.p_two_sided == pytest.approx(welch.pvalue) and comp.verdict == "unchanged"
    md_result = check_run(runs["rerun"], tmp_path / "edited.json", CheckOptions())
    md = md_result.md_path.read_text()
    assert "unpaired (Welch)" in md and "**fingerprint** (warning) wine" in md and "**versions**" in md


def test_parquet_baseline_round_trips(runs, saved, tmp_path, cli):
    path = tmp_path / "b.parquet"
    code, out, _ = cli("baseline", "save", runs["base"], "--to", path)
    assert code == 0 and path.is_file()
    assert path.read_bytes()[:4] == b"PAR1"
    from_json, from_parquet = load_baseline(saved), load_baseline(path)
    for key in ("cells", "datasets", "versions", "metrics", "suite"):
        assert from_parquet[key] == from_json[key], key
    code, out, err = cli("check", runs["rerun"], "--baseline", path)
    assert code == 0, out + err


def test_champion_must_stay_best_or_tied(runs, tmp_path):
    own = save_baseline(runs["worse"], tmp_path / "worse.json")  # no regression against itself
    ok = check_run(runs["worse"], own, CheckOptions(champion="rf", write=False))
    assert ok.exit_code == 0 and {c.status for c in ok.champion} == {"best"}
    lost = check_run(runs["worse"], own, CheckOptions(champion="tree", write=False))
    (wine,) = [c for c in lost.champion if c.dataset == "wine"]
    tree = _fold_scores(runs["worse"], "wine", "tree", "accuracy")
    rf = _fold_scores(runs["worse"], "wine", "rf", "accuracy")
    diff = np.array([tree[k][0] - rf[k][0] for k in sorted(tree)])
    _, p_one = _hand_corrected(diff, np.mean([v[1] for v in tree.values()]), np.mean([v[2] for v in tree.values()]))
    # Two-sided; with two models Holm's family is their one pair, so p = 2 x the one-sided p.
    assert wine.status == "worse" and wine.best == "rf" and wine.p_worse == pytest.approx(2 * p_one)
    assert lost.exit_code == 1 and not lost.by_verdict("regressed")  # the champion alone fails the check
    assert lost.verdict_line.startswith("FAILED: champion lost") and "wine" in lost.verdict_line.split("lost on")[-1]


# One dataset, 2 repeats x 5 folds: "a" is best, "x" and "y" are close behind, the champion "champ" trails by `drop`;
# Holm runs over the 6 pairs of the 4 models, the summary's family.
BEST = np.array([0.90, 0.88, 0.91, 0.87, 0.89, 0.90, 0.86, 0.92, 0.88, 0.89])
ALTERNATE, PAIRS = np.tile([1.0, -1.0], 5), np.array([1, 1, -1, -1, 1, 1, -1, -1, 1, -1.0])


def _champion_run(out: Path, drop: float, alpha: float | None = None) -> dict[str, np.ndarray]:
    """A store of the run above (no fitting): the summary and `harness check` both read it."""
    from dataclasses import replace

    from harness.store import FoldResult, Store

    scores = {"a": BEST, "champ": BEST - drop + 0.01 * ALTERNATE, "x": BEST - 0.004 + 0.01 * PAIRS,
              "y": BEST - 0.003 + 0.012 * ALTERNATE[::-1]}  # fmt: skip
    settings = {"metrics": {"classification": ["accuracy"]}, "primary": {"classification": "accuracy"}, "seed": 0}
    out.mkdir()
    with Store(out / "results.db") as store:
        suite = {"name": "champ", "champion": "champ", **({"analysis": {"alpha": alpha}} if alpha else {})}
        store.start_run("r1", "champ", json.dumps(suite), [], {}, settings)
        store.record_metrics([("accuracy", "classification", True)])
        store.record_datasets([{"name": "d", "fingerprint": "fp", "task": "classification"}])
        keys = []
        for model, values in scores.items():
            for i, value in enumerate(values):
                key = f"{model}-{i}"
                result = FoldResult(key, "d", model, "classification", i // 5, i % 5, "ok", {"accuracy": value},
                                    n_train=80, n_test=20)  # fmt: skip
                store.add(replace(result, seed=0, config={}, versions={}, fingerprint="fp"), "r1")
                keys.append(key)
        store.record_plan("r1", keys)
        store.finish_run("r1", "finished")
    return scores


@pytest.mark.parametrize(
    ("drop", "alpha", "lost", "summary"),
    [
        (0.016, None, False, "not significantly worse"),
        (0.06, None, True, "significantly worse"),
        (0.016, 0.2, True, "significantly worse"),  # Holm p 0.18: lost at the suite's level, not at 0.05
    ],
    ids=["uncorrected-would-flag-holm-does-not", "clear-loss", "at-the-suites-alpha"],
)
def test_check_and_summary_agree_on_the_champion(tmp_path, drop, alpha, lost, summary):
    from statsmodels.stats.multitest import multipletests

    from harness.report import write_outputs

    out = tmp_path / "run"
    scores = _champion_run(out, drop, alpha)
    one_sided = _hand_corrected(scores["champ"] - scores["a"], 80, 20)[1]
    pairs = list(itertools.combinations(scores, 2))  # ("a", "champ") first
    two_sided = [2 * stats.t.sf(abs(_hand_corrected(scores[x] - scores[y], 80, 20)[0]), 9) for x, y in pairs]
    p_holm = multipletests(two_sided, method="holm")[1][0]
    assert one_sided < 0.05 and drop > 0.005  # the old rule (one-sided, uncorrected, tolerance 0.005) flagged both
    assert (
        bool(p_holm < (alpha or 0.05)) is lost and two_sided[0] < 0.05
    )  # uncorrected two-sided flags all: Holm decides

    data = write_outputs(out)
    verdict = data.stats["per_dataset"]["d"]
    assert ("champ" not in verdict["not_significantly_worse_than_best"]) is lost
    assert re.search(rf"^\| d \| accuracy ↑ \| a \|.*\| {summary} \|$", (out / "summary.md").read_text(), flags=re.M)

    result = check_run(out, save_baseline(out), CheckOptions(write=False))  # the suite's champion and alpha apply
    assert result.options.alpha == (alpha or 0.05)
    (champ,) = result.champion
    assert champ.best == "a" and champ.p_worse == pytest.approx(p_holm) and champ.failed is lost
    assert champ.status == ("worse" if lost else "tied-best") and result.exit_code == int(lost)


def test_bad_input_exits_2_with_one_line(runs, saved, tmp_path, cli):
    junk = tmp_path / "junk.json"
    junk.write_text("not json at all")
    other = tmp_path / "other.json"
    other.write_text('{"name": "something else"}')
    cases = [
        (("check", runs["rerun"], "--baseline", tmp_path / "missing.json"), "no such baseline file"),
        (("check", runs["rerun"], "--baseline", junk), "not a harness baseline file"),
        (("check", runs["rerun"], "--baseline", other), "not a harness baseline file"),
        (("check", runs["rerun"], "--baseline", saved, "--metric", "acuracy"), "did you mean 'accuracy'"),
        (("check", runs["rerun"], "--baseline", saved, "--champion", "nobody"), "no such estimator"),
        (("check", tmp_path, "--baseline", saved), "no results store"),
        (("baseline", "save", tmp_path / "nowhere"), "no results store"),
    ]
    for args, text in cases:
        code, out, err = cli(*args)
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2, (args, out, err)
        assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], (args, err)


def test_run_with_baseline_runs_and_checks_in_one_step(runs, tmp_path, cli):
    baseline = save_baseline(runs["base"], tmp_path / "b.json")
    suite = json.loads(json.dumps(SUITE))
    suite["estimators"][0]["params"]["max_depth"] = 1  # the regression
    path = tmp_path / "gate.yaml"
    path.write_text(yaml.safe_dump(suite))
    code, out, _ = cli("run", path, "--out", tmp_path / "new", "--baseline", baseline)
    assert code == 1 and "regressed" in out and (tmp_path / "new" / "check.md").is_file()
    code, _, err = cli("run", path, "--out", tmp_path / "never", "--baseline", tmp_path / "missing.json")
    assert code == 2 and "missing.json" in err and not (tmp_path / "never").exists()  # refused before fitting


# ---------------------------------------------------------------- the gate and the renderer alone (no run)


def _dict(scores: list[float | None], fingerprint: str = "fp", metric: str = "accuracy") -> dict:
    """A two-dataset baseline dict by hand: 'd' holds one cell 'm' with these fold scores (None = failed fold)."""
    task = "classification" if metric == "accuracy" else "regression"
    folds = [
        {"seed": 0, "repeat": 0, "fold": i, "n_train": 80, "n_test": 20, "status": "error"}
        | ({} if s is None else {"status": "ok", "scores": {metric: s}})
        for i, s in enumerate(scores)
    ]
    return {
        "format": "harness-baseline",
        "suite": "s",
        "metrics": {metric: {"task": task, "greater_is_better": metric == "accuracy"}},
        "primary": {task: metric},
        "datasets": {"d": {"task": task, "fingerprint": fingerprint, "split": {"scheme": "kfold", "seeds": [0]}}},
        "cells": {"d": {"m": {"config": {}, "folds": folds}}},
    }


BASE = [0.80, 0.82, 0.85, 0.79, 0.84]
NOISE = np.array([0.004, -0.003, 0.002, -0.004, 0.001])


@pytest.mark.parametrize(
    ("shift", "metric", "verdict"),
    [
        (-0.05, "accuracy", "regressed"),
        (0.05, "accuracy", "improved"),
        (0.002, "accuracy", "unchanged"),  # within the fold noise
        (0.05, "rmse", "regressed"),  # lower is better: a rise is worse
        (-0.05, "rmse", "improved"),
    ],
)
def test_gate_verdict_matches_the_corrected_t_test_by_hand(shift, metric, verdict):
    from harness.baseline.gate import compare

    current = list(np.array(BASE) + shift + NOISE)
    result = compare(_dict(BASE, metric=metric), _dict(current, metric=metric), CheckOptions(tolerance=0.0))
    (comp,) = result.comparisons
    sign = 1 if metric == "accuracy" else -1
    t, p_worse = _hand_corrected(sign * (shift + NOISE), 80, 20)
    assert comp.test == "paired (corrected t)" and comp.n_pairs == 5
    assert comp.t == pytest.approx(t) and comp.p_worse == pytest.approx(p_worse)
    assert comp.verdict == verdict and result.exit_code == (verdict == "regressed")


@pytest.mark.parametrize(
    ("current", "fingerprint", "test", "verdict"),
    [
        ([None, *BASE[1:]], "fp", "paired (corrected t)", "regressed"),  # a fold ok before now fails
        (BASE, "changed", "unpaired (Welch)", "unchanged"),  # other rows: never paired, labelled
        ([0.8, None, None, None, None], "fp", "none", "regressed"),  # too few folds, but folds lost
    ],
)
def test_gate_pairing_and_failed_folds(current, fingerprint, test, verdict):
    from harness.baseline.gate import compare

    result = compare(_dict(BASE), _dict(current, fingerprint=fingerprint), CheckOptions())
    (comp,) = result.comparisons
    assert (comp.test, comp.verdict) == (test, verdict)
    assert [m.kind for m in result.mismatches] == (["fingerprint"] if fingerprint != "fp" else [])


def test_render_only_formats_the_result_objects():
    from rich.console import Console

    from harness.baseline.render import check_markdown, check_table
    from harness.baseline.result import ChampionCheck, CheckResult, Comparison, Mismatch

    comps = [
        Comparison("d|1", "m", "rmse", False, "paired (corrected t)", "unchanged", "why", 0.0, 0.05),
        Comparison("d", "m", "accuracy", True, "x", "regressed", "a|b", 0.0, 0.05, 0.5, 0.25, -0.25, p_worse=3e-5),
    ]
    result = CheckResult(
        "s",
        "b.json",
        comps,
        [Mismatch("split", "warning", "changed", "d")],
        [ChampionCheck("d", "m", "accuracy", "worse", best="n|2", detail="behind")],
        CheckOptions(alpha=0.05, champion="m"),  # a result holds the options as applied
        "rule",
    )
    md = check_markdown(result)
    assert md.startswith("## harness check: s\n\n**REGRESSED (1 regressed, 0 improved, 1 unchanged, 1 mismatches)")
    assert md.index("### Regressions (1)") < md.index("### Unchanged (1)") < md.index("### Champion: m")
    assert "| d | m | accuracy | 0.5000 | 0.2500 | -0.2500 | <0.0001 | x | regressed | a\\|b |" in md
    assert "| d\\|1 | m | rmse ↓ | — | — | — | — | paired (corrected t) | unchanged | why |" in md
    assert "| d | worse | n\\|2 | behind |" in md and "- **split** (warning) d: changed" in md
    console = Console(width=250, file=io.StringIO())
    console.print(check_table(result))
    rows = [line for line in console.file.getvalue().splitlines() if "│ d" in line]
    assert [("regressed" in r, "unchanged" in r) for r in rows] == [(True, False), (False, True)]


def test_a_check_from_the_read_model_equals_one_from_the_store(runs, saved, tmp_path):
    from harness.baseline.check import check_run
    from harness.report import read_outputs_data

    data = read_outputs_data(runs["worse"])
    options = CheckOptions(write=False)
    from_store = check_run(runs["worse"], saved, options)
    from_model = check_run(runs["worse"], saved, options, data=data)
    assert from_model.to_dict() == from_store.to_dict() and from_model.verdict_line == from_store.verdict_line


def test_run_with_a_baseline_checks_the_run_it_just_made(runs, saved, tmp_path, cli):
    suite = runs["base"].parent / "base.yaml"
    code, out, err = cli("run", suite, "--out", tmp_path / "again", "--baseline", saved)
    assert code == 0, out + err
    check = json.loads((tmp_path / "again" / "check.json").read_text())
    assert check["verdict"] == "ok" and check["exit_code"] == 0 and check["comparisons"]
    assert "OK: no regressions" in out
