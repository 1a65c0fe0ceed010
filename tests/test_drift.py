"""`harness check-data` and the harness.drift package: shift is found where it was put, and only there.

Statistics are checked against computations written out here (ECDFs, an exact
permutation distribution, the PSI and chi-square formulas, Holm's step-down), not
against the module's own output. The end-to-end cases write CSV files to tmp_path and
go through the CLI in this process, as tests/test_cli.py does.
"""

from __future__ import annotations

import itertools
import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2
from statsmodels.stats.multitest import multipletests

from harness.drift import check as drift_check
from harness.drift.adversarial import adversarial_validation
from harness.drift.check import check_data, compare
from harness.drift.render import to_markdown
from harness.drift.sides import load_side
from harness.drift.statistics import categorical_test, ks_test, psi
from harness.errors import DatasetError

ROOT = Path(__file__).resolve().parents[1]
SHIFTED = {"x0", "x1", "cat"}


def make_frame(n: int, seed: int, shifted: bool = False) -> pd.DataFrame:
    """Five normal features, one 3-level categorical, a binary target depending on x2.

    The shifted copy moves x0 by +1 and x1 by -1 standard deviation and reverses the
    category frequencies; x2..x4 and the target's mechanism are unchanged.
    """
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    if shifted:
        X[:, 0] += 1.0
        X[:, 1] -= 1.0
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(5)])
    frame["cat"] = rng.choice(["a", "b", "c"], size=n, p=[0.2, 0.3, 0.5] if shifted else [0.5, 0.3, 0.2])
    frame["y"] = (X[:, 2] + rng.normal(size=n) > 0).astype(int)
    return frame


def write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("drift")
    return {
        "old": write(make_frame(600, 0), d / "old.csv"),
        "fresh": write(make_frame(600, 1), d / "fresh.csv"),
        "shifted": write(make_frame(600, 2, shifted=True), d / "shifted.csv"),
    }


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("error: ")]


# ---------------------------------------------------------------------------- end to end


def test_shifted_copy_is_detected(cli, files, tmp_path: Path) -> None:
    out = tmp_path / "report"
    proc = cli("check-data", files["shifted"], "--reference", files["old"], "--target", "y", "--out", out)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "SHIFT" in proc.stdout
    report = json.loads((out / "check-data.json").read_text())
    assert report["shift"] is True and report["exit_code"] == 1
    adv = report["adversarial"]
    assert adv["auc_mean"] >= 0.75
    assert adv["null_auc_mean"] < 0.6  # permuted labels: chance level
    assert adv["n_old"] == adv["n_new"] == 600 and adv["subsampled"] is False
    # the target is not a feature; the shifted columns lead both rankings
    assert "y" not in adv["features"] and len(adv["features"]) == 6
    assert set(list(adv["importance"])[:3]) == SHIFTED
    feats = report["features"]
    assert {f["column"] for f in feats[:3]} == SHIFTED
    assert all(f["significant"] for f in feats[:3])
    assert not any(f["significant"] for f in feats[3:])
    assert feats[0]["test"] == "ks" and next(f for f in feats if f["column"] == "cat")["test"] == "psi+chi2"
    # the label mechanism did not change
    assert report["label"]["kind"] == "classification" and report["label"]["shifted"] is False
    md = (out / "check-data.md").read_text()
    assert "Verdict: SHIFT" in md and "## Per-feature drift" in md and "| x0 |" in md


def test_fresh_sample_is_not_a_shift(cli, files, tmp_path: Path) -> None:
    out = tmp_path / "report"
    proc = cli("check-data", files["fresh"], "--reference", files["old"], "--target", "y", "--out", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no shift" in proc.stdout
    report = json.loads((out / "check-data.json").read_text())
    assert report["shift"] is False
    assert abs(report["adversarial"]["auc_mean"] - 0.5) < 0.07
    assert not any(f["significant"] for f in report["features"])
    assert report["schema"]["added"] == report["schema"]["missing"] == report["schema"]["retyped"] == []


def test_builtin_source_against_itself(cli, tmp_path: Path) -> None:
    proc = cli("check-data", "sklearn:iris", "--reference", "sklearn:iris", "--out", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "check-data.json").read_text())
    assert report["adversarial"]["auc_mean"] < 0.6
    assert all(f["distance"] == 0 for f in report["features"])
    assert report["label"]["distance"] == 0  # the builtin target is compared, not used as a feature
    assert len(report["adversarial"]["features"]) == 4
    # identical rows on both sides push the AUC below 0.5; the report says why instead of leaving a puzzle
    assert report["adversarial"]["auc_mean"] < 0.4 and any("share identical rows" in n for n in report["notes"])


def test_without_target_every_column_is_a_feature(files) -> None:
    report = check_data(str(files["fresh"]), str(files["old"]), n_estimators=20, null=False)
    assert report.label is None and report.target is None
    assert sorted(f.column for f in report.features) == ["cat", "x0", "x1", "x2", "x3", "x4", "y"]


# ---------------------------------------------------------------------------- bad input


def test_missing_file_is_one_line_exit_2(cli, files, tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    proc = cli("check-data", missing, "--reference", files["old"], "--out", tmp_path / "o")
    assert proc.returncode == 2
    lines = error_lines(proc)
    assert len(lines) == 1 and str(missing) in lines[0] and "not found" in lines[0]
    proc = cli("check-data", files["old"], "--reference", missing, "--out", tmp_path / "o")
    assert proc.returncode == 2 and len(error_lines(proc)) == 1 and "reference" in error_lines(proc)[0]
    assert not (tmp_path / "o").exists()


def test_unknown_target_is_one_line_exit_2(cli, files, tmp_path: Path) -> None:
    proc = cli("check-data", files["fresh"], "--reference", files["old"], "--target", "label", "--out", tmp_path)
    assert proc.returncode == 2
    lines = error_lines(proc)
    assert len(lines) == 1 and "'label'" in lines[0] and str(files["old"]) in lines[0]


def test_unknown_categorical_and_missing_reference_exit_2(cli, files, tmp_path: Path) -> None:
    proc = cli("check-data", files["fresh"], "--reference", files["old"], "--categorical", "zz", "--out", tmp_path)
    assert proc.returncode == 2 and len(error_lines(proc)) == 1 and "'zz'" in error_lines(proc)[0]
    assert cli("check-data", files["fresh"]).returncode == 2  # --reference is required


def _dup_parquet(path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(
        pa.table([pa.array([0.1, 0.2, 0.3]), pa.array([1, 0, 1]), pa.array([1, 0, 1])], ["a", "y", "y"]), path
    )
    return path


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("header.csv", "x0,x1,y\n", "has no rows"),  # not "no rows with a target value": there is no target
        ("empty.csv", "", "is empty"),
        ("dup.csv", "x0,y,y\n1,0,0\n2,1,1\n3,0,0\n", "column 'y' appears twice"),
        ("lookalike.csv", "x0,x1,x1\n1,0,0\n2,1,1\n3,0,0\n", "column 'x1' appears twice"),
        ("binary.csv", bytes(range(256)) * 4, "not UTF-8"),
        ("wide.csv", "x0,y\n1,2,3\n4,5,6\n", "more fields than the header"),
        ("dup.parquet", None, "column 'y' appears twice"),
    ],
)
def test_malformed_new_or_reference_is_one_line_exit_2(cli, files, tmp_path: Path, name, content, expected) -> None:
    bad = tmp_path / name
    if content is None:
        _dup_parquet(bad)
    elif isinstance(content, bytes):
        bad.write_bytes(content)
    else:
        bad.write_text(content)
    for args, role in (((bad, "--reference", files["old"]), "new"), ((files["old"], "--reference", bad), "reference")):
        proc = cli("check-data", *args, "--out", tmp_path / "o")
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stdout + proc.stderr
        lines = error_lines(proc)
        assert len(lines) == 1 and lines[0].startswith(f"error: {role}"), proc.stderr
        assert str(bad) in lines[0] and expected in lines[0] and "target value" not in lines[0], lines[0]
    assert not (tmp_path / "o").exists()


def test_infinite_values_in_new_are_a_shift_naming_the_column(cli, tmp_path: Path) -> None:
    old, new = make_frame(400, 0), make_frame(400, 1)
    new.loc[:59, "x3"] = np.inf  # 15% of the rows
    out = tmp_path / "report"
    proc = cli(
        "check-data", write(new, tmp_path / "new.csv"), "--reference", write(old, tmp_path / "old.csv"), "--out", out
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "RuntimeWarning" not in proc.stdout + proc.stderr
    verdict = next(line for line in proc.stdout.splitlines() if line.startswith("SHIFT"))
    assert "infinite values" in verdict and "x3 0.0% → 15.0%" in verdict
    report = json.loads((out / "check-data.json").read_text())
    assert report["shift"] is True
    assert report["schema"]["infinite_rates"] == [{"column": "x3", "old": 0.0, "new": 0.15, "change": 0.15}]
    # the KS test kept the infinities (as the largest values) rather than dropping them
    x3 = next(f for f in report["features"] if f["column"] == "x3")
    assert x3["distance"] >= 0.15
    assert "| x3 | 0.0% | 15.0% | +15.0% |" in (out / "check-data.md").read_text()


def test_equal_shares_of_infinite_values_are_no_shift(tmp_path: Path) -> None:
    old, new = make_frame(300, 0), make_frame(300, 1)
    old.loc[:29, "x2"] = -np.inf
    new.loc[100:129, "x2"] = -np.inf
    report = check_data(
        str(write(new, tmp_path / "n.csv")), str(write(old, tmp_path / "o.csv")), target="y", n_estimators=20
    )
    assert [(r.column, r.old, r.new) for r in report.schema.infinite_rates] == [("x2", 0.1, 0.1)]
    assert report.schema.infinite_changed == [] and not any("infinite" in r for r in report.reasons)


def test_column_names_lightgbm_refuses_are_compared(cli, tmp_path: Path) -> None:
    """A trailing comma makes 'Unnamed: 7'; LightGBM refuses ':' ',' '"' '[' in feature names."""
    names = {"x0": "dose [mg], raw", "x1": 'say "hi"'}
    old, new = (
        f.rename(columns=names).assign(**{"Unnamed: 7": np.nan}) for f in (make_frame(200, 0), make_frame(200, 1, True))
    )
    out = tmp_path / "report"
    proc = cli(
        "check-data", write(new, tmp_path / "n.csv"), "--reference", write(old, tmp_path / "o.csv"), "--out", out
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = json.loads((out / "check-data.json").read_text())
    assert {"dose [mg], raw", 'say "hi"', "Unnamed: 7"} <= set(report["adversarial"]["importance"])
    assert set(list(report["adversarial"]["importance"])[:2]) <= {"dose [mg], raw", 'say "hi"', "cat"}


def test_ks_counts_infinities_as_extreme_values() -> None:
    a = np.array([1.0, 2.0, 3.0, 4.0])
    b = np.array([1.0, 2.0, np.inf, np.inf])
    d, p = ks_test(a, b)
    assert d == pytest.approx(ecdf_distance(a, b)) and d == pytest.approx(0.5)  # at x = 4: F_a = 1, F_b = 1/2
    assert np.isfinite(p)


# ---------------------------------------------------------------------------- schema


def test_schema_differences(tmp_path: Path) -> None:
    old = pd.DataFrame(
        {
            "a": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
            "b": [0.5] * 8,  # dropped in new
            "c": ["red", "red", "green", "blue", "red", "green", "blue", "red"],
            "d": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],  # becomes text in new
            "code": [1, 2, 3, 1, 2, 3, 1, 2],  # integer codes, no missing
        }
    )
    new = pd.DataFrame(
        {
            "a": [1.0, np.nan, 3.0, 4.0, 5.0, 6.0, 7.0, np.nan],
            "c": ["red", "violet", "green", np.nan, "red", "green", "violet", "red"],
            "d": ["1", "2", "3", "x", "5", "6", "7", "8"],
            "code": [1, 2, np.nan, 1, 2, 3, 1, 2],  # read back as float: "1.0" unless aligned
            "e": [0.0] * 8,  # new column
        }
    )
    ref = load_side(str(write(old, tmp_path / "old.csv")), "reference", categorical=["code"])
    cur = load_side(str(write(new, tmp_path / "new.csv")), "new", categorical=["code"])
    report = compare(ref, cur, n_estimators=10, null=False)
    s = report.schema
    assert s.added == ["e"]
    assert s.missing == ["b"]
    assert s.retyped == [{"column": "d", "old": "numeric", "new": "categorical"}]
    assert s.new_categories == {"c": ["violet"]}
    assert s.vanished_categories == {"c": ["blue"]}  # and nothing invented for 'code' (1 vs 1.0)
    rates = {m.column: (m.old, m.new, m.change) for m in s.missing_rates}
    assert rates["a"] == (0.0, 0.25, 0.25)
    assert rates["c"] == (0.0, 0.125, 0.125)
    assert rates["b"] == (0.0, None, None) and rates["e"] == (None, 0.0, None)
    # retyped columns are not compared; the verdict names the column changes
    assert sorted(f.column for f in report.features) == ["a", "c", "code"]
    assert report.shift and report.exit_code == 1
    assert any("missing from NEW: b" in r for r in report.reasons)
    assert any("d (numeric → categorical)" in r for r in report.reasons)
    md = to_markdown(report)
    assert "violet" in md and "columns new in NEW: e" in md
    json.dumps(report.to_json(), allow_nan=False)


# ---------------------------------------------------------------------------- statistics by hand


def ecdf_distance(a: np.ndarray, b: np.ndarray) -> float:
    points = np.concatenate([a, b])
    return max(abs(np.mean(a <= x) - np.mean(b <= x)) for x in points)


def test_ks_against_hand_ecdf_and_exact_permutation_p() -> None:
    a = np.array([0.3, 1.7, 2.2, np.nan])  # the NaN is ignored
    b = np.array([1.1, 2.9, 3.4, 4.0, 5.5])
    a_ok = a[~np.isnan(a)]
    d_hand = ecdf_distance(a_ok, b)
    pooled = np.concatenate([a_ok, b])
    # exact two-sided p: the share of all ways to split the pooled values whose D is at least as large
    splits = list(itertools.combinations(range(len(pooled)), len(a_ok)))
    ds = [ecdf_distance(pooled[list(i)], np.delete(pooled, list(i))) for i in splits]
    p_hand = np.mean([x >= d_hand - 1e-12 for x in ds])
    d, p = ks_test(a, b)
    assert d == pytest.approx(d_hand) and d == pytest.approx(0.8)  # at x = 2.2: F_a = 1, F_b = 1/5
    assert p == pytest.approx(p_hand)
    assert all(math.isnan(v) for v in ks_test([np.nan], b))


def test_psi_against_hand_formula() -> None:
    # p = (0.5, 0.5), q = (0.25, 0.75)
    assert psi([2, 2], [1, 3]) == pytest.approx(0.25 * math.log(2) + 0.25 * math.log(1.5))
    # an empty bin counts as eps
    eps = 1e-4
    p, q = np.array([0.5, 0.5, eps]), np.array([0.25, 0.25, 0.5])
    assert psi([3, 3, 0], [1, 1, 2]) == pytest.approx(float(np.sum((q - p) * np.log(q / p))))
    assert psi([5, 5], [1, 1]) == 0.0


def test_categorical_test_against_hand_chi_square_and_total_variation() -> None:
    old = pd.Series(["a"] * 10 + ["b"] * 6 + ["c"] * 4)
    new = pd.Series(["a"] * 4 + ["b"] * 6 + ["c"] * 8 + [np.nan] * 2)  # missing is its own bin
    table = np.array([[10, 6, 4, 0], [4, 6, 8, 2]], dtype=float)
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    stat = ((table - expected) ** 2 / expected).sum()
    p_old, p_new = table[0] / 20, table[1] / 20
    value, tvd, p = categorical_test(old, new)
    assert p == pytest.approx(chi2.sf(stat, df=3))
    assert tvd == pytest.approx(0.5 * (0.3 + 0 + 0.2 + 0.1))
    q, r = np.maximum(p_old, 1e-4), np.maximum(p_new, 1e-4)
    assert value == pytest.approx(float(np.sum((r - q) * np.log(r / q))))


def test_feature_table_is_holm_adjusted_together(files) -> None:
    report = check_data(str(files["shifted"]), str(files["old"]), target="y", n_estimators=10, null=False)
    raw = [f.p_value for f in report.features]
    np.testing.assert_allclose([f.p_holm for f in report.features], multipletests(raw, method="holm")[1])
    distances = [f.distance for f in report.features]
    assert distances == sorted(distances, reverse=True)


def test_label_shift_alone_is_a_shift(tmp_path: Path) -> None:
    old = make_frame(400, 3)
    new = make_frame(400, 4)
    new["y"] = (np.random.default_rng(5).random(400) < 0.85).astype(int)  # 85% ones instead of ~50%
    report = check_data(
        str(write(new, tmp_path / "n.csv")), str(write(old, tmp_path / "o.csv")), target="y", n_estimators=20
    )
    assert report.adversarial is not None and report.adversarial.auc_mean < 0.6
    assert report.label is not None and report.label.shifted
    assert report.label.new is not None and report.label.new["1"] > 0.8
    assert report.shift and any(r.startswith("label shift") for r in report.reasons)


def test_subsampling_is_seeded_and_reported() -> None:
    a, b = make_frame(300, 0).drop(columns="y"), make_frame(250, 1).drop(columns="y")
    run = [adversarial_validation(a, b, ["cat"], seed=3, max_rows=100, n_estimators=10) for _ in range(2)]
    assert run[0].subsampled and run[0].n_old == run[0].n_new == 100
    assert run[0].fold_aucs == run[1].fold_aucs


def test_too_few_rows_is_a_dataset_error() -> None:
    a = make_frame(1, 0).drop(columns="y")
    with pytest.raises(DatasetError, match="at least 2 rows"):
        adversarial_validation(a, make_frame(20, 1).drop(columns="y"), ["cat"])


def _reference_suite(tmp_path: Path, rows: int, columns: int, shift: float, seed: int):
    """A suite whose dataset `new` (column `a` shifted by `shift`) names `old` as its reference."""
    from harness.spec import parse_suite

    rng = np.random.default_rng(seed)
    names = "abc"[:columns]
    for name, moved in (("old", 0.0), ("new", shift)):
        X = rng.normal(size=(rows, columns))
        X[:, 0] += moved
        frame = pd.DataFrame(X, columns=list(names)).assign(y=(X[:, 1] > 0).astype(int))
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    return parse_suite(
        {
            "name": "ref",
            "cv": {"folds": 2},
            "explain": {"enabled": False},
            "datasets": [
                {"name": "old", "source": str(tmp_path / "old.csv"), "target": "y"},
                {"name": "new", "source": str(tmp_path / "new.csv"), "target": "y", "reference": "old"},
            ],
            "estimators": [{"name": "tree", "model": "decision_tree"}],
        }
    )


def test_a_suite_dataset_with_a_reference_is_checked_once_per_content(tmp_path, monkeypatch):
    """`reference:` in a suite runs check-data as a step: stored, written, reported, not recomputed."""
    from harness.runner import RunOptions, run_suite
    from harness.store import Store

    suite = _reference_suite(tmp_path, rows=400, columns=3, shift=1.5, seed=0)
    summary = run_suite(suite, RunOptions(out=tmp_path / "out"))
    assert len(summary.shifts) == 1 and summary.shifts[0].startswith("new vs old: SHIFT")
    assert (tmp_path / "out" / "check-data" / "new" / "check-data.md").is_file()
    with Store(tmp_path / "out" / "results.db") as store:
        payload = store.checks()["check-data:new"][1]
    assert payload["shift"] and payload["adversarial"]["auc_mean"] > 0.8
    assert payload["features"][0]["column"] == "a"

    def no_recompute(*args, **kwargs):
        raise AssertionError("the check was recomputed for unchanged data")

    monkeypatch.setattr(drift_check, "compare", no_recompute)
    again = run_suite(suite, RunOptions(out=tmp_path / "out"))
    assert again.shifts == summary.shifts


def test_a_reference_must_be_another_dataset_of_the_suite():
    from harness.errors import SuiteError
    from harness.spec import parse_suite

    raw = {
        "name": "ref",
        "datasets": [{"name": "a", "source": "sklearn:iris", "reference": "iriss"}],
        "estimators": [{"name": "tree", "model": "decision_tree"}],
    }
    with pytest.raises(SuiteError, match=r"datasets\[0\]\.reference: 'iriss' is not another dataset"):
        parse_suite(raw)


def test_the_report_shows_the_data_check(tmp_path):
    from harness.report import write_outputs
    from harness.runner import RunOptions, run_suite

    suite = _reference_suite(tmp_path, rows=300, columns=2, shift=2.0, seed=1)
    run_suite(suite, RunOptions(out=tmp_path / "out"))
    write_outputs(tmp_path / "out")
    html = (tmp_path / "out" / "report.html").read_text()
    assert 'id="data-checks"' in html and "new vs old" in html and "SHIFT" in html
