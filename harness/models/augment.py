"""Training-batch augmentation for the MLP: Gaussian noise, mixup, and PGD adversarial training.

Only training batches change; validation rows, early stopping and prediction see the
data as it is. Noise and the adversarial budget are in units of each numeric input's
training standard deviation, so one number means the same on every column; inputs
that are not numeric (one-hot and binary columns, see `encoding.numeric_mask`) are
never perturbed, because a value between two categories is not a row that can occur.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
_PGD_STEP_SHARE = 2.5  # step size = 2.5 * eps / steps (Madry et al.): the budget's edge is reachable


@dataclass
class Augmenter:
    """What a fit does to each training batch before its loss: noise, mixup, PGD (any combination)."""

    noise: float  # Gaussian sigma, in training standard deviations of each numeric input
    mixup: float  # Beta(alpha, alpha) mixing weight between a batch and a shuffled copy; 0 is off
    eps: float  # L-infinity budget of the adversarial examples, in training standard deviations
    steps: int  # projected gradient steps per adversarial batch
    scale: torch.Tensor  # (n_features,) training std of numeric inputs, 0 for the others

    @property
    def active(self) -> bool:
        return self.noise > 0 or self.mixup > 0 or self.eps > 0

    def loss(self, net: nn.Module, loss_fn: LossFn, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The batch's training loss after augmentation (adversarial first: the attack sees clean rows)."""
        if self.eps > 0:
            X = self.adversarial(net, loss_fn, X, y)
        if self.noise > 0:
            X = X + self.noise * self.scale * torch.randn_like(X)
        if self.mixup <= 0:
            return loss_fn(net(X), y)
        lam = float(torch.distributions.Beta(self.mixup, self.mixup).sample())
        perm = torch.randperm(len(X), device=X.device)
        out = net(lam * X + (1 - lam) * X.index_select(0, perm))
        return lam * loss_fn(out, y) + (1 - lam) * loss_fn(out, y.index_select(0, perm))

    def adversarial(self, net: nn.Module, loss_fn: LossFn, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """PGD from a random start in the eps-box around X; the network runs in eval mode, its grads untouched."""
        radius = self.eps * self.scale
        step = _PGD_STEP_SHARE * radius / self.steps
        modes = [(m, m.training) for m in net.modules()]
        net.eval()  # no dropout noise in the attack, no batch-norm statistics from attacked rows
        try:
            delta = (torch.rand_like(X) * 2 - 1) * radius
            for _ in range(self.steps):
                delta.requires_grad_(True)
                loss = loss_fn(net(X + delta), y)
                (grad,) = torch.autograd.grad(loss, delta)
                delta = torch.maximum(torch.minimum(delta.detach() + step * grad.sign(), radius), -radius)
        finally:
            for module, mode in modes:
                module.train(mode)
        return (X + delta).detach()
