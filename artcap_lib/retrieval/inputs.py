"""Experiment 2's inputs and displays, the same for every retrieval model (notebooks 04 and 05).

Inputs: the images of a split, the two caption sources a model is fine-tuned on (human = the visual sentences
joined; synthetic = the captioner's JSONL), and the test query sets (artpedia = the human captions; llama = the
authors' Llama-3.2 queries, where the reference artefacts cover the test split, i.e. the paper profile).
Displays: training curves from the shared loop's history.json, the results table and the paired tests from
`runs.summarise_model`'s results.json, and retrieval examples (a query and its top images) from a run.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from artcap_lib.data.artpedia import human_caption, image_path


def image_files(artworks_json: str | Path, artworks: dict[str, dict], ids: Sequence[str]) -> list[Path]:
    """The image of each id, in order; an entry without a usable image is an error naming it."""
    files = []
    for art_id in ids:
        path = image_path(artworks_json, artworks[art_id])
        if path is None or not path.is_file():
            raise FileNotFoundError(f"{artworks_json}: entry {art_id}: field file_path "
                                    f"{'is missing' if path is None else f'points to a missing file {path}'}"
                                    " (run step 01 to fetch the images)")
        files.append(path)
    return files


def human_captions(artworks: dict[str, dict], ids: Sequence[str]) -> dict[str, str]:
    return {i: human_caption(artworks[i]) for i in ids}


def synthetic_captions(caption_file: str | Path, ids: Sequence[str]) -> dict[str, str]:
    """The captioner's caption of each id (caption_store JSONL); every id must have one."""
    from artcap_lib.captioning.store import read_captions
    caption_file = Path(caption_file)
    if not caption_file.is_file():
        raise FileNotFoundError(f"{caption_file}: no synthetic captions; run notebook 02 (captioning) first")
    captions = read_captions(caption_file)
    missing = [i for i in ids if i not in captions]
    if missing:
        raise ValueError(f"{caption_file}: {len(missing)} image(s) have no caption, e.g. {missing[:5]}; "
                         "finish captioning (notebook 02) first")
    return {i: captions[i] for i in ids}


def query_sets(names: Sequence[str], artworks: dict[str, dict], test_ids: Sequence[str]) -> dict[str, dict[str, str]]:
    """{query set: {test id: query}} for the configured names; "llama" only where the authors' queries cover
    every test id (the paper profile), otherwise left out (see `missing_query_sets`)."""
    out = {}
    for name in names:
        if name == "artpedia":
            out[name] = human_captions(artworks, test_ids)
        elif name == "llama":
            from artcap_lib import reference
            if not reference.is_available("captions/generated_queries.json"):
                continue
            queries = reference.llama_queries()
            if set(test_ids) <= set(queries):
                out[name] = {i: queries[i] for i in test_ids}
        else:
            raise ValueError(f"retrieval.query_sets: unknown query set {name!r} (known: artpedia, llama)")
    return out


# ---------------------------------------------------------------------------------------------------------------
# displays


def training_curves(histories: dict[str, dict[str, Any]]):
    """A figure: per fine-tune, training loss per step, training and validation loss per epoch, learning rate."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    for name, history in histories.items():
        steps = history["steps"]
        per_epoch = history["steps_per_epoch"]
        x = [s["step"] / per_epoch for s in steps]
        line, = axes[0].plot(x, [s["loss"] for s in steps], alpha=0.35, lw=1)
        epochs = [e for e in history["epochs"] if "train_loss" in e]
        axes[0].plot([e["epoch"] for e in epochs], [e["train_loss"] for e in epochs], "o-", color=line.get_color(),
                     label=f"{name} (train, epoch mean)")
        val = [e for e in history["epochs"] if "val_loss" in e]
        axes[1].plot([e["epoch"] for e in val], [e["val_loss"] for e in val], "o-", color=line.get_color(), label=name)
        if history.get("best_epoch") is not None:
            best = next(e for e in val if e["epoch"] == history["best_epoch"])
            axes[1].scatter([best["epoch"]], [best["val_loss"]], s=120, facecolors="none",
                            edgecolors=line.get_color())
        axes[2].plot(x, [s["lr"] for s in steps], color=line.get_color(), label=name)
    axes[0].set(title="training loss", xlabel="epoch", ylabel="loss")
    axes[1].set(title="validation loss (circle: kept epoch)", xlabel="epoch (0 = before fine-tuning)")
    axes[2].set(title="learning rate", xlabel="epoch")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def results_table(results: dict[str, Any]):
    """One row per (query set, variant): the metrics with their 95% bootstrap intervals."""
    import pandas as pd
    rows = []
    for query_set, block in results["query_sets"].items():
        for variant, entry in block["variants"].items():
            row = {"query set": query_set, "variant": variant, "queries": entry["n_queries"]}
            for metric in results["metrics"]:
                low, high = entry["ci95"][metric]
                row[metric] = f"{entry['metrics'][metric]:.3f} [{low:.3f}, {high:.3f}]"
            rows.append(row)
    return pd.DataFrame(rows)


def significance_table(results: dict[str, Any], metrics: Sequence[str] = ("precision@1", "mrr")):
    """The paired tests (t-test and randomisation) between variants, per query set."""
    import pandas as pd
    rows = [{"query set": query_set, "a": t["a"], "b": t["b"], "metric": t["metric"],
             "mean a": round(t["mean_a"], 4), "mean b": round(t["mean_b"], 4),
             "p (t-test)": t["p_ttest"], "p (randomisation)": t["p_randomisation"]}
            for query_set, block in results["query_sets"].items() for t in block["significance"]
            if t["metric"] in metrics]
    return pd.DataFrame(rows)


def retrieval_examples(model_dir: str | Path, variant: str, query_set: str, queries: dict[str, str],
                       artworks_json: str | Path, artworks: dict[str, dict], n: int = 3, k: int = 5,
                       seed: int = 0) -> list[dict[str, Any]]:
    """n random queries of a run with their top-k images: [{query_id, query, hits: [{id, image, score, relevant}]}]."""
    import random
    from artcap_lib.retrieval import runs
    run = runs.load_run(Path(model_dir) / variant / f"run_{query_set}.json")
    chosen = random.Random(seed).sample(sorted(run), min(n, len(run)))
    return [{"query_id": q, "query": queries[q],
             "hits": [{"id": d, "image": image_path(artworks_json, artworks[d]), "score": s, "relevant": d == q}
                      for d, s in list(run[q].items())[:k]]} for q in chosen]


def plot_examples(examples: list[dict[str, Any]], title: str = "", width: int = 90):
    """One row per query: the query text, then its top images (the relevant one framed in green)."""
    import textwrap
    import matplotlib.pyplot as plt
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
