"""Experiment 1 (notebook 03): score the captioner's captions against the human captions, write the results.

Inputs (run directory): `data/artworks.json` (human caption = visual sentences joined, for the ids of
`cfg.metrics.split`; a collection with several human captions per image gives them all, as references of one
pair) and `captions/<captioner>.jsonl` (successful captions only) of each captioner of the run.

Outputs, read by notebook 06, in `metrics/` for the run's first captioner (the paper's synthetic captions) and in
`metrics/<captioner>/` for every further one (`RunPaths.captioner_metrics`):

- `per_image.parquet`: index `id`, one float column per metric, both backends (`scorer.PAPER_COLUMNS`
  then `COCO_COLUMNS`, those computed).
- `control_per_image.parquet`: the same columns for the shuffled control (each reference paired with another
  image's candidate).
- `summary.json`:

  ```
  {
    "schema_version": 1,
    "profile": str, "split": str, "captioner": str, "model": str, "prompt": str,
    "n_pairs": int,                       # images scored
    "references_per_image": {"min", "max", "mean"},   # human captions per image (Artpedia: 1)
    "n_missing_captions": int,            # images of the split with no caption (not scored)
    "backends": ["paper", "coco"],
    "metrics": {                          # one entry per column of per_image.parquet
      "<metric>": {"backend": "paper" | "coco",
                   "mean": float,         # mean over images
                   "ci95": [lo, hi],      # percentile bootstrap of the mean over images
                   "control_mean": float, # mean over the shuffled pairs (null without a control)
                   "corpus": float | null}# coco BLEU-n/METEOR: corpus-level value (not a mean of per-image ones)
    },
    "bertscore": null | {"model", "label", "num_layers", "is_paper_model", "hash"},   # hash: bert-score's
    "spice": {"status": "ok" | "skipped", "reason": str, "how_to_enable": str},
    "meteor_punkt": str,                  # which Punkt model split sentences for NLTK METEOR
    "lengths": {"reference": {...}, "candidate": {...}},   # words: mean std min p5 median p95 max
    "control": {"method": "derangement", "seed": int} | null,
    "bootstrap": {"method": "percentile", "resamples": int, "seed": int, "level": 0.95},
    "seconds": {...},                     # wall time per part of the scoring
    "parity": null | {                    # reference profile: ours vs the authors' stored scores
      "source": "metrics/LlamaCaptioner.tsv", "n_rows": int, "n_ours": int, "n_theirs": int,
      "tolerance": 1e-6, "bertscore": "checked" | "skipped: <reason>",
      "metrics": {"<metric>": {"ours_mean", "theirs_mean", "mean_diff", "max_abs_diff", "fraction_exact"}}
    }
  }
  ```
"""
from __future__ import annotations

import numpy as np

from artcap_lib.textmetrics import scorer
from artcap_lib import stats as metric_statistics
from artcap_lib.config import captioners, primary_captioner
from artcap_lib.files import write_json

SCHEMA_VERSION = 1


def load_pairs(cfg, paths, name: str | None = None) -> tuple[list[str], list, list[str], list[str]]:
    """(ids, references, candidate captions of captioner `name` (default: the first), ids of the split without
    a caption), in artworks.json order. A reference is the human caption, or the list of an image's several."""
    from artcap_lib.data.artpedia import by_split, load_artworks, reference_of
    from artcap_lib.captioning.store import read_captions
    caption_file = paths.caption_file(name or primary_captioner(cfg))
    if not caption_file.is_file():
        raise FileNotFoundError(f"{caption_file} not found: run notebook 02 (captioning) first")
    artworks = by_split(load_artworks(paths.artworks, require_urls=False), cfg.metrics.split)
    if not artworks:
        raise ValueError(f"{paths.artworks}: no artworks in split {cfg.metrics.split!r}")
    captions = read_captions(caption_file)
    ids = [i for i in artworks if i in captions]
    missing = [i for i in artworks if i not in captions]
    if not ids:
        raise ValueError(f"{caption_file}: no caption for any of the {len(artworks)} {cfg.metrics.split} artworks")
    return ids, [reference_of(artworks[i]) for i in ids], [captions[i] for i in ids], missing


def reference_texts(references) -> list[str]:
    """Every human caption of the pairs, an image's several ones each (for lengths and histograms)."""
    return [t for group in scorer.reference_lists(references) for t in group]


def make_scorer(cfg) -> scorer.CaptionScorer:
    from artcap_lib.runtime import resolve_device
    from artcap_lib.model_names import locate
    model = locate(cfg.metrics.bertscore_model) if cfg.metrics.bertscore_model else None
    return scorer.CaptionScorer(cfg.metrics.backends, model, cfg.metrics.bertscore_num_layers,
                                         cfg.metrics.spice_jars, resolve_device(cfg.device))


def summarise(result: scorer.ScoreResult, references, candidates, resamples: int, seed: int) -> dict:
    """The statistics part of summary.json (see the module docstring)."""
    per_image, control = result.per_image, result.control
    ci = metric_statistics.bootstrap_ci(per_image.to_numpy(), resamples, seed)
    metrics = {}
    for j, column in enumerate(per_image.columns):
        metrics[column] = {
            "backend": "coco" if column.startswith("coco_") else "paper",
            "mean": float(np.nanmean(per_image[column])),
            "ci95": [float(ci[j, 0]), float(ci[j, 1])],
            "control_mean": float(np.nanmean(control[column])) if control is not None else None,
            "corpus": result.corpus.get(column),
        }
    counts = [len(r) for r in scorer.reference_lists(references)]
    return {"n_pairs": len(per_image), "references_per_image": {"min": min(counts), "max": max(counts),
                                                                "mean": float(np.mean(counts))},
            "metrics": metrics, "bertscore": result.bertscore, "spice": result.spice,
            "meteor_punkt": result.meteor_punkt,
            "lengths": {"reference": metric_statistics.length_stats(reference_texts(references)),
                        "candidate": metric_statistics.length_stats(candidates)},
            "control": {"method": "derangement", "seed": seed} if control is not None else None,
            "bootstrap": {"method": "percentile", "resamples": resamples, "seed": seed, "level": 0.95},
            "seconds": result.seconds}


def run(cfg, paths) -> dict[str, dict]:
    """Experiment 1 for every captioner of the run, with one scorer (BERTScore's model loads once):
    {captioner: summary}."""
    names = [spec.name for spec in captioners(cfg)]
    shared = make_scorer(cfg)
    try:
        return {name: run_captioner(cfg, paths, shared, name) for name in names}
    finally:
        shared.close()


def output_dir(cfg, paths, name: str | None = None):
    """The folder of captioner `name`'s Experiment 1 (default: the first captioner's, metrics/)."""
    first = primary_captioner(cfg)
    return paths.captioner_metrics(name or first, primary=(name or first) == first)


def run_captioner(cfg, paths, scorer: scorer.CaptionScorer | None = None, name: str | None = None) -> dict:
    """Score captioner `name`'s captions (default: the first captioner's), write {per_image,
    control_per_image}.parquet and summary.json into its folder (`output_dir`)."""
    from artcap_lib.captioning.step import captioner_spec
    spec = captioner_spec(cfg, name)
    ids, references, candidates, missing = load_pairs(cfg, paths, spec.name)
    own_scorer = scorer is None
    scorer = scorer or make_scorer(cfg)
    try:
        permutation = metric_statistics.derangement(len(ids), cfg.seed) if len(ids) >= 2 else None
        result = scorer.score(ids, references, candidates, permutation)
    finally:
        if own_scorer:
            scorer.close()
    summary = {"schema_version": SCHEMA_VERSION, "profile": cfg.profile, "split": cfg.metrics.split,
               "captioner": spec.name, "model": spec.model, "prompt": spec.prompt,
               "n_missing_captions": len(missing),
               "backends": list(cfg.metrics.backends),
               **summarise(result, references, candidates, cfg.metrics.bootstrap, cfg.seed), "parity": None}
    if cfg.data.source == "reference":   # the authors' captions on the authors' train pairs: check parity
        from artcap_lib.textmetrics import parity as metrics_parity
        summary["parity"] = {"source": "metrics/LlamaCaptioner.tsv",
                             **metrics_parity.parity_table(result.per_image, metrics_parity.authors_scores(),
                                                           result.bertscore)}
    out = output_dir(cfg, paths, spec.name)
    out.mkdir(parents=True, exist_ok=True)
    _write_parquet(result.per_image, paths.metrics_per_image(out))
    if result.control is not None:
        _write_parquet(result.control, paths.metrics_control(out))
    write_json(paths.metrics_summary(out), summary)
    return summary


def _write_parquet(frame, path) -> None:
    import io
    from artcap_lib.files import atomic_write_bytes
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    atomic_write_bytes(path, buffer.getvalue())


def summary_frame(summary: dict) -> "pd.DataFrame":
    """summary.json's metrics as a table: backend, mean, 95% CI, control mean, corpus value."""
    import pandas as pd
    rows = {m: {"backend": v["backend"], "mean": v["mean"], "ci95_low": v["ci95"][0], "ci95_high": v["ci95"][1],
                "shuffled_control": v["control_mean"], "corpus": v["corpus"]}
            for m, v in summary["metrics"].items()}
    return pd.DataFrame(rows).T.rename_axis("metric")


def extremes(per_image, references, candidates, metric: str, k: int = 3) -> "pd.DataFrame":
    """The k most and k least similar pairs by one metric, with their texts (several references joined by |)."""
    import pandas as pd
    shown = [r if isinstance(r, str) else " | ".join(r) for r in references]
    frame = pd.DataFrame({metric: per_image[metric], "reference": shown, "candidate": candidates},
                         index=per_image.index).sort_values(metric, ascending=False)
    return pd.concat([frame.head(k).assign(rank="most similar"), frame.tail(k).assign(rank="least similar")])


SAME_METRIC = [("bleu4", "coco_bleu4", "BLEU-4"), ("meteor", "coco_meteor", "METEOR"),
               ("rougeL_f", "coco_rougeL", "ROUGE-L F")]


def backend_comparison(summary: dict) -> "pd.DataFrame":
    """The metrics both backends compute, side by side: the paper's implementation vs pycocoevalcap's."""
    import pandas as pd
    m = summary["metrics"]
    rows = {label: {"paper": m[a]["mean"], "coco": m[b]["mean"], "paper (shuffled)": m[a]["control_mean"],
                    "coco (shuffled)": m[b]["control_mean"]}
            for a, b, label in SAME_METRIC if a in m and b in m}
    return pd.DataFrame(rows).T.rename_axis("metric")
