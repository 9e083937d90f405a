"""BLIP's retrieval fine-tuning recipe on the shared loop, and its evaluation scores (ITC, ITM re-ranking).

Training is `model.BlipRetrievalObjective` fed by `data` in `training.fit` (its temperature, momentum encoders and
queues taken from the model directory's `original.EXTRAS` when it was converted from BLIP's original checkpoint, its
ViTs with `blip.drop_path`): AdamW with BLIP's per-epoch cosine learning rate, a checkpoint per epoch (resumable after a kill), and the epoch with the best validation mean
recall kept, validation using the same caption source as training and, like the authors, ITC top-k re-ranked by
ITM (`select_with`). Scores are the paper's ITC cosine over raw captions cut to 35 tokens, plus BLIP's own ITM
re-ranking of the ITC top k_test.
"""
from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from artcap_lib import runtime
from artcap_lib.retrieval import distributed, training
from artcap_lib.retrieval.blip import data as blip_data
from artcap_lib.retrieval.blip import model as blip
from artcap_lib.retrieval.blip import original
from artcap_lib.retrieval.protocol import FineTuneDirs

EVAL_MAX_WORDS = 50          # BLIP's eval datasets (and the authors' artpedia_eval) pre_caption to 50 words


def loader(dataset, batch_size: int, num_workers: int):
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)


@torch.no_grad()
def score_texts_images(model, tokenizer, texts: Sequence[str], images, device, bcfg, rerank: bool,
                       both_directions: bool = False, precision: str | None = None) -> dict[str, Any]:
    """{"itc": (n_texts, n_images) cosine, and with rerank "itm": the same re-ranked by ITM (queries = texts),
    with both_directions also "itm_i2t": (n_images, n_texts) re-ranked per image}. `images` yields pixel batches.
    Above `topk.DENSE_LIMIT` scores (one direction: Experiment 2's test scoring) no matrix is made: "itc" is a
    `topk.EmbeddingScores`, "itm" a `topk.RerankedScores`, both ranked by streaming."""
    from artcap_lib.retrieval import topk
    model.eval()
    with training.autocast_context(torch.device(device), precision or bcfg.precision):   # default: training's
        text_feat, ids, mask = blip.encode_texts(model, tokenizer, texts, device, bcfg.eval_batch_size,
                                                 bcfg.max_tokens)
        image_feat, embeds = blip.encode_images(model, images, device, keep_embeds=rerank)
        if len(text_feat) * len(image_feat) > topk.DENSE_LIMIT and not both_directions:
            # a collection too large for a matrix: ITC streamed, ITM on its top k_test only (`topk.RerankedScores`)
            itc = topk.EmbeddingScores(text_feat.float().cpu(), image_feat.float().cpu(),
                                       lambda: blip.itc_scores(text_feat, image_feat).float().cpu().numpy())
            out = {"itc": itc}
            if rerank:
                first = itc.topk(None, bcfg.k_test)
                reranked = blip.itm_candidates(
                    model, torch.from_numpy(first.indices).to(device), torch.from_numpy(first.scores).to(device),
                    ids, mask, embeds, blip.enc_token_id(tokenizer, model.config.text_config),
                    bcfg.eval_batch_size)
                out["itm"] = topk.RerankedScores(itc, first.indices, reranked.float().cpu().numpy())
            return out
        out = {"itc": blip.itc_scores(text_feat, image_feat)}
        if rerank:
            enc = blip.enc_token_id(tokenizer, model.config.text_config)
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


def per_epoch_cosine(epochs: int):
    """BLIP's cosine_lr_schedule: lr(epoch) = lr0 * (1 + cos(pi * epoch / epochs)) / 2, constant within an epoch."""
    def make(optimizer, total_steps: int):
        per_epoch = max(1, total_steps // epochs)
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step // per_epoch, epochs) / epochs)))
    return make


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def train_blip(init_dir: str | Path, dirs: FineTuneDirs, train_ids: Sequence[str], val_ids: Sequence[str],
               captions: Mapping[str, str], files: Mapping[str, Path], bcfg, *, epochs: int, lr: float,
               seed: int = 0, dist: distributed.Distributed | None = None, select_with: str | None = None,
               momentum: float | None = None, augment: bool = True, choices: Mapping[str, Sequence[str]] | None = None,
               progress: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Fine-tune the BLIP at init_dir on (image, caption) pairs; rank 0 writes dirs.model (best epoch, Hugging
    Face format); dirs.training holds the loop's checkpoints and history. Run again after a kill: it resumes.
    `choices`: every caption of the train images that have several (one is drawn each time the image is read)."""
    dist = dist or distributed.Distributed()
    select_with = select_with or bcfg.select_with
    momentum = bcfg.momentum if momentum is None else momentum
    if select_with not in ("itm", "itc"):
        raise ValueError(f"blip.select_with must be itm or itc, got {select_with!r}")
    runtime.seed_everything(seed, dist.rank)
    model, tokenizer, mean, std = blip.load_blip(init_dir)
    blip.set_text_dropout(model, bcfg.text_dropout)
    if bcfg.grad_checkpointing:
        model.vision_model.activation_checkpointing_enable()
    size = model.config.vision_config.image_size
    train_set = blip_data.BlipPairs(train_ids, files, captions, blip_data.BlipTransform(size, augment, mean, std),
                                    bcfg.max_words, choices)
    train_loader = distributed.make_loader(train_set, bcfg.batch_size, dist, shuffle=True, drop_last=True,
                                        collate_fn=blip_data.collate(tokenizer, bcfg.max_tokens), seed=seed,
                                        num_workers=bcfg.num_workers)
    enc = blip.enc_token_id(tokenizer, model.config.text_config)
    objective = blip.BlipRetrievalObjective(model, enc, bcfg.queue_size, alpha_warmup_steps=len(train_loader),
                                            momentum=momentum, alpha=bcfg.alpha, temp=bcfg.temp_init,
                                            drop_path=bcfg.drop_path)
    extras = original.read_extras(init_dir)     # a model converted from BLIP's original checkpoint brings these
    taken = objective.load_extras(extras) if extras else None
    if taken and progress and dist.is_main:
        progress(f"objective initialised from {original.EXTRAS}: {', '.join(taken['used']) or 'nothing'}"
                 + (f"; dropped {'; '.join(taken['dropped'])}" if taken["dropped"] else ""))
    val_texts = [blip_data.pre_caption(captions[i], EVAL_MAX_WORDS) for i in val_ids]
    val_images = blip_data.BlipImages([files[i] for i in val_ids], blip_data.BlipTransform(size, False, mean, std))

    def validate(obj):
        scores = score_texts_images(obj.model, tokenizer, val_texts, loader(val_images, bcfg.eval_batch_size, 0),
                                    dist.device, bcfg, rerank=select_with == "itm", both_directions=True)
        return mean_recall(scores, use_itm=select_with == "itm")

    fingerprint = {"init": str(init_dir), "epochs": epochs, "lr": lr, "batch_size": bcfg.batch_size,
                   "weight_decay": bcfg.weight_decay, "queue_size": bcfg.queue_size, "momentum": momentum,
                   "alpha": bcfg.alpha, "select_with": select_with, "augment": augment, "seed": seed,
                   "text_dropout": bcfg.text_dropout, "temp_init": bcfg.temp_init, "drop_path": bcfg.drop_path,
                   "extras": taken, "world_size": dist.world_size,
                   "captions": _digest([(i, captions[i]) for i in train_ids]), "val": _digest(list(val_ids))}
    if choices:          # (absent otherwise, so the fingerprints of single-caption runs stay what they were)
        fingerprint["choices"] = _digest(sorted((i, list(c)) for i, c in choices.items()))
    result = training.fit(
        objective, step=lambda obj, batch: obj(**batch), train_loader=train_loader, validate=validate,
        make_optimizer=lambda obj: torch.optim.AdamW([p for p in obj.parameters() if p.requires_grad], lr=lr,
                                                     weight_decay=bcfg.weight_decay),
        make_scheduler=per_epoch_cosine(epochs),
        config=training.TrainConfig(epochs=epochs, precision=bcfg.precision, monitor="val_r_mean", mode="max",
                                    patience=None, validate_first=True),
        out_dir=dirs.training, dist=dist, fingerprint=fingerprint, progress=progress)
    if dist.is_main:
        from transformers import AutoProcessor
        # written beside the target and renamed: a kill mid-save never leaves a half model where a finished one goes
        tmp = dirs.model.with_name(f".{dirs.model.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        result.model.model.save_pretrained(tmp)
        AutoProcessor.from_pretrained(str(init_dir)).save_pretrained(tmp)
        shutil.rmtree(dirs.model, ignore_errors=True)
        tmp.rename(dirs.model)
    return result.history
