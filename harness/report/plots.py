"""The report's figures: matplotlib (Agg) drawn straight into inline SVG text.

Why inline SVG: report.html must be one file that opens offline, scales on any screen and
keeps its text searchable. Each figure gets its own SVG id salt (no clashing ids when many
SVGs share one page) and no metadata or date, so rebuilding a report from the same store
gives the same bytes. Dense point clouds are rasterised inside the SVG to keep it small.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from itertools import count

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

_COUNTER = count()
_PALETTE = plt.get_cmap("tab10").colors
_MAX_FEATURES = 15  # bars/beeswarm rows shown per model: the tail says little and costs space
_RASTER_POINTS = 400  # above this many points a scatter is rasterised inside the SVG


def reset_ids() -> None:
    """Restart figure numbering: the same report rebuilt gives the same SVG ids."""
    global _COUNTER
    _COUNTER = count()


def to_svg(fig: Figure) -> str:
    """The figure as an `<svg>` element (no XML prolog, no metadata, text kept as text)."""
    salt = f"f{next(_COUNTER)}"
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None})
    plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
    # ids are content hashes salted per figure: prefix them so two figures never share one
    return text.replace('id="', f'id="{salt}-').replace("url(#", f"url(#{salt}-").replace('href="#', f'href="#{salt}-')


def _figure(width: float, height: float) -> tuple[Figure, plt.Axes]:
    fig, ax = plt.subplots(figsize=(width, height), layout="constrained")
    return fig, ax


def color(i: int) -> tuple[float, float, float]:
    return _PALETTE[i % len(_PALETTE)]


# ---------------------------------------------------------------- scores


def fold_scores(scores: dict[str, np.ndarray], metric: str, greater: bool) -> str:
    """Box plot of each model's fold scores with the folds themselves as points (best model on top)."""
    names = list(scores)
    fig, ax = _figure(7.0, 0.45 * len(names) + 1.2)
    data = [np.asarray(scores[n], dtype=float) for n in names]
    positions = np.arange(len(names))[::-1]
    kept = [(d[np.isfinite(d)], p) for d, p in zip(data, positions, strict=True)]
    boxes = [(d, p) for d, p in kept if d.size]
    if boxes:
        ax.boxplot(
            [d for d, _ in boxes],
            positions=[p for _, p in boxes],
            orientation="horizontal",
            widths=0.5,
            showfliers=False,
        )
    rng = np.random.default_rng(0)
    total = sum(d.size for d, _ in kept)
    for i, (d, p) in enumerate(kept):
        jitter = rng.uniform(-0.12, 0.12, size=d.size)
        ax.scatter(d, p + jitter, s=14, color=color(i), alpha=0.8, zorder=3, rasterized=total > _RASTER_POINTS)
    ax.set_yticks(positions, names)
    ax.set_xlabel(f"{metric} per fold ({'higher' if greater else 'lower'} is better)")
    ax.grid(axis="x", alpha=0.3)
    return to_svg(fig)


def pareto(points: pd.DataFrame, front: list[str], metric: str, greater: bool) -> str:
    """Mean score against mean fit time per fold (log scale), the Pareto front (`front`) joined by a line."""
    fig, ax = _figure(6.5, 4.0)
    clean = points.dropna(subset=["score", "fit_time"])
    for i, rec in enumerate(clean.to_dict("records")):
        on_front = rec["model"] in front
        ax.scatter(
            max(rec["fit_time"], 1e-6),
            rec["score"],
            s=60 if on_front else 30,
            color=color(i),
            edgecolor="black" if on_front else "none",
            zorder=3,
        )
        ax.annotate(rec["model"], (max(rec["fit_time"], 1e-6), rec["score"]), fontsize=8, xytext=(4, 4),
                    textcoords="offset points")  # fmt: skip
    line = clean.set_index("model").loc[front].sort_values("fit_time")
    ax.plot(line["fit_time"].clip(lower=1e-6), line["score"], color="grey", linestyle="--", zorder=2)
    ax.set_xscale("log")
    ax.set_xlabel("mean fit + tuning time per fold (s, log scale)")
    ax.set_ylabel(f"mean {metric} ({'higher' if greater else 'lower'} is better)")
    ax.grid(alpha=0.3)
    return to_svg(fig)


def cd_diagram(ranks: pd.Series, pvalues: pd.DataFrame, cd: float | None, alpha: float) -> str:
    """Critical-difference diagram (scikit-posthocs): bars join models the Wilcoxon–Holm tests could not separate."""
    import scikit_posthocs as sp

    fig, ax = _figure(7.0, 0.3 * len(ranks) + 1.6)
    finite_cd = cd if cd is not None and math.isfinite(cd) else None
    sp.critical_difference_diagram(ranks, pvalues, ax=ax, alpha=alpha, cd=finite_cd)
    return to_svg(fig)


# ---------------------------------------------------------------- SHAP


def shap_bars(importances: dict[str, pd.DataFrame], spaces: dict[str, str], per_row: int = 4) -> str:
    """Mean |SHAP| per original feature for each model, error bars = std across folds (top features).

    One panel per model, `per_row` panels to a row, so many models stay readable.
    """
    names = list(importances)
    shown = {n: importances[n].head(_MAX_FEATURES) for n in names}
    ncols = min(per_row, len(names))
    nrows = math.ceil(len(names) / ncols)
    height = max(2.0, 0.22 * max(len(t) for t in shown.values()) + 1.0)
    fig, axes = plt.subplots(nrows, ncols, figsize=(max(4.0, 3.3 * ncols), height * nrows), layout="constrained",
                             squeeze=False)  # fmt: skip
    flat = axes.ravel()
    for i, name in enumerate(names):
        ax, table = flat[i], shown[name].iloc[::-1]
        err = table["std"].fillna(0.0).to_numpy()
        ax.barh(np.arange(len(table)), table["mean"].to_numpy(), xerr=err, color=color(i), alpha=0.85,
                error_kw={"elinewidth": 0.8, "capsize": 2})  # fmt: skip
        ax.set_yticks(np.arange(len(table)), [str(f) for f in table.index], fontsize=7)
        ax.set_title(f"{name}\n({spaces.get(name, '?')})", fontsize=9)
        ax.set_xlabel("mean |SHAP|", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
    for ax in flat[len(names) :]:
        ax.set_visible(False)
    return to_svg(fig)


def heatmap(matrix: pd.DataFrame, label: str, vmin: float = -1.0, vmax: float = 1.0) -> str:
    """A labelled square matrix (e.g. Kendall τ between models), values printed in the cells."""
    n = len(matrix)
    fig, ax = _figure(1.0 + 0.8 * n, 0.8 + 0.7 * n)
    values = matrix.to_numpy(dtype=float)
    image = ax.imshow(values, cmap="RdBu", vmin=vmin, vmax=vmax)
    ax.set_xticks(range(n), [str(c) for c in matrix.columns], rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), [str(i) for i in matrix.index], fontsize=8)
    for i in range(n):
        for j in range(n):
            v = values[i, j]
            ax.text(j, i, "—" if not math.isfinite(v) else f"{v:.2f}", ha="center", va="center", fontsize=7)
    fig.colorbar(image, ax=ax, label=label, shrink=0.8)
    return to_svg(fig)


def beeswarm(values: np.ndarray, data: np.ndarray, features: Sequence[str], xlabel: str) -> str:
    """SHAP value per row for the top features, coloured by the feature's value (low blue, high red; NaN grey).

    `values` and `data` are rows × features; features are ordered by mean |SHAP|, largest on top.
    """
    order = np.argsort(-np.nanmean(np.abs(values), axis=0), kind="stable")[:_MAX_FEATURES]
    fig, ax = _figure(7.0, 0.35 * len(order) + 1.2)
    rng = np.random.default_rng(0)
    raster = values.shape[0] * len(order) > _RASTER_POINTS
    for pos, j in enumerate(order[::-1]):
        x, raw = values[:, j], data[:, j]
        finite = np.isfinite(raw)
        shade = np.full(raw.shape, 0.5)
        if finite.sum() > 1:
            ranks = pd.Series(raw[finite]).rank(pct=True).to_numpy()
            shade[finite] = ranks
        y = pos + _swarm_offsets(x, rng)
        colors = plt.get_cmap("coolwarm")(shade)
        colors[~finite] = (0.6, 0.6, 0.6, 1.0)
        ax.scatter(x, y, s=9, c=colors, rasterized=raster, zorder=3)
    ax.axvline(0.0, color="grey", linewidth=0.8)
    ax.set_yticks(range(len(order)), [str(features[j]) for j in order[::-1]], fontsize=8)
    ax.set_xlabel(xlabel)
    sm = plt.cm.ScalarMappable(cmap="coolwarm", norm=plt.Normalize(0, 1))
    bar = fig.colorbar(sm, ax=ax, ticks=[0, 1], shrink=0.8)
    bar.ax.set_yticklabels(["low", "high"])
    bar.set_label("feature value (rank within feature)")
    return to_svg(fig)


def _swarm_offsets(x: np.ndarray, rng: np.random.Generator, width: float = 0.35) -> np.ndarray:
    """Vertical spread proportional to local density (a cheap beeswarm)."""
    if x.size < 2 or not np.isfinite(x).any():
        return np.zeros(x.size)
    span = np.nanmax(x) - np.nanmin(x) or 1.0
    bins = np.clip(((x - np.nanmin(x)) / span * 40).astype(int), 0, 40)
    density = np.bincount(bins, minlength=41)[bins] / max(1, np.bincount(bins).max())
    return rng.uniform(-1, 1, size=x.size) * width * density


# ---------------------------------------------------------------- tuning, learning curves, robustness


def tuning_history(histories: dict[str, list[dict]], metric: str, greater: bool) -> str:
    """Each fold's trial values by trial number, with the running best as a step line."""
    fig, ax = _figure(6.5, 3.6)
    for i, (label, history) in enumerate(histories.items()):
        done = [h for h in history if h.get("value") is not None and str(h.get("state", "")).upper() == "COMPLETE"]
        if not done:
            continue
        numbers = np.array([h["number"] for h in done], dtype=float)
        values = np.array([h["value"] for h in done], dtype=float)
        order = np.argsort(numbers)
        numbers, values = numbers[order], values[order]
        running = np.maximum.accumulate(values) if greater else np.minimum.accumulate(values)
        ax.scatter(numbers, values, s=14, color=color(i), alpha=0.6)
        ax.step(numbers, running, where="post", color=color(i), label=label)
    ax.set_xlabel("trial")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylabel(f"inner-CV {metric} ({'higher' if greater else 'lower'} is better)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, title="running best", title_fontsize=7)
    return to_svg(fig)


def importances_bar(table: pd.DataFrame, xlabel: str) -> str:
    """Horizontal bars of a `mean`/`std` table (e.g. Optuna parameter importances across folds)."""
    table = table.iloc[::-1]
    fig, ax = _figure(5.5, 0.3 * len(table) + 1.0)
    ax.barh(np.arange(len(table)), table["mean"].to_numpy(), xerr=table["std"].fillna(0.0).to_numpy(),
            color=color(0), error_kw={"elinewidth": 0.8, "capsize": 2})  # fmt: skip
    ax.set_yticks(np.arange(len(table)), [str(i) for i in table.index], fontsize=8)
    ax.set_xlabel(xlabel)
    return to_svg(fig)


def learning_curves(histories: dict[str, list[dict]]) -> str:
    """Training (solid) and validation (dashed) loss per epoch, one colour per fold."""
    fig, ax = _figure(6.5, 3.6)
    for i, (label, history) in enumerate(histories.items()):
        epochs = [h.get("epoch", k + 1) for k, h in enumerate(history)]
        for key, style in (("train_loss", "-"), ("valid_loss", "--")):
            ys = [h.get(key) for h in history]
            if any(y is not None for y in ys):
                ys = [np.nan if y is None else float(y) for y in ys]
                ax.plot(epochs, ys, style, color=color(i), label=f"{label} {key.split('_')[0]}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return to_svg(fig)


def robustness(curves: dict[str, pd.Series], metric: str, greater: bool) -> str:
    """Mean score over folds against the noise level (0 = the clean test rows), one line per model."""
    fig, ax = _figure(6.5, 3.6)
    for i, (model, curve) in enumerate(curves.items()):
        ax.plot(curve.index.to_numpy(dtype=float), curve.to_numpy(dtype=float), marker="o", color=color(i),
                label=model)  # fmt: skip
    ax.set_xlabel("noise level (× training standard deviation; share of categories swapped)")
    ax.set_ylabel(f"mean {metric} ({'higher' if greater else 'lower'} is better)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return to_svg(fig)
