"""harness/robustness.py: perturbed test rows, calibrated on the training part only.

Properties are checked against the definition (noise spread = level × TRAINING std,
an exact fraction of categories swapped to training categories), on samples large
enough that the sampling error is far below the tolerances.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.robustness import noise_levels_default, perturb

N = 20_000


@pytest.fixture
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train spread (std 3) differs from test spread (std 1), so a test-calibrated noise would show."""
    rng = np.random.default_rng(0)
    train = pd.DataFrame(
        {
            "num": rng.normal(10, 3, N),
            "flat": np.full(N, 4.0),
            "colour": rng.choice(["red", "green", "blue"], N),
        }
    )
    test = pd.DataFrame(
        {
            "num": rng.normal(10, 1, N),
            "flat": rng.normal(0, 5, N),
            "colour": rng.choice(["red", "green", "blue", "mauve"], N),  # mauve: never seen in training
        },
        index=np.arange(N) + 1000,  # a fold's rows keep their original index
    )
    test.loc[test.index[:100], "num"] = np.nan
    test.loc[test.index[100:200], "colour"] = np.nan
    return train, test


def test_default_levels() -> None:
    assert noise_levels_default == (0.0, 0.1, 0.25, 0.5)


def test_level_zero_is_an_identical_copy(frames) -> None:
    train, test = frames
    out = perturb(test, train, 0.0, seed=1, categorical=["colour"])
    pd.testing.assert_frame_equal(out, test)
    assert out is not test


@pytest.mark.parametrize("level", [0.1, 0.5])
def test_noise_spread_is_level_times_train_std(frames, level: float) -> None:
    train, test = frames
    out = perturb(test, train, level, seed=1, categorical=["colour"])
    noise = (out["num"] - test["num"]).dropna()
    train_std = float(np.std(train["num"], ddof=1))
    assert noise.std() == pytest.approx(level * train_std, rel=0.03)
    assert abs(noise.mean()) < 4 * level * train_std / np.sqrt(len(noise))
    assert out["num"].isna().equals(test["num"].isna())  # NaN stays NaN, nothing else becomes NaN
    # no spread in training: no noise, whatever the test column looks like
    pd.testing.assert_series_equal(out["flat"], test["flat"])
    pd.testing.assert_index_equal(out.index, test.index)


@pytest.mark.parametrize("level", [0.1, 0.25, 1.0])
def test_categories_swapped_to_known_ones(frames, level: float) -> None:
    train, test = frames
    out = perturb(test, train, level, seed=2, categorical=["colour"])
    before, after = test["colour"], out["colour"]
    present = before.notna()
    changed = present & (before != after)
    assert after[~present].isna().all() and after[present].notna().all()
    assert changed.sum() == round(level * present.sum())
    assert set(after[changed]) <= {"red", "green", "blue"}
    # each known category is a target of about the same share of swaps (uniform over the others)
    if level == 1.0:
        shares = after[changed].value_counts(normalize=True)
        assert shares.min() > 0.25


def test_deterministic_and_seed_dependent(frames) -> None:
    train, test = frames
    a = perturb(test, train, 0.25, seed=7, categorical=["colour"])
    b = perturb(test, train, 0.25, seed=7, categorical=["colour"])
    c = perturb(test, train, 0.25, seed=8, categorical=["colour"])
    pd.testing.assert_frame_equal(a, b)
    assert not a["num"].equals(c["num"]) and not a["colour"].equals(c["colour"])


def test_inputs_not_mutated(frames) -> None:
    train, test = frames
    train_copy, test_copy = train.copy(deep=True), test.copy(deep=True)
    perturb(test, train, 0.5, seed=3, categorical=["colour"])
    pd.testing.assert_frame_equal(train, train_copy)
    pd.testing.assert_frame_equal(test, test_copy)


def test_pandas_categorical_dtype_and_integers() -> None:
    train = pd.DataFrame({"k": pd.Categorical(["a", "b", "c"] * 10), "i": np.arange(30)})
    test = pd.DataFrame({"k": pd.Categorical(["a"] * 10, categories=["a"]), "i": np.arange(10)})
    out = perturb(test, train, 0.5, seed=0, categorical=["k"])
    assert isinstance(out["k"].dtype, pd.CategoricalDtype)
    assert (out["k"] != "a").sum() == 5 and set(out["k"]) <= {"a", "b", "c"}
    assert out["i"].dtype == np.float64 and not np.allclose(out["i"], test["i"])


def test_bad_level_is_refused(frames) -> None:
    train, test = frames
    with pytest.raises(ValueError, match="level"):
        perturb(test, train, -0.1, seed=0, categorical=["colour"])


def test_single_known_category_is_left_alone() -> None:
    train = pd.DataFrame({"k": ["only"] * 5})
    test = pd.DataFrame({"k": ["only", "only", "other", "other"]})
    out = perturb(test, train, 1.0, seed=0, categorical=["k"])
    assert list(out["k"]) == ["only", "only", "only", "only"]  # unseen values go to the known one


# ---------------------------------------------------------------- worst-case attacks (pgd, blackbox)

from pathlib import Path  # noqa: E402

from sklearn.datasets import make_classification, make_regression  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier, RandomForestRegressor  # noqa: E402
from sklearn.linear_model import LogisticRegression, Ridge  # noqa: E402
from sklearn.metrics import accuracy_score, r2_score  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402
from sklearn.svm import SVC, LinearSVC  # noqa: E402

from harness.models.mlp import TorchMLPClassifier, TorchMLPRegressor  # noqa: E402
from harness.preprocess import Columns, Tags, make_pipeline  # noqa: E402
from harness.robustness import attack_fold, attack_rows  # noqa: E402
from harness.robustness.attacks import blackbox, pgd  # noqa: E402
from harness.robustness.box import Box  # noqa: E402
from harness.robustness.surface import NotDifferentiable, input_gradient  # noqa: E402

LEVELS = [0.1, 0.5]


@pytest.fixture(autouse=True)
def _one_thread():
    """As in a fold (engine threads = 1): OpenMP models on a busy machine are otherwise many times slower."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def _numeric(task: str, n: int = 240, p: int = 6) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray, np.ndarray]:
    if task == "classification":
        X, y = make_classification(n, p, n_informative=4, n_redundant=0, n_classes=3, random_state=0)
    else:
        X, y = make_regression(n, p, n_informative=4, noise=10.0, random_state=0)
    X = pd.DataFrame(X * np.arange(1, p + 1) + 5, columns=[f"x{i}" for i in range(p)])  # columns on different scales
    half = n * 2 // 3
    return X.iloc[:half], X.iloc[half:], y[:half], y[half:]


def _fold_model(estimator, X: pd.DataFrame, categorical=(), scale: bool = True):
    numeric = [c for c in X.columns if c not in categorical]
    columns = Columns(numeric, list(categorical), bool(X[numeric].isna().any().any()))
    return make_pipeline(estimator, Tags(scale=scale), columns)


def _settings(attacks=("pgd", "blackbox"), **kw) -> dict:
    return {
        "attacks": list(attacks),
        "levels": LEVELS,
        "max_rows": 1000,
        "queries": 60,
        "steps": 10,
        "max_s": 60.0,
    } | kw


def _attack(model, X_train, X_test, y_test, classification=True, categorical=(), **kw) -> dict:
    metric = accuracy_score if classification else r2_score
    noisy = {f"{lv:g}": perturb(X_test, X_train, lv, 100 + i, categorical) for i, lv in enumerate(LEVELS)}
    return attack_fold(_settings(**kw), model, X_train, X_test, y_test, categorical, classification,
                       lambda rows, y: {"score": float(metric(y, model.predict(rows)))},
                       lambda purpose, i: 7 + i, noisy)  # fmt: skip


CLASSIFIERS = {
    "logistic": lambda: LogisticRegression(max_iter=500),
    "linear_svm": lambda: LinearSVC(),
    "svm": lambda: SVC(),
    "rf": lambda: RandomForestClassifier(n_estimators=30, random_state=0),
    "hgb": lambda: HistGradientBoostingClassifier(max_iter=30, random_state=0),
    "knn": lambda: KNeighborsClassifier(7),
    "mlp": lambda: TorchMLPClassifier(hidden_sizes=(16,), max_epochs=20, random_state=0, n_threads=1),
}
REGRESSORS = {
    "ridge": lambda: Ridge(),
    "rf": lambda: RandomForestRegressor(n_estimators=30, random_state=0),
    "mlp": lambda: TorchMLPRegressor(hidden_sizes=(16,), max_epochs=20, random_state=0, n_threads=1),
}


@pytest.mark.parametrize(
    ("task", "name"), [("classification", n) for n in CLASSIFIERS] + [("regression", n) for n in REGRESSORS]
)
def test_strongest_attack_is_never_better_than_noise(task: str, name: str) -> None:
    """At every level, the worst attack's score is at or below the noise score on the same rows (and the clean one)."""
    X_train, X_test, y_train, y_test = _numeric(task)
    make = (CLASSIFIERS if task == "classification" else REGRESSORS)[name]
    model = _fold_model(make(), X_train).fit(X_train, y_train)
    out = _attack(model, X_train, X_test, y_test, task == "classification")
    assert out["rows"] == len(X_test)
    for level in LEVELS:
        key = f"{level:g}"
        attacked = [out[a][key]["scores"]["score"] for a in ("pgd", "blackbox") if key in out[a]]
        assert attacked, out
        assert min(attacked) <= out["noise"][key]["scores"]["score"]
        assert max(attacked) <= out["clean"]["score"]  # an attack never helps
    assert out["blackbox"]["0.5"]["scores"]["score"] < out["clean"]["score"]  # and the query attack does bite


def test_pgd_on_the_mlp_lowers_accuracy_more_than_noise_at_equal_budget() -> None:
    X_train, X_test, y_train, y_test = _numeric("classification")
    model = _fold_model(TorchMLPClassifier(hidden_sizes=(16,), max_epochs=20, random_state=0, n_threads=1), X_train)
    out = _attack(model.fit(X_train, y_train), X_train, X_test, y_test, attacks=("pgd",))
    for level in LEVELS:
        assert out["pgd"][f"{level:g}"]["scores"]["score"] < out["noise"][f"{level:g}"]["scores"]["score"]
    assert out["pgd"]["0.5"]["gradients"] == 10


def test_adversarial_training_raises_the_mlps_accuracy_under_pgd() -> None:
    """The defence (adversarial_training -> adversarial_eps) against the attack that measures it."""
    X_train, X_test, y_train, y_test = _numeric("classification", n=600, p=6)

    def pgd_accuracy(**defence) -> float:
        mlp = TorchMLPClassifier(hidden_sizes=(32,), max_epochs=40, random_state=0, n_threads=1, **defence)
        out = _attack(_fold_model(mlp, X_train).fit(X_train, y_train), X_train, X_test, y_test, attacks=("pgd",))
        return out["pgd"]["0.5"]["scores"]["score"]

    assert pgd_accuracy(adversarial_eps=0.5) > pgd_accuracy()


@pytest.fixture
def mixed() -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray, np.ndarray]:
    """Numeric columns with NaN and a categorical column: the box must leave both alone."""
    X_train, X_test, y_train, y_test = _numeric("classification", n=300, p=4)
    rng = np.random.default_rng(0)
    X_train, X_test = X_train.assign(k=rng.choice(["a", "b", "c"], len(X_train))), X_test.copy()
    X_test["k"] = rng.choice(["a", "b", "c"], len(X_test))
    X_train.loc[X_train.index[:10], "x1"] = np.nan
    X_test.loc[X_test.index[:7], "x2"] = np.nan
    X_test.loc[X_test.index[7], "x0"] = X_train["x0"].max() + 50  # already outside the training range
    return X_train, X_test, y_train, y_test


@pytest.mark.parametrize("attack", ["pgd", "blackbox"])
def test_attacks_stay_inside_the_budget_box(mixed, attack: str) -> None:
    X_train, X_test, y_train, y_test = mixed
    model = _fold_model(LogisticRegression(max_iter=500), X_train, categorical=["k"]).fit(X_train, y_train)
    level = 0.5
    box = Box.build(X_test, X_train, ["k"], level)
    found = (pgd(model, box, y_test, True, 10, np.inf) if attack == "pgd"
             else blackbox(model, box, y_test, True, 50, 0, np.inf))  # fmt: skip
    moved = box.frame(found.values)
    pd.testing.assert_series_equal(moved["k"], X_test["k"])  # categorical fixed
    num = ["x0", "x1", "x2", "x3"]
    assert moved[num].isna().equals(X_test[num].isna())  # missing stays missing, nothing else becomes missing
    std = X_train[num].std(ddof=1)
    delta = (moved[num] - X_test[num]).abs()
    assert (delta.fillna(0) <= level * std + 1e-9).all().all()
    lo = X_test[num].clip(upper=X_train[num].min(), axis=1)  # min(clean value, training minimum)
    hi = X_test[num].clip(lower=X_train[num].max(), axis=1)
    inside = ((moved[num] >= lo - 1e-9) & (moved[num] <= hi + 1e-9)) | moved[num].isna()
    assert inside.all().all()
    assert moved.loc[X_test.index[7], "x0"] >= X_train["x0"].max()  # never pushed further out, may stay out
    assert (delta.fillna(0).to_numpy() > 0).any()
    assert found.queries == (11 if attack == "pgd" else 50) and not found.stopped


def _row_loss(model, X: pd.DataFrame, y: np.ndarray, classification: bool) -> np.ndarray:
    if classification:
        proba = model.predict_proba(X)
        return -np.log(proba[np.arange(len(y)), y])
    return (model.predict(X) - y) ** 2


@pytest.mark.parametrize(
    ("estimator", "classification"),
    [
        (LogisticRegression(max_iter=500), True),
        (Ridge(), False),
        (TorchMLPClassifier(hidden_sizes=(16,), max_epochs=20, random_state=0, n_threads=1), True),
    ],
    ids=["logistic", "ridge", "mlp"],
)
def test_input_gradient_matches_finite_differences_through_the_preprocessing(mixed, estimator, classification) -> None:
    X_train, X_test, y_train, y_test = mixed
    if not classification:
        y_train, y_test = X_train["x0"].fillna(0).to_numpy() * 2 + y_train, X_test["x0"].to_numpy() * 2 + y_test
    model = _fold_model(estimator, X_train, categorical=["k"]).fit(X_train, y_train)
    rows, y = X_test.iloc[:12], y_test[:12]
    num = ["x0", "x1", "x2", "x3"]
    grad = input_gradient(model, rows, num, y, classification)
    h = 1e-3
    for j, col in enumerate(num):
        up, down = rows.copy(), rows.copy()
        up[col] = up[col] + h
        down[col] = down[col] - h
        numeric = (_row_loss(model, up, y, classification) - _row_loss(model, down, y, classification)) / (2 * h)
        present = rows[col].notna().to_numpy()
        np.testing.assert_allclose(grad[present, j], numeric[present], rtol=2e-3, atol=1e-5, err_msg=col)
        assert (grad[~present, j] == 0).all()  # an imputed value has no gradient


def test_models_without_gradients_are_recorded_as_not_applicable() -> None:
    X_train, X_test, y_train, y_test = _numeric("classification", n=90)
    model = _fold_model(RandomForestClassifier(n_estimators=10, random_state=0), X_train, scale=False)
    model.fit(X_train, y_train)
    with pytest.raises(NotDifferentiable, match="RandomForestClassifier"):
        input_gradient(model, X_test, list(X_test.columns), y_test, True)
    out = _attack(model, X_train, X_test, y_test)
    assert "RandomForestClassifier" in out["pgd"]["not_applicable"]
    assert set(out["blackbox"]) == {"0.1", "0.5"}


def test_budget_rows_queries_and_time_are_bounded_and_recorded() -> None:
    X_train, X_test, y_train, y_test = _numeric("classification")
    model = _fold_model(LogisticRegression(max_iter=500), X_train).fit(X_train, y_train)
    out = _attack(model, X_train, X_test, y_test, max_rows=15, queries=25)
    assert out["rows"] == 15 and out["budget"] == {"max_rows": 15, "queries": 25, "steps": 10, "max_s": 60.0}
    assert out["blackbox"]["0.5"]["queries"] == 25 and out["pgd"]["0.5"]["gradients"] == 10
    assert out["seconds"] >= sum(v["seconds"] for a in ("pgd", "blackbox") for v in out[a].values())
    np.testing.assert_array_equal(attack_rows(80, 15, 7), attack_rows(80, 15, 7))  # seeded: the same rows per model
    assert len(np.unique(attack_rows(80, 15, 7))) == 15 and list(attack_rows(5, 15, 7)) == [0, 1, 2, 3, 4]
    out = _attack(model, X_train, X_test, y_test, max_s=1e-9)  # no time at all: clean rows, said so
    assert out["blackbox"]["0.1"]["stopped"] and out["blackbox"]["0.1"]["queries"] == 1
    assert out["blackbox"]["0.1"]["scores"] == out["clean"]


def test_regression_blackbox_raises_the_error() -> None:
    X_train, X_test, y_train, y_test = _numeric("regression")
    model = _fold_model(RandomForestRegressor(n_estimators=20, random_state=0), X_train).fit(X_train, y_train)
    box = Box.build(X_test, X_train, [], 0.5)
    found = blackbox(model, box, y_test, False, 40, 0, np.inf)
    before = ((model.predict(X_test) - y_test) ** 2).mean()
    after = ((model.predict(box.frame(found.values)) - y_test) ** 2).mean()
    assert after > before * 1.2


# ---------------------------------------------------------------- suite, task keys, store, report


def test_old_form_keeps_its_task_keys_and_attacks_change_them(tmp_path: Path) -> None:
    from harness.spec import parse_suite

    base = {
        "name": "k",
        "datasets": [{"name": "wine", "source": "sklearn:wine"}],
        "estimators": [{"name": "linear", "model": "linear"}],
    }
    old = parse_suite(base | {"robustness": {"levels": [0.5]}})
    noise = parse_suite(base | {"robustness": {"levels": [0.5], "attacks": ["noise"]}})
    both = parse_suite(base | {"robustness": {"levels": [0.5], "attacks": ["noise", "pgd", "pgd"]}})
    assert old.robustness.attack_settings() is None and noise.robustness.attack_settings() is None
    assert both.robustness.attacks == ["noise", "pgd"]
    assert both.robustness.attack_settings()["attacks"] == ["pgd"]
    keys = [_keys(s, tmp_path / str(i)) for i, s in enumerate((old, noise, both))]
    assert keys[0] == keys[1] and not set(keys[0]) & set(keys[2])


def _keys(suite, out: Path) -> list[str]:
    from harness.planner import RunOptions, prepare

    plan = prepare(suite, RunOptions(out=out, threads=1))
    assert all(t.attacks == suite.robustness.attack_settings() for t in plan.tasks)
    return sorted(t.key for t in plan.tasks)


def test_attacks_are_stored_per_fold_written_to_csv_and_drawn(tmp_path: Path) -> None:
    """A tiny run end to end: extras in results.db, robustness.csv and the report rebuilt from the store."""
    from harness.report import write_outputs
    from harness.runner import RunOptions, run_suite
    from harness.spec import parse_suite
    from harness.store import Store

    suite = parse_suite(
        {
            "name": "r",
            "cv": {"scheme": "stratified_kfold", "folds": 2},
            "metrics": {"classification": ["accuracy", "log_loss"]},
            "explain": {"enabled": False},
            "robustness": {"levels": [0.5], "attacks": ["noise", "pgd", "blackbox"], "queries": 20, "steps": 5},
            "datasets": [{"name": "wine", "source": "sklearn:wine"}],
            "estimators": [{"name": "linear", "model": "linear"},
                           {"name": "rf", "model": "random_forest", "params": {"n_estimators": 10}}],
        }
    )  # fmt: skip
    run_suite(suite, RunOptions(out=tmp_path, n_jobs=1, threads=1))
    with Store(tmp_path / "results.db") as store:
        rows = store.results()
    for est, extra in zip(rows["estimator"], rows["extra"], strict=True):
        assert set(extra["robustness"]) == {"0.5"}  # noise as before
        attacks = extra["attacks"]
        assert attacks["rows"] == 89  # every test row (fewer than max_rows)
        assert ("not_applicable" in attacks["pgd"]) == (est == "rf")
        assert attacks["blackbox"]["0.5"]["queries"] == 20
    (tmp_path / "robustness.csv").unlink(missing_ok=True)
    write_outputs(tmp_path)  # rebuilt from the store alone
    csv = pd.read_csv(tmp_path / "robustness.csv")
    assert list(csv.columns) == ["dataset", "estimator", "seed", "repeat", "fold", "attack", "level", "rows",
                                 "accuracy", "log_loss"]  # fmt: skip
    assert set(csv["attack"]) == {"noise", "pgd", "blackbox"}
    assert set(csv.loc[csv["attack"] == "pgd", "estimator"]) == {"linear"}
    assert len(csv) == 2 * 2 * 3 * 2 - 2 * 2  # 2 models × 2 folds × 3 attacks × 2 levels (0, 0.5); no pgd for rf
    page = (tmp_path / "report.html").read_text()
    section = page[page.index('<section id="robustness">') :]
    section = section[: section.index("</section>")]
    assert "blackbox 0.5" in section and "pgd 0.5" in section and "pgd / rf: RandomForestClassifier" in section
    worst = csv[(csv["attack"] == "blackbox") & (csv["level"] == 0.5)].groupby("estimator")["accuracy"].mean()
    clean = csv[(csv["attack"] == "blackbox") & (csv["level"] == 0)].groupby("estimator")["accuracy"].mean()
    assert (worst < clean).all()


@pytest.mark.parametrize(
    ("robustness", "key"),
    [
        ("{levels: [0.5], attacks: [fgsm]}", "robustness.attacks[0]"),
        ("{levels: [0.5], attacks: [pgd], max_rows: 0}", "robustness.max_rows"),
        ("{levels: [0.5], attacks: [], queries: 10}", "robustness.attacks"),
        ("{levels: [0.5], attacks: [blackbox], max_s: .inf}", "robustness.max_s"),
    ],
)
def test_bad_attack_settings_are_refused_before_fitting(cli, tmp_path: Path, robustness: str, key: str) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: s\n"
        f"robustness: {robustness}\n"
        "datasets: [{name: wine, source: 'sklearn:wine'}]\n"
        "estimators: [{name: linear, model: linear}]\n"
    )
    result = cli("validate", str(suite))
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0] and "Traceback" not in result.stderr
