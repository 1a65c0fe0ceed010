"""The MLP's own input encoding: robust scaling, smooth clipping and piecewise-linear bins.

Why the MLP encodes its inputs again after the fold's StandardScaler: a standard-scaled
heavy-tailed column puts almost every row within a sliver around zero, and a ReLU
network needs many epochs of steep weights to cut such a column at one threshold,
which is exactly what a tree does in one split. Two remedies from the literature close
most of that gap and cost little:

- robust scaling with smooth clipping (RealMLP, Holzmüller et al. 2024): centre on the
  median, divide by the interquartile range, then squash with x / sqrt(1 + (x/3)^2), so
  the bulk of a column spreads over a unit range and outliers cannot dominate a step;
- piecewise-linear encoding on quantile bins (Gorishniy et al. 2022): each numeric
  input gains one value per bin (0 below the bin, 1 above it, linear inside), so the
  first linear layer learns a piecewise-linear function of each column and a threshold
  at any quantile is one weight away. The scaled value itself stays an input too, so
  a smooth (e.g. linear) dependence does not have to be rebuilt from the bins.
- optionally (`embedding_dim` d > 0) the bins and the value of each input go through a
  small learned linear map of their own to d values and a ReLU (the PLE-linear
  embedding of the same paper). It is not the default: the map learns, so every
  training step must also run backward through the encoder and the first layer's
  input gradient, which costs more on the CPU than the wider first layer of the fixed
  encoding (bench/mlp.py). The fixed encoding with 8 bins met the same accuracy target
  (bench/mlp_quality.py), and because it learns nothing a fit encodes its rows once
  (training.py's `_pre_encoded`) instead of once per batch.

The encoder is fitted once on a fit's training rows and is part of the network (its
statistics are buffers, the optional embedding's weights parameters), so `predict`, CUDA
graphs, gradients with respect to the raw inputs (`loss_gradient`) and saved weights all
see the same function. Inputs with at most two distinct training values (one-hot
columns, binary flags) are passed through unchanged: scaling or binning a 0/1 column
adds nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn

INPUT_SCALINGS = ("robust", "none")
EMBEDDINGS = ("piecewise_linear", "none")
_CLIP = 3.0  # smooth clipping bound (RealMLP's): outputs stay within (-3, 3)
_ENCODE_CHUNK = 1024  # rows per chunk when a whole training set is encoded at once


def numeric_mask(X: np.ndarray) -> np.ndarray:
    """True for columns with more than two distinct values (numeric), False for one-hot or binary ones."""
    mask = np.zeros(X.shape[1], dtype=bool)
    for j in range(X.shape[1]):
        column = X[:, j]
        first = column[0] if len(column) else 0.0
        other = column[column != first]
        mask[j] = other.size > 0 and bool((other != other[0]).any())
    return mask


def _sorted_columns(X: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """X's `columns` in float64, each sorted: an (n_rows, n_columns) view of one row-sorted copy.

    Why this layout: sorting each column of a row-major array in place is a strided
    sort after a full copy; gathering the columns as rows of their own copy and sorting
    those contiguous rows is one copy and a cache-friendly sort (the encoder's fit took
    about half an epoch of bench/mlp.py's 80,000 rows).
    """
    rows = np.array(X.T[columns], dtype=np.float64)
    rows.sort(axis=1)
    return rows.T


def _sorted_quantiles(
    S: np.ndarray, q: np.ndarray, transform: Callable[[np.ndarray], np.ndarray] | None = None
) -> np.ndarray:
    """Quantiles q of each column of `transform(S)` for the column-sorted S, interpolated as `np.quantile`'s default.

    Why: one sort per column serves the robust statistics and every bin edge, instead
    of a selection per quantile and column (the fit's statistics took about as long as
    an epoch of the 32,000-row benchmark). A monotone `transform` keeps S sorted, so it
    is applied to the two rows each quantile reads, not to every row.
    """
    position = q * (len(S) - 1)
    low = np.floor(position).astype(np.intp)
    high = np.minimum(low + 1, len(S) - 1)
    fraction = (position - low)[:, None]
    below, above = S[low], S[high]
    if transform is not None:
        below, above = transform(below), transform(above)
    return below + fraction * (above - below)


def _robust_stats(S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median and interquartile range per column of the column-sorted S (half the range where the IQR is zero, else 1)."""
    q25, median, q75 = _sorted_quantiles(S, np.array([0.25, 0.5, 0.75]))
    scale = q75 - q25
    spread = (S[-1] - S[0]) / 2
    scale = np.where(scale > 0, scale, np.where(spread > 0, spread, 1.0))
    return median, scale


def _scale_and_clip(Z: np.ndarray, center: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The encoder's robust scaling and smooth clipping in NumPy (monotone in each column), as `forward` does."""
    Z = (Z - center) / scale
    return Z / np.sqrt(1 + (Z / _CLIP) ** 2)


def _smooth_clip(z: torch.Tensor) -> torch.Tensor:
    return z / torch.sqrt(1 + (z / _CLIP) ** 2)


_EMBED_PARAMETERS = ("embed_value", "embed_bins", "embed_bias")  # learned; everything else is a fitted buffer


class InputEncoder(nn.Module):
    """Fitted input transform: numeric columns scaled (and embedded), the others passed through.

    The fitted statistics are buffers and the embedding's weights parameters, so both
    travel in `state_dict` and onto the device with the network; `from_state` rebuilds
    one from saved weights (fine-tuning).

    With `embedding_dim` 0 (the default) the first dense layer sees each numeric input's
    scaled value and its n_bins bin values (the wide encoding), a fixed function of the
    row. With d > 0 each input's piecewise-linear bins feed a small learned linear map
    of its own to d values, then a ReLU (Gorishniy et al.'s PLE-linear embedding), so
    the first layer sees d values per input (beside the scaled value) instead of one per
    bin. That map is evaluated sparsely: at most one bin of a value is partly filled,
    the bins below it are 1 and those above 0, so the map is a prefix sum of its bin
    weights up to the value's bin plus the fraction times that bin's weight; a batch
    gathers two rows of d per input, whatever `n_bins` is.
    """

    def __init__(self, state: dict[str, torch.Tensor], scaling: str, embedding: str, embedding_dim: int = 0) -> None:
        super().__init__()
        self.scaling = scaling
        self.embedding = embedding
        self.embedding_dim = embedding_dim if embedding != "none" else 0
        for name, value in state.items():
            if name in _EMBED_PARAMETERS:
                self.register_parameter(name, nn.Parameter(value.detach().clone()))
            else:
                self.register_buffer(name, value.clone())
        n_bins = len(state["bin_left"]) if embedding != "none" else 0
        n_numeric = len(state["numeric"])
        width = n_numeric * self.embedding_dim if self.embedding_dim else n_bins
        self.out_features = len(state["other"]) + n_numeric + width

    @classmethod
    def fit(
        cls, X: np.ndarray, mask: np.ndarray, scaling: str, embedding: str, n_bins: int, embedding_dim: int = 0
    ) -> InputEncoder:
        """Statistics from the training rows: median/IQR, then quantile bin edges of the scaled values.

        The embedding's weights start as a Linear layer's would over each input's bins
        (uniform within 1/sqrt(n_bins + 1)), drawn from torch's global generator, which
        the estimator seeds.
        """
        numeric = np.flatnonzero(mask)
        S = _sorted_columns(X, numeric)
        transform = None
        if scaling == "robust" and numeric.size:
            center, scale = _robust_stats(S)
            transform = partial(_scale_and_clip, center=center, scale=scale)
        else:
            center, scale = np.zeros(numeric.size), np.ones(numeric.size)
        feature, left, width, low, high = [], [], [], [], []
        offset, inner = np.zeros(numeric.size, dtype=np.int64), []
        if embedding == "piecewise_linear":
            quantiles = _sorted_quantiles(S, np.linspace(0, 1, n_bins + 1), transform)
            for j in range(numeric.size):
                edges = np.unique(quantiles[:, j])
                if len(edges) < 2:  # a constant column cannot be numeric; one unit bin keeps shapes sane
                    edges = np.array([edges[0], edges[0] + 1.0])
                offset[j] = len(left)
                inner.append(edges[1:-1])
                for b in range(len(edges) - 1):
                    feature.append(j)
                    left.append(edges[b])
                    width.append(edges[b + 1] - edges[b])
                    low.append(-np.inf if b == 0 else 0.0)  # below the first edge the first bin goes negative
                    high.append(np.inf if b == len(edges) - 2 else 1.0)  # ...above the last the last exceeds 1
        f32 = torch.float32
        inner_edges = np.full((numeric.size, max((len(e) for e in inner), default=0)), np.inf, dtype=np.float32)
        for j, edges in enumerate(inner):
            inner_edges[j, : len(edges)] = edges  # padded with inf: a padding edge is never below a value
        state = {
            "numeric": torch.as_tensor(numeric, dtype=torch.int64),
            "other": torch.as_tensor(np.flatnonzero(~mask), dtype=torch.int64),
            "center": torch.as_tensor(center, dtype=f32),
            "scale": torch.as_tensor(scale, dtype=f32),
            "bin_feature": torch.as_tensor(np.asarray(feature, dtype=np.int64)),
            "bin_left": torch.as_tensor(np.asarray(left, dtype=np.float32)),
            "bin_width": torch.as_tensor(np.maximum(np.asarray(width, dtype=np.float32), 1e-6)),
            "bin_low": torch.as_tensor(np.asarray(low, dtype=np.float32)),
            "bin_high": torch.as_tensor(np.asarray(high, dtype=np.float32)),
            "bin_offset": torch.as_tensor(offset),
            "inner_edges": torch.as_tensor(inner_edges),
        }
        if embedding == "piecewise_linear" and embedding_dim > 0:
            bound = 1 / math.sqrt(n_bins + 1)
            d = embedding_dim
            state["embed_value"] = torch.empty(numeric.size, d).uniform_(-bound, bound)
            state["embed_bins"] = torch.empty(len(left), d).uniform_(-bound, bound)
            state["embed_bias"] = torch.empty(numeric.size, d).uniform_(-bound, bound)
        return cls(state, scaling, embedding, embedding_dim)

    @classmethod
    def from_state(cls, config: dict[str, Any], state: dict[str, torch.Tensor]) -> InputEncoder:
        """The encoder saved with pretrained weights (its buffers and weights under `encoder.`)."""
        own = {k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")}
        return cls(own, config["input_scaling"], config["embedding"], int(config.get("embedding_dim") or 0))

    @property
    def numeric_mask(self) -> np.ndarray:
        mask = np.zeros(len(self.numeric) + len(self.other), dtype=bool)
        mask[self.numeric.cpu().numpy()] = True
        return mask

    @torch.no_grad()
    def encode_all(self, X: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """`forward` over every row, chunk by chunk into one tensor of `dtype`.

        Why chunks: encoding 32,000 rows in one go allocates several fresh temporaries
        the size of the output, and touching their pages for the first time made it
        five times slower than 1,024-row chunks whose temporaries stay in the cache.
        """
        out = torch.empty(len(X), self.out_features, dtype=dtype, device=X.device)
        for start in range(0, len(X), _ENCODE_CHUNK):
            out[start : start + _ENCODE_CHUNK] = self(X[start : start + _ENCODE_CHUNK])
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.index_select(1, self.numeric)
        if self.scaling == "robust":
            z = _smooth_clip((z - self.center) / self.scale)
        parts = [z]
        if self.embedding == "piecewise_linear" and self.embedding_dim:
            parts.append(self._embed(z))
        elif self.embedding == "piecewise_linear":
            t = (z.index_select(1, self.bin_feature) - self.bin_left) / self.bin_width
            parts.append(torch.clamp(t, min=self.bin_low, max=self.bin_high))
        return torch.cat([*parts, x.index_select(1, self.other)], dim=1)

    def _embed(self, z: torch.Tensor) -> torch.Tensor:
        """ReLU(linear map of each input's bins and value), computed from its one partly filled bin.

        Why sparse: sum_b w_b * bin_b(z) = (w_0 + ... + w_{k-1}) + t * w_k for the bin k
        that holds z, with t its fraction of that bin (negative below the first edge,
        above 1 past the last), so a row needs two gathered rows per input.
        """
        n_rows, n_inputs = z.shape
        k = (z.unsqueeze(2) >= self.inner_edges).sum(dim=2)  # the bin of each value
        flat = k + self.bin_offset  # its row in the flat bin tables
        t = (z - self.bin_left.take(flat)) / self.bin_width.take(flat)
        w = self.embed_bins
        below = torch.cumsum(w, dim=0) - w  # the sum of the earlier rows...
        below = below - below.index_select(0, self.bin_offset).index_select(0, self.bin_feature)  # ...of its input
        d = self.embedding_dim
        rows = torch.cat([below, w], dim=1).index_select(0, flat.reshape(-1)).view(n_rows, n_inputs, 2 * d)
        out = rows[..., :d] + t.unsqueeze(2) * rows[..., d:] + z.unsqueeze(2) * self.embed_value + self.embed_bias
        return torch.relu(out).flatten(1)
