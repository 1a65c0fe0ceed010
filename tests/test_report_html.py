"""report.html, stats.json and summary.md: built from the store alone, checked against the SQLite rows themselves.

One tiny suite runs once for the module (iris and diabetes, 3 folds; a linear model, a tree, a tuned tree, a tiny
torch MLP and an always-failing classifier; SHAP and robustness on). Numbers in the page are recomputed here from
the raw `results` / `explanations` tables with sqlite3 and numpy, not through the harness.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from markupsafe import escape
from typer.testing import CliRunner

from harness.analysis import AnalysisOptions, analyse_store
from harness.cli import app
from harness.registry import DEFAULT_ALLOWED_MODULES
from harness.report import OUTPUT_FILES, write_outputs
from harness.runner import RunOptions, run_suite
from harness.spec import parse_suite
from harness.store import FoldResult, Store

SECTIONS = {
    "summary": "Summary",
    "leaderboards": "Leaderboards per dataset",
    "ranks": "Ranks across datasets",
    "scores": "Fold scores and cost",
    "significance": "Pairwise significance per dataset",
    "shap": "Why models decide as they do (SHAP)",
    "tuning": "Tuning",
    "learning-curves": "MLP learning curves",
    "robustness": "Robustness to noisy inputs",
    "failures": "Failures",
    "method": "Method: tests, rope and failure policy",
    "environment": "Environment",
}
SUITE = {
    "name": "reportsuite",
    "seed": 0,
    "cv": {"folds": 3},
    "datasets": [{"name": "iris", "source": "sklearn:iris"}, {"name": "diabetes", "source": "sklearn:diabetes"}],
    "estimators": [
        {"name": "linear", "model": "linear"},
        {"name": "tree", "model": "decision_tree", "params": {"max_depth": 3}},
        {"name": "tree_tuned", "model": "decision_tree", "tune": {"trials": 2, "inner_folds": 2}},
        {"name": "mlp", "model": "mlp", "params": {"hidden_sizes": [8], "max_epochs": 3}},
        {"name": "broken", "model": "tests.estimators.RaisingClassifier", "params": {"message": "boom: bad input"}},
    ],
    "analysis": {"failures": "dummy", "rope": {"accuracy": 0.02}},
    "explain": {"min_s": 0.05, "budget_share": 0.1, "max_rows": 12},
    "robustness": {"levels": [0.5]},
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    run_suite(parse_suite(SUITE), RunOptions(out=out, allow_modules=(*DEFAULT_ALLOWED_MODULES, "tests")))
    write_outputs(out)
    return out


@pytest.fixture(scope="module")
def page(run_dir: Path) -> str:
    return (run_dir / "report.html").read_text(encoding="utf-8")


def fold_rows(run_dir: Path, dataset: str, estimator: str) -> list[dict[str, Any]]:
    """The stored fold rows of one cell, straight from SQLite."""
    db = sqlite3.connect(run_dir / "results.db")
    db.row_factory = sqlite3.Row
    rows = db.execute(
        "SELECT * FROM results WHERE dataset = ? AND estimator = ? ORDER BY repeat, fold", (dataset, estimator)
    ).fetchall()
    db.close()
    return [dict(r) | {"metrics": json.loads(r["metrics"]), "extra": json.loads(r["extra"] or "{}")} for r in rows]


def ok_scores(run_dir: Path, dataset: str, estimator: str, metric: str) -> list[float]:
    return [r["metrics"][metric] for r in fold_rows(run_dir, dataset, estimator) if r["status"] == "ok"]


def section(page: str, sid: str) -> str:
    start = page.index(f'<section id="{sid}">')
    return page[start : page.index("</section>", start)]


def subsection(text: str, anchor: str) -> str:
    """From a dataset's <h3 id=anchor> to the next <h3>."""
    start = text.index(f'<h3 id="{anchor}">')
    end = text.find("<h3", start + 1)
    return text[start : end if end > 0 else len(text)]


def table_row(text: str, first_cells: str) -> str:
    """The <tr> whose text contains `first_cells` (a regular expression)."""
    for row in re.findall(r"<tr[^>]*>.*?</tr>", text, flags=re.S):
        if re.search(first_cells, row, flags=re.S):
            return row
    raise AssertionError(f"no row matching {first_cells!r}")


# ---------------------------------------------------------------- files and structure


def test_every_output_file_is_written_and_stats_json_is_strict(run_dir: Path):
    for name in OUTPUT_FILES:
        assert (run_dir / name).stat().st_size > 0, name

    def no_constants(name: str) -> None:
        raise AssertionError(f"stats.json holds {name}")

    stats = json.loads((run_dir / "stats.json").read_text(encoding="utf-8"), parse_constant=no_constants)
    assert set(stats) >= {"settings", "per_dataset", "across"}
    assert stats["settings"]["failures"] == "dummy" and stats["settings"]["rope"] == {"accuracy": 0.02}
    assert set(stats["per_dataset"]) == {"iris", "diabetes"}


def test_page_has_every_section_in_order_and_a_contents_list(page: str):
    positions = [page.index(f'<section id="{sid}">\n<h2>{title}</h2>') for sid, title in SECTIONS.items()]
    assert positions == sorted(positions)
    for sid in SECTIONS:
        assert f'<a href="#{sid}">' in page
    assert '<section id="stability">' not in page  # one seed: nothing to show
    assert "<title>Benchmark report: reportsuite</title>" in page
    assert "could not be built" not in page


def test_page_is_self_contained_with_embedded_figures(page: str):
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", page)
    assert refs, "the contents list links to sections"
    for ref in refs:
        assert ref.startswith("#") or ref.startswith("data:image/png;base64,"), ref
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page)
    assert "<link" not in page and "@import" not in page and "<script" not in page and "<iframe" not in page
    assert not re.search(r"url\(\s*['\"]?(?:https?:)?//", page)
    # every figure is an inline SVG: fold scores and Pareto per dataset at least
    assert page.count("<svg") >= 10
    assert section(page, "scores").count("<svg") == 4
    ids = re.findall(r'\sid="([^"]+)"', page)
    assert len(ids) == len(set(ids)), "element ids must be unique across the inline SVGs"


# ---------------------------------------------------------------- numbers against SQLite


@pytest.mark.parametrize(
    ("dataset", "estimator", "metric"), [("iris", "linear", "accuracy"), ("diabetes", "tree", "r2")]
)
def test_leaderboard_mean_and_std_equal_the_stored_folds(run_dir: Path, page: str, dataset: str, estimator: str,
                                                        metric: str):  # fmt: skip
    values = ok_scores(run_dir, dataset, estimator, metric)
    assert len(values) == 3
    expected = f"{statistics.fmean(values):.4f} ± {statistics.stdev(values):.4f}"
    row = table_row(subsection(section(page, "leaderboards"), f"lb-{dataset}"), rf"<td class=\"l\">{estimator}\b")
    assert expected in row


def test_best_model_is_marked_and_its_mean_is_the_highest(run_dir: Path, page: str):
    board = subsection(section(page, "leaderboards"), "lb-diabetes")
    best_rows = re.findall(r'<tr class="best">.*?</tr>', board, flags=re.S)
    assert len(best_rows) == 1
    best = re.search(r'<td class="l">(\w+)', best_rows[0].split("</td>", 1)[1]).group(1)
    means = {
        e: statistics.fmean(ok_scores(run_dir, "diabetes", e, "r2")) for e in ("linear", "tree", "tree_tuned", "mlp")
    }
    assert means[best] == max(means.values())
    stats = json.loads((run_dir / "stats.json").read_text())
    for other in stats["per_dataset"]["diabetes"]["not_significantly_worse_than_best"]:
        if other != best:
            assert "≈ best" in table_row(board, rf"<td class=\"l\">{other}\b")


def test_pairwise_table_shows_the_fold_mean_difference_and_the_holm_p(run_dir: Path, page: str):
    stats = json.loads((run_dir / "stats.json").read_text())
    pair = next(p for p in stats["per_dataset"]["iris"]["pairs"] if {p["a"], p["b"]} == {"linear", "mlp"})
    a, b = ok_scores(run_dir, "iris", pair["a"], "accuracy"), ok_scores(run_dir, "iris", pair["b"], "accuracy")
    diff = statistics.fmean(x - y for x, y in zip(a, b, strict=True))  # accuracy: positive = A better
    row = table_row(
        subsection(section(page, "significance"), "sig-iris"), rf">{pair['a']}</td><td class=\"l\">{pair['b']}<"
    )
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
    assert cells[3] == f"{diff:.4f}"
    p_holm = pair["p_holm"]
    assert cells[6] == ("<0.0001" if p_holm < 1e-4 else f"{p_holm:.4f}")
    assert cells[7] == "0.0200"  # the suite's rope for accuracy
    assert "rope: fixed 0.02 (user setting for accuracy)" in section(page, "significance")


def test_failures_grouped_flagged_and_policy_stated(run_dir: Path, page: str):
    broken = fold_rows(run_dir, "iris", "broken")
    assert [r["status"] for r in broken] == ["error"] * 3
    failures = section(page, "failures")
    row = table_row(failures, r"boom: bad input")
    assert re.findall(r"<td[^>]*>(.*?)</td>", row)[:4] == ["iris", "broken", "error", "3"]
    assert "iris / broken" in failures
    board = subsection(section(page, "leaderboards"), "lb-iris")
    assert '<tr class="flag">' in table_row(board, r">broken\b") and "0/3" in table_row(board, r">broken\b")
    assert "Skipped: broken" in subsection(section(page, "leaderboards"), "lb-diabetes")
    method = section(page, "method")
    assert "Failures policy: dummy-imputed" in method and "accuracy = 0.02 (suite setting)" in method


def test_no_across_dataset_test_with_two_datasets(page: str, run_dir: Path):
    assert "No across-dataset test is meaningful here (2 dataset(s); at least 5 are needed)" in section(page, "summary")
    assert "No critical-difference diagram" in section(page, "ranks")
    assert "no across-dataset test is meaningful with 2 dataset(s)" in (run_dir / "summary.md").read_text()


# ---------------------------------------------------------------- SHAP, tuning, MLP, robustness


def stored_explanations(run_dir: Path, dataset: str) -> dict[str, dict[int, tuple[dict, dict]]]:
    db = sqlite3.connect(run_dir / "results.db")
    rows = db.execute(
        "SELECT r.estimator, r.fold, e.arrays, e.meta FROM explanations e JOIN results r ON r.key = e.key "
        "WHERE r.dataset = ?",
        (dataset,),
    ).fetchall()
    db.close()
    out: dict[str, dict[int, tuple[dict, dict]]] = {}
    for est, fold, blob, meta in rows:
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            out.setdefault(est, {})[fold] = ({k: npz[k] for k in npz.files}, json.loads(meta))
    return out


def test_shap_importance_equals_mean_abs_values_on_the_common_rows(run_dir: Path, page: str):
    stored = stored_explanations(run_dir, "diabetes")
    assert {"linear", "tree"} <= set(stored)
    common = {f: min(stored[m][f][0]["values"].shape[0] for m in stored if f in stored[m]) for f in stored["linear"]}
    per_fold = []
    for f, (arrays, meta) in sorted(stored["linear"].items()):
        per_fold.append(float(np.abs(arrays["values"][: common[f]].astype(np.float64)).mean(axis=(0, 2))[0]))
        features = meta["features"]
    shap = subsection(section(page, "shap"), "shap-diabetes")
    row = table_row(shap, rf"<td class=\"l\">{re.escape(features[0])}</td>")
    order = re.findall(r"<th[^>]*>(.*?)</th>", shap.split("Mean |SHAP| per feature and model")[1])[1:]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row)[1:]
    assert cells[order.index("linear")] == f"{statistics.fmean(per_fold):.4f}"
    explainer_row = table_row(shap, r"<td class=\"l\">linear</td>")
    assert ">linear<" in explainer_row and ">raw<" in explainer_row  # Ridge: linear explainer, prediction space
    assert "Kendall τ" in shap and "SHAP values of linear (the best model" in shap


def test_tuning_section_lists_the_stored_best_parameters(run_dir: Path, page: str):
    rows = fold_rows(run_dir, "iris", "tree_tuned")
    tuning = subsection(section(page, "tuning"), "tune-iris-tree_tuned")
    for r in rows:
        best = r["extra"]["tuning"]["best_params"]
        assert str(escape(json.dumps(best, sort_keys=True))) in table_row(tuning, rf">fold {r['fold']}<")
    assert "<svg" in tuning and "optimisation history" in tuning
    assert "tune time" in subsection(section(page, "leaderboards"), "lb-iris")


def test_learning_curves_for_the_mlp(run_dir: Path, page: str):
    history = fold_rows(run_dir, "iris", "mlp")[0]["extra"]["history"]
    assert len(history) == 3 and "train_loss" in history[0]
    curves = section(page, "learning-curves")
    assert 'id="mlp-iris-mlp"' in curves and 'id="mlp-diabetes-mlp"' in curves and curves.count("<svg") == 2


def test_robustness_table_is_the_mean_of_the_stored_noisy_scores(run_dir: Path, page: str):
    rows = [r for r in fold_rows(run_dir, "diabetes", "linear") if r["status"] == "ok"]
    noisy = statistics.fmean(r["extra"]["robustness"]["0.5"]["r2"] for r in rows)
    clean = statistics.fmean(r["metrics"]["r2"] for r in rows)
    row = table_row(subsection(section(page, "robustness"), "robust-diabetes"), r"<td class=\"l\">linear</td>")
    assert re.findall(r"<td[^>]*>(.*?)</td>", row)[1:] == [f"{clean:.4f}", f"{noisy:.4f}"]


def test_environment_states_versions_seeds_and_threads(page: str):
    env = section(page, "environment")
    import sklearn

    assert f'<td class="l">scikit-learn</td><td class="l">{sklearn.__version__}</td>' in env
    assert "seed(s)" in env and "threads per fit" in env and "git revision" in env and "wall time" in env


def test_summary_md_names_best_models_and_significance(run_dir: Path):
    summary = (run_dir / "summary.md").read_text()
    stats = json.loads((run_dir / "stats.json").read_text())
    for ds in ("iris", "diabetes"):
        best = stats["per_dataset"][ds]["best"]
        assert re.search(rf"^\| {ds} \| \w+ [↑↓] \| {best} \|", summary, flags=re.M)
    assert "## Significant differences" in summary and "failures policy: dummy" in summary
    assert "iris / broken" in summary  # failure flag


# ---------------------------------------------------------------- rebuild from the store alone


def test_report_command_rebuilds_identical_files_from_the_store(run_dir: Path, tmp_path: Path):
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(run_dir / "results.db", copy / "results.db")
    before = {name: (run_dir / name).read_bytes() for name in OUTPUT_FILES}  # results.parquet is binary
    result = CliRunner().invoke(app, ["report", str(copy)])
    assert result.exit_code == 0, result.output
    for name in OUTPUT_FILES:
        assert name in result.output
        assert (copy / name).read_bytes() == before[name], name
    with Store(copy / "results.db", create=False) as store:
        fresh = analyse_store(store, AnalysisOptions(failures="dummy", rope={"accuracy": 0.02}))
    assert json.loads(before["stats.json"]) == json.loads(json.dumps(fresh, allow_nan=False))


# ---------------------------------------------------------------- many datasets, no explanations


def synthetic_store(path: Path, n_datasets: int = 6) -> None:
    """Three models on `n_datasets` regression sets, two seeds: 'good' always best, 'bad' always worst.

    No SHAP, tuning, MLP or robustness records; the suite names 'mid' as its champion.
    """
    settings = {"metrics": {"regression": ["rmse"]}, "primary": {"regression": "rmse"}, "seed": 0, "seeds": [0, 1]}
    suite = {"name": "synthetic", "estimators": [], "champion": "mid"}
    with Store(path) as store:
        store.start_run("r1", "synthetic", json.dumps(suite), [], {}, settings)
        store.record_metrics([("rmse", "regression", False)])
        keys, rng = [], np.random.default_rng(0)
        for d in range(n_datasets):
            name = f"ds{d}"
            store.record_datasets([{"name": name, "fingerprint": f"fp{d}", "task": "regression"}])
            for model, base in (("good", 1.0), ("mid", 2.0), ("bad", 3.0)):
                for seed in (0, 1):
                    for fold in range(5):
                        key = f"{name}-{model}-{seed}-{fold}"
                        value = base + 0.01 * rng.normal()
                        result = FoldResult(key, name, model, "regression", 0, fold, "ok", {"rmse": value},
                                            fit_time=0.1 * base, predict_time=0.01, n_train=80, n_test=20)  # fmt: skip
                        store.add(replace(result, seed=seed, config={}, versions={}, fingerprint=f"fp{d}"), "r1")
                        keys.append(key)
        store.record_plan("r1", keys)
        store.finish_run("r1", "finished")


def test_many_datasets_give_a_cd_diagram_and_missing_records_are_skipped_gracefully(tmp_path: Path):
    synthetic_store(tmp_path / "results.db")
    write_outputs(tmp_path)
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["across"]["meaningful"] is True
    ranks = section(page, "ranks")
    assert "Critical-difference diagram" in ranks and "<svg" in ranks
    cd = stats["across"]["nemenyi_cd"]
    assert f"the Nemenyi critical difference is {cd:.3f}" in ranks
    summary = section(page, "summary")
    assert "Friedman χ²" in summary
    assert "Champion (the suite&#39;s production model) mid: ds0: significantly worse than good" in summary
    assert "No SHAP values are stored" in section(page, "shap")
    for absent in ("tuning", "learning-curves", "robustness"):
        assert f'<section id="{absent}">' not in page
    assert "could not be built" not in page
    # two seeds: per-seed means of ds0 / good, recomputed from the stored rows
    with Store(tmp_path / "results.db", create=False) as store:
        rows = store.results()
    good = rows[(rows["dataset"] == "ds0") & (rows["estimator"] == "good")]
    seed_means = good.groupby("seed")["rmse"].mean()
    stability_row = table_row(section(page, "stability"), r">ds0</td><td class=\"l\">good<")
    assert f"0: {seed_means[0]:.4f}, 1: {seed_means[1]:.4f}" in stability_row
    assert f">{statistics.stdev(seed_means):.4f}<" in stability_row
    md = (tmp_path / "summary.md").read_text()
    assert "Friedman p = " in md and "Champion (production model): **mid**" in md
    assert re.search(r"^\| ds0 \| rmse ↓ \| good \|.*\| significantly worse \|$", md, flags=re.M)


# ---------------------------------------------------------------- a real browser


def _webdriver(base: str, method: str, path: str, body: dict | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        base + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())["value"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CHROMIUM, CHROMEDRIVER = (
    shutil.which("chromium") or "/usr/bin/chromium",
    shutil.which("chromedriver") or "/usr/bin/chromedriver",
)


def _require_browser() -> None:
    if os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER):
        return
    if os.environ.get("HARNESS_REQUIRE_BROWSER") == "1":
        pytest.fail("HARNESS_REQUIRE_BROWSER=1 but chromium/chromedriver are not installed")
    pytest.skip("chromium and chromedriver not installed")


def browse(html: Path) -> tuple[str, list[Any], list[dict[str, Any]]]:
    """Open `html` in headless Chromium through chromedriver's W3C WebDriver HTTP API (stdlib only).

    Returns the title, [h1 text, number of sections, number of svgs, summary table has rows], and the browser log
    (JavaScript errors and failed loads appear there as SEVERE entries).
    """
    port = _free_port()
    driver = subprocess.Popen([CHROMEDRIVER, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    profile = tempfile.mkdtemp(prefix="chromium-")
    try:
        for _ in range(100):
            try:
                _webdriver(base, "GET", "/status")
                break
            except OSError:
                time.sleep(0.1)
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={profile}"]  # fmt: skip
        caps = {"browserName": "chrome", "goog:loggingPrefs": {"browser": "ALL"},
                "goog:chromeOptions": {"binary": CHROMIUM, "args": args}}  # fmt: skip
        session = _webdriver(base, "POST", "/session", {"capabilities": {"alwaysMatch": caps}})["sessionId"]
        try:
            _webdriver(base, "POST", f"/session/{session}/url", {"url": html.resolve().as_uri()})
            title = _webdriver(base, "GET", f"/session/{session}/title")
            script = (
                "const h = document.querySelector('h1');"
                "return [h ? h.textContent : null, document.querySelectorAll('section').length,"
                " document.querySelectorAll('svg').length, document.querySelector('#summary table tbody tr') !== null]"
            )
            dom = _webdriver(base, "POST", f"/session/{session}/execute/sync", {"script": script, "args": []})
            log = _webdriver(base, "POST", f"/session/{session}/se/log", {"type": "browser"})
        finally:
            _webdriver(base, "DELETE", f"/session/{session}")
    finally:
        driver.terminate()
        driver.wait(timeout=10)
        shutil.rmtree(profile, ignore_errors=True)
    return title, dom, log


def test_report_renders_in_headless_chromium_without_console_errors(run_dir: Path):
    _require_browser()
    title, (heading, sections, svgs, has_rows), log = browse(run_dir / "report.html")
    assert title == "Benchmark report: reportsuite" and heading == title
    assert sections == len(SECTIONS) and svgs >= 10 and has_rows
    assert log == [], log


def test_the_browser_check_sees_script_and_load_errors(tmp_path: Path):
    """The check above can fail: a script error and a missing image both reach the browser log."""
    _require_browser()
    bad = tmp_path / "bad.html"
    bad.write_text('<html><head><title>t</title></head><body><h1>t</h1><img src="missing.png">'
                   "<script>undefinedFunction()</script></body></html>")  # fmt: skip
    _, _, log = browse(bad)
    messages = " ".join(entry["message"] for entry in log if entry["level"] == "SEVERE")
    assert "undefinedFunction" in messages and "missing.png" in messages
