"""BLIP as an Experiment-2 retrieval model (`protocol.RetrievalModel`): its recipe, scores and truncation rule.

Scores: ITC cosine, the paper's (main), and, with blip.itm_rerank, BLIP's own evaluation: the ITC top k_test
re-scored by ITM + ITC. Truncation: training captions cut to 30 words (pre_caption) then 35 tokens; queries raw,
cut to 35 tokens. The demo's pocket BLIP is pre-trained with the same objective on the pool, 10% (at least 8)
of it held out, without the fine-tuning augmentation and with a faster momentum: it stands in for BLIP's
web-scale pre-training and learns from random weights in a few hundred steps.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping, Sequence

from artcap_lib.retrieval import distributed, training
from artcap_lib.retrieval.protocol import BenchOptions, BenchStep, FineTuneDirs, ScoreKind, TrainingData
from artcap_lib.model_names import POCKET_BLIP, locate, pocket

ITC = ScoreKind("itc", "ITC cosine")
ITM = ScoreKind("itm_rerank", "ITC top-k re-ranked by ITM")


class Blip:
    name = "blip"
    title = "BLIP"
    pocket = POCKET_BLIP
    bench_defaults = {"source": "random:blip-itm-large-coco", "batch_size": 16, "tokens": 35}

    def settings(self, cfg):
        return cfg.blip

    def score_kinds(self, cfg) -> list[ScoreKind]:
        return [ITC, ITM] if cfg.blip.itm_rerank else [ITC]

    def pretrain_pocket(self, cfg, pool: TrainingData, dirs: FineTuneDirs, dist, progress) -> None:
        from artcap_lib.retrieval.blip.recipe import train_blip
        ids = list(pool.train_ids)
        n_val = max(8, len(ids) // 10)
        init = dirs.work / "init"
        if dist.is_main:
            pocket(POCKET_BLIP).build(init, image_size=cfg.blip.image_size, seed=cfg.seed)
        distributed.barrier(dist)
        train_blip(init, dirs, ids[:-n_val], ids[-n_val:], pool.captions, pool.images, cfg.blip,
                   epochs=cfg.blip.pretrain_epochs, lr=cfg.blip.pretrain_lr, seed=cfg.seed, dist=dist,
                   select_with="itc", momentum=cfg.blip.pretrain_momentum, augment=False, progress=progress)

    def model_dir(self, cfg, base: str, dist=None, progress=None) -> str:
        """The directory a fine-tune starts from: `base` itself, or, when it names BLIP's original checkpoint (a
        URL or a .pth file), its conversion (downloaded and converted once by the main process, then shared)."""
        from artcap_lib.retrieval.blip import original
        if not original.is_original(base):
            return base
        if dist is not None and not dist.is_main:
            distributed.barrier(dist)
        out = original.resolve(base, cfg.blip.image_size, progress if dist is None or dist.is_main else None)
        if dist is not None and dist.is_main:
            distributed.barrier(dist)
        return out

    def fine_tune(self, cfg, base: str, data: TrainingData, dirs: FineTuneDirs, dist, progress) -> dict[str, Any]:
        from artcap_lib.retrieval.blip import original
        from artcap_lib.retrieval.blip.recipe import train_blip
        init = self.model_dir(cfg, base, dist, progress)
        train_blip(init, dirs, data.train_ids, data.val_ids, data.captions, data.images, cfg.blip,
                   epochs=cfg.blip.epochs, lr=cfg.blip.lr, seed=cfg.seed, dist=dist, choices=data.choices,
                   augment=cfg.blip.augment,
                   progress=progress)
        out = {"settings": dataclasses.asdict(cfg.blip)}
        record = original.read_record(init)
        if record is not None:
            out["original_checkpoint"] = record      # which file (size, SHA-256), what it held, what was used
        return out

    def load(self, cfg, base: str, fine_tuned: Path | None, device):
        from artcap_lib.retrieval.blip import model as blip
        return blip.load_blip(fine_tuned or self.model_dir(cfg, base, progress=print), device)

    def score(self, cfg, loaded, queries: Mapping[str, Sequence[str]], images: Sequence[Path],
              device) -> dict[str, dict[str, Any]]:
        from artcap_lib.retrieval.blip import data as blip_data
        from artcap_lib.retrieval.blip.recipe import loader, score_texts_images
        model, tokenizer, mean, std = loaded
        bcfg = cfg.blip
        size = model.config.vision_config.image_size
        pixels = blip_data.BlipImages(list(images), blip_data.BlipTransform(size, False, mean, std))
        out = {}
        for query_set, texts in queries.items():
            scores = score_texts_images(model, tokenizer, list(texts), loader(pixels, bcfg.eval_batch_size,
                                                                               bcfg.num_workers),
                                        device, bcfg, rerank=bcfg.itm_rerank, precision=bcfg.score_precision)
            out[query_set] = {ITC.name: _matrix_or_streamed(scores["itc"])}
            if bcfg.itm_rerank:
                out[query_set][ITM.name] = _matrix_or_streamed(scores["itm"])
        return out

    def tokenizer(self, cfg, loaded):
        return loaded[1]

    def offline_tokenizer(self, cfg):
        from artcap_lib.retrieval.blip.model import offline_tokenizer
        return offline_tokenizer()

    def truncation(self, cfg, tokenizer, training_captions, queries) -> dict[str, Any]:
        from artcap_lib.retrieval.blip.data import truncation_stats
        b = cfg.blip
        return {"training": {name: truncation_stats(dict(c), tokenizer, b.max_words, b.max_tokens)
                             for name, c in training_captions.items()},
                "queries": {name: truncation_stats(dict(q), tokenizer, None, b.max_tokens)
                            for name, q in queries.items()},
                "limits": {"max_words": b.max_words, "max_tokens": b.max_tokens}}

    def bench_step(self, source: str, batch_size: int, tokens: int, device, precision: str,
                   options: BenchOptions) -> BenchStep:
        """Full objective steps: ITC with momentum encoders and queues, ITM with hard negatives, backward, AdamW,
        on captions of BLIP's training length (30 words, cut to `tokens`)."""
        import tempfile

        import torch

        from artcap_lib.retrieval.blip import model as blip
        with tempfile.TemporaryDirectory() as tmp:
            label = source
            if source == "pocket":
                source, label = str(pocket(POCKET_BLIP).build(Path(tmp) / POCKET_BLIP)), "pocket-blip (untrained)"
            net, tokenizer, _, _ = blip.load_blip(locate(source, device=str(device), models_dir=options.models_dir),
                                                  device)
        if options.grad_checkpointing:
            net.vision_model.activation_checkpointing_enable()
        size = net.config.vision_config.image_size
        enc = blip.enc_token_id(tokenizer, net.config.text_config)
        objective = blip.BlipRetrievalObjective(net, enc, max(options.queue_size, batch_size)).to(device)
        objective.train()
        optimizer = torch.optim.AdamW([p for p in objective.parameters() if p.requires_grad], lr=1e-6,
                                      weight_decay=0.05)
        texts = [" ".join(["a painting of a woman in a red dress beside a window"] * 3)] * batch_size
        text = tokenizer(texts, padding="max_length", truncation=True, max_length=tokens, return_tensors="pt")
        pixels = torch.randn(batch_size, 3, size, size, generator=torch.Generator().manual_seed(0))
        batch = distributed.to_device({"pixel_values": pixels, "input_ids": text["input_ids"],
                                    "attention_mask": text["attention_mask"]}, device)

        def step(i: int):
            # new image ids every step, as in training: the queue fills with other images, never the same
            idx = torch.arange(i * batch_size, (i + 1) * batch_size, device=device)
            with training.autocast_context(device, precision):
                loss = objective(**batch, idx=idx)["loss"]
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            return loss

        return BenchStep(step, label, size, sum(p.numel() for p in net.parameters()),
                         {"queue_size": objective.queue_size, "grad_checkpointing": options.grad_checkpointing})


def _matrix_or_streamed(scores):
    """A score matrix as numpy; scores too large for one (`topk.is_streamed`) as they are."""
    from artcap_lib.retrieval import topk
    return scores if topk.is_streamed(scores) else scores.numpy()
