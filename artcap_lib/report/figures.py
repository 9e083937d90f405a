"""The paper's figures (notebook 06), one function per figure, each returning a matplotlib Figure.

The functions take plain data (DataFrames, the retrieval results schema of `runs`, training histories), not a
run directory, so they can be reused on any results; `report.make_figures` feeds them from a run. One style for
all: seaborn's theme from `notebook.setup`, and one colour per caption source everywhere (`SOURCE_COLOURS`), so
"human" is the same blue in the length histogram, the retrieval bars and the training curves.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

# caption source / retrieval variant -> colour (colour-blind palette, fixed so figures agree with each other)
SOURCE_COLOURS = {"human": "#0173b2", "synthetic": "#de8f05", "baseline": "#949494", "control": "#cc78bc",
                  "rrf_human_synthetic": "#029e73"}
VARIANT_LABELS = {"baseline": "baseline", "human": "human-ft", "synthetic": "synthetic-ft",
                  "rrf_human_synthetic": "RRF(human, synthetic)"}
def _model_labels() -> dict[str, str]:
    from artcap_lib.retrieval import registry
    return {name: entry.title for name, entry in registry.MODELS.items()}


MODEL_LABELS = _model_labels()                    # registry name -> title (BLIP, Long-CLIP, CLIP, ...)
# further captioners' variants (synthetic-<name>) and captioners take these in order of appearance
EXTRA_COLOURS = ("#d55e00", "#56b4e9", "#ece133", "#fbafe4", "#ca9161", "#029e73")
QUERY_SET_LABELS = {"artpedia": "Artpedia queries", "human": "human-caption queries", "llama": "Llama queries"}
METRIC_LABELS = {"precision@1": "P@1", "recall@1": "R@1", "recall@5": "R@5", "recall@10": "R@10", "mrr": "MRR"}


def label(name: str, table: Mapping[str, str]) -> str:
    if table is VARIANT_LABELS and name not in table and name.startswith("synthetic-"):
        return f"{name.removeprefix('synthetic-')}-ft"        # a further captioner's fine-tune
    return table.get(name, name)


def colour(name: str, order: Sequence[str] = ()) -> str | None:
    """A caption source's / variant's colour: the fixed one, else the n-th extra colour by its place in `order`."""
    if name in SOURCE_COLOURS:
        return SOURCE_COLOURS[name]
    extras = [n for n in order if n not in SOURCE_COLOURS]
    return EXTRA_COLOURS[extras.index(name) % len(EXTRA_COLOURS)] if name in extras else None


def metric_distributions(per_image: pd.DataFrame, columns: Mapping[str, str], control: pd.DataFrame | None = None,
                         synthetic_label: str = "synthetic"):
    """Per-image scores of the synthetic caption against the human one (one panel per metric), beside the same
    metric on shuffled pairs (a synthetic caption scored against another artwork's human caption): the gap
    between the two is what the metric says about caption quality beyond "both describe a painting".

    columns: {column of per_image: label}; control: same index and columns, shuffled pairs."""
    names = [c for c in columns if c in per_image.columns]
    if not names:
        raise ValueError(f"none of the metric columns {list(columns)} is in the per-image table "
                         f"(it has {list(per_image.columns)})")
    ncols = min(4, len(names))
    nrows = -(-len(names) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 2.9 * nrows), squeeze=False)
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    for ax, column in zip(axes.flat, names):
        values = per_image[column].dropna().to_numpy(float)
        bins = np.histogram_bin_edges(np.concatenate([values] + ([control[column].dropna().to_numpy(float)]
                                                                 if control is not None else [])), bins=30)
        ax.hist(values, bins=bins, alpha=0.6, color=SOURCE_COLOURS["synthetic"], histtype="stepfilled",
                label=f"{synthetic_label} vs human (mean {values.mean():.3f})")
        if control is not None and column in control.columns:
            shuffled = control[column].dropna().to_numpy(float)
            ax.hist(shuffled, bins=bins, alpha=0.45, color=SOURCE_COLOURS["control"], histtype="stepfilled",
                    label=f"shuffled pairs (mean {shuffled.mean():.3f})")
        ax.axvline(values.mean(), color=SOURCE_COLOURS["synthetic"], lw=1.5)
        ax.set_title(columns[column], fontsize=10)
        ax.set_ylabel("artworks")
        ax.legend(fontsize=7)
    fig.suptitle("Experiment 1: per-image similarity of synthetic and human captions", fontsize=11)
    fig.tight_layout()
    return fig


def caption_lengths(lengths: Mapping[str, Sequence[int]], unit: str = "words"):
    """Overlaid histograms of caption lengths per source, with each source's median marked."""
    fig, ax = plt.subplots(figsize=(7, 3.4))
    top = max((max(v) for v in lengths.values() if len(v)), default=1)
    bins = np.linspace(0, top, 41)
    for name, values in lengths.items():
        values = np.asarray(values)
        colour = SOURCE_COLOURS.get(name)
        ax.hist(values, bins=bins, alpha=0.55, color=colour, histtype="stepfilled",
                label=f"{name} (median {np.median(values):.0f})")
        ax.axvline(np.median(values), color=colour, lw=1.2, ls="--")
    ax.set(xlabel=f"caption length ({unit})", ylabel="artworks", title="Caption lengths")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def retrieval_bars(results: Mapping[str, Mapping[str, Any]], metrics: Sequence[str] = ("precision@1", "recall@5",
                   "recall@10", "mrr"), authors: Mapping[tuple, float] | None = None):
    """Experiment 2 as bars: one panel per (model, query set), metrics on x, one bar per variant with its 95%
    bootstrap interval; black diamonds mark the authors' stored values where given.

    results: {model: results.json of `runs` (schema artcap.retrieval.results/1)};
    authors: {(model, query_set, variant, metric): value}."""
    panels = [(model, qs) for model, res in results.items() for qs in res["query_sets"]]
    if not panels:
        raise ValueError("no retrieval results to plot")
    ncols = max(len(res["query_sets"]) for res in results.values())
    nrows = len(results)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.3 * nrows), squeeze=False, sharey=True)
    for ax in axes.flat:
        ax.axis("off")
    for row, (model, res) in enumerate(results.items()):
        for col, (query_set, block) in enumerate(res["query_sets"].items()):
            ax = axes[row][col]
            ax.axis("on")
            variants = list(block["variants"])
            width = 0.8 / len(variants)
            x = np.arange(len(metrics))
            for i, variant in enumerate(variants):
                entry = block["variants"][variant]
                means = np.array([entry["metrics"][m] for m in metrics])
                cis = np.array([entry.get("ci95", {}).get(m, [v, v]) for m, v in zip(metrics, means)])
                errors = np.abs(cis.T - means)
                pos = x - 0.4 + width * (i + 0.5)
                ax.bar(pos, means, width, yerr=errors, capsize=2, color=colour(variant, variants),
                       label=label(variant, VARIANT_LABELS), error_kw={"lw": 0.8})
                stored = [(p, authors.get((model, query_set, variant, m))) for p, m in zip(pos, metrics)] \
                    if authors else []
                stored = [(p, v) for p, v in stored if v is not None]
                if stored:
                    ax.scatter(*zip(*stored), marker="D", s=14, color="black", zorder=3,
                               label="authors' stored value" if i == 0 else None)
            ax.set_xticks(x, [label(m, METRIC_LABELS) for m in metrics])
            ax.set_ylim(0, 1.05)
            ax.set_title(f"{label(model, MODEL_LABELS)} · {label(query_set, QUERY_SET_LABELS)} "
                         f"({block.get('n_queries', '?')} queries)", fontsize=10)
    handles = {}                      # one legend entry per label, across the panels
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=len(handles), fontsize=8,
               bbox_to_anchor=(0.5, -0.02))
    title = "Experiment 2: text-to-image retrieval on the test split (95% bootstrap CIs)"
    fig.suptitle(title if ncols > 1 else title.replace(" (", "\n("), fontsize=11)     # one panel wide: two lines
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


RUN_COLOURS = {"pocket pre-training": SOURCE_COLOURS["baseline"]}    # the pre-training that makes the baseline
_PART_STYLES = ("-", "--", ":", "-.")


def training_curves(histories: Mapping[str, Mapping[str, Mapping[str, Any]]]):
    """One row per model, one colour per run (fine-tuned variant, or the demo's pocket pre-training): the training
    loss (per step faint, epoch means as dots); its parts where the loss has several (BLIP: ITC and ITM; Long-CLIP:
    image->text and text->image), one line style each; the validation value the shared loop kept the best epoch by
    (`monitor`, circled at the kept epoch; epoch 0 = before training); and the learning rate per step.

    histories: {model: {run: history.json of `training.fit`}}."""
    models = [m for m in histories if histories[m]]
    if not models:
        raise ValueError("no training histories to plot")
    parts = {m: sorted({k for h in histories[m].values() for s in h.get("steps", []) for k in s
                        if k.startswith("loss_")}) for m in models}
    with_parts = any(parts.values())
    ncols = 4 if with_parts else 3
    fig, axes = plt.subplots(len(models), ncols, figsize=(4.6 * ncols, 3.3 * len(models)), squeeze=False)
    for row, model in zip(axes, models):
        loss_ax, val_ax, lr_ax = row[0], row[-2], row[-1]
        parts_ax = row[1] if with_parts else None
        monitors = set()
        for run, history in histories[model].items():
            tint = RUN_COLOURS.get(run) or colour(run, list(histories[model]))
            name = label(run, VARIANT_LABELS)
            per_epoch = history.get("steps_per_epoch") or 1
            steps = history.get("steps", [])
            x = [s["step"] / per_epoch for s in steps]
            if steps:
                line, = loss_ax.plot(x, [s["loss"] for s in steps], color=tint, alpha=0.3, lw=0.8)
                tint = line.get_color()
                lr_ax.plot(x, [s["lr"] for s in steps], color=tint, label=name)
            epochs = [e for e in history.get("epochs", []) if "train_loss" in e]
            loss_ax.plot([e["epoch"] for e in epochs], [e["train_loss"] for e in epochs], "o-", color=tint,
                         label=name)
            if parts_ax is not None:
                for style, part in zip(_PART_STYLES * 4, parts[model]):
                    values = [(xi, s[part]) for xi, s in zip(x, steps) if part in s]
                    if values:
                        parts_ax.plot(*zip(*values), style, color=tint, lw=1,
                                      label=f"{name}: {part.removeprefix('loss_')}")
            monitor = history.get("monitor", "val_loss")
            monitors.add(monitor)
            val = [e for e in history.get("epochs", []) if monitor in e]
            val_ax.plot([e["epoch"] for e in val], [e[monitor] for e in val], "o-", color=tint, label=name)
            kept = [e for e in val if e["epoch"] == history.get("best_epoch")]
            if kept:
                val_ax.scatter([kept[0]["epoch"]], [kept[0][monitor]], s=140, facecolors="none",
                               edgecolors=tint, lw=1.5)
        title = label(model, MODEL_LABELS)
        loss_ax.set(title=f"{title}: training loss", xlabel="epoch", ylabel="loss")
        if parts_ax is not None:
            parts_ax.set(title=f"{title}: loss parts" if parts[model] else f"{title}: one loss, no parts",
                         xlabel="epoch")
        val_ax.set(title=f"{title}: validation ({', '.join(sorted(monitors))}; circle = kept epoch)",
                   xlabel="epoch (0 = before training)")
        lr_ax.set(title=f"{title}: learning rate", xlabel="epoch")
        for ax in row:
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def retrieval_examples(examples: Sequence[Mapping[str, Any]], title: str = "", width: int = 90):
    """One row per query: the query text, then its top images (the relevant one framed in green).

    examples: `retrieval.displays.retrieval_examples`."""
    import textwrap

    from PIL import Image
    k = max(len(e["hits"]) for e in examples)
    fig, axes = plt.subplots(len(examples), k, figsize=(2.2 * k, 3.0 * len(examples)), squeeze=False)
    for row, example in zip(axes, examples):
        for rank, (ax, hit) in enumerate(zip(row, example["hits"]), start=1):
            with Image.open(hit["image"]) as im:
                ax.imshow(im.convert("RGB"))
            ax.set_xticks([]), ax.set_yticks([])
            colour = "green" if hit["relevant"] else "lightgrey"
            for spine in ax.spines.values():
                spine.set_edgecolor(colour), spine.set_linewidth(4 if hit["relevant"] else 1)
            ax.set_title(f"#{rank} {hit['id']} ({hit['score']:.2f})", fontsize=8)
        query = textwrap.shorten(example["query"], 3 * width)
        row[0].text(0, 1.25, "\n".join(textwrap.wrap(f"query {example['query_id']}: {query}", width)),
                    transform=row[0].transAxes, fontsize=8, va="bottom")
    if title:
        fig.suptitle(title)
    fig.subplots_adjust(hspace=0.9, wspace=0.08)    # room for the query text above each row
    return fig
