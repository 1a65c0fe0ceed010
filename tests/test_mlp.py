"""The torch MLP estimators: scikit-learn contract, determinism, training behaviour, fine-tuning.

Everything runs on tiny data with small networks and one torch thread, so the file
takes seconds on two cores; nothing here needs a GPU.
"""

from __future__ import annotations

import copy
import math
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.metrics import log_loss
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import harness.models.mlp as mlp
import harness.models.training as training
from harness.models import TorchMLPClassifier, TorchMLPRegressor, encoding
from harness.models.encoding import InputEncoder
from harness.preprocess import Columns, Tags, make_pipeline

ROOT = Path(__file__).resolve().parents[1]
# Small, fast settings that still learn the checks' toy problems (their score thresholds apply).
TINY = {"hidden_sizes": (16,), "max_epochs": 20, "batch_size": 32, "lr": 0.01, "n_threads": 1}

# Checks that do not apply, with the reason. None today: every applicable check passes
# with the TINY settings, early stopping included.
EXPECTED_FAILED_CHECKS: dict[str, dict[str, str]] = {"TorchMLPClassifier": {}, "TorchMLPRegressor": {}}


def _tiny(cls, **params):
    return cls(**{**TINY, **params})


def _blobs(n: int = 200, n_classes: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    X, y = make_classification(
        n_samples=n, n_features=6, n_informative=4, n_redundant=0, n_classes=n_classes, random_state=seed
    )
    return X.astype(np.float32), y


# ---------------------------------------------------------------- scikit-learn contract


@parametrize_with_checks(
    [_tiny(TorchMLPClassifier), _tiny(TorchMLPRegressor)],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS[type(est).__name__],
)
def test_sklearn_contract(estimator, check):
    check(estimator)


def test_init_only_stores_parameters_and_fit_checks_them():
    model = TorchMLPClassifier(activation="swish", hidden_sizes=[8, 4])  # no error yet: __init__ only stores
    assert model.get_params()["hidden_sizes"] == [8, 4]
    X, y = _blobs(40)
    with pytest.raises(ValueError, match="The 'activation' parameter of TorchMLPClassifier must be a str among"):
        model.fit(X, y)
    with pytest.raises(ValueError, match=r"'dropout' parameter .* must be a float in the range \[0.0, 1.0\)"):
        _tiny(TorchMLPClassifier, dropout=1.5).fit(X, y)
    with pytest.raises(ValueError, match=r"'batch_size' parameter .* must be an int in the range \[1, inf\)"):
        _tiny(TorchMLPClassifier, batch_size=0).fit(X, y)
    with pytest.raises(ValueError, match=r"'batch_size' parameter .* or a str among \{'auto'\}. Got 'big'"):
        _tiny(TorchMLPClassifier, batch_size="big").fit(X, y)
    with pytest.raises(ValueError, match=r"hidden_sizes=\[0\] must be a list or tuple of positive integers"):
        _tiny(TorchMLPClassifier, hidden_sizes=[0]).fit(X, y)
    with pytest.raises(ValueError, match="nesterov"):
        _tiny(TorchMLPClassifier, optimizer="sgd", momentum=0.0, nesterov=True).fit(X, y)
    with pytest.raises(ValueError, match=r"finetune='head'.*pretrained"):
        _tiny(TorchMLPClassifier, finetune="head").fit(X, y)


@pytest.mark.parametrize("init", mlp.INITS)
def test_each_initialisation_and_activation_trains(init):
    X, y = _blobs(120)
    for activation in mlp.ACTIVATIONS:
        model = _tiny(TorchMLPClassifier, init=init, activation=activation, hidden_sizes=(16, 8), max_epochs=5)
        model.fit(X, y)
        assert np.isfinite(model.history_[-1]["train_loss"])
        if init != "default":  # He and Xavier start from zero biases (seeded: same weights every fit)
            first = clone(model).set_params(max_epochs=1, lr=1e-12, random_state=0).fit(X, y)
            again = clone(first).fit(X, y)
            assert float(first.module_.head.bias.detach().abs().max()) < 1e-6
            torch.testing.assert_close(first.module_.body[0][0].weight, again.module_.body[0][0].weight)


def test_dataframe_input_and_list_hidden_sizes():
    X, y = _blobs(60)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    model = _tiny(TorchMLPClassifier, hidden_sizes=[8, 8]).fit(frame, y)
    assert list(model.feature_names_in_) == list(frame.columns)
    assert model.n_features_in_ == 6
    assert model.device_ == ("cuda" if torch.cuda.is_available() else "cpu")
    assert clone(model).get_params() == model.get_params()
    linear = _tiny(TorchMLPClassifier, hidden_sizes=()).fit(frame, y)  # no hidden layer: logistic regression
    assert linear.layer_sizes_ == [6, 2] and linear.predict(frame).shape == (60,)


def test_through_the_fold_preprocessing_with_categoricals_and_missing_values():
    """What the harness builds: impute + scale + one-hot in front of the MLP."""
    rng = np.random.default_rng(0)
    n = 120
    frame = pd.DataFrame(
        {"a": rng.normal(size=n), "b": rng.normal(size=n), "colour": rng.choice(["red", "green", None], size=n)}
    )
    y = np.where(frame["a"].fillna(0) + (frame["colour"] == "red") > 0.3, "yes", "no")
    frame.loc[[1, 7, 20], "a"] = np.nan
    columns = Columns(numeric=["a", "b"], categorical=["colour"], has_missing=True)
    for model, target in ((_tiny(TorchMLPClassifier), y), (_tiny(TorchMLPRegressor), frame["b"].to_numpy() * 3)):
        pipe = make_pipeline(model, Tags(scale=True, impute=True, categorical="onehot"), columns)
        predictions = pipe.fit(frame, target).predict(frame)
        assert predictions.shape == (n,)
        assert pipe[-1].n_features_in_ == 5  # a, b, and three one-hot columns (missing is a category)


# ---------------------------------------------------------------- determinism

_CHILD = """
import sys, numpy as np
sys.path.insert(0, {root!r})
from sklearn.datasets import make_classification
from harness.models import TorchMLPClassifier
X, y = make_classification(n_samples=200, n_features=6, n_informative=4, n_redundant=0, random_state=0)
X = X.astype(np.float32)
model = TorchMLPClassifier(hidden_sizes=(16,), max_epochs=20, batch_size=32, lr=0.01, n_threads=1,
                           dropout=0.2, random_state=7).fit(X, y)
np.save({out!r}, model.predict_proba(X))
"""


def _fit_proba(seed: int) -> np.ndarray:
    X, y = _blobs(200)
    return _tiny(TorchMLPClassifier, dropout=0.2, random_state=seed).fit(X, y).predict_proba(X)


def test_same_random_state_same_predictions_and_global_rng_untouched():
    before = torch.random.get_rng_state()
    first, second = _fit_proba(7), _fit_proba(7)
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, _fit_proba(8))
    assert torch.equal(before, torch.random.get_rng_state())


@pytest.mark.slow
def test_same_predictions_in_two_processes(tmp_path):
    paths = [tmp_path / f"proba{i}.npy" for i in range(2)]
    children = [
        subprocess.Popen([sys.executable, "-c", textwrap.dedent(_CHILD).format(root=str(ROOT), out=str(p))])
        for p in paths
    ]  # side by side: each child is mostly interpreter start-up and imports
    assert [child.wait(timeout=120) for child in children] == [0, 0]
    outputs = [np.load(p) for p in paths]
    np.testing.assert_array_equal(outputs[0], outputs[1])
    np.testing.assert_array_equal(outputs[0], _fit_proba(7))  # and the same as in this process


# ---------------------------------------------------------------- training behaviour


def test_early_stopping_stops_and_restores_the_best_epoch():
    """Pure-noise labels and a large network: validation loss rises after a few epochs."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 10)).astype(np.float32)
    y = rng.integers(0, 2, size=120)
    model = TorchMLPClassifier(
        hidden_sizes=(128, 128), lr=3e-3, dropout=0.0, batch_size=16, max_epochs=200, patience=5,
        validation_fraction=0.25, schedule="none", n_threads=1, random_state=0,
    ).fit(X, y)  # fmt: skip
    losses = [h["valid_loss"] for h in model.history_]
    assert model.n_epochs_ < 200
    assert model.best_epoch_ == int(np.argmin(losses)) + 1
    assert model.n_epochs_ == model.best_epoch_ + model.patience
    assert losses[-1] > min(losses)  # the last epoch was worse, so restoring mattered
    valid = model.validation_indices_
    assert len(valid) == 30 and abs(y[valid].mean() - 0.5) < 0.2  # stratified split of the training rows
    restored = log_loss(y[valid], model.predict_proba(X[valid]), labels=model.classes_)
    assert restored == pytest.approx(min(losses), rel=1e-5)


@pytest.mark.parametrize("schedule", ["none", "cosine", "onecycle", "reduce_on_plateau"])
def test_each_schedule_shapes_the_learning_rate(schedule):
    X, y = _blobs(160)
    model = _tiny(TorchMLPClassifier, schedule=schedule, max_epochs=10, lr=0.01, early_stopping=False, random_state=0)
    lrs = np.array([h["lr"] for h in model.fit(X, y).history_])
    assert len(lrs) == 10
    if schedule == "none":
        np.testing.assert_allclose(lrs, 0.01)
    elif schedule == "cosine":
        assert lrs[0] == pytest.approx(0.01) and np.all(np.diff(lrs) < 0)
    elif schedule == "onecycle":
        peak = int(np.argmax(lrs))
        assert 0 < peak < 9 and np.all(np.diff(lrs[: peak + 1]) > 0) and np.all(np.diff(lrs[peak:]) < 0)
    else:
        assert np.all(np.diff(lrs) <= 0)


def test_reduce_on_plateau_lowers_the_rate_when_validation_stalls():
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(120, 10)).astype(np.float32), rng.integers(0, 2, size=120)
    model = _tiny(TorchMLPClassifier, hidden_sizes=(64, 64), patience=6, max_epochs=60, random_state=0).fit(X, y)
    lrs = [h["lr"] for h in model.history_]
    reductions = np.log(np.array(lrs) / 0.01) / np.log(mlp._PLATEAU_FACTOR)  # each lr is 0.01 x factor^k
    assert lrs[0] == pytest.approx(0.01) and reductions.max() >= 1 - 1e-6  # float32 on a graphed GPU fit
    np.testing.assert_allclose(reductions, np.round(reductions), atol=1e-6)


@pytest.mark.parametrize("optimizer", ["adamw", "adam", "sgd", "rmsprop"])
def test_each_optimizer_trains(optimizer):
    X, y = _blobs(200)
    # plain SGD moves the small per-input embedding slowly: it needs a larger step than TINY's
    params = {"nesterov": True, "lr": 0.05} if optimizer == "sgd" else {}
    model = _tiny(TorchMLPClassifier, optimizer=optimizer, early_stopping=False, random_state=0, **params).fit(X, y)
    losses = [h["train_loss"] for h in model.history_]
    assert losses[-1] < 0.7 * losses[0]
    assert model.score(X, y) > 0.85


def test_regression_target_scaling_round_trips():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 5)).astype(np.float32)
    signal = X @ np.array([1.0, -2.0, 0.5, 0.0, 1.5])
    y = 1000 + 500 * signal / signal.std() + rng.normal(scale=5, size=400)
    model = _tiny(TorchMLPRegressor, hidden_sizes=(32,), max_epochs=60, early_stopping=False, random_state=0)
    predictions = model.fit(X, y).predict(X)
    assert model.y_mean_[0] == pytest.approx(y.mean()) and model.y_scale_[0] == pytest.approx(y.std())
    assert predictions.shape == (400,)
    assert np.sqrt(np.mean((predictions - y) ** 2)) < 25  # < 5% of the target's std, in original units
    both = model.fit(X, np.column_stack([y, -y / 100])).predict(X)
    assert both.shape == (400, 2) and np.corrcoef(both[:, 1], -y)[0, 1] > 0.99


def test_class_weight_balanced_weights_the_loss():
    X, y = make_classification(n_samples=400, n_features=6, weights=[0.9, 0.1], flip_y=0.05, random_state=3)
    plain = _tiny(TorchMLPClassifier, random_state=0).fit(X, y)
    balanced = _tiny(TorchMLPClassifier, class_weight="balanced", random_state=0).fit(X, y)
    counts = np.bincount(y)
    assert plain.class_weight_ is None
    np.testing.assert_allclose(balanced.class_weight_, len(y) / (2 * counts))
    loss = balanced._loss(torch.as_tensor(balanced.class_weight_, dtype=torch.float32))
    np.testing.assert_allclose(loss.weight.numpy(), balanced.class_weight_, rtol=1e-6)
    assert balanced.history_[0]["train_loss"] != plain.history_[0]["train_loss"]
    minority = y == 1
    # the weighted loss pushes the minority's probabilities up (recall alone ties on a small training set)
    assert balanced.predict_proba(X)[minority, 1].mean() > plain.predict_proba(X)[minority, 1].mean()
    by_label = _tiny(TorchMLPClassifier, class_weight={0: 1.0, 1: 5.0}, random_state=0).fit(X, y)
    np.testing.assert_allclose(by_label.class_weight_, [1.0, 5.0])


@pytest.mark.parametrize("labels", [["no", "yes"], ["cat", "dog", "emu"]])
def test_string_labels_and_probabilities(labels):
    X, y = _blobs(150, n_classes=len(labels))
    named = np.array(labels, dtype=object)[y]
    model = _tiny(TorchMLPClassifier, random_state=0).fit(X, named)
    assert list(model.classes_) == labels
    proba = model.predict_proba(X)
    assert proba.shape == (150, len(labels))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert set(model.predict(X)) <= set(labels)
    assert model.score(X, named) > 0.7  # it learns (chance is 0.5 or 0.33); labels are the point here


# ---------------------------------------------------------------- fine-tuning


def _source_and_target(seed: int):
    """One generator, split: 5,000 source rows, 200 target training rows, 1,000 target test rows."""
    X, y = make_classification(
        n_samples=6200, n_features=20, n_informative=12, n_redundant=4, class_sep=0.8, random_state=seed
    )
    X = X.astype(np.float32)
    return (X[:5000], y[:5000]), (X[5000:5200], y[5000:5200]), (X[5200:], y[5200:])


FINETUNE = {"hidden_sizes": (64, 64), "batch_size": 32, "early_stopping": False, "n_threads": 1}


def test_finetuning_beats_training_from_scratch(tmp_path):
    gains = []
    for seed in range(3):
        source, (X_train, y_train), (X_test, y_test) = _source_and_target(seed)
        pretrain = TorchMLPClassifier(**{**FINETUNE, "batch_size": 128}, max_epochs=5, random_state=seed)
        path = pretrain.fit(*source).save_pretrained(tmp_path / f"source{seed}.pt")
        scratch = TorchMLPClassifier(**FINETUNE, max_epochs=10, random_state=seed).fit(X_train, y_train)
        tuned = TorchMLPClassifier(**FINETUNE, max_epochs=10, lr=3e-4, pretrained=path, random_state=seed)
        gains.append(tuned.fit(X_train, y_train).score(X_test, y_test) - scratch.score(X_test, y_test))
    assert min(gains) > 0 and np.mean(gains) > 0.03, gains  # measured: about +0.1 accuracy for each seed


def test_finetune_head_trains_only_the_output_layer(tmp_path):
    source, (X_train, y_train), _ = _source_and_target(0)
    small = {**FINETUNE, "hidden_sizes": (16,), "batch_norm": True, "max_epochs": 3}
    base = TorchMLPClassifier(**small, random_state=0).fit(source[0][:500], source[1][:500])
    path = base.save_pretrained(tmp_path / "base.pt")
    payload = torch.load(path, weights_only=True)  # plain tensors and lists: safe to load
    assert payload["layer_sizes"] == [20, 16, 2]
    head = TorchMLPClassifier(**small, finetune="head", lr=0.01, pretrained=path, random_state=1).fit(X_train, y_train)
    for name, value in base.module_.body.state_dict().items():  # weights and batch-norm statistics
        torch.testing.assert_close(head.module_.body.state_dict()[name], value, rtol=0, atol=0)
    assert not torch.equal(head.module_.head.weight, base.module_.head.weight)


def test_pretrained_head_is_reinitialised_for_other_classes_and_body_must_match(tmp_path):
    source, _, _ = _source_and_target(0)
    path = (
        _tiny(TorchMLPClassifier, random_state=0)
        .fit(source[0][:300], source[1][:300])
        .save_pretrained(tmp_path / "w.pt")
    )
    three = np.arange(300) % 3
    model = _tiny(TorchMLPClassifier, pretrained=path, max_epochs=2).fit(source[0][:300], three)
    assert model.predict_proba(source[0][:5]).shape == (5, 3)
    # Dropout and activation carry no weights: the saved body loads whatever they are.
    _tiny(TorchMLPClassifier, pretrained=path, dropout=0.0, activation="tanh").fit(source[0][:300], source[1][:300])
    with pytest.raises(ValueError, match=r"layer sizes \[20, 16\].*\[20, 32\].*hidden_sizes"):
        _tiny(TorchMLPClassifier, hidden_sizes=(32,), pretrained=path).fit(source[0][:300], source[1][:300])
    with pytest.raises(ValueError, match=r"layer sizes \[20, 16\].*\[19, 16\]"):
        _tiny(TorchMLPClassifier, pretrained=path).fit(source[0][:300, :19], source[1][:300])


# ---------------------------------------------------------------- device and threads


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: device='cuda' is valid here")
def test_cuda_without_a_gpu_is_a_clear_error():
    X, y = _blobs(40)
    model = _tiny(TorchMLPClassifier, device="cuda")
    with pytest.raises(ValueError, match=r"device='cuda' but torch finds no CUDA GPU"):
        model.fit(X, y)
    assert _tiny(TorchMLPClassifier, device="auto", mixed_precision=True).fit(X, y).device_ == "cpu"


@pytest.mark.parametrize("native", [True, False])
def test_mixed_precision_on_the_cpu_is_bfloat16_only_where_the_cpu_has_it(native, monkeypatch):
    """Emulated bfloat16 is slower than float32, so a CPU without it trains in float32."""
    monkeypatch.setattr(training, "_cpu_has_native_bf16", lambda: native)
    assert mlp._autocast_dtype(torch.device("cpu"), True) is (torch.bfloat16 if native else None)
    assert mlp._autocast_dtype(torch.device("cpu"), False) is None


@pytest.mark.parametrize("cls", [TorchMLPClassifier, TorchMLPRegressor])
def test_bfloat16_training_on_the_cpu_learns_and_keeps_float32_weights(cls, monkeypatch):
    """bf16 autocast really runs (the fits differ) and learns what float32 learns; weights stay float32."""
    monkeypatch.setattr(training, "_cpu_has_native_bf16", lambda: True)  # emulated where absent: slow, still right
    X, y = _blobs(400)
    target = y if cls is TorchMLPClassifier else X[:, 0] * 2.0 + X[:, 1]
    params = {"hidden_sizes": (32,), "max_epochs": 30, "random_state": 0}
    mixed = _tiny(cls, mixed_precision=True, **params).fit(X, target)
    full = _tiny(cls, mixed_precision=False, **params).fit(X, target)
    assert next(mixed.module_.parameters()).dtype == torch.float32
    assert not np.array_equal(
        mixed.predict(X) if cls is TorchMLPRegressor else mixed.predict_proba(X),
        full.predict(X) if cls is TorchMLPRegressor else full.predict_proba(X),
    )
    assert mixed.score(X, target) == pytest.approx(full.score(X, target), abs=0.03)
    assert mixed.score(X, target) > 0.85


GPU = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run on a GPU machine)")


@GPU
@pytest.mark.parametrize("cls", [TorchMLPClassifier, TorchMLPRegressor])
@pytest.mark.parametrize("precision", ["bfloat16", "float16", "float32"])
@pytest.mark.parametrize("cuda_graphs", [True, False])
def test_cuda_training_learns_like_the_cpu(cls, precision, cuda_graphs, monkeypatch):
    """Every CUDA path (bf16 autocast, fp16 with gradient scaling, float32; graphed or not) learns the task."""
    if precision == "float16":
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    X, y = _blobs(400)
    target = y if cls is TorchMLPClassifier else X[:, 0] * 2.0 + X[:, 1]
    params = {"hidden_sizes": (32,), "max_epochs": 30, "random_state": 0, "mixed_precision": precision != "float32"}
    gpu = _tiny(cls, device="cuda", cuda_graphs=cuda_graphs, **params).fit(X, target)
    cpu = _tiny(cls, device="cpu", **params).fit(X, target)
    assert gpu.device_.startswith("cuda") and cpu.device_ == "cpu"
    assert next(gpu.module_.parameters()).dtype == torch.float32  # autocast keeps float32 master weights
    assert gpu.score(X, target) > cpu.score(X, target) - 0.05
    assert np.isfinite(gpu.predict(X).astype(float)).all()


@GPU
@pytest.mark.parametrize("schedule", ["none", "cosine", "onecycle", "reduce_on_plateau"])
@pytest.mark.parametrize(
    "optimizer",
    [{"optimizer": "adamw"}, {"optimizer": "adam"}, {"optimizer": "sgd", "nesterov": True}, {"optimizer": "rmsprop"}],
)
def test_cuda_graph_trains_exactly_like_the_eager_loop(optimizer, schedule, monkeypatch):
    """The captured step is the eager step: same learning rates, losses and weights (float32, no dropout).

    70 training rows at batch 16 leave a short last batch, so the eager path runs in every
    epoch too; batch norm checks that the warm-up's buffer updates are undone. After one
    epoch the two agree to float32 rounding; over six, rounding differences (a tensor
    learning rate, capturable optimizer kernels) grow, so that comparison is looser.
    """
    replays: list[int] = []
    replay = torch.cuda.CUDAGraph.replay
    monkeypatch.setattr(torch.cuda.CUDAGraph, "replay", lambda self: replays.append(1) or replay(self))
    X, y = _blobs(70)
    params = {
        **optimizer,
        "schedule": schedule,
        "hidden_sizes": (16, 8),
        "batch_norm": True,
        "dropout": 0.0,
        "batch_size": 16,
        "max_epochs": 6,
        "early_stopping": False,
        "mixed_precision": False,
        "device": "cuda",
        "random_state": 0,
    }
    graphed = _tiny(TorchMLPClassifier, cuda_graphs=True, **params).fit(X, y)
    assert len(replays) == 4 * 6  # four full batches per epoch
    eager = _tiny(TorchMLPClassifier, cuda_graphs=False, **params).fit(X, y)
    assert len(replays) == 4 * 6  # none: the eager fit replays nothing
    assert [r["lr"] for r in graphed.history_] == pytest.approx([r["lr"] for r in eager.history_], rel=1e-6)
    assert [r["train_loss"] for r in graphed.history_] == pytest.approx(
        [r["train_loss"] for r in eager.history_], rel=1e-4
    )
    np.testing.assert_allclose(graphed.predict_proba(X), eager.predict_proba(X), atol=5e-3)
    one = {**params, "max_epochs": 1}
    graphed = _tiny(TorchMLPClassifier, cuda_graphs=True, **one).fit(X, y)
    eager = _tiny(TorchMLPClassifier, cuda_graphs=False, **one).fit(X, y)
    np.testing.assert_allclose(graphed.predict_proba(X), eager.predict_proba(X), atol=2e-5)


@GPU
def test_cuda_graph_with_dropout_and_a_frozen_body(tmp_path):
    """Dropout inside the graph, and head fine-tuning: the frozen body is left exactly as loaded."""
    X, y = _blobs(300)
    source = _tiny(TorchMLPClassifier, device="cuda", dropout=0.2, random_state=0).fit(X, y)
    assert source.score(X, y) > 0.8
    path = source.save_pretrained(tmp_path / "w.pt")
    head = _tiny(TorchMLPClassifier, device="cuda", pretrained=path, finetune="head", random_state=1).fit(X, y)
    for name, value in source.module_.body.state_dict().items():
        assert torch.equal(head.module_.body.state_dict()[name], value)


@GPU
def test_cuda_auto_device_and_weights_that_load_on_the_cpu(tmp_path):
    """device='auto' picks the GPU; weights saved from it start a CPU fine-tune."""
    X, y = _blobs(200)
    model = _tiny(TorchMLPClassifier, device="auto", random_state=0).fit(X, y)
    assert model.device_.startswith("cuda")
    proba = model.predict_proba(X)
    assert proba.dtype == np.float64 and np.allclose(proba.sum(axis=1), 1.0)
    path = model.save_pretrained(tmp_path / "gpu.pt")
    head = _tiny(TorchMLPClassifier, device="cpu", pretrained=path, finetune="head", max_epochs=1).fit(X, y)
    body = dict(head.module_.body.state_dict())
    for name, value in model.module_.body.state_dict().items():
        assert torch.equal(body[name], value.cpu())  # the frozen body is the GPU model's


def test_n_threads_applies_during_fit_and_is_restored(monkeypatch):
    seen: list[int] = []
    forward = mlp.MLPNetwork.forward

    def spy(self, x):
        seen.append(torch.get_num_threads())
        return forward(self, x)

    monkeypatch.setattr(mlp.MLPNetwork, "forward", spy)
    previous = torch.get_num_threads()
    target = 1 if previous != 1 else 2
    X, y = _blobs(60)
    _tiny(TorchMLPClassifier, n_threads=target, max_epochs=2).fit(X, y)
    assert seen and set(seen) == {target}
    assert torch.get_num_threads() == previous
    seen.clear()
    _tiny(TorchMLPClassifier, n_threads=None, max_epochs=1).fit(X, y)
    assert set(seen) == {previous}


@pytest.mark.parametrize("activation", mlp.IN_PLACE_ACTIVATIONS)
@pytest.mark.parametrize("batch_norm", [False, True])
def test_in_place_activations_give_the_same_gradients(activation, batch_norm):
    """Overwriting the pre-activation buffer changes nothing autograd needs: outputs and gradients match."""
    torch.manual_seed(0)
    net = mlp.MLPNetwork([6, 8, 8, 3], activation, batch_norm, dropout=0.0)
    reference = mlp.MLPNetwork([6, 8, 8, 3], activation, batch_norm, dropout=0.0)
    reference.load_state_dict(net.state_dict())
    for module in reference.modules():
        if hasattr(module, "inplace"):
            module.inplace = False
    assert any(getattr(m, "inplace", False) for m in net.modules())
    X = torch.randn(16, 6)
    out, expected = net(X), reference(X)
    out.square().sum().backward()
    expected.square().sum().backward()
    torch.testing.assert_close(out, expected)
    for (name, p), q in zip(net.named_parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


# ---------------------------------------------------------------- input encoding (issue 16)


def _mixed(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two heavy-tailed numeric columns, one binary flag and two one-hot columns; a threshold on x0 decides."""
    rng = np.random.default_rng(seed)
    numeric = rng.standard_t(1.5, size=(n, 2)) * [1.0, 40.0]
    colour = rng.integers(0, 2, size=n)
    X = np.column_stack([numeric, rng.integers(0, 2, size=n), colour, 1 - colour]).astype(np.float32)
    return X, (numeric[:, 0] > 0.6).astype(int)  # about the 70% quantile of t(1.5)


def test_numeric_input_mask_tells_numeric_from_one_hot_columns():
    X, y = _mixed()
    model = _tiny(TorchMLPClassifier, random_state=0).fit(X, y)
    assert model.numeric_input_mask_.tolist() == [True, True, False, False, False]
    plain = _tiny(TorchMLPClassifier, input_scaling="none", embedding="none", random_state=0).fit(X, y)
    assert plain.numeric_input_mask_.tolist() == [True, True, False, False, False]
    assert not hasattr(plain.module_.encoder, "numeric")  # no encoding: the inputs go straight in


@pytest.mark.parametrize(
    ("scaling", "embedding", "dim", "width"),
    [
        ("robust", "piecewise_linear", 0, 2 + 2 * 8 + 3),
        ("robust", "piecewise_linear", 4, 2 + 2 * 4 + 3),
        ("robust", "none", 4, 5),
        ("none", "none", 4, 5),
    ],
)
def test_encoder_widths_and_piecewise_linear_bins(scaling, embedding, dim, width):
    X, y = _mixed()
    params = {"input_scaling": scaling, "embedding": embedding, "n_bins": 8, "embedding_dim": dim}
    model = _tiny(TorchMLPClassifier, **params, random_state=0).fit(X, y)
    encoded = model.module_.encoder(torch.as_tensor(X)).detach()
    assert encoded.shape == (len(X), width)
    if embedding == "piecewise_linear" and dim == 0:
        bins = encoded[:, 2:18].numpy()  # x0's 8 bins, then x1's
        order = np.argsort(X[:, 0])
        assert np.all(np.diff(bins[order, :8].sum(axis=1)) >= -1e-6)  # monotone in x0
        inner = bins[:, 1:7]
        assert inner.min() >= 0 and inner.max() <= 1
    if scaling == "robust":
        assert encoded[:, :2].abs().max() < 3  # smooth clipping bounds heavy tails
    np.testing.assert_array_equal(encoded[:, -3:].numpy(), X[:, 2:])  # flags and one-hot pass through


def test_sparse_embedding_equals_a_linear_map_of_the_scaled_value_and_bins():
    """The gathered prefix sums give what ReLU(W @ [z, bins] + b) per input gives, also far outside the bins."""
    X, y = _mixed()
    model = _tiny(TorchMLPClassifier, n_bins=8, embedding_dim=3, random_state=0).fit(X, y)
    enc = model.module_.encoder
    x = torch.as_tensor(np.vstack([X, X * 50 - 7]))
    wide = InputEncoder(
        {k: v for k, v in enc.state_dict().items() if not k.startswith("embed_")}, "robust", "piecewise_linear"
    )(x)
    expected = []
    for j in range(2):
        bins = (enc.bin_feature == j).nonzero().flatten()
        values = wide[:, 2 + bins] @ enc.embed_bins[bins] + wide[:, j : j + 1] * enc.embed_value[j]
        expected.append(torch.relu(values + enc.embed_bias[j]))
    torch.testing.assert_close(enc(x)[:, 2:8], torch.cat(expected, dim=1), rtol=1e-5, atol=1e-5)


def test_fit_statistics_from_one_sort_equal_numpys_quantiles():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.standard_t(1.5, 501), rng.integers(0, 5, 501), rng.normal(size=501)])
    S = np.sort(X, axis=0)
    q = np.linspace(0, 1, 9)
    np.testing.assert_allclose(encoding._sorted_quantiles(S, q), np.quantile(X, q, axis=0), rtol=1e-12, atol=1e-12)
    enc = InputEncoder.fit(X.astype(np.float32), np.ones(3, dtype=bool), "robust", "piecewise_linear", 8)
    np.testing.assert_allclose(enc.center.numpy(), np.median(X.astype(np.float32), axis=0), rtol=1e-6)


def test_columns_are_sorted_as_numpy_sorts_them_and_monotone_quantiles_read_two_rows():
    rng = np.random.default_rng(1)
    X = np.column_stack([rng.standard_t(1.5, 301), rng.integers(0, 3, 301), rng.normal(size=301)]).astype(np.float32)
    S = encoding._sorted_columns(X, np.array([0, 2]))
    np.testing.assert_array_equal(S, np.sort(X[:, [0, 2]].astype(np.float64), axis=0))
    q = np.linspace(0, 1, 9)
    clip = np.arctan  # any monotone transform: quantiles of the transformed columns
    expected = np.quantile(clip(S), q, axis=0)
    np.testing.assert_allclose(encoding._sorted_quantiles(S, q, clip), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mixed", [False, True])
@pytest.mark.parametrize("early_stopping", [False, True])
def test_encoding_the_rows_once_per_fit_trains_exactly_as_encoding_each_batch(mixed, early_stopping, monkeypatch):
    """The fixed default encoding is applied once per fit; the weights come out bit for bit the same."""
    monkeypatch.setattr(training, "_cpu_has_native_bf16", lambda: True)
    X, y = _mixed(300)
    params = {"random_state": 0, "mixed_precision": mixed, "early_stopping": early_stopping, "max_epochs": 8}
    calls = []
    original = InputEncoder.encode_all
    monkeypatch.setattr(InputEncoder, "encode_all", lambda self, *a: calls.append(a[1]) or original(self, *a))
    once = _tiny(TorchMLPClassifier, **params).fit(X, y)
    assert calls[-1] == (torch.bfloat16 if mixed else torch.float32)  # training rows in the autocast dtype
    assert not once.module_.inputs_encoded  # prediction runs the whole network
    monkeypatch.setattr(training, "_PRE_ENCODE_MAX_BYTES", 0)
    calls.clear()
    each = _tiny(TorchMLPClassifier, **params).fit(X, y)
    assert calls == []
    for key, value in once.module_.state_dict().items():
        torch.testing.assert_close(value, each.module_.state_dict()[key], rtol=0, atol=0)
    assert [r["train_loss"] for r in once.history_] == [r["train_loss"] for r in each.history_]


@pytest.mark.parametrize(
    "params", [{"embedding_dim": 4}, {"noise": 0.1}, {"embedding": "none", "input_scaling": "none"}]
)
def test_rows_are_encoded_per_batch_when_the_encoder_learns_or_batches_are_augmented(params, monkeypatch):
    X, y = _mixed(120)
    monkeypatch.setattr(InputEncoder, "encode_all", lambda *a: pytest.fail("the rows were encoded once per fit"))
    model = _tiny(TorchMLPClassifier, random_state=0, max_epochs=3, **params).fit(X, y)
    assert model.score(X, y) > 0.5


@pytest.mark.parametrize("params", [{}, {"embedding_dim": 4}, {"embedding": "none", "batch_norm": True}])
def test_fitted_model_saves_as_numpy_and_predicts_the_same_after_copy_and_pickle(params):
    X, y = _mixed(200)
    model = _tiny(TorchMLPClassifier, random_state=0, **params).fit(X, y)
    state = model.__getstate__()
    assert all(isinstance(v, np.ndarray) for v in state["module_"]["weights"].values())
    assert isinstance(model.module_, torch.nn.Module)  # saving leaves the fitted model as it was
    for back in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        np.testing.assert_array_equal(back.predict_proba(X), model.predict_proba(X))


def test_default_encoding_learns_a_threshold_on_a_heavy_tailed_standard_scaled_column():
    """What issue 16 was about: after standard scaling, a heavy-tailed column's bulk sits in a sliver near 0."""
    X, y = _mixed(600)
    X_test, y_test = _mixed(600, seed=1)
    scaler = StandardScaler().fit(X)
    model = _tiny(TorchMLPClassifier, random_state=0).fit(scaler.transform(X), y)
    assert model.score(scaler.transform(X_test), y_test) > 0.97


def test_pretrained_weights_carry_their_input_encoding(tmp_path):
    X, y = _mixed(400)
    source = _tiny(TorchMLPClassifier, random_state=0).fit(X, y)
    path = source.save_pretrained(tmp_path / "w.pt")
    shifted = X * 3 + 1  # other quantiles: a freshly fitted encoder would move every bin
    tuned = _tiny(TorchMLPClassifier, pretrained=path, max_epochs=1, random_state=0).fit(shifted, y)
    torch.testing.assert_close(tuned.module_.encoder.bin_left, source.module_.encoder.bin_left)
    with pytest.raises(ValueError, match=r"input encoding .*n_bins.*must match"):
        _tiny(TorchMLPClassifier, pretrained=path, n_bins=4).fit(X, y)


def test_label_smoothing_softens_training_but_not_the_monitored_loss():
    X, y = _blobs(200)
    sharp = _tiny(TorchMLPClassifier, random_state=0).fit(X, y)
    smooth = _tiny(TorchMLPClassifier, label_smoothing=0.3, random_state=0).fit(X, y)
    assert smooth.predict_proba(X).max() < sharp.predict_proba(X).max()
    valid = smooth.validation_indices_
    best = smooth.history_[smooth.best_epoch_ - 1]["valid_loss"]
    assert log_loss(y[valid], smooth.predict_proba(X[valid])) == pytest.approx(best, rel=1e-4)  # plain CE


# ---------------------------------------------------------------- gradients and augmentation (issue 17)


@pytest.mark.parametrize("cls", [TorchMLPClassifier, TorchMLPRegressor])
def test_loss_gradient_matches_finite_differences(cls):
    X, y = _mixed(200)
    target = y if cls is TorchMLPClassifier else X[:, 0] * 2 + y
    model = _tiny(cls, random_state=0, dropout=0.3).fit(X, target)
    grad = model.loss_gradient(X[:20], target[:20])
    assert grad.shape == (20, 5) and np.isfinite(grad).all() and np.abs(grad).max() > 0

    def row_losses(inputs: np.ndarray) -> np.ndarray:
        if cls is TorchMLPClassifier:
            proba = model.predict_proba(inputs)
            return -np.log(proba[np.arange(len(inputs)), np.searchsorted(model.classes_, target[:20])])
        return ((model.predict(inputs) - target[:20]) / model.y_scale_[0]) ** 2

    h = 1e-3
    step = np.zeros_like(X[:20])
    step[:, 1] = h  # x1 has wide bins: the loss is smooth there at this step size
    numeric = (row_losses(X[:20] + step) - row_losses(X[:20] - step)) / (2 * h)
    np.testing.assert_allclose(grad[:, 1], numeric, rtol=0.05, atol=1e-4)
    with pytest.raises(ValueError, match="not fitted on"):
        if cls is TorchMLPClassifier:
            model.loss_gradient(X[:2], [0, 7])
        else:
            raise ValueError("not fitted on")  # regressors take any target


@pytest.mark.parametrize(
    "params", [{"noise": 0.3}, {"mixup": 0.4}, {"adversarial_eps": 0.2}, {"noise": 0.1, "adversarial_eps": 0.1}]
)
def test_augmented_training_is_seeded_and_changes_the_fit(params):
    X, y = _blobs(200)
    plain = _tiny(TorchMLPClassifier, random_state=0, max_epochs=5).fit(X, y).predict_proba(X)
    first = _tiny(TorchMLPClassifier, random_state=0, max_epochs=5, **params).fit(X, y).predict_proba(X)
    again = _tiny(TorchMLPClassifier, random_state=0, max_epochs=5, **params).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, plain)


def test_adversarial_training_lowers_the_loss_under_attack_and_leaves_one_hot_inputs_alone():
    X, y = _mixed(400)
    X[:, 1] = X[:, 0] + np.random.default_rng(2).normal(scale=0.5, size=len(X))  # a second, noisy copy of x0
    clean = _tiny(TorchMLPClassifier, random_state=0, max_epochs=30).fit(X, y)
    robust = _tiny(TorchMLPClassifier, random_state=0, max_epochs=30, adversarial_eps=0.3).fit(X, y)

    def attacked_loss(model: TorchMLPClassifier) -> float:
        scale = X.std(axis=0) * model.numeric_input_mask_
        attacked = X + 0.3 * scale * np.sign(model.loss_gradient(X, y))  # one FGSM step
        assert np.array_equal(attacked[:, 2:], X[:, 2:])
        return log_loss(y, model.predict_proba(attacked))

    assert attacked_loss(robust) < attacked_loss(clean)


def test_augmentation_parameters_are_checked_at_fit():
    X, y = _blobs(40)
    for params, message in (
        ({"noise": -0.1}, "noise"),
        ({"mixup": "lots"}, "mixup"),
        ({"adversarial_eps": 11}, "adversarial_eps"),
        ({"adversarial_steps": 0}, "adversarial_steps"),
        ({"embedding": "periodic"}, "embedding"),
        ({"n_bins": 1}, "n_bins"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
    ):
        with pytest.raises(ValueError, match=message):
            _tiny(TorchMLPClassifier, **params).fit(X, y)


@pytest.mark.parametrize(
    ("batch_size", "n_rows", "expected"),
    [("auto", 60, 16), ("auto", 1_000, 125), ("auto", 2_048, 256), ("auto", 80_000, 256), (32, 60, 32), (512, 60, 512)],
)
def test_auto_batch_size_gives_small_data_several_steps_per_epoch(batch_size, n_rows, expected):
    """On a few hundred rows a 256-row batch would make each epoch one step; "auto" keeps at least 8 (16 rows min)."""
    assert training._batch_rows(batch_size, n_rows) == expected


@pytest.mark.parametrize(("params", "expected"), [({}, 22), ({"batch_size": 64}, 64), ({"early_stopping": False}, 25)])
def test_the_batch_size_used_is_recorded_and_sets_the_steps_per_epoch(params, expected, monkeypatch):
    X, y = _blobs(200)  # early stopping holds out 20 of the 200 rows: 180 train, 180 // 8 = 22 rows per step
    steps = []
    original = training._OptimizerStep.__call__  # every eager batch's optimizer step goes through it
    monkeypatch.setattr(training._OptimizerStep, "__call__", lambda self: steps.append(1) or original(self))
    model = TorchMLPClassifier(hidden_sizes=(8,), max_epochs=1, n_threads=1, random_state=0, **params).fit(X, y)
    assert model.batch_size_ == expected
    assert len(steps) == math.ceil((180 if model.early_stopping else 200) / expected)


# ---------------------------------------------------------------- the optimizer step


def _two_layer_net(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))


@pytest.mark.parametrize(("name", "weight_decay"), [("adam", 0.0), ("adam", 0.01), ("adamw", 0.05)])
def test_the_functional_adam_step_updates_exactly_as_the_optimizer_does(name, weight_decay):
    """Bit for bit the same weights and moments, with the learning rate changing between steps."""
    est = TorchMLPClassifier(weight_decay=weight_decay)
    nets = [_two_layer_net(0), _two_layer_net(0)]
    optimizers = [training._make_optimizer(name, list(net.parameters()), est, 0.01) for net in nets]
    stepper = training._OptimizerStep(optimizers[1])
    assert stepper.functional
    rng = torch.Generator().manual_seed(0)
    for i in range(6):
        x, y = torch.randn(16, 5, generator=rng), torch.randint(0, 3, (16,), generator=rng)
        for net, optimizer in zip(nets, optimizers, strict=True):
            optimizer.param_groups[0]["lr"] = 0.01 / (i + 1)  # what a schedule does between steps
            optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(net(x), y).backward()
        optimizers[0].step()
        stepper()
    assert stepper.state is not None  # the steps after the first took the functional path
    for a, b in zip(nets[0].parameters(), nets[1].parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        for key in ("exp_avg", "exp_avg_sq", "step"):
            torch.testing.assert_close(optimizers[0].state[a][key], optimizers[1].state[b][key], rtol=0, atol=0)


def test_the_step_falls_back_to_the_optimizer_without_a_gradient_or_for_other_optimizers(monkeypatch):
    monkeypatch.setattr(training, "functional_adam", lambda *a, **k: pytest.fail("the functional step ran"))
    net = _two_layer_net(0)
    est = TorchMLPClassifier()
    for name in ("sgd", "rmsprop"):
        stepper = training._OptimizerStep(training._make_optimizer(name, list(net.parameters()), est, 0.01))
        assert not stepper.functional
    stepper = training._OptimizerStep(training._make_optimizer("adamw", list(net.parameters()), est, 0.01))
    before = net[2].weight.detach().clone()
    for _ in range(2):  # the first step creates the state; the second finds the head without a gradient
        stepper.zero_grad()
        net[0](torch.randn(4, 5)).sum().backward()
        stepper()
    assert net[2].weight.grad is None and torch.equal(net[2].weight, before)  # AdamW skips it, as torch does


@pytest.mark.parametrize(
    "params",
    [
        {"optimizer": "adamw", "schedule": "cosine"},
        {"optimizer": "adam", "weight_decay": 0.01, "schedule": "reduce_on_plateau"},
        {"optimizer": "adamw", "early_stopping": False, "schedule": "onecycle"},
        {"optimizer": "sgd", "momentum": 0.9},
    ],
)
def test_a_fit_with_the_functional_step_equals_one_with_the_optimizers_own(params, monkeypatch):
    X, y = _mixed(200)
    ours = _tiny(TorchMLPClassifier, random_state=0, max_epochs=6, **params).fit(X, y)
    monkeypatch.setattr(training._OptimizerStep, "__call__", lambda self: self.optimizer.step())
    plain = _tiny(TorchMLPClassifier, random_state=0, max_epochs=6, **params).fit(X, y)
    for key, value in ours.module_.state_dict().items():
        torch.testing.assert_close(value, plain.module_.state_dict()[key], rtol=0, atol=0)
    assert [r["train_loss"] for r in ours.history_] == [r["train_loss"] for r in plain.history_]
