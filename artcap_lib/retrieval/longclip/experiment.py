"""Experiment 2 with Long-CLIP (notebook 05): the baseline and two fine-tunes, scored on the test split.

    baseline   the starting model, not fine-tuned (paper: longclip-L.pt; demo: the pocket Long-CLIP pre-trained
               here on the disjoint pre-training pool, `pretrain_pocket`)
    human      fine-tuned on the human captions of the train split (validation loss on the val split's)
    synthetic  fine-tuned on the captioner's captions (captions/<captioning.name>.jsonl), validated on them too,
               as the authors did

Each variant scores the test queries (`retrieval.query_sets`) against the test images with the configured
score (`longclip.score`, the authors' raw dot product by default), written by `runs.write_variant` under
retrieval/longclip/<variant>/ and summarised by `runs.summarise_model` (retrieval/longclip/results.json). The
other score (cosine when the main one is the dot product) is written the same way under
retrieval/longclip/<score>/, and image-to-text retrieval, an extra the authors did not report, in summary.json.

Files: models/pocket-longclip/{model,training}/ (demo baseline), retrieval/longclip/<variant>/model/ (fine-tuned,
Hugging Face format), retrieval/longclip/<variant>/training/ (checkpoint.pt while training, best_model.pt,
history.json), retrieval/longclip/<variant>/fine_tune.json, retrieval/longclip/summary.json.
"""
from __future__ import annotations

import copy
import dataclasses
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from artcap_lib.retrieval import inputs as experiment2
from artcap_lib.retrieval.longclip import model as longclip
from artcap_lib.retrieval import metrics as retrieval_eval
from artcap_lib.retrieval import runs
from artcap_lib import runtime
from artcap_lib.retrieval import training
from artcap_lib.data.artpedia import by_split, load_artworks
from artcap_lib.files import read_json, write_json

VARIANTS = ("baseline", "human", "synthetic")
POCKET = "pocket-longclip"


def model_dir(paths) -> Path:
    return paths.retrieval / "longclip"


def model_source(cfg, paths) -> str:
    """The baseline: a hub id, local directory or .pt file, the run's pre-trained pocket Long-CLIP, or a
    random: spec (bench profile: full-size architecture with random weights, see `random_models`)."""
    from artcap_lib.standins.random_models import resolve_model
    if cfg.longclip.model == POCKET:
        return str(paths.models / POCKET / "model")
    return resolve_model(cfg.longclip.model, paths.models, device=cfg.device)


def fine_tune_settings(cfg) -> longclip.FineTuneSettings:
    lc = cfg.longclip
    return longclip.FineTuneSettings(
        preset=lc.preset, epochs=lc.epochs, batch_size=lc.batch_size, lr=lc.lr, weight_decay=lc.weight_decay,
        warmup=lc.warmup, grad_accum=lc.grad_accum, precision=lc.precision, patience=lc.patience or None,
        max_grad_norm=lc.max_grad_norm or None, max_length=lc.max_length, num_workers=lc.num_workers,
        # small demo collections stay in memory; worker processes would each hold (and lose) their own copy
        cache_images=cfg.data.source == "demo" and lc.num_workers == 0, seed=cfg.seed)


def pretrain_pocket(cfg, paths, dist: training.Distributed | None = None, progress=print) -> Path:
    """Build the pocket Long-CLIP and pre-train it on the pre-training pool's human captions (AdamW, CLIP's
    recipe at pocket scale); 10% of the pool is held out for the validation loss. Done once per run dir."""
    from artcap_lib.standins.pocket_longclip import PocketSpec, build_pocket_longclip
    out = paths.models / POCKET
    if (out / "fine_tune.json").is_file():
        return out / "model"
    pool = load_artworks(paths.pretrain_pool)
    ids = sorted(pool, key=int)
    held_out = set(np.random.default_rng(cfg.seed).choice(ids, size=max(1, len(ids) // 10), replace=False))
    captions = experiment2.human_captions(pool, ids)
    model, tokenizer, processor = build_pocket_longclip(list(captions.values()), PocketSpec(), seed=cfg.seed)
    bundle = longclip.LongClip(model, tokenizer, processor, source=POCKET, note="pocket model, pre-trained here")

    def pairs(subset):
        return experiment2.image_files(paths.pretrain_pool, pool, subset), [captions[i] for i in subset]

    lc = cfg.longclip
    settings = longclip.FineTuneSettings(preset="adamw", epochs=lc.pretrain_epochs, batch_size=lc.pretrain_batch_size,
                                         lr=lc.pretrain_lr, weight_decay=0.1, warmup=0.1, patience=None,
                                         precision=lc.precision, cache_images=True, seed=cfg.seed)
    longclip.fine_tune(bundle, pairs([i for i in ids if i not in held_out]), pairs(sorted(held_out, key=int)),
                       settings, out, dist=dist, progress=progress)
    return out / "model"


def run_experiment(cfg, paths, variants: Sequence[str] = VARIANTS, dist: training.Distributed | None = None,
                   progress: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Train (or reuse) and score each variant, then write results.json and summary.json; returns the summary."""
    runtime.use_threads(cfg.longclip.threads)
    dist = dist or training.setup_distributed(cfg.device)
    say = progress if (progress and dist.is_main) else (lambda _msg: None)
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise ValueError(f"unknown Long-CLIP variant(s) {unknown} (known: {', '.join(VARIANTS)})")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if cfg.longclip.model == POCKET:
        pretrain_pocket(cfg, paths, dist, progress=say)
        timings["pretrain_pocket"] = time.perf_counter() - t0

    artworks = load_artworks(paths.artworks)
    split_ids = {s: sorted(by_split(artworks, s), key=int) for s in ("train", "val", "test")}
    fit_ids = split_ids["train"] + split_ids["val"]
    sources = {"human": lambda: experiment2.human_captions(artworks, fit_ids),
               "synthetic": lambda: experiment2.synthetic_captions(paths.caption_file(cfg.captioning.name), fit_ids)}
    queries = experiment2.query_sets(cfg.retrieval.query_sets, artworks, split_ids["test"])
    test_images = experiment2.image_files(paths.artworks, artworks, split_ids["test"])
    source = model_source(cfg, paths)
    out_dir = model_dir(paths)
    summary: dict[str, Any] = {"model": source, "score": cfg.longclip.score, "query_sets": sorted(queries),
                               "missing_query_sets": sorted(set(cfg.retrieval.query_sets) - set(queries)),
                               "fine_tunes": {}, "image_to_text": {}, "truncation": {}}
    # loaded (converted, stretched) once; each fine-tune trains its own copy of the weights
    base = longclip.load_model(source, cfg.longclip.tokenizer, cfg.longclip.stretch_77)
    summary["note"] = base.note
    for variant in variants:
        t = time.perf_counter()
        bundle = base if variant == "baseline" else dataclasses.replace(base, model=copy.deepcopy(base.model))
        if variant != "baseline":
            say(f"fine-tuning on {variant} captions")
            captions = sources[variant]()
            summary["fine_tunes"][variant] = longclip.fine_tune(
                bundle, _pairs(paths, artworks, split_ids["train"], captions),
                _pairs(paths, artworks, split_ids["val"], captions), fine_tune_settings(cfg), out_dir / variant,
                dist, progress=say)
            if dist.is_main and not cfg.longclip.keep_checkpoint:
                (out_dir / variant / "training" / training.CHECKPOINT).unlink(missing_ok=True)
        if dist.is_main:
            say(f"scoring {variant}")
            summary["image_to_text"][variant] = evaluate_variant(cfg, bundle, variant, queries, split_ids["test"],
                                                                 test_images, out_dir, dist.device)
        timings[variant] = time.perf_counter() - t
    if not dist.is_main:
        return summary
    for name, query in queries.items():
        summary["truncation"][f"queries_{name}"] = longclip.token_truncation(bundle.tokenizer, query.values(),
                                                                             cfg.longclip.max_length)
    r = cfg.retrieval
    results = runs.summarise_model(out_dir, bootstrap=r.bootstrap, randomisation=r.randomisation, seed=cfg.seed,
                                   depth=r.run_depth)
    runs.summarise_model(out_dir / _other_score(cfg.longclip.score), bootstrap=r.bootstrap,
                         randomisation=r.randomisation, seed=cfg.seed, depth=r.run_depth)
    summary["results"] = "results.json"
    summary["n"] = {split: len(ids) for split, ids in split_ids.items()}
    summary["chance_recall@1"] = 1 / len(split_ids["test"])
    summary["precision@1"] = {qs: {v: block["variants"][v]["metrics"]["precision@1"] for v in block["variants"]}
                              for qs, block in results["query_sets"].items()}
    timings["total"] = time.perf_counter() - t0
    summary["seconds"] = timings
    write_json(out_dir / "summary.json", summary)
    return summary


def _pairs(paths, artworks, ids: Sequence[str], captions: dict[str, str]) -> tuple[list[Path], list[str]]:
    return experiment2.image_files(paths.artworks, artworks, ids), [captions[i] for i in ids]


def _other_score(score: str) -> str:
    return "cosine" if score == "dot" else "dot"


def evaluate_variant(cfg, bundle: longclip.LongClip, variant: str, queries: dict[str, dict[str, str]],
                     test_ids: Sequence[str], test_images: Sequence[Path], out_dir: Path, device) -> dict[str, Any]:
    """Write text-to-image runs for every query set (main score in out_dir, the other in out_dir/<other>) and
    return the image-to-text metrics (each image's relevant text: its own query)."""
    lc = cfg.longclip
    image_features = longclip.encode_images(bundle, test_images, lc.eval_batch_size, device, lc.precision)
    image_to_text = {}
    for name, query in queries.items():
        texts = [query[i] for i in test_ids]
        text_features = longclip.encode_texts(bundle, texts, lc.eval_batch_size, device, lc.max_length, lc.precision)
        for score, where in ((lc.score, out_dir), (_other_score(lc.score), out_dir / _other_score(lc.score))):
            scores = longclip.score_matrix(text_features, image_features, score).numpy()
            runs.write_variant(where, variant, name, scores, test_ids, test_ids, depth=cfg.retrieval.run_depth)
            if score == lc.score:
                own = [{i} for i in range(len(test_ids))]
                image_to_text[name] = retrieval_eval.retrieval_metrics(scores.T, own)
    return image_to_text


def load_histories(paths) -> dict[str, dict[str, Any]]:
    """{name: history.json} of the fine-tunes run so far (and the pocket pre-training in the demo)."""
    found = {}
    pocket = paths.models / POCKET / "training" / training.HISTORY
    if pocket.is_file():
        found["pocket pre-training"] = read_json(pocket)
    for variant in VARIANTS[1:]:
        path = model_dir(paths) / variant / "training" / training.HISTORY
        if path.is_file():
            found[variant] = read_json(path)
    return found


# ---------------------------------------------------------------------------------------------------------------
# notebook 05


def experiment(cfg, paths, progress: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Notebook 05's one call. retrieval.source "model": train and score (`run_experiment`). "reference": nothing
    is trained; the authors' stored Long-CLIP runs are evaluated by `runs.reference_experiment2`."""
    if cfg.retrieval.source == "reference":
        reference = runs.reference_experiment2(paths, bootstrap=cfg.retrieval.bootstrap,
                                               randomisation=cfg.retrieval.randomisation, seed=cfg.seed)
        return {"source": "reference", "summary": None, "results": reference["models"]["longclip"],
                "other_score_results": None, "histories": {}}
    if cfg.retrieval.source != "model":
        raise ValueError(f"retrieval.source must be model or reference, got {cfg.retrieval.source!r}")
    summary = run_experiment(cfg, paths, progress=progress)
    out_dir = model_dir(paths)
    return {"source": "artcap", "summary": summary, "results": read_json(out_dir / "results.json"),
            "other_score_results": read_json(out_dir / _other_score(cfg.longclip.score) / "results.json"),
            "histories": load_histories(paths)}


def describe(out: dict[str, Any]) -> str:
    """One paragraph saying what notebook 05 just did."""
    if out["source"] == "reference":
        return ("**Reference profile: no model was trained or run.** The numbers below are the authors' stored "
                "Long-CLIP-L runs (jcgohr/artwork-caption-gen, top-100 ranx runs scored with raw dot products) "
                "re-evaluated here with bootstrap intervals and paired tests.")
    s = out["summary"]
    tunes = s["fine_tunes"]
    epochs = ", ".join(f"{v}: kept epoch {t['best_epoch']} of {t['epochs_run']}" for v, t in tunes.items())
    return (f"Trained and scored here: baseline = `{s['model']}`{' (' + s['note'] + ')' if s.get('note') else ''}; "
            f"fine-tuned on human and on synthetic captions ({s['n']['train']} train / {s['n']['val']} val images; "
            f"{epochs}), evaluated on {s['n']['test']} test images with {s['score']} scores "
            f"(chance R@1 = {s['chance_recall@1']:.4f}) in {s['seconds']['total']:.0f} s."
            + (f" Query sets not available here: {', '.join(s['missing_query_sets'])}." if s["missing_query_sets"] else ""))


def chance_table(out: dict[str, Any]):
    """Test R@1 of every variant against chance (1 / number of test images), text-to-image and image-to-text."""
    import pandas as pd
    if out["summary"] is None:
        return pd.DataFrame()
    s = out["summary"]
    rows = [{"query set": qs, "variant": v, "text->image R@1": entry["metrics"]["recall@1"],
             "image->text R@1": s["image_to_text"][v][qs]["recall@1"],
             "image->text MRR": s["image_to_text"][v][qs]["mrr"], "chance": s["chance_recall@1"],
             "text->image x chance": entry["metrics"]["recall@1"] / s["chance_recall@1"]}
            for qs, block in out["results"]["query_sets"].items() for v, entry in block["variants"].items()]
    return pd.DataFrame(rows).round(4)


def score_table(out: dict[str, Any], metrics: Sequence[str] = ("precision@1", "recall@5", "mrr")):
    """The configured score (the authors' raw dot product) beside the other one (cosine), per variant."""
    import pandas as pd
    if out["other_score_results"] is None:
        return pd.DataFrame()
    main, other = out["summary"]["score"], _other_score(out["summary"]["score"])
    rows = []
    for qs, block in out["results"]["query_sets"].items():
        alt = out["other_score_results"]["query_sets"][qs]["variants"]
        for variant, entry in block["variants"].items():
            rows.append({"query set": qs, "variant": variant,
                         **{f"{main} {m}": entry["metrics"][m] for m in metrics},
                         **{f"{other} {m}": alt[variant]["metrics"][m] for m in metrics}})
    return pd.DataFrame(rows).round(4)


def truncation_table(out: dict[str, Any]):
    """How much the 248-token context cuts, per caption source (training, validation) and query set."""
    import pandas as pd
    if out["summary"] is None:
        return pd.DataFrame()
    s = out["summary"]
    rows = [{"text": f"{variant} captions ({part})", **stats}
            for variant, tune in s["fine_tunes"].items() for part, stats in tune["truncation"].items()]
    rows += [{"text": name.replace("_", " "), **stats} for name, stats in s["truncation"].items()]
    return pd.DataFrame(rows).round(4)


def retrieval_examples(cfg, paths, variant: str, n: int = 3, k: int = 5) -> list[dict[str, Any]]:
    """The same n random test queries (human captions) for every variant, with their top-k images."""
    artworks = load_artworks(paths.artworks)
    test_ids = sorted(by_split(artworks, "test"), key=int)
    queries = experiment2.human_captions(artworks, test_ids)
    return experiment2.retrieval_examples(model_dir(paths), variant, "artpedia", queries, paths.artworks, artworks,
                                          n=n, k=k, seed=cfg.seed)
