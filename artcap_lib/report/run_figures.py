"""Which figures a run gets: each one its inputs allow, drawn by `figures` / `plots` and saved in
cfg.report.formats under <figures>/<figure>.{png,pdf}; the rest go to `inputs.missing`."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from artcap_lib.config import primary_captioner
from artcap_lib.report import comparison, figures
from artcap_lib.report.inputs import RunInputs
from artcap_lib.report.tables import DISTRIBUTION_METRICS, METRIC_NAMES, TABLE2_METRICS, table2_records

FIGURES = {  # name -> what it shows
    "fig_metric_distributions": "Experiment 1: per-image metric scores, synthetic vs human captions and shuffled pairs",
    "fig_caption_lengths": "caption length histograms, human vs synthetic",
    "fig_retrieval": "Experiment 2: retrieval metrics per model, query set and variant with 95% CIs",
    "fig_training_curves": "fine-tuning curves of BLIP and Long-CLIP (training loss, validation criterion)",
    "fig_gallery": "test artworks with their human and synthetic captions",
    "fig_captioners": "captioners compared: Experiment 1 metrics and P@1 after fine-tuning on each, with 95% CIs",
}


def make_figures(cfg, paths, inputs: RunInputs) -> dict[str, list[Path]]:
    """Every figure the run's files allow, saved in cfg.report.formats; the rest go to inputs.missing."""
    import matplotlib.pyplot as plt
    from artcap_lib.report.plots import save
    made: dict[str, list[Path]] = {}
    for name, build in (("fig_metric_distributions", _fig_metric_distributions),
                        ("fig_caption_lengths", _fig_caption_lengths), ("fig_retrieval", _fig_retrieval),
                        ("fig_training_curves", _fig_training_curves), ("fig_gallery", _fig_gallery),
                        ("fig_captioners", _fig_captioners)):
        fig = build(cfg, paths, inputs)
        if fig is not None:
            made[name] = save(fig, paths.figures, name, cfg.report.formats)
            plt.close(fig)
    return made


def _fig_metric_distributions(cfg, paths, inputs):
    if inputs.per_image is None:
        return None
    columns = {m: METRIC_NAMES[m] for m in DISTRIBUTION_METRICS if m in inputs.per_image.columns}
    return figures.metric_distributions(inputs.per_image, columns, inputs.control, primary_captioner(cfg))


def _caption_pairs(cfg, paths, split: str | None = None) -> tuple[dict, dict[str, str]]:
    """(artworks, synthetic captions) for the artworks that have both (optionally of one split)."""
    from artcap_lib.data.artpedia import load_artworks
    from artcap_lib.captioning.store import read_captions
    caption_file = paths.caption_file(primary_captioner(cfg))
    if not paths.artworks.is_file() or not caption_file.is_file():
        return {}, {}
    artworks = load_artworks(paths.artworks, require_urls=False)
    captions = read_captions(caption_file)
    keep = {i: a for i, a in artworks.items() if i in captions and (split is None or a.get("split") == split)}
    return keep, {i: captions[i] for i in keep}


def _fig_caption_lengths(cfg, paths, inputs):
    from artcap_lib.data.artpedia import human_caption
    artworks, captions = _caption_pairs(cfg, paths)
    if not captions:
        inputs.missing.append(f"caption lengths: needs {paths.artworks} (step 01) and "
                              f"{paths.caption_file(primary_captioner(cfg))} (step 02)")
        return None
    return figures.caption_lengths({"human": [len(human_caption(a).split()) for a in artworks.values()],
                                    "synthetic": [len(captions[i].split()) for i in artworks]})


def _fig_retrieval(cfg, paths, inputs):
    if not inputs.experiment2:
        return None
    authors = {(r["model"], r["query_set"], r["variant"], r["metric"]): r["authors"]
               for r in table2_records(inputs) if r["authors"] is not None}
    return figures.retrieval_bars(inputs.experiment2, TABLE2_METRICS, authors)


def captioner_records(cfg, inputs: RunInputs) -> list[dict[str, Any]]:
    """`comparison.records` of the run (Experiment 2 of our own models only: the authors' runs have one captioner)."""
    own = {m: r for m, r in inputs.experiment2.items() if r.get("source") != "reference"}
    return comparison.records(inputs.captioners, inputs.captioner_summaries, inputs.captioner_per_image, own,
                              cfg.report.alpha, cfg.report.significance_test)


def _fig_captioners(cfg, paths, inputs):
    if len(inputs.captioners) < 2:
        return None                     # one captioner: Tables 1 and 2 are the comparison
    recs = captioner_records(cfg, inputs)
    if not any(r["experiment1"] or r["experiment2"] for r in recs):
        return None
    return comparison.figure(recs)


def _fig_training_curves(cfg, paths, inputs):
    return figures.training_curves(inputs.histories) if inputs.histories else None


def _fig_gallery(cfg, paths, inputs):
    from artcap_lib.data.artpedia import human_caption, image_path
    from artcap_lib.report.plots import gallery
    artworks, captions = _caption_pairs(cfg, paths, split="test")
    items = []
    for art_id, entry in artworks.items():
        image = image_path(paths.artworks, entry)
        if image is not None and image.is_file():
            items.append({"image": image, "title": f"{art_id}: {entry.get('title', '')}",
                          "captions": {"human": human_caption(entry), primary_captioner(cfg): captions[art_id]}})
        if len(items) == cfg.report.gallery_size:
            break
    if not items:
        inputs.missing.append("gallery: no test artwork with an image file and a synthetic caption "
                              "(the reference profile has no images)")
        return None
    return gallery(items, ncols=min(3, len(items)), width=56, max_lines=4,
                   title="Test artworks: human caption and synthetic caption")
