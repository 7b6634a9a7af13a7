"""Figures that teach: a synthetic set as a grid (one row per class), curves, accuracy-vs-IPC charts.

Everything returns a matplotlib ``Figure``; notebooks display PNG only (nbval compares SVG text).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure


def to_pixels(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Undo the dataset normalisation and clip to [0, 1] for display (N×C×H×W)."""
    mean_t = torch.tensor(mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    return (images.detach() * std_t + mean_t).clamp(0, 1).cpu()


def show_grid(
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    class_names: Sequence[str] | None = None,
    mean: Sequence[float] = (0.0,),
    std: Sequence[float] = (1.0,),
    max_per_class: int = 10,
    title: str | None = None,
    cell: float = 0.9,
) -> Figure:
    """One row per class, up to ``max_per_class`` images each, class names on the left."""
    pixels = to_pixels(images, mean, std)
    labels = labels.detach().cpu()
    if labels.dim() == 2:  # soft labels: show by their most likely class
        labels = labels.argmax(1)
    classes = sorted(set(labels.tolist()))
    cols = max(1, min(max_per_class, max(int((labels == c).sum()) for c in classes)))
    fig, axes = plt.subplots(len(classes), cols, figsize=(cols * cell + 1.2, len(classes) * cell), squeeze=False)
    for r, c in enumerate(classes):
        members = pixels[labels == c][:cols]
        for j in range(cols):
            ax = axes[r, j]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if j < len(members):
                img = members[j].permute(1, 2, 0).squeeze(-1)
                ax.imshow(img.numpy(), cmap="gray" if img.dim() == 2 else None, vmin=0, vmax=1)
        name = class_names[c] if class_names is not None else str(c)
        axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def show_sets(
    sets: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
    *,
    class_names: Sequence[str],
    mean: Sequence[float] = (0.0,),
    std: Sequence[float] = (1.0,),
    per_class: int = 10,
    pad: int = 2,
) -> Figure:
    """Several sets side by side, one panel each: a row per class (named on the axis), ``per_class`` images per row.

    ``sets`` maps a panel title to ``(images, labels)`` on any device. Each panel is ONE image (the tiles pasted
    into an array), so the class names stay readable however many images there are.
    """
    k = len(class_names)
    fig, axes = plt.subplots(1, len(sets), figsize=(4.4 * len(sets), 0.42 * k + 0.9), squeeze=False)
    for ax, (title, (images, labels)) in zip(axes[0], sets.items()):
        pixels, labels = to_pixels(images, mean, std), labels.detach().cpu()
        c, h, w = pixels.shape[1:]
        canvas = torch.ones(k * (h + pad), per_class * (w + pad), 3)
        for cls in range(k):
            for j, tile in enumerate(pixels[labels == cls][:per_class]):
                top, left = cls * (h + pad), j * (w + pad)
                canvas[top : top + h, left : left + w] = tile.permute(1, 2, 0).expand(h, w, 3)
        ax.imshow(canvas.numpy(), interpolation="nearest")
        ax.set_yticks([cls * (h + pad) + h / 2 for cls in range(k)], list(class_names))
        ax.set_xticks([])
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_curves(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    xlabel: str = "step",
    ylabel: str = "",
    title: str | None = None,
    logy: bool = False,
) -> Figure:
    """Line plot of named (x, y) curves (sequences or tensors on any device)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, (x, y) in curves.items():
        ax.plot(_values(x), _values(y), label=name)
    if logy:
        ax.set_yscale("log")
    return _finish(fig, ax, xlabel, ylabel, title)


def plot_accuracy_vs_ipc(
    table: Mapping[str, Mapping[int, tuple[float, float]]],
    *,
    title: str | None = None,
    reference: Mapping[str, float] | None = None,
) -> Figure:
    """Accuracy (mean ± std) against images per class, one line per method; optional horizontal references."""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for method, by_ipc in table.items():
        ipcs = sorted(by_ipc)
        means = _values([by_ipc[i][0] for i in ipcs])
        stds = _values([by_ipc[i][1] or 0.0 for i in ipcs])  # None: a single network, no spread
        ax.errorbar(ipcs, means, yerr=stds, marker="o", capsize=3, label=method)
    ax.set_xscale("log")
    all_ipcs = sorted({i for by_ipc in table.values() for i in by_ipc})
    ax.set_xticks(all_ipcs, [str(i) for i in all_ipcs])  # the IPCs that were run, not powers of ten
    ax.minorticks_off()
    for name, value in (reference or {}).items():
        ax.axhline(value, ls="--", color="gray")
        # x in axes fraction, y in data: the label stays inside the axes whatever the x scale
        ax.annotate(name, (0, value), xycoords=ax.get_yaxis_transform(), textcoords="offset points", xytext=(4, 3))
    return _finish(fig, ax, "images per class (log scale)", "test accuracy (%)", title)


def _values(seq) -> list[float]:
    """Plain floats from a sequence, a tensor on any device, or a sequence of 0-d tensors."""
    if isinstance(seq, torch.Tensor):
        return seq.detach().cpu().tolist()
    return [float(v.detach().cpu()) if isinstance(v, torch.Tensor) else v for v in seq]


def _finish(fig: Figure, ax, xlabel: str, ylabel: str, title: str | None) -> Figure:
    """Labels, title, light grid, legend: the common ending of every line plot."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_heatmap(
    values,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    *,
    xlabel: str = "trained on",
    ylabel: str | None = None,
    title: str = "test accuracy (%)",
    fmt: str = "{:.0f}",
    cmap: str = "viridis",
) -> Figure:
    """A rows × columns grid of numbers (a tensor on any device or nested sequences) as coloured cells, each cell
    labelled with its value (``fmt``), e.g. the cross-architecture table: sets (rows) trained on architectures."""
    grid = torch.as_tensor(
        values.detach().cpu() if isinstance(values, torch.Tensor) else [_values(r) for r in values],
        dtype=torch.float64,
    )
    if grid.dim() != 2 or grid.shape != (len(row_labels), len(col_labels)):
        raise ValueError(
            f"values of shape {tuple(grid.shape)} do not match "
            f"{len(row_labels)} row and {len(col_labels)} column labels"
        )
    fig, ax = plt.subplots(figsize=(1.3 * len(col_labels) + 3, 0.45 * len(row_labels) + 1.4))
    im = ax.imshow(grid.numpy(), cmap=cmap, aspect="auto")
    ax.set_xticks(range(len(col_labels)), list(col_labels))
    ax.set_yticks(range(len(row_labels)), list(row_labels))
    middle = (grid.max() + grid.min()) / 2
    for r in range(grid.shape[0]):
        for c in range(grid.shape[1]):
            value = float(grid[r, c])
            ax.text(c, r, fmt.format(value), ha="center", va="center", fontsize=8, color="w" if value < middle else "k")
    ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    return fig


def plot_accuracy_vs_time(
    points: Mapping[str, Mapping[int, tuple[float, float]]],
    *,
    baseline: str | None = "random",
    title: str | None = None,
    xlabel: str = "seconds to make the set (log scale)",
) -> Figure:
    """Accuracy against the time a set took (``{method: {ipc: (seconds, accuracy)}}``, numbers or 0-d tensors on any
    device): one panel per IPC, one labelled point per method, a log time axis. The ``baseline`` method (a random
    subset, which takes no time to draw) is a horizontal line in each panel, not a point at an invented time."""
    ipcs = sorted({ipc for by_ipc in points.values() for ipc in by_ipc})
    if not ipcs:
        raise ValueError("no points to plot: points maps no method to any IPC")
    fig, axes = plt.subplots(1, len(ipcs), figsize=(4.2 * len(ipcs) + 0.6, 3.8), squeeze=False, sharey=True)
    for ax, ipc in zip(axes[0], ipcs):
        named = {m: by_ipc[ipc] for m, by_ipc in points.items() if ipc in by_ipc and m != baseline}
        secs = _values([s for s, _ in named.values()])
        accs = _values([a for _, a in named.values()])
        ax.scatter(secs, accs, s=18, zorder=3)
        for method, x, y in zip(named, secs, accs):
            ax.annotate(method, (x, y), textcoords="offset points", xytext=(4, 2), fontsize=7)
        if baseline in points and ipc in points[baseline]:
            (acc,) = _values([points[baseline][ipc][1]])
            ax.axhline(acc, color="gray", ls="--", lw=1, label=f"{baseline} subset (no distillation time)")
            ax.legend(fontsize=7, loc="lower right")
        ax.set_xscale("log")
        ax.set_title(f"IPC {ipc}", fontsize=10)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("test accuracy (%)")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
