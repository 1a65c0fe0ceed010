"""Training speed of the harness MLP against scikit-learn's MLPClassifier, in one process.

Run with `.venv/bin/python bench/mlp.py [--device cpu|cuda|auto] [--threads 2] [--rounds 2]`.

Task: make_classification with 100,000 rows x 40 features (20 informative, 10
redundant, 2 classes), split 80,000 train / 20,000 test (stratified, seed 0) and
standard-scaled as the harness's fold pipeline would (float64, as the pipeline hands
it over). Both models get the same architecture and training: hidden layers
256-256 with ReLU, Adam, lr 1e-3, no L2 penalty, no dropout or batch norm, batch
size 256, a fixed 10 epochs with shuffling, early stopping off (scikit-learn's
`tol=0` and `n_iter_no_change` above the epoch count make it run every epoch).

Reported per model: seconds per epoch (the whole `fit` wall time divided by the
epochs, so set-up and data conversion count), training rows per second per epoch,
and test accuracy; then the speed ratio scikit-learn / harness. scikit-learn's MLP
computes in the input's dtype, so it is timed on the float64 features the pipeline
produces (the headline) and, for context, on a float32 copy; the harness MLP always
trains in float32. Each model runs `--rounds` times, alternating which goes first,
and the best round counts (the machine may be shared; the load average is recorded).
Goal (issue 3): at least 3x faster per epoch than scikit-learn on CPU at equal or
better accuracy.

The harness MLP runs four ways. Its defaults (the headline): the input encoding (robust
scaling, smooth clipping and 8 piecewise-linear bins per input, which widen the first
layer from 40 to 360 inputs, issue 16) and mixed precision, which on a CPU with native
bfloat16 (AVX512-BF16 or AMX) trains under bfloat16 autocast and elsewhere in float32.
Then the same with `mixed_precision: false` (float32), and the plain network (input
encoding off: exactly scikit-learn's network) in float32, the like-for-like ratio,
and with mixed precision. Predictions are float64 in every case.

Both sides use `--threads` threads: torch through the MLP's `n_threads`, NumPy's BLAS
through threadpoolctl. `OPENBLAS_CORETYPE`, if set, is left as it is.

With `--device cuda` the harness MLP trains on the GPU (mixed precision on) and
scikit-learn still on the CPU. Results go to bench/results/mlp.json
(mlp.<device>.json for a device other than cpu).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
import torch
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from harness.models import TorchMLPClassifier
from harness.models.training import _autocast_dtype, _cpu_has_native_bf16

RESULTS = Path(__file__).resolve().parent / "results"


def make_task(n_rows: int, n_features: int) -> tuple[np.ndarray, ...]:
    """The synthetic task, split and scaled once for every model."""
    X, y = make_classification(
        n_samples=n_rows,
        n_features=n_features,
        n_informative=n_features // 2,
        n_redundant=n_features // 4,
        random_state=0,
    )
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


def harness_model(args: argparse.Namespace, encoded: bool = True, mixed: bool = True) -> TorchMLPClassifier:
    """scikit-learn's network and training; `encoded` keeps the default input encoding, `mixed` mixed precision."""
    encoding = {} if encoded else {"input_scaling": "none", "embedding": "none"}
    return TorchMLPClassifier(
        **encoding,
        mixed_precision=mixed,
        hidden_sizes=tuple(args.hidden),
        activation="relu",
        dropout=0.0,
        optimizer="adam",
        lr=args.lr,
        weight_decay=0.0,
        batch_size=args.batch_size,
        max_epochs=args.epochs,
        schedule="none",
        early_stopping=False,
        device=args.device,
        n_threads=args.threads,
        random_state=0,
    )


def sklearn_model(args: argparse.Namespace) -> MLPClassifier:
    return MLPClassifier(
        hidden_layer_sizes=tuple(args.hidden),
        activation="relu",
        solver="adam",
        alpha=0.0,
        batch_size=args.batch_size,
        learning_rate_init=args.lr,
        max_iter=args.epochs,
        shuffle=True,
        tol=0.0,
        n_iter_no_change=args.epochs + 1,
        early_stopping=False,
        random_state=0,
    )


def time_fit(model: Any, X_train: np.ndarray, y_train: np.ndarray, threads: int) -> float:
    """Wall seconds of one fit, BLAS pools capped at `threads` (torch is capped by n_threads)."""
    with threadpool_limits(limits=threads), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a fixed epoch count is the point
        start = time.perf_counter()
        model.fit(X_train, y_train)
        return time.perf_counter() - start


def measure(build: Any, data: tuple[np.ndarray, ...], threads: int) -> tuple[float, Any]:
    """One timed fit of a freshly built model: (seconds, fitted model)."""
    X_train, _, y_train, _ = data
    model = build()
    return time_fit(model, X_train, y_train, threads), model


def summarise(name: str, runs: list, data: tuple[np.ndarray, ...], args: argparse.Namespace) -> dict[str, Any]:
    X_train, X_test, _, y_test = data
    best, model = min(runs, key=lambda r: r[0])
    with threadpool_limits(limits=args.threads):
        accuracy = float(model.score(X_test, y_test))
    per_epoch = best / args.epochs
    return {
        "model": name,
        "fit_seconds_per_round": [round(r[0], 3) for r in runs],
        "seconds_per_epoch": per_epoch,
        "rows_per_second": len(X_train) / per_epoch,
        "test_accuracy": accuracy,
    }


def warm_up(args: argparse.Namespace, data: tuple[np.ndarray, ...]) -> None:
    """Pay torch's one-off lazy imports and kernel set-up outside the timed fits."""
    small = argparse.Namespace(**{**vars(args), "epochs": 1})
    harness_model(small).fit(data[0][:2048], data[2][:2048])


DEFAULTS = "harness MLP, defaults"
PLAIN = "harness, plain network, float32"
SKLEARN64 = "sklearn MLPClassifier (float64)"
SKLEARN32 = "sklearn MLPClassifier (float32)"


def run(args: argparse.Namespace) -> dict[str, Any]:
    data = make_task(args.rows, args.features)
    X32 = (data[0].astype(np.float32), data[1].astype(np.float32), data[2], data[3])
    warm_up(args, data)
    contenders = {
        DEFAULTS: (lambda: harness_model(args), data),
        "harness, defaults in float32": (lambda: harness_model(args, mixed=False), data),
        PLAIN: (lambda: harness_model(args, encoded=False, mixed=False), data),
        "harness, plain network, mixed precision": (lambda: harness_model(args, encoded=False), data),
        SKLEARN64: (lambda: sklearn_model(args), data),
        SKLEARN32: (lambda: sklearn_model(args), X32),
    }
    runs: dict[str, list] = {name: [] for name in contenders}
    load_before = os.getloadavg()[0]
    for round_ in range(args.rounds):
        print(f"round {round_ + 1}/{args.rounds}")
        order = list(contenders) if round_ % 2 == 0 else list(reversed(contenders))
        for name in order:
            build, inputs = contenders[name]
            runs[name].append(measure(build, inputs, args.threads))
            print(f"  {name}: {runs[name][-1][0]:.2f} s")
    rows = {name: summarise(name, runs[name], contenders[name][1], args) for name in contenders}
    fitted = runs[DEFAULTS][0][1]
    device = fitted.device_
    sk64, sk32 = rows[SKLEARN64]["seconds_per_epoch"], rows[SKLEARN32]["seconds_per_epoch"]
    ours = [name for name in contenders if name.startswith("harness")]
    return {
        "task": {"rows": args.rows, "features": args.features, "train_rows": len(data[0]), "test_rows": len(data[1])},
        "settings": {
            "hidden_sizes": args.hidden,
            "batch_size": args.batch_size,
            "epochs": args.epochs,
            "lr": args.lr,
            "threads": args.threads,
            "rounds": args.rounds,
            "harness_device": device,
            "harness_default_input_width": fitted.module_.encoder.out_features,
            "mixed_precision_dtype": str(_autocast_dtype(torch.device(device), True)),
        },
        "results": list(rows.values()),
        "speedup_vs_sklearn_float64": {name: sk64 / rows[name]["seconds_per_epoch"] for name in ours},
        "speedup_vs_sklearn_float32": {name: sk32 / rows[name]["seconds_per_epoch"] for name in ours},
        "environment": {
            "torch": torch.__version__,
            "sklearn": sklearn.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "cpu_native_bf16": _cpu_has_native_bf16(),
            "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
            "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg()[0],
        },
    }


def report(result: dict[str, Any]) -> None:
    print(f"\n{'model':42} {'s/epoch':>9} {'rows/s':>11} {'accuracy':>9} {'vs sk f64':>10} {'vs sk f32':>10}")
    for row in result["results"]:
        name = row["model"]
        ratios = [result[key].get(name) for key in ("speedup_vs_sklearn_float64", "speedup_vs_sklearn_float32")]
        shown = "".join(f" {r:9.2f}x" if r is not None else f" {'':>10}" for r in ratios)
        print(
            f"{name:42} {row['seconds_per_epoch']:9.3f} {row['rows_per_second']:11,.0f} "
            f"{row['test_accuracy']:9.4f}{shown}"
        )
    settings = result["settings"]
    print(
        f"harness on {settings['harness_device']}, mixed precision = {settings['mixed_precision_dtype']}; "
        f"goal (issues 3 and 16): the defaults at least 3x faster per epoch than sklearn on float64 input"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"], help="the harness MLP's device")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for both models")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--rounds", type=int, default=2, help="timed fits per model; the best counts")
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default bench/results/mlp[.device].json)")
    args = parser.parse_args()
    result = run(args)
    report(result)
    device = result["settings"]["harness_device"]
    out = args.out or RESULTS / ("mlp.json" if device == "cpu" else f"mlp.{device.split(':')[0]}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
