"""Experiment 2 with BLIP (notebook 04): fine-tune per caption source, then score the test queries.

    baseline   the starting model, not fine-tuned (paper: Salesforce/blip-itm-large-coco; demo: the pocket BLIP
               pre-trained here on the disjoint pre-training pool)
    human      fine-tuned on the human captions (visual sentences joined)
    synthetic  fine-tuned on the captioner's captions (captions/<captioning.name>.jsonl)

Training is BLIP's retrieval recipe (`blip.BlipRetrievalObjective`, `blip_data`) in the shared loop
(`training.fit`): per-epoch cosine learning rate, a checkpoint per epoch (resumable after a kill), and the
epoch with the best validation mean recall kept, validation using the same caption source as training and,
like the authors, ITC top-k re-ranked by ITM (`blip.select_with`). Test scoring is the paper's ITC cosine over
raw captions cut to 35 tokens (`retrieval/blip/<variant>/`), plus BLIP's ITM re-ranking as an option
(`retrieval/blip/itm_rerank/<variant>/`), both written with `runs.write_variant` and summarised by
`runs.summarise_model`.

Files: models/pocket-blip/ (demo baseline), retrieval/blip/<variant>/model/ (fine-tuned, Hugging Face format),
retrieval/blip/<variant>/train/ (checkpoint.pt, best_model.pt, history.json), retrieval/blip/truncation.json,
retrieval/blip/results.json, retrieval/blip/itm_rerank/results.json, retrieval/blip/summary.json.
"""
from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from artcap_lib.retrieval.blip import model as blip
from artcap_lib.retrieval.blip import data as blip_data
from artcap_lib import runtime
from artcap_lib.retrieval import training
from artcap_lib.files import read_json, write_json

VARIANTS = ("baseline", "human", "synthetic")
POCKET = "pocket-blip"
EVAL_MAX_WORDS = 50          # BLIP's eval datasets (and the authors' artpedia_eval) pre_caption to 50 words


def model_source(cfg, paths) -> Path | str:
    """The baseline model: a hub id or local directory, the run's pre-trained pocket BLIP, or (bench profile)
    a `random:` architecture materialised by random_models."""
    if cfg.blip.model == POCKET:
        return paths.models / POCKET
    from artcap_lib.standins.random_models import resolve_model
    return resolve_model(cfg.blip.model, paths.models, cfg.device)


def image_files(artworks_json: Path, artworks: dict[str, dict], ids: Sequence[str] | None = None) -> dict[str, Path]:
    """{id: image path} (experiment2.image_files, keyed by id)."""
    from artcap_lib.retrieval.inputs import image_files as files_in_order
    ids = sorted(artworks) if ids is None else list(ids)
    return dict(zip(ids, files_in_order(artworks_json, artworks, ids)))


def _loader(dataset, batch_size: int, num_workers: int):
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)


# ---- scoring ----------------------------------------------------------------------------------------------------


@torch.no_grad()
def score_texts_images(model, tokenizer, texts: Sequence[str], images, device, bcfg, rerank: bool,
                       both_directions: bool = False) -> dict[str, torch.Tensor]:
    """{"itc": (n_texts, n_images) cosine, and with rerank "itm": the same re-ranked by ITM (queries = texts),
    with both_directions also "itm_i2t": (n_images, n_texts) re-ranked per image}. `images` yields pixel batches."""
    model.eval()
    with training.autocast_context(torch.device(device), bcfg.precision):
        text_feat, ids, mask = blip.encode_texts(model, tokenizer, texts, device, bcfg.eval_batch_size,
                                                 bcfg.max_tokens)
        image_feat, embeds = blip.encode_images(model, images, device, keep_embeds=rerank)
        out = {"itc": blip.itc_scores(text_feat, image_feat)}
        if rerank:
            enc = blip.enc_token_id(tokenizer, model.config.text_config.vocab_size)
            out["itm"] = blip.itm_rerank(model, out["itc"], ids, mask, embeds, enc, bcfg.k_test, bcfg.eval_batch_size)
            if both_directions:
                out["itm_i2t"] = blip.itm_rerank(model, out["itc"], ids, mask, embeds, enc, bcfg.k_test,
                                                 bcfg.eval_batch_size, texts_to_images=False)
    return {k: v.float().cpu() for k, v in out.items()}


def mean_recall(scores: dict[str, torch.Tensor], use_itm: bool) -> dict[str, float]:
    """BLIP's model-selection number r_mean: mean of R@1/5/10 text->image and image->text (one caption each)."""
    from artcap_lib.retrieval.metrics import retrieval_metrics
    t2i = scores["itm"] if use_itm else scores["itc"]
    i2t = scores["itm_i2t"] if use_itm else scores["itc"].t()
    diagonal = [{i} for i in range(t2i.shape[0])]
    a, b = retrieval_metrics(t2i, diagonal), retrieval_metrics(i2t, diagonal)
    recalls = [a[f"recall@{k}"] for k in (1, 5, 10)] + [b[f"recall@{k}"] for k in (1, 5, 10)]
    return {"val_r_mean": sum(recalls) / 6, "val_t2i_r1": a["recall@1"], "val_i2t_r1": b["recall@1"],
            "val_t2i_mrr": a["mrr"]}


# ---- training ---------------------------------------------------------------------------------------------------


def per_epoch_cosine(epochs: int):
    """BLIP's cosine_lr_schedule: lr(epoch) = lr0 * (1 + cos(pi * epoch / epochs)) / 2, constant within an epoch."""
    def make(optimizer, total_steps: int):
        per_epoch = max(1, total_steps // epochs)
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step // per_epoch, epochs) / epochs)))
    return make


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def train_blip(init_dir: str | Path, out_dir: str | Path, train_ids: Sequence[str], val_ids: Sequence[str],
               captions: dict[str, str], files: dict[str, Path], bcfg, *, epochs: int, lr: float, seed: int = 0,
               device: str = "auto", select_with: str | None = None, momentum: float | None = None,
               augment: bool = True, progress: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Fine-tune the BLIP at init_dir on (image, caption) pairs; write out_dir/model (best epoch, HF format) and
    out_dir/train (checkpoints, history). Run again after a kill: it resumes; a finished run returns at once."""
    out_dir = Path(out_dir)
    model_out = out_dir / "model"
    if (model_out / "config.json").is_file() and (out_dir / "train" / training.HISTORY).is_file():
        history = training.read_history(out_dir / "train")
        if history.get("finished"):
            return history
    select_with = select_with or bcfg.select_with
    momentum = bcfg.momentum if momentum is None else momentum
    if select_with not in ("itm", "itc"):
        raise ValueError(f"blip.select_with must be itm or itc, got {select_with!r}")
    runtime.use_threads(bcfg.threads)
    dist = training.setup_distributed(device)
    runtime.seed_everything(seed, dist.rank)
    model, tokenizer, mean, std = blip.load_blip(init_dir)
    if bcfg.grad_checkpointing:
        model.vision_model.activation_checkpointing_enable()
    size = model.config.vision_config.image_size
    train_set = blip_data.BlipPairs(train_ids, files, captions, blip_data.BlipTransform(size, augment, mean, std),
                                    bcfg.max_words)
    loader = training.make_loader(train_set, bcfg.batch_size, dist, shuffle=True, drop_last=True,
                                  collate_fn=blip_data.collate(tokenizer, bcfg.max_tokens), seed=seed,
                                  num_workers=bcfg.num_workers)
    enc = blip.enc_token_id(tokenizer, model.config.text_config.vocab_size)
    objective = blip.BlipRetrievalObjective(model, enc, bcfg.queue_size, alpha_warmup_steps=len(loader),
                                            momentum=momentum, alpha=bcfg.alpha)
    val_texts = [blip_data.pre_caption(captions[i], EVAL_MAX_WORDS) for i in val_ids]
    val_images = blip_data.BlipImages([files[i] for i in val_ids], blip_data.BlipTransform(size, False, mean, std))

    def validate(obj):
        scores = score_texts_images(obj.model, tokenizer, val_texts, _loader(val_images, bcfg.eval_batch_size, 0),
                                    dist.device, bcfg, rerank=select_with == "itm", both_directions=True)
        return mean_recall(scores, use_itm=select_with == "itm")

    fingerprint = {"init": str(init_dir), "epochs": epochs, "lr": lr, "batch_size": bcfg.batch_size,
                   "weight_decay": bcfg.weight_decay, "queue_size": bcfg.queue_size, "momentum": momentum,
                   "alpha": bcfg.alpha, "select_with": select_with, "augment": augment, "seed": seed,
                   "world_size": dist.world_size,
                   "captions": _digest([(i, captions[i]) for i in train_ids]), "val": _digest(list(val_ids))}
    result = training.fit(
        objective, step=lambda obj, batch: obj(**batch), train_loader=loader, validate=validate,
        make_optimizer=lambda obj: torch.optim.AdamW([p for p in obj.parameters() if p.requires_grad], lr=lr,
                                                     weight_decay=bcfg.weight_decay),
        make_scheduler=per_epoch_cosine(epochs),
        config=training.TrainConfig(epochs=epochs, precision=bcfg.precision, monitor="val_r_mean", mode="max",
                                    patience=None, validate_first=True, seed=seed),
        out_dir=out_dir / "train", dist=dist, fingerprint=fingerprint, progress=progress)
    if dist.is_main:
        from transformers import AutoProcessor
        tmp = out_dir / ".model.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        result.model.model.save_pretrained(tmp)
        AutoProcessor.from_pretrained(str(init_dir)).save_pretrained(tmp)
        shutil.rmtree(model_out, ignore_errors=True)
        tmp.rename(model_out)
    return result.history


def pretrain_pocket(cfg, paths, progress=print) -> Path:
    """Demo baseline: a pocket BLIP trained with the same objective on the pre-training pool (10% held out
    for model selection), saved as models/pocket-blip. Kept if already there. It stands in for BLIP's web-scale
    pre-training, so it trains without the fine-tuning augmentation and with a faster momentum (learning from
    random weights in a few hundred steps); fine-tuning then follows the recipe."""
    from artcap_lib.data.artpedia import human_caption, load_artworks
    from artcap_lib.standins.pocket_blip import build_pocket_blip
    out = paths.models / POCKET
    if (out / "config.json").is_file():
        return out
    pool = load_artworks(paths.pretrain_pool, require_urls=False)
    if not pool:
        raise ValueError(f"{paths.pretrain_pool}: the pre-training pool is empty (data.demo_pretrain = 0?)")
    ids = sorted(pool)
    n_val = max(8, len(ids) // 10)
    init = build_pocket_blip(paths.models / f"{POCKET}-init", image_size=cfg.blip.image_size, seed=cfg.seed)
    train_blip(init, paths.models / f"{POCKET}-pretrain", ids[:-n_val], ids[-n_val:],
               {i: human_caption(e) for i, e in pool.items()}, image_files(paths.pretrain_pool, pool),
               cfg.blip, epochs=cfg.blip.pretrain_epochs, lr=cfg.blip.pretrain_lr, seed=cfg.seed,
               device=cfg.device, select_with="itc", momentum=cfg.blip.pretrain_momentum, augment=False,
               progress=progress)
    shutil.copytree(paths.models / f"{POCKET}-pretrain" / "model", out)
    return out


# ---- the experiment ---------------------------------------------------------------------------------------------


def truncation_report(cfg, sources: dict[str, dict[str, str]], queries: dict[str, dict[str, str]], tokenizer):
    """Per caption source: how much BLIP's training cut (30 words, 35 tokens) and the test-query cut (35 tokens)."""
    report = {"training": {name: blip_data.truncation_stats(c, tokenizer, cfg.blip.max_words, cfg.blip.max_tokens)
                           for name, c in sources.items()},
              "queries": {name: blip_data.truncation_stats(q, tokenizer, None, cfg.blip.max_tokens)
                          for name, q in queries.items()},
              "max_words": cfg.blip.max_words, "max_tokens": cfg.blip.max_tokens}
    return report


def run_blip_experiment(cfg, paths, progress: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Train (where needed) and score every variant; write the retrieval files (module docstring) and return
    {"source": "model", "summary" (= retrieval/blip/summary.json), "results", "rerank_results", "truncation",
    "histories"}."""
    from artcap_lib.retrieval import inputs as experiment2
    from artcap_lib.retrieval import runs
    from artcap_lib.data.artpedia import by_split, human_caption, load_artworks
    say = progress or (lambda _m: None)
    t_start = time.perf_counter()
    bcfg = cfg.blip
    runtime.use_threads(bcfg.threads)
    artworks = load_artworks(paths.artworks, require_urls=False)
    train_ids, val_ids, test_ids = (sorted(by_split(artworks, s)) for s in ("train", "val", "test"))
    files = image_files(paths.artworks, artworks)
    human = {i: human_caption(e) for i, e in artworks.items()}
    synthetic = experiment2.synthetic_captions(paths.caption_file(cfg.captioning.name), train_ids + val_ids)
    queries = experiment2.query_sets(cfg.retrieval.query_sets, artworks, test_ids)
    blip_dir = paths.retrieval / "blip"
    rerank_dir = blip_dir / "itm_rerank"

    seconds = {}
    t0 = time.perf_counter()
    baseline = pretrain_pocket(cfg, paths, say) if bcfg.model == POCKET else model_source(cfg, paths)
    seconds["pretrain"] = time.perf_counter() - t0
    model_dirs = {"baseline": baseline}
    for variant, captions in (("human", human), ("synthetic", synthetic)):
        t0 = time.perf_counter()
        say(f"fine-tuning on {variant} captions")
        train_blip(baseline, blip_dir / variant, train_ids, val_ids, captions, files, bcfg, epochs=bcfg.epochs,
                   lr=bcfg.lr, seed=cfg.seed, device=cfg.device, progress=say)
        model_dirs[variant] = blip_dir / variant / "model"
        seconds[f"train_{variant}"] = time.perf_counter() - t0

    device = training.setup_distributed(cfg.device).device
    metrics: dict[str, dict] = {"itc": {}, "itm": {}}
    t0 = time.perf_counter()
    for variant, model_dir in model_dirs.items():
        model, tokenizer, mean, std = blip.load_blip(model_dir, device)
        size = model.config.vision_config.image_size
        images = blip_data.BlipImages([files[i] for i in test_ids], blip_data.BlipTransform(size, False, mean, std))
        for qs, texts in queries.items():
            scores = score_texts_images(model, tokenizer, [texts[i] for i in test_ids],
                                        _loader(images, bcfg.eval_batch_size, bcfg.num_workers), device, bcfg,
                                        rerank=bcfg.itm_rerank)
            metrics["itc"].setdefault(variant, {})[qs] = runs.write_variant(
                blip_dir, variant, qs, scores["itc"].numpy(), test_ids, test_ids, depth=cfg.retrieval.run_depth)
            if bcfg.itm_rerank:
                metrics["itm"].setdefault(variant, {})[qs] = runs.write_variant(
                    rerank_dir, variant, qs, scores["itm"].numpy(), test_ids, test_ids, depth=cfg.retrieval.run_depth)
        del model
    seconds["score"] = time.perf_counter() - t0
    settings = dict(bootstrap=cfg.retrieval.bootstrap, randomisation=cfg.retrieval.randomisation, seed=cfg.seed,
                    depth=cfg.retrieval.run_depth)
    results = runs.summarise_model(blip_dir, model="blip", **settings)
    rerank = runs.summarise_model(rerank_dir, model="blip (ITC top-k re-ranked by ITM)", **settings) \
        if bcfg.itm_rerank else None
    truncation = truncation_report(cfg, {"human": {i: human[i] for i in train_ids},
                                         cfg.captioning.name: {i: synthetic[i] for i in train_ids}},
                                   queries, tokenizer)
    write_json(blip_dir / "truncation.json", truncation)
    summary = {"model": str(bcfg.model), "baseline": str(baseline), "n_train": len(train_ids), "n_val": len(val_ids),
               "n_test": len(test_ids), "query_sets": sorted(queries), "chance_r1": 1 / len(test_ids),
               "test_metrics": metrics, "results": str((blip_dir / "results.json").relative_to(paths.root)),
               "itm_rerank_results": str((rerank_dir / "results.json").relative_to(paths.root))
               if bcfg.itm_rerank else None,
               "histories": {v: str((blip_dir / v / "train" / training.HISTORY).relative_to(paths.root))
                             for v in ("human", "synthetic")},
               "seconds": {**seconds, "total": time.perf_counter() - t_start}}
    write_json(blip_dir / "summary.json", summary)
    say(f"BLIP experiment done in {summary['seconds']['total']:.0f} s")
    return {"source": "model", "summary": summary, "results": results, "rerank_results": rerank,
            "truncation": truncation, "histories": load_histories(paths)}


def load_histories(paths) -> dict[str, dict]:
    """The training histories (curves) of the fine-tuned variants and, in the demo, of the pocket pre-training."""
    out = {}
    pretraining = paths.models / f"{POCKET}-pretrain" / "train"
    for name, folder in (("pocket pre-training (validated on a pool hold-out)", pretraining),
                         ("human", paths.retrieval / "blip" / "human" / "train"),
                         ("synthetic", paths.retrieval / "blip" / "synthetic" / "train")):
        if (folder / training.HISTORY).is_file():
            out[name] = read_json(folder / training.HISTORY)
    return out


# ---- notebook 04 ------------------------------------------------------------------------------------------------


def experiment(cfg, paths, progress: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Notebook 04's one call. retrieval.source "model": train and score (run_blip_experiment). "reference":
    no training; the authors' stored BLIP runs evaluated by runs.reference_experiment2, plus the truncation
    statistics of the published captions (BLIP's BERT uncased tokenizer, available offline)."""
    if cfg.retrieval.source == "model":
        return run_blip_experiment(cfg, paths, progress)
    if cfg.retrieval.source != "reference":
        raise ValueError(f"retrieval.source must be model or reference, got {cfg.retrieval.source!r}")
    from artcap_lib.retrieval import inputs as experiment2
    from artcap_lib.retrieval import runs
    from artcap_lib.data.artpedia import by_split, human_caption, load_artworks
    from artcap_lib.standins.pocket_blip import blip_tokenizer_offline
    reference = runs.reference_experiment2(paths, bootstrap=cfg.retrieval.bootstrap,
                                           randomisation=cfg.retrieval.randomisation, seed=cfg.seed)
    artworks = by_split(load_artworks(paths.artworks, require_urls=False), "train")
    sources = {"human": {i: human_caption(e) for i, e in artworks.items()}}
    caption_file = paths.caption_file(cfg.captioning.name)
    if caption_file.is_file():
        sources[cfg.captioning.name] = experiment2.synthetic_captions(caption_file, sorted(artworks))
    queries = {}
    if "llama" in cfg.retrieval.query_sets:
        from artcap_lib import reference as authors
        queries["llama"] = authors.llama_queries()
    truncation = truncation_report(cfg, sources, queries, blip_tokenizer_offline())
    write_json(paths.retrieval / "blip" / "truncation.json", truncation)
    return {"source": "reference", "summary": None, "results": reference["models"]["blip"], "rerank_results": None,
            "truncation": truncation, "histories": {}}


def describe(out: dict[str, Any]) -> str:
    """One paragraph saying what notebook 04 just did."""
    if out["source"] == "reference":
        return ("Reference profile: no model was trained or run. The numbers below are the authors' stored BLIP "
                "runs (jcgohr/artwork-caption-gen, top-100 ranx runs, ITC cosine scoring) re-evaluated here, with "
                "bootstrap intervals and paired tests; truncation statistics are computed on the published captions.")
    s = out["summary"]
    return (f"Trained and scored here: baseline = {s['baseline']}; fine-tuned on human and on synthetic captions "
            f"({s['n_train']} train / {s['n_val']} val images), evaluated on {s['n_test']} test images "
            f"(chance R@1 = {s['chance_r1']:.4f}) in {s['seconds']['total']:.0f} s.")


def training_curves(histories: dict[str, dict[str, Any]]):
    """Per run: ITC and ITM training loss per step, validation mean recall per epoch (circle: kept), learning rate."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 4, figsize=(18, 3.6))
    if not histories:
        for ax in axes:
            ax.set_axis_off()
        axes[0].text(0, 0.5, "no training in this profile", fontsize=12)
        return fig
    for name, history in histories.items():
        steps, per_epoch = history["steps"], history["steps_per_epoch"]
        x = [s["step"] / per_epoch for s in steps]
        line, = axes[0].plot(x, [s["loss_itc"] for s in steps], lw=1, label=name)
        axes[1].plot(x, [s["loss_itm"] for s in steps], lw=1, color=line.get_color(), label=name)
        epochs = [e for e in history["epochs"] if history["monitor"] in e]
        axes[2].plot([e["epoch"] for e in epochs], [e[history["monitor"]] for e in epochs], "o-",
                     color=line.get_color(), label=name)
        best = [e for e in epochs if e["epoch"] == history.get("best_epoch")]
        axes[2].scatter([e["epoch"] for e in best], [e[history["monitor"]] for e in best], s=150,
                        facecolors="none", edgecolors=line.get_color())
        axes[3].plot(x, [s["lr"] for s in steps], color=line.get_color(), label=name)
    axes[0].set(title="ITC loss (momentum distillation + queue)", xlabel="epoch")
    axes[1].set(title="ITM loss (hard negatives)", xlabel="epoch")
    axes[2].set(title="validation mean recall (circle: kept epoch)", xlabel="epoch (0 = before training)")
    axes[3].set(title="learning rate (BLIP's per-epoch cosine)", xlabel="epoch")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def truncation_table(report: dict[str, Any]):
    """How much of each caption source BLIP sees, in training (30 words, 35 tokens) and as a query (35 tokens)."""
    import pandas as pd
    rows = [{"use": use, "source": name, **stats} for use in ("training", "queries")
            for name, stats in report[use].items()]
    return pd.DataFrame(rows).round(3)


def chance_table(out: dict[str, Any]):
    """Test R@1 of every variant against chance (1 / number of test images)."""
    import pandas as pd
    if out["summary"] is None:
        return pd.DataFrame({"note": ["reference profile: the authors' runs are over the 333 Artpedia test images "
                                      "(chance R@1 = 1/333)"]})
    chance = out["summary"]["chance_r1"]
    rows = [{"variant": v, "query set": qs, "R@1": m["recall@1"], "chance": chance, "x chance": m["recall@1"] / chance}
            for v, per_set in out["summary"]["test_metrics"]["itc"].items() for qs, m in per_set.items()]
    return pd.DataFrame(rows).round(4)


def itc_vs_itm_table(out: dict[str, Any], metrics: Sequence[str] = ("recall@1", "recall@5", "mrr")):
    """The paper's ITC scoring beside BLIP's ITM re-ranking (top k_test), per variant and query set."""
    import pandas as pd
    if out["rerank_results"] is None:
        why = ("the authors stored ITC runs only" if out["source"] == "reference"
               else "ITM re-ranking is off (blip.itm_rerank: false)")
        return pd.DataFrame({"note": [why]})
    rows = []
    for qs, block in out["results"]["query_sets"].items():
        reranked = out["rerank_results"]["query_sets"][qs]["variants"]
        for variant, entry in block["variants"].items():
            row = {"query set": qs, "variant": variant}
            for m in metrics:
                row[f"ITC {m}"] = entry["metrics"][m]
                row[f"ITM {m}"] = reranked[variant]["metrics"][m]
            rows.append(row)
    return pd.DataFrame(rows).round(4)
