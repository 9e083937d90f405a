"""Plot helpers shared by the notebooks (one style, set in notebook.setup)."""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Iterable, Sequence

import matplotlib.pyplot as plt
from PIL import Image


def gallery(items: Sequence[dict], ncols: int = 4, width: int = 40, max_lines: int = 8, title: str | None = None):
    """A grid of images with captions under them. items: {"image": path, "captions": {label: text}}."""
    nrows = max(1, -(-len(items) // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, 5.2 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, item in zip(axes.flat, items):
        if item.get("image") and Path(item["image"]).is_file():
            with Image.open(item["image"]) as im:
                ax.imshow(im.convert("RGB"))
        lines = []
        for label, text in item.get("captions", {}).items():
            wrapped = textwrap.wrap(f"{label}: {text}", width)
            lines += wrapped[:max_lines] + (["…"] if len(wrapped) > max_lines else [])
        ax.set_title(item.get("title", ""), fontsize=9)
        ax.text(0, -0.04, "\n".join(lines), transform=ax.transAxes, va="top", fontsize=7.5)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
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


def save(fig, out_dir: str | Path, name: str, formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.{fmt}" for fmt in formats]
    for path in paths:
        fig.savefig(path)
    return paths
