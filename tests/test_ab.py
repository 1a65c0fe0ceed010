"""harness ab: plan, test (fixed-horizon and mSPRT), paired; numbers checked against scipy/statsmodels."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from harness.ab.data import PROPORTION, load_log
from harness.ab.experiment import FIXED, SEQUENTIAL, analyse
from harness.ab.paired import compare_predictions, suite_metrics
from harness.ab.power import plan
from harness.ab.sequential import log_mixture_ratio, msprt
from harness.errors import HarnessError

# ---------------------------------------------------------------- helpers


def _log(tmp_path: Path, rates: tuple[float, float] | None = None, n: int = 4000, seed: int = 0, **extra) -> Path:
    """A two-arm log: arm 'control' and 'new', a 0/1 outcome 'y' and a continuous one 'v'."""
    rng = np.random.default_rng(seed)
    arm = rng.choice(["control", "new"], size=n)
    new = arm == "new"
    p = np.where(new, rates[1], rates[0]) if rates else np.full(n, 0.2)
    frame = pd.DataFrame({"t": rng.permutation(n), "arm": arm, "y": (rng.random(n) < p).astype(int)})
    frame["v"] = rng.normal(10.0, 3.0, n) + extra.get("shift", 0.0) * new
    path = tmp_path / "log.csv"
    frame.to_csv(path, index=False)
    return path


def _read(out: Path) -> dict:
    return json.loads((out / "ab.json").read_text())


# ---------------------------------------------------------------- plan


@pytest.mark.parametrize(("baseline", "mde", "alpha", "power"), [(0.10, 0.01, 0.05, 0.8), (0.5, -0.05, 0.01, 0.9)])
def test_plan_proportion_matches_the_arcsine_formula(baseline, mde, alpha, power):
    h = abs(2 * math.asin(math.sqrt(baseline + mde)) - 2 * math.asin(math.sqrt(baseline)))
    exact = 2 * ((stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)) / h) ** 2  # n per arm: z = h·sqrt(n/2)
    # the normal power also counts the far tail; it changes n by well under one row
    result = plan(baseline, mde, alpha, power)
    assert result.n_exact == pytest.approx(exact, rel=1e-3)
    assert result.n_per_arm == math.ceil(result.n_exact)


def test_plan_mean_is_the_smallest_n_with_the_power():
    d, alpha = 1 / 14, 0.05
    result = plan(20.0, 1.0, alpha, 0.8, metric="mean", sd=14.0)

    def power(n: int) -> float:  # the two-sided Welch/Student power from the noncentral t, computed here
        df, nc = 2 * n - 2, d * math.sqrt(n / 2)
        crit = stats.t.ppf(1 - alpha / 2, df)
        return stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc)

    assert power(result.n_per_arm) >= 0.8 > power(result.n_per_arm - 1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--baseline", "1.2", "--mde", "0.1"], "--baseline"),
        (["--baseline", "0.1", "--mde", "0"], "--mde"),
        (["--baseline", "0.95", "--mde", "0.1"], "--mde"),
        (["--baseline", "3", "--mde", "1", "--metric", "mean"], "--sd"),
        (["--baseline", "3", "--mde", "1", "--metric", "mean", "--sd", "-1"], "--sd"),
        (["--baseline", "0.1", "--mde", "0.01", "--power", "0.01"], "--power"),
        (["--baseline", "0.1", "--mde", "0.01", "--alpha", "1"], "--alpha"),
        (["--baseline", "0.1", "--mde", "0.01", "--metric", "median"], "--metric"),
    ],
)
def test_plan_bad_input_is_one_line_exit_2(cli, tmp_path, args, message):
    result = cli("ab", "plan", *args, "--out", tmp_path / "ab")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and message in result.stderr
    assert not (tmp_path / "ab").exists()


def test_plan_cli_writes_both_files(cli, tmp_path):
    result = cli("ab", "plan", "--baseline", "0.10", "--mde", "0.01", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    data = _read(tmp_path)
    assert data["kind"] == "plan" and data["n_per_arm"] == plan(0.1, 0.01).n_per_arm
    assert f"{data['n_per_arm']:,} rows per arm" in (tmp_path / "ab.md").read_text()


# ---------------------------------------------------------------- test: fixed horizon


def test_proportions_match_an_independent_z_test_and_newcombe_ci(tmp_path):
    from statsmodels.stats.proportion import proportion_confint

    log = load_log(_log(tmp_path, (0.20, 0.24)), "arm", "y")
    r = analyse(log, alpha=0.05)
    y, t = log.outcome, log.treated
    x1, n1, x2, n2 = y[t].sum(), t.sum(), y[~t].sum(), (~t).sum()
    p1, p2, pool = x1 / n1, x2 / n2, (x1 + x2) / (n1 + n2)
    z = (p1 - p2) / math.sqrt(pool * (1 - pool) * (1 / n1 + 1 / n2))
    assert r.metric == PROPORTION and r.statistic == pytest.approx(z)
    assert r.p_two_sided == pytest.approx(2 * stats.norm.sf(abs(z)))
    assert r.p_harm == pytest.approx(stats.norm.cdf(z)) and r.p_benefit == pytest.approx(stats.norm.sf(z))
    l1, u1 = proportion_confint(x1, n1, method="wilson")
    l2, u2 = proportion_confint(x2, n2, method="wilson")
    d = p1 - p2  # Newcombe's hybrid score interval
    newcombe = (d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))
    assert r.difference == pytest.approx(d) and r.difference_ci == pytest.approx(newcombe)
    assert r.lift == pytest.approx(p1 / p2 - 1) and r.lift_ci[0] < r.lift < r.lift_ci[1]
    h = 2 * math.asin(math.sqrt(p1)) - 2 * math.asin(math.sqrt(p2))
    se = math.sqrt(1 / n1 + 1 / n2)
    crit = stats.norm.ppf(0.975)
    assert r.power_observed == pytest.approx(stats.norm.sf(crit - abs(h) / se) + stats.norm.cdf(-crit - abs(h) / se))
    assert r.better and not r.worse and r.decision_uses == FIXED


def test_means_match_scipy_welch(tmp_path):
    log = load_log(_log(tmp_path, shift=-0.4), "arm", "v")
    r = analyse(log, alpha=0.1, mde=0.5)
    a, b = log.outcome[log.treated], log.outcome[~log.treated]
    welch = stats.ttest_ind(a, b, equal_var=False)
    assert r.metric == "mean" and r.test == "Welch's t-test"
    assert r.statistic == pytest.approx(welch.statistic) and r.p_two_sided == pytest.approx(welch.pvalue)
    assert r.p_harm == pytest.approx(stats.ttest_ind(a, b, equal_var=False, alternative="less").pvalue)
    ci = welch.confidence_interval(0.9)
    assert r.difference_ci == pytest.approx((ci.low, ci.high))
    assert r.worse and r.power_at_mde is not None and 0.5 < r.power_at_mde <= 1


def test_lower_is_better_flips_the_harm(tmp_path):
    log = load_log(_log(tmp_path, shift=-0.4), "arm", "v")
    assert analyse(log).worse
    flipped = analyse(log, higher_is_better=False)
    assert flipped.better and not flipped.worse and flipped.p_harm == pytest.approx(analyse(log).p_benefit)


# ---------------------------------------------------------------- mSPRT


def test_msprt_is_the_mixture_ratio_and_non_increasing():
    rng = np.random.default_rng(1)
    treated = rng.random(3000) < 0.5
    y = rng.normal(0.25 * treated, 1.0)
    seq = msprt(y, treated, tau=0.2)
    assert np.all(np.diff(seq.p_values) <= 0) and seq.p_values[0] == 1.0
    # the last look, from the formula with the arms' sample variances, computed here
    t, c = y[treated], y[~treated]
    v = t.var(ddof=1) / t.size + c.var(ddof=1) / c.size
    diff = t.mean() - c.mean()
    ratio = math.sqrt(v / (v + 0.04)) * math.exp(0.04 * diff**2 / (2 * v * (v + 0.04)))
    assert log_mixture_ratio(np.array([diff]), np.array([v]), 0.2)[0] == pytest.approx(math.log(ratio))
    assert seq.p_value <= min(1.0, 1 / ratio) + 1e-12
    assert seq.p_value < 0.05 and seq.first_below_alpha is not None  # a real effect is found
    assert seq.ci[0] <= diff <= seq.ci[1]


def _peeked_rejections(kind: str, sims: int = 200, n: int = 600, alpha: float = 0.05) -> tuple[float, float]:
    """Share of null experiments that ever reach p ≤ alpha when every row is a look: mSPRT, and a z-test."""
    rng = np.random.default_rng(7)
    seq_rejects = z_rejects = 0
    for _ in range(sims):
        treated = rng.random(n) < 0.5
        y = (rng.random(n) < 0.3).astype(float) if kind == "proportion" else rng.normal(5.0, 2.0, n)
        seq = msprt(y, treated, tau=0.1 if kind == "proportion" else 0.4, alpha=alpha, pooled=kind == "proportion")
        seq_rejects += seq.p_value <= alpha
        nt, nc = np.cumsum(treated), np.cumsum(~treated)  # the naive way: a z-test at every row
        st, sc = np.cumsum(y * treated), np.cumsum(y * ~treated)
        ok = (nt >= 10) & (nc >= 10)
        pool = (st + sc)[ok] / (nt + nc)[ok]
        var = np.maximum(pool * (1 - pool), 1e-12) if kind == "proportion" else np.var(y, ddof=1)
        z = (st[ok] / nt[ok] - sc[ok] / nc[ok]) / np.sqrt(var * (1 / nt[ok] + 1 / nc[ok]))
        z_rejects += bool(np.any(2 * stats.norm.sf(np.abs(z)) <= alpha))
    return seq_rejects / sims, z_rejects / sims


@pytest.mark.parametrize("kind", ["proportion", "mean"])
def test_msprt_keeps_type_one_error_under_peeking(kind):
    sequential, naive = _peeked_rejections(kind)
    assert sequential <= 0.05
    assert naive > 0.15  # peeking at a fixed-horizon test is what the mSPRT protects against


# ---------------------------------------------------------------- the command


def test_cli_exit_codes_and_decision(cli, tmp_path):
    worse = _log(tmp_path, (0.30, 0.22))
    out = tmp_path / "a"
    result = cli("ab", "test", worse, "--arm", "arm", "--outcome", "y", "--out", out)
    assert result.returncode == 1, result.stderr
    assert "significantly worse" in result.stdout
    data = _read(out)
    assert data["decision_uses"] == FIXED and data["significantly_worse"] and data["exit_code"] == 1
    assert data["control"]["name"] == "control" and data["treatment"]["name"] == "new"
    assert "**treatment 'new' is significantly worse" in (out / "ab.md").read_text()
    # the other arm as control: the challenger is now the better one
    result = cli("ab", "test", worse, "--arm", "arm", "--outcome", "y", "--control", "new", "--out", out)
    assert result.returncode == 0 and _read(out)["significantly_better"]
    result = cli("ab", "test", worse, "--arm", "arm", "--outcome", "y", "--sequential", "--time", "t", "--out", out)
    data = _read(out)
    assert data["decision_uses"] == SEQUENTIAL and data["order"] == "rows ordered by column 't'"
    assert result.returncode == (1 if data["sequential"]["p_value"] <= 0.05 else 0)
    result = cli("ab", "test", worse, "--arm", "arm", "--outcome", "y", "--lower-is-better", "--out", out)
    assert result.returncode == 0 and _read(out)["direction"] == "lower is better"


def test_time_order_changes_the_sequence_not_the_fixed_test(tmp_path):
    path = _log(tmp_path, (0.2, 0.25), n=1500)
    by_file, by_time = load_log(path, "arm", "y"), load_log(path, "arm", "y", time="t")
    a, b = analyse(by_file, sequential=True), analyse(by_time, sequential=True)
    assert a.p_two_sided == pytest.approx(b.p_two_sided)
    assert not np.array_equal(a.sequential.p_values, b.sequential.p_values)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "args", "message"),
    [
        ("g,y\nA,1\nB,0\n", ["--arm", "grp"], "--arm: no column 'grp'"),
        ("g,y\nA,1\nB,0\n", ["--outcome", "out"], "--outcome: no column 'out'"),
        ("g,y\nA,1\nB,0\nC,1\n", [], "has 3 arms"),
        ("g,y\nA,1\nA,0\n", [], "has 1 arm"),
        ("g,y\nA,1\nA,0\nB,1\nB,0\n", ["--control", "Z"], "--control 'Z' is not an arm"),
        ("g,y\nA,1\nA,0\nB,2\nB,0\n", ["--metric", "proportion"], "column 'y' is not binary"),
        ("g,y\nA,1\nA,\nB,1\nB,0\n", [], "column 'y' has 1 missing value"),
        ("g,y\nA,1\n,0\nB,1\nB,0\n", [], "--arm column 'g' has 1 missing value"),
        ("g,y\nA,1\nA,0\nB,1\n", [], "arm 'B' of column 'g' has 1 row"),
        ("g,y\nA,yes\nA,no\nB,yes\nB,no\n", [], "column 'y' is not numeric"),
        ("g,y\nA,1\nA,1\nB,1\nB,1\n", [], "column 'y' is constant"),
        ("g,y\nA,1\nA,0\nB,1\nB,0\n", ["--metric", "rate"], "--metric: 'rate'"),
        ("g,y\nA,1\nA,0\nB,1\nB,0\n", ["--time", "ts"], "--time: no column 'ts'"),
        ("g,y\nA,1\nA,0\nB,1\nB,0\n", ["--alpha", "0"], "--alpha"),
        ("g,y\nA,1\nA,0\nB,1\nB,0\n", ["--tau", "-1"], "--tau"),
        ("g,y,y\nA,1,1\nB,0,0\n", [], "appears twice"),
        ("g,y\n", [], "has no data rows"),
    ],
)
def test_test_bad_input_is_one_line_exit_2(cli, tmp_path, text, args, message):
    path = _write(tmp_path, text)
    options = {"--arm": "g", "--outcome": "y"}
    for key, value in zip(args[::2], args[1::2], strict=True):
        options[key] = value
    flat = [x for kv in options.items() for x in kv]
    result = cli("ab", "test", path, *flat, "--out", tmp_path / "out")
    assert result.returncode == 2, result.stdout
    assert message in result.stderr and result.stderr.strip().count("\n") == 0
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


def test_missing_file_and_foreign_output_are_refused(cli, tmp_path):
    result = cli("ab", "test", tmp_path / "none.csv", "--arm", "g", "--outcome", "y", "--out", tmp_path)
    assert result.returncode == 2 and "none.csv" in result.stderr
    path = _log(tmp_path, (0.2, 0.2), n=200)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "ab.md").write_text("my notes\n")
    result = cli("ab", "test", path, "--arm", "arm", "--outcome", "y", "--out", tmp_path / "out")
    assert result.returncode == 2 and "refusing to overwrite" in result.stderr
    assert (tmp_path / "out" / "ab.md").read_text() == "my notes\n"


# ---------------------------------------------------------------- paired


def test_paired_numbers_match_mcnemar_and_a_normal_ci():
    rng = np.random.default_rng(3)
    n = 400
    y = rng.integers(0, 2, n)
    pa = np.where(rng.random(n) < 0.80, y, 1 - y)
    pb = np.where(rng.random(n) < 0.72, y, 1 - y)
    proba = lambda p: np.c_[1 - p * 0.8 - 0.1, p * 0.8 + 0.1]  # noqa: E731
    ra = {"predict": pa, "proba": proba(pa), "score": proba(pa)[:, 1]}
    rb = {"predict": pb, "proba": proba(pb), "score": proba(pb)[:, 1]}
    metrics, mc = compare_predictions(y, ra, rb, ["accuracy"], np.arange(2), resamples=600)
    only_a, only_b = int(np.sum((pa == y) & (pb != y))), int(np.sum((pa != y) & (pb == y)))
    assert (mc["only_a_right"], mc["only_b_right"]) == (only_a, only_b)
    assert mc["p_two_sided"] == pytest.approx(stats.binomtest(only_a, only_a + only_b).pvalue)
    assert mc["p_harm"] == pytest.approx(stats.binom.sf(only_a - 1, only_a + only_b, 0.5))
    acc = metrics[0]
    d = (pb == y).astype(float) - (pa == y)
    assert acc.difference == pytest.approx(d.mean())
    half = stats.norm.ppf(0.95) * d.std(ddof=1) / math.sqrt(n)  # 90% normal CI of the paired mean difference
    assert acc.ci == pytest.approx((d.mean() - half, d.mean() + half), abs=0.012)
    assert acc.worse and acc.decided_by == "mcnemar"
    (loss,), _ = compare_predictions(y, ra, rb, ["log_loss"], np.arange(2), resamples=100)
    assert loss.worse and not loss.higher_is_better and loss.difference > 0  # log loss is higher for B: worse


def test_suite_metrics_primary_first():
    sidecar = {"scores": {"primary": "roc_auc", "metrics": {"accuracy": {}, "roc_auc": {}, "r2": {}}}}
    assert suite_metrics(sidecar, "classification") == ["roc_auc", "accuracy"]
    assert suite_metrics({}, "regression") == ["r2", "rmse", "mae"]


def _export(model, X: pd.DataFrame, classes: list, path: Path, metrics: dict | None = None) -> Path:
    """A model file as `harness export model` writes it: skops, and the sidecar with its SHA-256."""
    import skops.io as sio

    payload = sio.dumps(model)
    path.write_bytes(payload)
    sidecar = {
        "format": "harness-model",
        "format_version": 1,
        "model_sha256": hashlib.sha256(payload).hexdigest(),
        "task": "classification",
        "target": "label",
        "features": [{"name": c, "dtype": "float64", "categorical": False} for c in X.columns],
        "classes": classes,
        "scores": {"primary": "accuracy", "metrics": metrics or {"accuracy": {}, "roc_auc": {}}},
    }
    path.with_suffix(".json").write_text(json.dumps(sidecar))
    return path


@pytest.fixture
def two_models(tmp_path):
    from sklearn.dummy import DummyClassifier
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    y = (X["a"] + 0.3 * rng.normal(size=300) > 0).astype(int)
    good = _export(LogisticRegression().fit(X[:200], y[:200]), X, ["no", "yes"], tmp_path / "good.skops")
    dummy = DummyClassifier(strategy="prior").fit(X[:200], y[:200])
    bad = _export(dummy, X, ["no", "yes"], tmp_path / "dummy.skops")
    new = X[200:].assign(label=np.where(y[200:] == 1, "yes", "no"), extra=1.0)
    new.to_csv(tmp_path / "new.csv", index=False)
    return tmp_path / "new.csv", good, bad


def test_paired_cli_exit_codes(cli, tmp_path, two_models):
    new, good, bad = two_models
    out = tmp_path / "out"
    args = ("ab", "paired", new, "--target", "label", "--resamples", "100", "--out", out)
    result = cli(*args, "--model", good, "--model", bad)
    assert result.returncode == 1, result.stderr
    data = _read(out)
    assert data["kind"] == "paired" and data["significantly_worse"] and data["decision_metric"] == "accuracy"
    assert [m["name"] for m in data["metrics"]] == ["accuracy", "roc_auc"]
    assert "extra column" in result.stderr  # check_frame's warning, passed on
    result = cli(*args, "--model", bad, "--model", good, "--metric", "roc_auc", "--metric", "log_loss")
    assert result.returncode == 0, result.stderr
    data = _read(out)
    assert data["decision_metric"] == "roc_auc" and data["mcnemar"] is None
    assert "significantly better" in data["verdict"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("one_model", "--model: give exactly two"),
        ("no_target", "--target: no column 'nope'"),
        ("nan_target", "target 'label' has 1 missing value"),
        ("unseen_label", "labels the models were not fitted on: 'maybe'"),
        ("missing_feature", "missing column 'b'"),
        ("bad_metric", "--metric: 'rmse' is a regression metric"),
        ("no_sidecar", "not found"),
    ],
)
def test_paired_bad_input_is_one_line_exit_2(cli, tmp_path, two_models, change, message):
    new, good, bad = two_models
    frame = pd.read_csv(new)
    target, models, extra = "label", [good, bad], []
    if change == "one_model":
        models = [good]
    elif change == "no_target":
        target = "nope"
    elif change == "nan_target":
        frame.loc[3, "label"] = np.nan
    elif change == "unseen_label":
        frame.loc[3, "label"] = "maybe"
    elif change == "missing_feature":
        frame = frame.drop(columns=["b"])
    elif change == "bad_metric":
        extra = ["--metric", "rmse"]
    elif change == "no_sidecar":
        bad.with_suffix(".json").unlink()
    frame.to_csv(new, index=False)
    flat = [x for m in models for x in ("--model", m)]
    result = cli("ab", "paired", new, "--target", target, *flat, *extra, "--out", tmp_path / "out")
    assert result.returncode == 2, result.stdout
    assert message in result.stderr and result.stderr.strip().count("\n") == 0
    assert not (tmp_path / "out").exists()


def test_analyse_refuses_bad_alpha(tmp_path):
    with pytest.raises(HarnessError, match="--alpha"):
        analyse(load_log(_log(tmp_path, n=100), "arm", "y"), alpha=1.5)


def test_paired_on_models_exported_by_harness(cli, tmp_path):
    """The real path: a tiny run, `harness export model` twice, then `harness ab paired` on new rows."""
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=300, n_features=4, n_informative=3, n_redundant=0, random_state=0)
    frame = pd.DataFrame(X, columns=["x0", "x1", "x2", "x3"]).assign(label=np.where(y == 1, "yes", "no"))
    frame[:200].to_csv(tmp_path / "train.csv", index=False)
    frame[200:].to_csv(tmp_path / "new.csv", index=False)
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "name: tiny\ncv: {folds: 2}\nmetrics: {classification: [accuracy, roc_auc]}\nexplain: {enabled: false}\n"
        "datasets: [{name: d, source: train.csv, target: label}]\n"
        "estimators: [{name: lr, model: linear}, {name: stump, model: decision_tree, params: {max_depth: 1}}]\n"
    )
    assert cli("run", suite, "--out", tmp_path / "run").returncode == 0
    for name in ("lr", "stump"):
        to = tmp_path / f"{name}.skops"
        exported = cli("export", "model", tmp_path / "run", "-e", name, "-d", "d", "--to", to, "--suite", suite)
        assert exported.returncode == 0, exported.stderr
    out = tmp_path / "ab"
    result = cli(
        "ab", "paired", tmp_path / "new.csv", "--target", "label", "--model", tmp_path / "lr.skops",
        "--model", tmp_path / "stump.skops", "--resamples", "100", "--out", out,
    )  # fmt: skip
    data = _read(out)
    assert result.returncode == data["exit_code"] and result.returncode in (0, 1)
    assert [m["name"] for m in data["metrics"]] == ["accuracy", "roc_auc"]  # the suite's metrics, from the sidecar
    mc = data["mcnemar"]
    assert sum(map(sum, mc["table"])) == 100 and data["n"] == 100


def test_paired_regression_metrics_are_oriented():
    rng = np.random.default_rng(5)
    y = rng.normal(size=300)
    ra = {"predict": y + rng.normal(0, 0.3, 300)}
    rb = {"predict": y + rng.normal(0, 0.6, 300)}
    metrics, mc = compare_predictions(y, ra, rb, ["rmse", "r2"], None, resamples=200)
    rmse, r2 = metrics
    assert mc is None and rmse.difference > 0 and r2.difference < 0
    assert rmse.worse and r2.worse and not rmse.better  # higher error and lower r2 are both harm
