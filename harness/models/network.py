"""The MLP's network: input encoder, hidden blocks and head, and their initialisation."""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn

from harness.models.encoding import InputEncoder

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
}
# Activations whose backward needs only their output, so they can overwrite their input:
# no fresh activation-sized buffer per layer and step (about 8% of a CPU epoch of the
# benchmark's 256-256 network). The Linear or BatchNorm before them does not need its
# output for its own backward.
IN_PLACE_ACTIVATIONS = ("relu", "leaky_relu")
INITS = ("default", "he", "xavier")


# ---------------------------------------------------------------- network


class MLPNetwork(nn.Module):
    """The fitted input encoder, hidden blocks (Linear → [BatchNorm] → activation → [Dropout]), a linear head.

    The body and the head are separate submodules so fine-tuning can load or freeze
    the body alone and re-initialise the head when the number of outputs differs. Each
    block is its own Sequential with the Linear first, so weight names ("body.1.0.weight")
    do not depend on the activation or on dropout, and weights saved with one dropout
    rate load into a model with another.
    """

    def __init__(
        self,
        layer_sizes: list[int],
        activation: str,
        batch_norm: bool,
        dropout: float,
        encoder: InputEncoder | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder if encoder is not None else nn.Identity()
        widths = [encoder.out_features if encoder is not None else layer_sizes[0], *layer_sizes[1:]]
        blocks: list[nn.Module] = []
        for n_in, n_out in pairwise(widths[:-1]):
            block: list[nn.Module] = [nn.Linear(n_in, n_out)]
            if batch_norm:
                block.append(nn.BatchNorm1d(n_out))
            in_place = {"inplace": True} if activation in IN_PLACE_ACTIVATIONS else {}
            block.append(ACTIVATIONS[activation](**in_place))
            if dropout > 0:
                block.append(nn.Dropout(dropout))
            blocks.append(nn.Sequential(*block))
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(widths[-2], widths[-1])
        self.inputs_encoded = False  # training may pass rows the encoder has already seen (see training.py)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x if self.inputs_encoded else self.encoder(x)))


def _init_weights(net: MLPNetwork, init: str, activation: str, generator: torch.Generator) -> None:
    """He or Xavier initialisation with zero biases; "default" keeps torch's own.

    GELU, SiLU and ELU are treated as ReLU for the gain: close enough for the first step.
    """
    if init == "default":
        return
    nonlinearity = activation if activation in ("relu", "leaky_relu", "tanh") else "relu"
    slope = 0.01 if activation == "leaky_relu" else 0.0
    for layer in net.modules():
        if not isinstance(layer, nn.Linear):
            continue
        kind = "linear" if layer is net.head else nonlinearity
        if init == "he":
            nn.init.kaiming_normal_(layer.weight, a=slope, nonlinearity=kind, generator=generator)
        else:
            gain = nn.init.calculate_gain(kind, slope if kind == "leaky_relu" else None)
            nn.init.xavier_uniform_(layer.weight, gain=gain, generator=generator)
        nn.init.zeros_(layer.bias)
