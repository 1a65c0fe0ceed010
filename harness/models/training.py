"""The MLP's training machinery: device and thread settings, splits, optimizers, schedules, CUDA graphs.

Pure mechanics, shared by the classifier and the regressor (harness.models.mlp), so the
estimator module keeps to parameters, fitting order and the scikit-learn contract.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch import nn
from torch.optim.adam import adam as functional_adam

from harness.models.augment import Augmenter
from harness.models.network import MLPNetwork

OPTIMIZERS = ("adamw", "adam", "sgd", "rmsprop")
SCHEDULES = ("none", "reduce_on_plateau", "cosine", "onecycle")
_PRE_ENCODE_MAX_BYTES = 512 * 2**20  # the largest encoded copy of the training rows kept for a fit
_GRAPH_WARMUP_STEPS = 3  # eager steps on a side stream before capture, as torch's docs do
_PLATEAU_FACTOR = 0.2  # reduce_on_plateau multiplies the lr by this...
_PLATEAU_PATIENCE_SHARE = 0.5  # ...after this share of `patience` epochs without improvement
_AUTO_BATCH = (16, 256)  # batch_size="auto": the smallest and largest batch...
_AUTO_STEPS_PER_EPOCH = 8  # ...and the optimizer steps an epoch should have between them
DEVICES = ("auto", "cpu", "cuda")


# ---------------------------------------------------------------- process-level settings


@contextmanager
def _torch_threads(n_threads: int | None) -> Iterator[None]:
    """Set torch's intra-op threads for one fit or predict and restore the caller's value.

    The engine gives each parallel worker its share of the cores; leaving a changed
    setting behind would leak into whatever the process runs next.
    """
    if n_threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(int(n_threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's global RNG (weight init, dropout) inside a fork that is undone on exit."""
    devices = (
        [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    )
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _to_tensor(array: np.ndarray, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """One copy of the data on the device; read-only arrays (memmaps) are copied first."""
    array = np.ascontiguousarray(array)
    if not array.flags.writeable:
        array = array.copy()
    return torch.from_numpy(array).to(device=device, dtype=dtype)


# ---------------------------------------------------------------- training pieces


@dataclass
class _Split:
    """Tensors for one fit: the training rows, and the validation rows when early stopping."""

    X_train: torch.Tensor
    y_train: torch.Tensor
    X_valid: torch.Tensor | None
    y_valid: torch.Tensor | None


@contextmanager
def _pre_encoded(
    net: MLPNetwork, data: _Split, encoder_learns: bool, augmented: bool, amp_dtype: torch.dtype | None
) -> Iterator[_Split]:
    """The fit's rows passed once through the network's input encoding, when it learns nothing.

    Why: the default encoding (robust scaling and piecewise-linear bins) is a fixed
    function of a row, so re-encoding every batch of every epoch repeats a dozen small
    ops per step for nothing. While the copy is in use the network skips its encoder
    (`inputs_encoded`), so the training step, the validation loss and a CUDA graph all
    see encoded rows; the flag is reset on exit, so prediction, gradients and saved
    weights see the whole network as before.

    Under autocast the training rows are kept in the autocast dtype: the first Linear
    would cast each batch to it anyway, so the values it sees are the same and the copy
    takes half the memory. Validation rows stay float32, as validation runs without
    autocast.
    Batches are encoded one by one instead when the encoder trains (`embedding_dim` >
    0), when augmentation perturbs raw rows, and when the copy would exceed
    `_PRE_ENCODE_MAX_BYTES`.
    """
    width = getattr(net.encoder, "out_features", None)
    train_dtype = amp_dtype or torch.float32
    size = len(data.X_train) * train_dtype.itemsize + (0 if data.X_valid is None else len(data.X_valid) * 4)
    if width is None or encoder_learns or augmented or size * width > _PRE_ENCODE_MAX_BYTES:
        yield data
        return
    encoder = net.encoder
    valid = None if data.X_valid is None else encoder.encode_all(data.X_valid, torch.float32)
    encoded = _Split(encoder.encode_all(data.X_train, train_dtype), data.y_train, valid, data.y_valid)
    net.inputs_encoded = True
    try:
        yield encoded
    finally:
        net.inputs_encoded = False


def _validation_split(
    n_samples: int, fraction: float, seed: int, strata: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Train/validation row indices, stratified when every class can appear on both sides."""
    n_valid = math.ceil(fraction * n_samples)
    if n_valid < 1 or n_samples - n_valid < 1:
        raise ValueError(
            f"early_stopping needs at least 2 samples to split off validation_fraction={fraction}; "
            f"got n_samples={n_samples}"
        )
    stratify = None
    if strata is not None:
        counts = np.bincount(strata)
        counts = counts[counts > 0]
        if counts.min() >= 2 and min(n_valid, n_samples - n_valid) >= counts.size:
            stratify = strata
    train, valid = train_test_split(np.arange(n_samples), test_size=n_valid, random_state=seed, stratify=stratify)
    return np.sort(train), np.sort(valid)


def _make_optimizer(name: str, params: list[nn.Parameter], est: Any, lr: float | torch.Tensor) -> torch.optim.Optimizer:
    """The optimizer; Adam, AdamW and SGD use torch's fused kernels (one call per step, CPU and CUDA).

    `lr` is a one-element device tensor when the training step is a CUDA graph: the
    graph reads the learning rate from that tensor, so schedules still apply, and the
    optimizers that keep a step count are made capturable.
    """
    capturable = isinstance(lr, torch.Tensor)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=est.weight_decay, fused=True, capturable=capturable)
    if name == "adam":  # weight_decay is a plain L2 penalty here, unlike AdamW's decoupled decay
        return torch.optim.Adam(params, lr=lr, weight_decay=est.weight_decay, fused=True, capturable=capturable)
    if name == "sgd":
        if est.nesterov and est.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0 with optimizer='sgd'")
        return torch.optim.SGD(
            params, lr=lr, momentum=est.momentum, nesterov=est.nesterov, weight_decay=est.weight_decay, fused=True
        )
    return torch.optim.RMSprop(params, lr=lr, weight_decay=est.weight_decay, capturable=capturable)


class _OptimizerStep:
    """An eager batch's optimizer step; for fused Adam and AdamW, torch's functional Adam on the optimizer's own state.

    Why: `Optimizer.step` wraps its ~35 µs fused kernel in about 70 µs of Python per call
    (profiling hook, a per-parameter walk over the state, grouping by device), a tenth of
    a default 256-row CPU step at two threads (bench/mlp.py). The functional form that
    `Adam.step` itself calls (`torch.optim.adam.adam`), given the same state tensors
    and the group's current hyperparameters, updates the weights bit for bit alike.
    The first call goes through `optimizer.step()` (torch creates the state there);
    other optimizers, a tensor learning rate (a graphed fit's eager last batch) and a
    batch that left a parameter without a gradient always do.
    """

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        group = optimizer.param_groups[0]
        self.functional = (
            isinstance(optimizer, torch.optim.Adam)  # AdamW is an Adam with decoupled weight decay
            and len(optimizer.param_groups) == 1
            and "decoupled_weight_decay" in group  # torch >= 2.6; older releases keep the optimizer's own step
            and bool(group["fused"])
            and not (group["capturable"] or group["amsgrad"] or group["differentiable"] or group["maximize"])
        )
        self.params: list[torch.Tensor] = list(group["params"])
        self.state: tuple[list[torch.Tensor], ...] | None = None  # exp_avg, exp_avg_sq, step per parameter

    def zero_grad(self) -> None:
        """`optimizer.zero_grad(set_to_none=True)` without its profiling scope (about 10 µs a step)."""
        for p in self.params:
            p.grad = None

    def __call__(self) -> None:
        group = self.optimizer.param_groups[0]
        grads = [p.grad for p in self.params]
        if self.state is None or isinstance(group["lr"], torch.Tensor) or any(g is None for g in grads):
            self.optimizer.step()
            if self.functional and self.state is None and all(p in self.optimizer.state for p in self.params):
                states = [self.optimizer.state[p] for p in self.params]
                self.state = tuple([s[key] for s in states] for key in ("exp_avg", "exp_avg_sq", "step"))
            return
        exp_avgs, exp_avg_sqs, steps = self.state
        beta1, beta2 = group["betas"]
        with torch.no_grad():
            functional_adam(
                self.params,
                grads,
                exp_avgs,
                exp_avg_sqs,
                [],
                steps,
                fused=True,
                decoupled_weight_decay=group["decoupled_weight_decay"],
                amsgrad=False,
                beta1=beta1,
                beta2=beta2,
                lr=group["lr"],
                weight_decay=group["weight_decay"],
                eps=group["eps"],
                maximize=False,
            )


def _pin_lr(optimizer: torch.optim.Optimizer, lr: torch.Tensor | None) -> None:
    """Keep a graphed step's learning-rate tensor in the optimizer after a scheduler step.

    A scheduler may write a plain float into the parameter group; the captured graph
    still reads the tensor, so the value is copied into it and the tensor put back.
    """
    group = optimizer.param_groups[0]
    if lr is not None and group["lr"] is not lr:
        lr.fill_(float(group["lr"]))
        group["lr"] = lr


class _GraphedStep:
    """One full-batch training step (gather, forward, loss, backward, optimizer step) as a CUDA graph.

    Why: a tabular MLP's step is some forty tiny kernels. Launched one by one from
    Python the GPU waits on the CPU between them, so an H100 trained the benchmark's
    256-256 network no faster than two CPU cores (0.47 s per epoch on 80,000 rows at
    batch 256). Replaying the captured step is one launch (0.044 s per epoch).

    The graph reads its batch through a static index buffer, so shuffling still happens
    outside it. Capture needs a few warm-up steps on a side stream; the weights, buffers
    and optimizer state they touch are put back afterwards, so training starts from the
    same initial state as the ungraphed path. The running loss sum is kept on the GPU.
    """

    def __init__(
        self,
        net: nn.Module,
        loss_fn: nn.Module,
        optimizer: torch.optim.Optimizer,
        data: _Split,
        batch_size: int,
        amp_dtype: torch.dtype | None,
    ) -> None:
        device = data.X_train.device
        self.batch_size = batch_size
        self.index = torch.arange(batch_size, device=device)
        self.loss_sum = torch.zeros((), device=device)
        saved = {k: v.detach().clone() for k, v in net.state_dict().items()}

        def step() -> None:
            autocast = torch.autocast("cuda", dtype=amp_dtype) if amp_dtype is not None else nullcontext()
            with autocast:
                X, y = data.X_train.index_select(0, self.index), data.y_train.index_select(0, self.index)
                loss = loss_fn(net(X), y)
            loss.backward()
            optimizer.step()
            self.loss_sum.add_(loss.detach().float())

        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(_GRAPH_WARMUP_STEPS):
                optimizer.zero_grad(set_to_none=True)
                step()
        torch.cuda.current_stream(device).wait_stream(side)
        optimizer.zero_grad(set_to_none=True)  # the graph's backward then allocates the grads in its own pool
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            step()
        with torch.no_grad():
            for key, value in net.state_dict().items():
                value.copy_(saved[key])
            for state in optimizer.state.values():
                for value in state.values():
                    if isinstance(value, torch.Tensor):
                        value.zero_()  # a fresh optimizer's state: zero moments, zero steps
            self.loss_sum.zero_()

    def __call__(self, index: torch.Tensor) -> None:
        self.index.copy_(index)
        self.graph.replay()


@dataclass
class _Loop:
    """What one fit's epochs share: optimizer, schedule, precision and the graphed step."""

    optimizer: torch.optim.Optimizer
    scheduler: Any
    per_batch: bool  # the scheduler steps per batch (cosine, onecycle) rather than per epoch
    batch_size: int  # rows per step, "auto" resolved (_batch_rows)
    amp_dtype: torch.dtype | None  # autocast dtype (CUDA, or a CPU with native bfloat16); None: float32
    scaler: torch.amp.GradScaler | None  # float16 only
    step: _OptimizerStep  # the optimizer step (and gradient reset) of an eager batch
    graph: _GraphedStep | None  # the captured full-batch step (CUDA)
    lr: torch.Tensor | None  # the learning-rate tensor the graph reads
    augment: Augmenter  # noise, mixup, adversarial examples for eager training batches
    valid_loss: nn.Module  # the plain loss (no label smoothing) that validation monitors


def _make_scheduler(
    name: str, optimizer: torch.optim.Optimizer, lr: float, total_steps: int, patience: int
) -> tuple[Any, bool]:
    """The scheduler and whether it steps per batch (cosine, onecycle) rather than per epoch.

    Cosine and one-cycle span `max_epochs` even when early stopping ends the fit sooner,
    so their shape does not depend on when training stops. One-cycle leaves momentum as
    the user set it (no momentum cycling), so `momentum` means the same for every schedule.
    """
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps), True
    if name == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=lr, total_steps=total_steps, cycle_momentum=False
        ), True
    if name == "reduce_on_plateau":
        wait = max(1, int(patience * _PLATEAU_PATIENCE_SHARE))
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=_PLATEAU_FACTOR, patience=wait), False
    return None, False


def _batch_rows(batch_size: int | str, n_rows: int) -> int:
    """Rows per step: the user's number, or for "auto" at least _AUTO_STEPS_PER_EPOCH steps per epoch.

    Why: with a 256-row batch a set of a few hundred rows trains one step per epoch, and
    `patience` and the plateau schedule, counted in epochs, then count single steps.
    """
    if batch_size != "auto":
        return int(batch_size)
    smallest, largest = _AUTO_BATCH
    return max(smallest, min(largest, n_rows // _AUTO_STEPS_PER_EPOCH))


def _batches(
    n_rows: int, batch_size: int, drop_single: bool, generator: torch.Generator, device: torch.device
) -> Iterator[torch.Tensor]:
    """Shuffled index batches on `device`; a trailing batch of one row is dropped when batch norm cannot use it.

    The permutation is drawn on the CPU generator (the same order on every device, and
    deterministic) and copied to the device once per epoch, not once per batch.
    """
    order = torch.randperm(n_rows, generator=generator)
    if drop_single and n_rows % batch_size == 1 and n_rows > 1:
        order = order[:-1]
    return iter(order.to(device).split(batch_size))


def _cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX tiles).

    Elsewhere oneDNN emulates bfloat16 and it is slower than float32, so mixed
    precision stays off there. The checks are torch's own CPU-capability probes.
    """
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, probe, lambda: False)()) for probe in probes)


def _autocast_dtype(device: torch.device, mixed_precision: bool) -> torch.dtype | None:
    """The autocast dtype for training: bfloat16 where the hardware has it, float16 on older GPUs, else none.

    bfloat16 has float32's range, so it needs no gradient scaling, and the scaler's
    per-step overflow check (a GPU-to-host sync) would otherwise cost more than the
    small matrix products of a tabular MLP. On a CPU with native bfloat16 the matrix
    products run about 4x faster than in float32 (bench/mlp.py); weights, optimizer
    state, the loss and every prediction stay float32 (float64 on the CPU).
    """
    if not mixed_precision:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if _cpu_has_native_bf16() else None
