"""Plot helpers of the notebooks' exploratory figures (one style, set in notebook.setup); the paper's figures are
in `figures`."""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Iterable, Sequence

import matplotlib.pyplot as plt
from PIL import Image


def gallery(items: Sequence[dict], ncols: int = 4, width: int = 40, max_lines: int = 8, title: str | None = None):
    """A grid of images with captions under them. items: {"image": path, "captions": {label: text}}.

    Each row of images gets a text band below it as tall as its longest caption block, so text never runs
    into the next row's titles."""
    nrows = max(1, -(-len(items) // ncols))
    texts = []
    for item in items:
        lines = []
        for label, text in item.get("captions", {}).items():
            wrapped = textwrap.wrap(f"{label}: {text}", width)
            lines += wrapped[:max_lines] + (["…"] if len(wrapped) > max_lines else [])
        texts.append("\n".join(lines))
    line_inches = 0.14
    bands = [line_inches * max([t.count("\n") + 1 for t in texts[r * ncols:(r + 1) * ncols]] or [1]) + 0.1
             for r in range(nrows)]
    ratios = [h for band in bands for h in (4.0, band)]
    fig = plt.figure(figsize=(4 * ncols, sum(ratios) + 0.3 * nrows + (0.4 if title else 0)))
    grid = fig.add_gridspec(2 * nrows, ncols, height_ratios=ratios)
    for i, (item, text) in enumerate(zip(items, texts)):
        r, c = divmod(i, ncols)
        image_ax, text_ax = fig.add_subplot(grid[2 * r, c]), fig.add_subplot(grid[2 * r + 1, c])
        for ax in (image_ax, text_ax):
            ax.axis("off")
        if item.get("image") and Path(item["image"]).is_file():
            with Image.open(item["image"]) as im:
                image_ax.imshow(im.convert("RGB"))
        image_ax.set_title(item.get("title", ""), fontsize=9)
        text_ax.text(0, 1, text, transform=text_ax.transAxes, va="top", fontsize=7.5)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 0.98) if title else None)
    return fig


def length_histogram(lengths: dict[str, Iterable[int]], unit: str = "words", bins: int = 40, ax=None):
    """Overlaid histograms of caption lengths, one per label."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    for label, values in lengths.items():
        ax.hist(list(values), bins=bins, alpha=0.55, label=label)
    ax.set_xlabel(f"caption length ({unit})")
    ax.set_ylabel("artworks")
    ax.legend()
    return ax


# notebook 03's histograms: the F-scores and single-number metrics of both backends
PER_IMAGE_METRICS = ["rouge1_f", "rouge2_f", "rougeL_f", "bleu4", "meteor", "bertscore_f", "coco_bleu4", "coco_meteor",
                    "coco_rougeL", "coco_cider", "coco_spice"]


def metric_histograms(per_image, control=None, metrics=PER_IMAGE_METRICS, ncols: int = 4):
    """Per-image histograms of the F-scores and single-number metrics, with the shuffled control overlaid."""
    metrics = [c for c in metrics if c in per_image.columns]
    nrows = -(-len(metrics) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 2.5 * nrows), squeeze=False)
    for ax in axes.flat[len(metrics):]:
        ax.axis("off")
    for ax, column in zip(axes.flat, metrics):
        values = per_image[column].dropna()
        ax.hist(values, bins=30, alpha=0.6, label="caption vs its image's human caption")
        if control is not None:
            ax.hist(control[column].dropna(), bins=30, alpha=0.5, label="shuffled (another image's)")
        ax.axvline(values.mean(), color="k", lw=1)
        ax.set_title(column, fontsize=10)
    axes.flat[0].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def save(fig, out_dir: str | Path, name: str, formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.{fmt}" for fmt in formats]
    for path in paths:
        # "tight": a suptitle or figure legend wider than the panels (one narrow column) is kept, not cut off
        fig.savefig(path, bbox_inches="tight", pad_inches=0.1)
    return paths
