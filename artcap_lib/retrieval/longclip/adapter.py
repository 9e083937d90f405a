"""Long-CLIP as an Experiment-2 retrieval model (`protocol.RetrievalModel`): the authors' recipe, their scores.

The baseline is loaded (converted from longclip-*.pt, or stretched from 77 positions) once per run; each
fine-tune trains a deep copy of it, and fine-tuned weights are scored with the baseline's tokenizer and image
processor, exactly as trained. Scores: `longclip.score` (the authors' raw dot product) as the main kind and the
other one (cosine) beside it. Truncation: captions and queries cut at max_length (248) tokens. The demo's pocket
Long-CLIP is pre-trained with CLIP's own recipe (preset adamw: AdamW, warm-up + cosine, our validation) on the pool,
a random 10% held out.
"""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any, Mapping, Sequence

from artcap_lib.checkpoints import load_pretrained
from artcap_lib.data.artpedia import ordered_ids
from artcap_lib.retrieval.protocol import BenchOptions, BenchStep, FineTuneDirs, ScoreKind, TrainingData, training_pairs
from artcap_lib.model_names import POCKET_LONGCLIP, locate, pocket

LABELS = {"dot": "raw dot product", "cosine": "cosine"}


def other_score(score: str) -> str:
    return "cosine" if score == "dot" else "dot"


def fine_tune_settings(cfg):
    from artcap_lib.retrieval.longclip.model import FineTuneSettings
    lc = cfg.longclip
    return FineTuneSettings(
        preset=lc.preset, epochs=lc.epochs, batch_size=lc.batch_size, lr=lc.lr, weight_decay=lc.weight_decay,
        warmup=lc.warmup, grad_accum=lc.grad_accum, precision=lc.precision, patience=lc.patience or None,
        val_protocol=lc.val_protocol, scale_cap=lc.scale_cap, drop_last=lc.drop_last,
        max_grad_norm=lc.max_grad_norm or None, max_length=lc.max_length, num_workers=lc.num_workers,
        # small demo collections stay in memory; worker processes would each hold (and lose) their own copy
        cache_images=cfg.data.source == "demo" and lc.num_workers == 0, seed=cfg.seed)


class LongClip:
    name = "longclip"
    title = "Long-CLIP"
    pocket = POCKET_LONGCLIP
    bench_defaults = {"source": "random:longclip-L", "batch_size": 40, "tokens": 96}

    def __init__(self):
        self._base: tuple[str, Any] | None = None      # (location, LongClip bundle): loaded once per run

    def settings(self, cfg):
        return cfg.longclip

    def score_kinds(self, cfg) -> list[ScoreKind]:
        main = cfg.longclip.score
        if main not in LABELS:
            raise ValueError(f"longclip.score must be one of {', '.join(LABELS)}, got {main!r}")
        return [ScoreKind(main, LABELS[main]), ScoreKind(other_score(main), LABELS[other_score(main)])]

    def _baseline(self, cfg, base: str):
        if self._base is None or self._base[0] != base:
            from artcap_lib.retrieval.longclip.model import load_model
            tokenizer = locate(cfg.longclip.tokenizer)
            self._base = (base, load_model(base, tokenizer, cfg.longclip.stretch_77))
        return self._base[1]

    def pretrain_pocket(self, cfg, pool: TrainingData, dirs: FineTuneDirs, dist, progress) -> None:
        import numpy as np

        from artcap_lib.retrieval.longclip import model as longclip
        ids = list(pool.train_ids)
        held_out = set(np.random.default_rng(cfg.seed).choice(ids, size=max(1, len(ids) // 10), replace=False))
        model, tokenizer, processor = pocket(POCKET_LONGCLIP).build([pool.captions[i] for i in ids], seed=cfg.seed)
        bundle = longclip.LongClip(model, tokenizer, processor, source=POCKET_LONGCLIP,
                                   note="pocket model, pre-trained here")
        lc = cfg.longclip
        settings = longclip.FineTuneSettings(preset="adamw", epochs=lc.pretrain_epochs,
                                             batch_size=lc.pretrain_batch_size, lr=lc.pretrain_lr, weight_decay=0.1,
                                             warmup=0.1, patience=None, precision=lc.precision, cache_images=True,
                                             seed=cfg.seed)
        longclip.fine_tune(bundle, training_pairs(pool, [i for i in ids if i not in held_out]),
                           training_pairs(pool, ordered_ids(held_out)), settings, dirs, dist=dist, progress=progress)

    def fine_tune(self, cfg, base: str, data: TrainingData, dirs: FineTuneDirs, dist, progress) -> dict[str, Any]:
        from artcap_lib.retrieval.longclip import model as longclip
        baseline = self._baseline(cfg, base)
        bundle = dataclasses.replace(baseline, model=copy.deepcopy(baseline.model))
        return longclip.fine_tune(bundle, training_pairs(data, data.train_ids), training_pairs(data, data.val_ids),
                                  fine_tune_settings(cfg), dirs, dist, progress=progress)

    def load(self, cfg, base: str, fine_tuned: Path | None, device):
        baseline = self._baseline(cfg, base)
        if fine_tuned is None:
            return baseline
        from transformers import CLIPModel
        return dataclasses.replace(baseline, model=load_pretrained(CLIPModel, fine_tuned), source=str(fine_tuned))

    def score(self, cfg, loaded, queries: Mapping[str, Sequence[str]], images: Sequence[Path],
              device) -> dict[str, dict[str, Any]]:
        from artcap_lib.retrieval.dualenc import scoring
        from artcap_lib.retrieval.longclip import model as longclip
        lc = cfg.longclip
        image_features = longclip.encode_images(loaded, list(images), lc.eval_batch_size, device, lc.score_precision)
        out = {}
        for query_set, texts in queries.items():
            text_features = longclip.encode_texts(loaded, list(texts), lc.eval_batch_size, device, lc.max_length,
                                                  lc.score_precision)
            # kept as features: a large collection is streamed by the runner, never a (texts x images) matrix
            out[query_set] = {kind.name: scoring.embedding_scores(text_features, image_features, kind.name)
                              for kind in self.score_kinds(cfg)}
        return out

    def tokenizer(self, cfg, loaded):
        return loaded.tokenizer

    def offline_tokenizer(self, cfg):
        return None      # CLIP's BPE vocabulary is not shipped offline: the reference profile reports no truncation

    def truncation(self, cfg, tokenizer, training_captions, queries) -> dict[str, Any]:
        from artcap_lib.retrieval.longclip.model import token_truncation
        n = cfg.longclip.max_length
        return {"training": {name: token_truncation(tokenizer, c.values(), n) for name, c in training_captions.items()},
                "queries": {name: token_truncation(tokenizer, q.values(), n) for name, q in queries.items()},
                "limits": {"max_length": n}}

    def bench_step(self, source: str, batch_size: int, tokens: int, device, precision: str,
                   options: BenchOptions) -> BenchStep:
        """Full fine-tuning steps (the preset's loss, forward and backward, and its optimiser) on one synthetic batch
        of the model's image size and `tokens`-long captions."""
        import torch

        from artcap_lib.retrieval import distributed, training
        from artcap_lib.retrieval.longclip import model as longclip
        if source == "pocket":
            import numpy as np

            from artcap_lib.data.demo import random_scene, visual_sentences
            rng = np.random.default_rng(0)
            corpus = [" ".join(visual_sentences(random_scene(rng), rng)) for _ in range(200)]
            bundle = longclip.LongClip(*pocket(POCKET_LONGCLIP).build(corpus), source="pocket Long-CLIP, untrained")
        else:
            bundle = longclip.load_model(locate(source, device=str(device), models_dir=options.models_dir),
                                         tokenizer=options.tokenizer)
            bundle.source = source
        model = bundle.model.to(device).train()
        optimizer = longclip.make_optimizer(options.preset, 1e-7, 1e-3)(model)
        train_step = longclip.objective_steps(longclip.FineTuneSettings(preset=options.preset))[0]
        size = model.config.vision_config.image_size
        text_config = model.config.text_config
        g = torch.Generator().manual_seed(0)
        ids = torch.randint(0, text_config.vocab_size - 2, (batch_size, tokens), generator=g)
        ids[:, 0], ids[:, -1] = text_config.bos_token_id, text_config.eos_token_id
        batch = distributed.to_device({"pixel_values": torch.randn(batch_size, 3, size, size, generator=g),
                                    "input_ids": ids, "attention_mask": torch.ones_like(ids)}, device)

        def step(_i: int):
            with training.autocast_context(device, precision):
                loss = train_step(model, batch)["loss"]
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            return loss

        return BenchStep(step, bundle.source, size, sum(p.numel() for p in model.parameters()),
                         {"preset": options.preset})
