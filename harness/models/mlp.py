"""Torch multilayer perceptrons for tabular data, as scikit-learn estimators.

`TorchMLPClassifier` and `TorchMLPRegressor` are the harness's deep baseline. They
receive features the fold's pipeline has already imputed, scaled and one-hot encoded,
so they only have to train well and fast:

- by default each numeric input is robust-scaled, smoothly clipped and expanded into
  piecewise-linear quantile bins inside the network (encoding.py), which closes most
  of the gap to gradient boosting on heavy-tailed, threshold-like data (issue 16);

- each fit moves its data to the device once as float32 tensors and iterates over
  shuffled index batches (no DataLoader, no per-sample Python work), so an epoch costs
  little more than its matrix products (bench/mlp.py compares with scikit-learn's MLP);
- early stopping on an internal validation split (stratified for classification)
  restores the weights of the epoch with the lowest validation loss, so the default
  of many epochs cannot overfit a small dataset badly;
- `random_state` seeds everything the fit draws (the split, initial weights, batch
  order, dropout) inside a forked torch RNG, so CPU fits repeat exactly, in any
  process, and the caller's global torch RNG is left as it was;
- `save_pretrained` and `pretrained=`/`finetune=` let a model start from weights
  learned on another dataset with the same features (fine-tuning, or feature
  extraction with a frozen body).

Batch augmentation (noise, mixup, PGD adversarial training) is in augment.py; the
network in network.py; the loop's mechanics (optimizers, schedules, CUDA graphs) in
training.py. This module holds the estimators: parameters, fit order, fine-tuning,
prediction and `loss_gradient` for gradient attacks.

Parameters are only stored in `__init__`; they are checked when `fit` starts, so
`clone`, `get_params` and `set_params` behave as for any scikit-learn estimator.
"""

from __future__ import annotations

import copy
import io
import math
import numbers
import os
import time
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from harness.models.augment import Augmenter
from harness.models.encoding import EMBEDDINGS, INPUT_SCALINGS, InputEncoder, numeric_mask
from harness.models.network import ACTIVATIONS, IN_PLACE_ACTIVATIONS, INITS, MLPNetwork, _init_weights
from harness.models.training import (
    _PLATEAU_FACTOR,
    DEVICES,
    OPTIMIZERS,
    SCHEDULES,
    _autocast_dtype,
    _batch_rows,
    _batches,
    _GraphedStep,
    _Loop,
    _make_optimizer,
    _make_scheduler,
    _OptimizerStep,
    _pin_lr,
    _pre_encoded,
    _seeded,
    _Split,
    _to_tensor,
    _torch_threads,
    _validation_split,
)

__all__ = [
    "ACTIVATIONS",
    "INITS",
    "IN_PLACE_ACTIVATIONS",
    "OPTIMIZERS",
    "SCHEDULES",
    "_PLATEAU_FACTOR",
    "MLPNetwork",
    "TorchMLPClassifier",
    "TorchMLPRegressor",
    "_autocast_dtype",
]
FINETUNE_MODES = ("all", "head")

_PREDICT_BATCH = 8192  # rows per forward pass at inference: bounds memory, not accuracy
_PRETRAINED_FORMAT = 1

# ---------------------------------------------------------------- parameter checks


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(map(repr, choices))}")


def _check_number(
    name: str, value: Any, low: float, high: float = math.inf, *, integer: bool = False, closed: str = "[]"
) -> None:
    """`value` is a number (an int if `integer`, never a bool) in the interval `closed[0] low, high closed[1]`."""
    kind = numbers.Integral if integer else numbers.Real
    ok = isinstance(value, kind) and not isinstance(value, bool)
    if ok:
        above = value >= low if closed[0] == "[" else value > low
        below = value <= high if closed[1] == "]" else value < high
        ok = above and below
    if not ok:
        what = "an integer" if integer else "a number"
        interval = f"{closed[0]}{low:g}, {high:g}{closed[1]}" if high < math.inf else f"{closed[0]}{low:g}, inf)"
        raise ValueError(f"{name}={value!r} must be {what} in {interval}")


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name}={value!r} must be True or False")


def _layer_widths(hidden_sizes: Any) -> list[int]:
    """hidden_sizes as a list of positive ints (a single int is one hidden layer)."""
    sizes = [hidden_sizes] if isinstance(hidden_sizes, numbers.Integral) else hidden_sizes
    if not isinstance(sizes, list | tuple) or not all(
        isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0 for s in sizes
    ):
        raise ValueError(f"hidden_sizes={hidden_sizes!r} must be a list or tuple of positive integers")
    return [int(s) for s in sizes]


def _resolve_device(device: str) -> torch.device:
    """ "auto" is CUDA when torch sees a GPU; an explicit "cuda" without one is an error, not a silent CPU fit."""
    if not (device in DEVICES or (isinstance(device, str) and device.startswith("cuda:"))):
        raise ValueError(f"device={device!r} is not one of 'auto', 'cpu', 'cuda' (or 'cuda:N')")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} but torch finds no CUDA GPU (torch.cuda.is_available() is False); "
            "use device='auto' (CUDA when available, else CPU) or device='cpu'"
        )
    return torch.device(device)


# ---------------------------------------------------------------- the estimators


class _BaseTorchMLP(BaseEstimator):
    """What the classifier and the regressor share: parameters, the training loop, fine-tuning."""

    # Declared as scikit-learn does, so `harness validate` refuses a bad value before anything
    # is fitted (the registry calls _validate_params when it builds the estimator).
    _parameter_constraints: dict[str, list[Any]] = {  # noqa: RUF012 (scikit-learn's convention)
        "hidden_sizes": [Interval(numbers.Integral, 1, None, closed="left"), list, tuple],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "batch_norm": ["boolean"],
        "dropout": [Interval(numbers.Real, 0, 1, closed="left")],
        "init": [StrOptions(set(INITS))],
        "input_scaling": [StrOptions(set(INPUT_SCALINGS))],
        "embedding": [StrOptions(set(EMBEDDINGS))],
        "n_bins": [Interval(numbers.Integral, 2, 1024, closed="both")],
        "embedding_dim": [Interval(numbers.Integral, 0, 1024, closed="both")],
        "optimizer": [StrOptions(set(OPTIMIZERS))],
        "lr": [Interval(numbers.Real, 0, None, closed="neither")],
        "weight_decay": [Interval(numbers.Real, 0, None, closed="left")],
        "momentum": [Interval(numbers.Real, 0, 1, closed="left")],
        "nesterov": ["boolean"],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "max_epochs": [Interval(numbers.Integral, 1, None, closed="left")],
        "schedule": [StrOptions(set(SCHEDULES))],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "patience": [Interval(numbers.Integral, 1, None, closed="left")],
        "noise": [Interval(numbers.Real, 0, 10, closed="both")],
        "mixup": [Interval(numbers.Real, 0, 100, closed="both")],
        "adversarial_eps": [Interval(numbers.Real, 0, 10, closed="both")],
        "adversarial_steps": [Interval(numbers.Integral, 1, 100, closed="both")],
        "label_smoothing": [Interval(numbers.Real, 0, 1, closed="left")],
        "device": [str],
        "mixed_precision": ["boolean"],
        "cuda_graphs": ["boolean"],
        "n_threads": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "random_state": ["random_state"],
        "pretrained": [str, os.PathLike, bytes, None],
        "finetune": [StrOptions(set(FINETUNE_MODES))],
        "verbose": ["verbose"],
    }

    def _validate_params(self) -> None:
        """Types and ranges (scikit-learn's check), then what a constraint cannot say: every width positive."""
        super()._validate_params()
        _layer_widths(self.hidden_sizes)
        _check_number("lr", self.lr, 0, closed="()")  # also refuses inf and nan
        _check_number("weight_decay", self.weight_decay, 0)
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ValueError(f"device={self.device!r} is not one of 'auto', 'cpu', 'cuda' (or 'cuda:N')")

    def __init__(
        self,
        hidden_sizes: tuple[int, ...] | list[int] = (256, 256),
        activation: str = "relu",
        batch_norm: bool = False,
        dropout: float = 0.1,
        init: str = "default",
        input_scaling: str = "robust",
        embedding: str = "piecewise_linear",
        n_bins: int = 8,
        embedding_dim: int = 0,
        optimizer: str = "adamw",
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        momentum: float = 0.9,
        nesterov: bool = False,
        batch_size: int | str = "auto",
        max_epochs: int = 200,
        schedule: str = "reduce_on_plateau",
        early_stopping: bool = True,
        validation_fraction: float = 0.1,
        patience: int = 10,
        noise: float = 0.0,
        mixup: float = 0.0,
        adversarial_eps: float = 0.0,
        adversarial_steps: int = 3,
        device: str = "auto",
        mixed_precision: bool = True,
        cuda_graphs: bool = True,
        n_threads: int | None = None,
        random_state: int | np.random.RandomState | None = None,
        pretrained: str | os.PathLike | bytes | None = None,
        finetune: str = "all",
        verbose: int = 0,
    ) -> None:
        self.hidden_sizes = hidden_sizes
        self.activation = activation
        self.batch_norm = batch_norm
        self.dropout = dropout
        self.init = init
        self.input_scaling = input_scaling
        self.embedding = embedding
        self.n_bins = n_bins
        self.embedding_dim = embedding_dim
        self.optimizer = optimizer
        self.lr = lr
        self.weight_decay = weight_decay
        self.momentum = momentum
        self.nesterov = nesterov
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.schedule = schedule
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.noise = noise
        self.mixup = mixup
        self.adversarial_eps = adversarial_eps
        self.adversarial_steps = adversarial_steps
        self.device = device
        self.mixed_precision = mixed_precision
        self.cuda_graphs = cuda_graphs
        self.n_threads = n_threads
        self.random_state = random_state
        self.pretrained = pretrained
        self.finetune = finetune
        self.verbose = verbose

    # -------------------------------------------------- subclass hooks

    def _loss(self, weight: torch.Tensor | None, smooth: bool = True) -> nn.Module:
        """The training loss (`smooth`: with label smoothing, where the model has it)."""
        raise NotImplementedError

    @staticmethod
    def _score(output: torch.Tensor, target: torch.Tensor) -> float:
        raise NotImplementedError

    # -------------------------------------------------- checks

    def _check_params(self) -> list[int]:
        """Validate every parameter (at fit time, per the scikit-learn contract); return the hidden widths."""
        self._validate_params()
        widths = _layer_widths(self.hidden_sizes)
        _check_choice("activation", self.activation, tuple(ACTIVATIONS))
        _check_choice("init", self.init, INITS)
        _check_choice("input_scaling", self.input_scaling, INPUT_SCALINGS)
        _check_choice("embedding", self.embedding, EMBEDDINGS)
        _check_number("n_bins", self.n_bins, 2, 1024, integer=True)
        _check_number("embedding_dim", self.embedding_dim, 0, 1024, integer=True)
        _check_number("noise", self.noise, 0, 10)
        _check_number("mixup", self.mixup, 0, 100)
        _check_number("adversarial_eps", self.adversarial_eps, 0, 10)
        _check_number("adversarial_steps", self.adversarial_steps, 1, 100, integer=True)
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("schedule", self.schedule, SCHEDULES)
        _check_choice("finetune", self.finetune, FINETUNE_MODES)
        for name in ("batch_norm", "nesterov", "early_stopping", "mixed_precision", "cuda_graphs"):
            _check_bool(name, getattr(self, name))
        _check_number("dropout", self.dropout, 0, 1, closed="[)")
        _check_number("lr", self.lr, 0, closed="()")
        _check_number("weight_decay", self.weight_decay, 0)
        _check_number("momentum", self.momentum, 0, 1, closed="[)")
        if self.batch_size != "auto":
            _check_number("batch_size", self.batch_size, 1, integer=True)
        _check_number("max_epochs", self.max_epochs, 1, integer=True)
        _check_number("validation_fraction", self.validation_fraction, 0, 1, closed="()")
        _check_number("patience", self.patience, 1, integer=True)
        _check_number("verbose", self.verbose, 0, integer=True)
        if self.n_threads is not None:
            _check_number("n_threads", self.n_threads, 1, integer=True)
        if self.finetune == "head" and self.pretrained is None:
            raise ValueError("finetune='head' trains only the output layer and needs pretrained= weights to build on")
        return widths

    # -------------------------------------------------- fitting

    def _fit_network(
        self, X: np.ndarray, y: np.ndarray, n_outputs: int, strata: np.ndarray | None, weight: np.ndarray | None
    ) -> None:
        """Build (or load) the network and train it; sets every learned attribute but the task's own."""
        widths = self._check_params()
        device = _resolve_device(self.device)
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        layer_sizes = [X.shape[1], *widths, n_outputs]
        with _torch_threads(self.n_threads), _seeded(seed, device):
            generator = torch.Generator().manual_seed(seed)
            net = self._build_network(layer_sizes, generator, X)
            split = self._tensors(X, y, device, seed, strata)
            w = None if weight is None else torch.as_tensor(weight, dtype=torch.float32, device=device)
            losses = (self._loss(w), self._loss(w, smooth=False))
            augment = self._augmenter(X, device)
            net = self._freeze(net.to(device))
            encoder_learns = any(p.requires_grad for p in net.encoder.parameters())
            amp_dtype = _autocast_dtype(device, bool(self.mixed_precision))
            with _pre_encoded(net, split, encoder_learns, augment.active, amp_dtype) as data:
                self._train(net, data, losses, augment, device, generator, amp_dtype)
        self.module_ = net.eval()
        self.device_ = str(device)
        self.layer_sizes_ = layer_sizes

    def _build_network(self, layer_sizes: list[int], generator: torch.Generator, X: np.ndarray) -> MLPNetwork:
        """A fresh network (seeded init), with the pretrained body (and head, if it fits) loaded over it.

        The input encoder is fitted on X, or taken from the pretrained weights: the
        pretrained body only means something behind the encoding it was trained on.
        """
        payload = self._read_pretrained() if self.pretrained is not None else None
        encoder = self._encoder(X, payload)
        self.numeric_input_mask_ = encoder.numeric_mask if encoder is not None else numeric_mask(X)
        net = MLPNetwork(layer_sizes, self.activation, self.batch_norm, float(self.dropout), encoder)
        _init_weights(net, self.init, self.activation, generator)
        if payload is not None:
            self._load_pretrained(net, layer_sizes, payload)
        return net

    def _encoder_config(self) -> dict[str, Any] | None:
        """What defines the input encoding (None: inputs go to the first layer as they are)."""
        if self.input_scaling == "none" and self.embedding == "none":
            return None
        n_bins = int(self.n_bins) if self.embedding != "none" else None
        dim = int(self.embedding_dim) if self.embedding != "none" else None
        return {
            "input_scaling": self.input_scaling,
            "embedding": self.embedding,
            "n_bins": n_bins,
            "embedding_dim": dim,
        }

    def _encoder(self, X: np.ndarray, payload: dict[str, Any] | None) -> InputEncoder | None:
        config = self._encoder_config()
        if payload is not None:
            saved = payload.get("encoder")
            if saved != config:
                raise ValueError(
                    f"pretrained={self._pretrained_name()} was trained with input encoding {saved}; this model "
                    f"has {config}: input_scaling, embedding, n_bins and embedding_dim must match"
                )
            return None if config is None else InputEncoder.from_state(config, payload["state_dict"])
        if config is None:
            return None
        return InputEncoder.fit(
            X, numeric_mask(X), self.input_scaling, self.embedding, int(self.n_bins), int(self.embedding_dim)
        )

    def _augmenter(self, X: np.ndarray, device: torch.device) -> Augmenter:
        """Batch augmentation, scaled by each numeric input's training standard deviation (when noise or PGD use it)."""
        perturbs = float(self.noise) > 0 or float(self.adversarial_eps) > 0
        scale = X.std(axis=0, dtype=np.float64) * self.numeric_input_mask_ if perturbs else np.zeros(X.shape[1])
        return Augmenter(
            noise=float(self.noise),
            mixup=float(self.mixup),
            eps=float(self.adversarial_eps),
            steps=int(self.adversarial_steps),
            scale=torch.as_tensor(scale, dtype=torch.float32, device=device),
        )

    def _tensors(
        self, X: np.ndarray, y: np.ndarray, device: torch.device, seed: int, strata: np.ndarray | None
    ) -> _Split:
        """Move the data to the device once; carve out the validation rows when early stopping."""
        y_dtype = torch.int64 if y.dtype.kind in "iu" else torch.float32
        Xt, yt = _to_tensor(X, torch.float32, device), _to_tensor(y, y_dtype, device)
        if not self.early_stopping:
            self.validation_indices_ = np.empty(0, dtype=np.intp)
            return _Split(Xt, yt, None, None)
        train, valid = _validation_split(len(X), float(self.validation_fraction), seed, strata)
        self.validation_indices_ = valid
        tr, va = torch.from_numpy(train).to(device), torch.from_numpy(valid).to(device)
        return _Split(Xt[tr], yt[tr], Xt[va], yt[va])

    def _train(
        self,
        net: MLPNetwork,
        data: _Split,
        losses: tuple[nn.Module, nn.Module],
        augment: Augmenter,
        device: torch.device,
        generator: torch.Generator,
        amp_dtype: torch.dtype | None,
    ) -> None:
        """Epoch loop with scheduling, early stopping and restoring the best weights.

        `losses` is the training loss (label smoothing included) and the plain loss that
        validation and early stopping monitor; `amp_dtype` the autocast dtype (None: float32).
        """
        loss_fn = losses[0]
        loop = self._loop(net, data, loss_fn, device, augment, losses[1], amp_dtype)
        self.batch_size_ = loop.batch_size
        best_loss, best_state, best_epoch, waited = math.inf, None, 0, 0
        self.history_ = []
        with warnings.catch_warnings():
            # GradScaler skips the optimizer step on overflow; torch then warns about step order.
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)`")
            for epoch in range(1, self.max_epochs + 1):
                record = self._epoch(net, data, loss_fn, loop, generator)
                record["epoch"] = epoch
                self.history_.append(record)
                self._log(record)
                monitored = record["valid_loss"] if data.X_valid is not None else record["train_loss"]
                if loop.scheduler is not None and not loop.per_batch:
                    loop.scheduler.step(monitored)
                    _pin_lr(loop.optimizer, loop.lr)
                if monitored < best_loss:
                    best_loss, best_epoch, waited = monitored, epoch, 0
                    if self.early_stopping:
                        best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                else:
                    waited += 1
                if self.early_stopping and waited >= self.patience:
                    break
        if best_state is not None:
            net.load_state_dict(best_state)
        self.n_epochs_ = len(self.history_)
        self.best_epoch_ = best_epoch if self.early_stopping else self.n_epochs_

    def _loop(
        self,
        net: MLPNetwork,
        data: _Split,
        loss_fn: nn.Module,
        device: torch.device,
        augment: Augmenter,
        valid_loss: nn.Module,
        amp_dtype: torch.dtype | None,
    ) -> _Loop:
        """The optimizer, schedule, precision and (on CUDA) the graphed step one fit's epochs share."""
        n_rows = len(data.X_train)
        batch_size = _batch_rows(self.batch_size, n_rows)
        drop_single = bool(self.batch_norm)  # batch norm cannot train on a batch of one row
        if drop_single and n_rows < 2:
            raise ValueError(f"batch_norm=True needs at least 2 training rows; got n_samples={n_rows}")
        scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
        # Graph capture cannot hold the scaler's overflow check (a host sync), so float16 stays eager.
        graphed = bool(self.cuda_graphs) and device.type == "cuda" and scaler is None and n_rows >= batch_size
        graphed = graphed and not augment.active  # random per-batch augmentation stays eager
        lr = torch.tensor(float(self.lr), device=device) if graphed else None
        trainable = [p for p in net.parameters() if p.requires_grad]  # what _freeze left
        optimizer = _make_optimizer(self.optimizer, trainable, self, float(self.lr) if lr is None else lr)
        steps = math.ceil((n_rows - (drop_single and n_rows % batch_size == 1)) / batch_size)
        scheduler, per_batch = _make_scheduler(
            self.schedule, optimizer, float(self.lr), steps * self.max_epochs, self.patience
        )
        _pin_lr(optimizer, lr)
        graph = None
        if graphed:
            self._train_mode(net)  # the graph records the modules' modes as they are at capture
            graph = _GraphedStep(net, loss_fn, optimizer, data, batch_size, amp_dtype)
        return _Loop(
            optimizer,
            scheduler,
            per_batch,
            batch_size,
            amp_dtype,
            scaler,
            _OptimizerStep(optimizer),
            graph,
            lr,
            augment,
            valid_loss,
        )

    def _freeze(self, net: MLPNetwork) -> MLPNetwork:
        """Fine-tuning the head freezes the body and the encoder; the optimizer and pre-encoding see what trains."""
        if self.finetune == "head":
            net.body.requires_grad_(False)
            net.encoder.requires_grad_(False)  # the embedding's weights belong to the frozen part
        return net

    def _train_mode(self, net: MLPNetwork) -> None:
        net.train()
        if self.finetune == "head":
            net.body.eval()  # frozen means frozen: no batch-norm statistics updates, no dropout

    def _epoch(
        self, net: MLPNetwork, data: _Split, loss_fn: nn.Module, loop: _Loop, generator: torch.Generator
    ) -> dict[str, Any]:
        """One pass over shuffled index batches of the on-device training tensors, then validation.

        Full batches replay the captured step when there is one; the last, shorter batch
        (and every batch without a graph) runs eagerly on the same weights and optimizer.
        """
        start = time.perf_counter()
        lr = float(loop.optimizer.param_groups[0]["lr"])
        self._train_mode(net)
        device = data.X_train.device
        seen, losses, sizes = 0, [], []  # each eager batch's mean loss, summed once at the end: no per-step kernels
        autocast = torch.autocast(device.type, dtype=loop.amp_dtype) if loop.amp_dtype is not None else nullcontext()
        for index in _batches(len(data.X_train), loop.batch_size, bool(self.batch_norm), generator, device):
            seen += len(index)
            if loop.graph is not None and len(index) == loop.graph.batch_size:
                loop.graph(index)
            else:
                loop.step.zero_grad()
                with autocast:
                    X, y = data.X_train.index_select(0, index), data.y_train.index_select(0, index)
                    loss = loop.augment.loss(net, loss_fn, X, y) if loop.augment.active else loss_fn(net(X), y)
                if loop.scaler is None:
                    loss.backward()
                    loop.step()
                else:
                    loop.scaler.scale(loss).backward()
                    loop.scaler.step(loop.optimizer)
                    loop.scaler.update()
                losses.append(loss.detach())
                sizes.append(len(index))
            if loop.per_batch:  # only cosine and onecycle, which always have a scheduler
                loop.scheduler.step()
                _pin_lr(loop.optimizer, loop.lr)
        total = torch.zeros((), device=device)
        if losses:
            total += torch.stack(losses).float() @ torch.tensor(sizes, dtype=torch.float32, device=device)
        if loop.graph is not None:
            total += loop.graph.loss_sum * loop.graph.batch_size
            loop.graph.loss_sum.zero_()
        record: dict[str, Any] = {"train_loss": float(total) / max(seen, 1), "valid_loss": None, "valid_score": None}
        if data.X_valid is not None:
            output = _forward(net, data.X_valid)
            record["valid_loss"] = float(loop.valid_loss(output, data.y_valid))
            record["valid_score"] = self._score(output, data.y_valid)
        record["lr"] = lr
        record["time_s"] = time.perf_counter() - start
        return record

    def _log(self, record: dict[str, Any]) -> None:
        if self.verbose:
            valid = "" if record["valid_loss"] is None else f" valid_loss={record['valid_loss']:.4f}"
            print(f"epoch {record['epoch']}: train_loss={record['train_loss']:.4f}{valid} lr={record['lr']:.3g}")

    # -------------------------------------------------- fine-tuning

    def save_pretrained(self, path: str | os.PathLike | io.BytesIO) -> Path | io.BytesIO:
        """Write the fitted weights and layer sizes for `pretrained=` (a torch state dict, no pickled code).

        `path` may be a binary file object: its bytes are then valid as `pretrained=` too.

        Loadable with `torch.load(path, weights_only=True)`, so a weights file from
        elsewhere cannot run code when a suite starts from it.
        """
        check_is_fitted(self, "module_")
        classes = getattr(self, "classes_", None)
        payload = {
            "format": _PRETRAINED_FORMAT,
            "estimator": type(self).__name__,
            "layer_sizes": list(self.layer_sizes_),
            "batch_norm": any(isinstance(m, nn.BatchNorm1d) for m in self.module_.modules()),
            "activation": self.activation,
            "classes": _plain_list(classes),
            "encoder": self._encoder_config(),
            "state_dict": {k: v.detach().cpu() for k, v in self.module_.state_dict().items()},
        }
        if hasattr(path, "write"):  # a binary file object (e.g. io.BytesIO): weights travel as bytes
            torch.save(payload, path)
            return path
        path = Path(path)
        torch.save(payload, path)
        return path

    def _pretrained_name(self) -> str:
        """How messages name the weights: the file, or their size when they came as bytes."""
        if isinstance(self.pretrained, bytes):
            return f"<{len(self.pretrained)} bytes of weights>"
        return repr(str(self.pretrained))

    def _read_pretrained(self) -> dict[str, Any]:
        """The payload `save_pretrained` wrote (weights only: loading runs no code)."""
        source = io.BytesIO(self.pretrained) if isinstance(self.pretrained, bytes) else Path(self.pretrained)
        payload = torch.load(source, map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or payload.get("format") != _PRETRAINED_FORMAT:
            raise ValueError(f"pretrained={self._pretrained_name()} is not a file written by save_pretrained")
        return payload

    def _load_pretrained(self, net: MLPNetwork, layer_sizes: list[int], payload: dict[str, Any]) -> None:
        """Load the body (must match exactly) and the head (only if it has the same outputs)."""
        name = self._pretrained_name()
        source = list(payload["layer_sizes"])
        if source[:-1] != layer_sizes[:-1] or payload["batch_norm"] != bool(self.batch_norm):
            raise ValueError(
                f"pretrained={name} has layer sizes {source[:-1]} (input features, then hidden "
                f"sizes) with batch_norm={payload['batch_norm']}; this model has {layer_sizes[:-1]} with "
                f"batch_norm={bool(self.batch_norm)}: the features, hidden_sizes and batch_norm must match"
            )
        state = payload["state_dict"]
        _load_part(net.body, "body", state, name)
        classes = _plain_list(getattr(self, "classes_", None))
        same_classes = payload.get("classes") is None or classes is None or payload["classes"] == classes
        if source[-1] == layer_sizes[-1] and same_classes:
            _load_part(net.head, "head", state, name)

    # -------------------------------------------------- prediction

    def _raw_predict(self, X: Any) -> np.ndarray:
        """The network's outputs (logits or standardised targets) as float64."""
        check_is_fitted(self, "module_")
        X = validate_data(self, X, reset=False, dtype=np.float32)
        with _torch_threads(self.n_threads):
            device = torch.device(self.device_)
            if device.type == "cpu":  # float64: a row's prediction must not depend on the batch it came in
                out = _forward(copy.deepcopy(self.module_).double(), _to_tensor(X, torch.float64, device))
            else:
                out = _forward(self.module_, _to_tensor(X, torch.float32, device))
        return out.double().cpu().numpy()

    def loss_gradient(self, X: Any, y: Any) -> np.ndarray:
        """Gradient of each row's loss with respect to that row's inputs (eval mode), shaped like X.

        For gradient-based attacks (robustness checks): X is the array `fit` and `predict`
        receive. The loss is plain cross-entropy for the classifier (no label smoothing,
        no class weights) and the squared error on the standardised target for the
        regressor, the loss the model was trained on. `numeric_input_mask_` tells
        which columns an attack may move.
        """
        check_is_fitted(self, "module_")
        X = validate_data(self, X, reset=False, dtype=np.float32)
        device = torch.device(self.device_)
        net = self.module_
        was_training = net.training
        net.eval()
        grads = []
        with _torch_threads(self.n_threads):
            target = self._target_tensor(np.asarray(y), device)
            inputs = _to_tensor(X, torch.float32, device)
            for chunk, t in zip(inputs.split(_PREDICT_BATCH), target.split(_PREDICT_BATCH), strict=True):
                chunk = chunk.detach().requires_grad_(True)
                (grad,) = torch.autograd.grad(self._loss_sum(net(chunk), t), chunk)
                grads.append(grad)
        net.train(was_training)
        return torch.cat(grads).double().cpu().numpy()

    def _target_tensor(self, y: np.ndarray, device: torch.device) -> torch.Tensor:
        raise NotImplementedError

    @staticmethod
    def _loss_sum(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False  # the pipeline imputes before the MLP
        return tags

    # -------------------------------------------------- saving without pickle

    def __getstate__(self) -> dict[str, Any]:
        """The estimator's state with the torch network as plain data: its layout and numpy weights.

        Why: skops saves numpy arrays, builtins and estimators by their state, never torch
        tensors without pickle, so `harness export model` could not save the MLP. The
        network is rebuilt from this description on load (`__setstate__`); copy and
        pickle go the same way.
        """
        state = dict(super().__getstate__())  # a copy: object.__getstate__ may return __dict__ itself
        if isinstance(state.get("module_"), nn.Module):
            state["module_"] = _network_state(state["module_"])
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        saved = state.get("module_")
        super().__setstate__(state)
        if isinstance(saved, dict):
            device = str(state.get("device_", "cpu"))
            if device.startswith("cuda") and not torch.cuda.is_available():
                device = "cpu"  # a model trained on a GPU still predicts where there is none
            self.module_ = _rebuild_network(saved).to(device).eval()
            self.device_ = device


def _network_state(net: MLPNetwork) -> dict[str, Any]:
    """What rebuilds the fitted network: layer widths, block layout, encoder kind, weights as numpy arrays."""
    blocks = [m for m in net.body.modules() if not isinstance(m, nn.Sequential)]
    linears = [m for m in blocks if isinstance(m, nn.Linear)]
    activation = next((k for k, c in ACTIVATIONS.items() for m in blocks if type(m) is c), "relu")
    encoder = net.encoder if isinstance(net.encoder, InputEncoder) else None
    return {
        "layer_sizes": [linears[0].in_features if linears else net.head.in_features]
        + [m.out_features for m in linears]
        + [net.head.out_features],
        "activation": activation,
        "batch_norm": any(isinstance(m, nn.BatchNorm1d) for m in blocks),
        "dropout": next((float(m.p) for m in blocks if isinstance(m, nn.Dropout)), 0.0),
        "encoder": None
        if encoder is None
        else {"input_scaling": encoder.scaling, "embedding": encoder.embedding, "embedding_dim": encoder.embedding_dim},
        "weights": {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()},
    }


def _rebuild_network(saved: dict[str, Any]) -> MLPNetwork:
    """The network `_network_state` described, on the CPU, with its weights loaded."""
    weights = {k: torch.from_numpy(np.array(v)) for k, v in saved["weights"].items()}
    config = saved["encoder"]
    encoder = None if config is None else InputEncoder.from_state(config, weights)
    net = MLPNetwork(
        list(saved["layer_sizes"]), saved["activation"], bool(saved["batch_norm"]), float(saved["dropout"]), encoder
    )
    net.load_state_dict(weights)
    return net


def _forward(net: nn.Module, X: torch.Tensor) -> torch.Tensor:
    """Evaluation-mode outputs, in chunks so large inputs do not exhaust memory.

    Always float32, also on CUDA with mixed precision: inference is cheap next to
    training, and float16 logits would blur probabilities and the validation loss.
    """
    was_training = net.training
    net.eval()
    with torch.inference_mode():
        out = torch.cat([net(chunk) for chunk in X.split(_PREDICT_BATCH)])
    net.train(was_training)
    return out


def _load_part(part: nn.Module, prefix: str, state: dict[str, torch.Tensor], path: Any) -> None:
    """Load the `prefix.` entries of a saved state dict into one submodule, with a clear error."""
    own = {k[len(prefix) + 1 :]: v for k, v in state.items() if k.startswith(prefix + ".")}
    try:
        part.load_state_dict(own)
    except RuntimeError as exc:
        raise ValueError(f"pretrained={path}: its {prefix} weights do not fit this model ({exc})") from None


def _plain_list(values: np.ndarray | None) -> list | None:
    """Class labels as a list torch.load(weights_only=True) can read back, or None."""
    if values is None:
        return None
    items = np.asarray(values).tolist()
    return items if all(isinstance(v, str | int | float | bool) for v in items) else None


class TorchMLPClassifier(ClassifierMixin, _BaseTorchMLP):
    """Multilayer perceptron classifier (binary and multiclass) trained with torch.

    Parameters
    ----------
    hidden_sizes : widths of the hidden layers (list or tuple; () is a linear model).
    activation : relu, leaky_relu, elu, gelu, silu or tanh.
    input_scaling : "robust" (median/IQR scaling and smooth clipping of numeric inputs) or "none".
    embedding : "piecewise_linear" (the scaled value plus `n_bins` quantile bins per numeric input) or "none".
    n_bins : quantile bins per numeric input for the piecewise-linear embedding.
    embedding_dim : 0 (the default) feeds every bin value to the first layer, 1 + n_bins inputs
        per numeric input, a fixed encoding computed once per fit; d > 0 passes each input's bins
        through a learned linear map to d values and a ReLU (slower per epoch, see encoding.py).
    batch_norm : batch normalisation after each hidden linear layer.
    dropout : dropout rate after each hidden activation.
    init : "default" (torch's), "he" (Kaiming normal) or "xavier" (Glorot uniform); biases zero.
    optimizer : adamw (decoupled weight decay), adam, sgd or rmsprop (weight_decay is L2 for the last three).
    lr, weight_decay : learning rate (the peak for onecycle) and weight decay.
    momentum, nesterov : for optimizer="sgd".
    batch_size : rows per step; "auto" gives an epoch at least 8 steps (n_train / 8 rows, clipped
        to 16..256): on a few hundred rows a full-size batch would make every epoch one step, so
        `patience` and the plateau schedule would count single steps. `batch_size_` is what was used.
    max_epochs : the most passes over the training rows.
    schedule : none, reduce_on_plateau (lr x0.2 after patience/2 epochs without improvement of the
        monitored loss), cosine (to zero over max_epochs) or onecycle (warm-up to lr, then anneal).
    early_stopping : hold out validation_fraction of the rows (stratified), stop after `patience`
        epochs without a lower validation loss and restore the best epoch's weights.
    class_weight : None, "balanced" or {label: weight}; weights the training (and validation) loss.
    device : "auto" (CUDA when available), "cpu", "cuda" (an error at fit if torch sees no GPU).
    mixed_precision : train under autocast: bfloat16 on GPUs that have it (Ampere and later),
        else float16 with gradient scaling; bfloat16 on CPUs that multiply it in hardware
        (AVX512-BF16 or AMX), float32 on other CPUs. Weights and predictions stay float32/float64.
    cuda_graphs : on CUDA, capture the full-batch training step once as a CUDA graph and
        replay it (about 10x faster epochs for small networks); not with float16 scaling.
    n_threads : torch intra-op threads during fit and predict (None leaves torch's setting).
    random_state : seeds the split, initial weights, batch order and dropout (CPU fits repeat exactly).
    pretrained : path of a file written by `save_pretrained` (or its bytes); the body is loaded, the
        head too when it has the same classes (else it is re-initialised).
    finetune : "all" trains every layer from the pretrained weights; "head" freezes the body.
    noise : Gaussian noise on training batches, in training stds of each numeric input (0: off).
    mixup : Beta(mixup, mixup) mixing of training batches with a shuffled copy (0: off).
    adversarial_eps, adversarial_steps : train on PGD examples in an L-infinity box of
        adversarial_eps training stds per numeric input, found in adversarial_steps steps (0: off).
    label_smoothing : for the training loss only; validation and early stopping use plain cross-entropy.
    verbose : print one line per epoch when > 0.

    Attributes
    ----------
    classes_, class_weight_ (the loss weight of each class, or None), n_features_in_,
    feature_names_in_ (DataFrame input), module_ (the torch network), device_ ("cpu" or
    "cuda"), layer_sizes_ (input features, hidden widths, outputs), history_ (per epoch:
    epoch, train_loss, valid_loss, valid_score = accuracy, lr at the start of the epoch,
    time_s), n_epochs_, best_epoch_ (the epoch whose weights the model holds), batch_size_
    (the rows per step used), validation_indices_ (the rows held out for early stopping),
    numeric_input_mask_ (True for numeric inputs, False for one-hot and other two-valued
    ones: what noise and attacks move).
    """

    def __init__(
        self,
        hidden_sizes: tuple[int, ...] | list[int] = (256, 256),
        activation: str = "relu",
        batch_norm: bool = False,
        dropout: float = 0.1,
        init: str = "default",
        input_scaling: str = "robust",
        embedding: str = "piecewise_linear",
        n_bins: int = 8,
        embedding_dim: int = 0,
        optimizer: str = "adamw",
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        momentum: float = 0.9,
        nesterov: bool = False,
        batch_size: int | str = "auto",
        max_epochs: int = 200,
        schedule: str = "reduce_on_plateau",
        early_stopping: bool = True,
        validation_fraction: float = 0.1,
        patience: int = 10,
        noise: float = 0.0,
        mixup: float = 0.0,
        adversarial_eps: float = 0.0,
        adversarial_steps: int = 3,
        class_weight: str | dict | None = None,
        label_smoothing: float = 0.0,
        device: str = "auto",
        mixed_precision: bool = True,
        cuda_graphs: bool = True,
        n_threads: int | None = None,
        random_state: int | np.random.RandomState | None = None,
        pretrained: str | os.PathLike | bytes | None = None,
        finetune: str = "all",
        verbose: int = 0,
    ) -> None:
        super().__init__(
            hidden_sizes=hidden_sizes,
            activation=activation,
            batch_norm=batch_norm,
            dropout=dropout,
            init=init,
            input_scaling=input_scaling,
            embedding=embedding,
            n_bins=n_bins,
            embedding_dim=embedding_dim,
            optimizer=optimizer,
            lr=lr,
            weight_decay=weight_decay,
            momentum=momentum,
            nesterov=nesterov,
            batch_size=batch_size,
            max_epochs=max_epochs,
            schedule=schedule,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            patience=patience,
            noise=noise,
            mixup=mixup,
            adversarial_eps=adversarial_eps,
            adversarial_steps=adversarial_steps,
            device=device,
            mixed_precision=mixed_precision,
            cuda_graphs=cuda_graphs,
            n_threads=n_threads,
            random_state=random_state,
            pretrained=pretrained,
            finetune=finetune,
            verbose=verbose,
        )
        self.class_weight = class_weight
        self.label_smoothing = label_smoothing

    def fit(self, X: Any, y: Any) -> TorchMLPClassifier:
        """Fit on numeric features; any label type (labels are encoded to 0..k-1 internally)."""
        X, y = validate_data(self, X, y, dtype=np.float32)
        check_classification_targets(y)
        self.classes_, encoded = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 classes; got 1 class ({self.classes_[0]!r})")
        encoded = encoded.astype(np.int64)
        self.class_weight_ = None
        if self.class_weight is not None:
            self.class_weight_ = compute_class_weight(self.class_weight, classes=self.classes_, y=y)
        self._fit_network(X, encoded, len(self.classes_), encoded, self.class_weight_)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (softmax in float64, so rows sum to 1), columns in `classes_` order."""
        logits = self._raw_predict(X)
        logits -= logits.max(axis=1, keepdims=True)
        proba = np.exp(logits)
        return proba / proba.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        return np.log(self.predict_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        logits = self._raw_predict(X)  # first: it raises NotFittedError before classes_ is read
        return self.classes_[np.argmax(logits, axis=1)]

    def _loss(self, weight: torch.Tensor | None, smooth: bool = True) -> nn.Module:
        return nn.CrossEntropyLoss(weight=weight, label_smoothing=float(self.label_smoothing) if smooth else 0.0)

    @staticmethod
    def _score(output: torch.Tensor, target: torch.Tensor) -> float:
        return float((output.argmax(dim=1) == target).float().mean())

    def _target_tensor(self, y: np.ndarray, device: torch.device) -> torch.Tensor:
        """Labels as class indices; a label the model never saw is an error, not a silent class."""
        index = np.searchsorted(self.classes_, y).clip(0, len(self.classes_) - 1)
        unknown = self.classes_[index] != y
        if unknown.any():
            raise ValueError(f"y has labels the model was not fitted on: {np.unique(y[unknown])[:5].tolist()}")
        return torch.as_tensor(index, dtype=torch.int64, device=device)

    @staticmethod
    def _loss_sum(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(output, target, reduction="sum")


class TorchMLPRegressor(RegressorMixin, _BaseTorchMLP):
    """Multilayer perceptron regressor trained with torch on a standardised target.

    The target (each column, for multi-output y) is standardised for training and the
    predictions are mapped back to the original units, so the defaults (lr, init) work
    whatever the target's scale. Parameters and attributes are those of
    `TorchMLPClassifier` without `class_weight`; valid_score in `history_` is R², the
    loss is the mean squared error in standardised units, and the fitted scaling is in
    `y_mean_` and `y_scale_`.
    """

    def fit(self, X: Any, y: Any) -> TorchMLPRegressor:
        """Fit on numeric features and a numeric target (1-D, or 2-D for several outputs)."""
        X, y = validate_data(self, X, y, dtype=np.float32, y_numeric=True, multi_output=True)
        target = np.asarray(y, dtype=np.float64)
        self._single_output = target.ndim == 1
        target = target.reshape(len(target), -1)
        self.n_outputs_ = target.shape[1]
        self.y_mean_ = target.mean(axis=0)
        scale = target.std(axis=0)
        self.y_scale_ = np.where(scale > 0, scale, 1.0)
        standardised = ((target - self.y_mean_) / self.y_scale_).astype(np.float32)
        self._fit_network(X, standardised, self.n_outputs_, None, None)
        return self

    def predict(self, X: Any) -> np.ndarray:
        out = self._raw_predict(X) * self.y_scale_ + self.y_mean_
        return out.ravel() if self._single_output else out

    def _loss(self, weight: torch.Tensor | None, smooth: bool = True) -> nn.Module:
        return nn.MSELoss()

    def _target_tensor(self, y: np.ndarray, device: torch.device) -> torch.Tensor:
        """The target in the standardised units the network predicts."""
        target = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        return torch.as_tensor((target - self.y_mean_) / self.y_scale_, dtype=torch.float32, device=device)

    @staticmethod
    def _loss_sum(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ((output - target) ** 2).sum()

    @staticmethod
    def _score(output: torch.Tensor, target: torch.Tensor) -> float:
        residual = ((output - target) ** 2).sum(dim=0)
        total = ((target - target.mean(dim=0)) ** 2).sum(dim=0)
        return float((1 - residual / total).mean())

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
