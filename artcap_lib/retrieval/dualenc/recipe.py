"""Fine-tuning a dual encoder on the shared loop (`training.fit`): AdamW with linear warm-up then cosine decay,
all parameters trainable, no augmentation, captions cut at the text tower's context (the cut is counted),
drop_last batches, the best validation-loss epoch kept. The objective (a step of `objectives`), the text inputs
(`data.TextInputs`) and the optimiser builder are the caller's, so CLIP, SigLIP and Long-CLIP share this one loop.
Settings may also carry `drop_last` and `val_protocol` (`validation.PROTOCOLS`); without them (CLIP, SigLIP) the
last short batch is dropped and the validation is ours. Long-CLIP's authors' presets set both the other way.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from artcap_lib import runtime
from artcap_lib.retrieval import distributed, training
from artcap_lib.retrieval.dualenc.data import Collate, ImageTextDataset, TextInputs, token_truncation
from artcap_lib.retrieval.dualenc.validation import Validation
from artcap_lib.retrieval.protocol import FineTuneDirs

Pairs = tuple[list[Path], list[str]]


def adamw(lr: float, weight_decay: float, betas: tuple[float, float] = (0.9, 0.98), eps: float = 1e-6):
    """model -> AdamW over the trainable parameters; matrices decay, gains, biases and the temperature (and SigLIP's
    logit bias) do not: decaying a LayerNorm gain or the temperature towards 0 is not regularisation.
    The defaults are CLIP's (betas 0.9/0.98, eps 1e-6: the ViT-L setting of the CLIP paper)."""
    def build(model):
        params = [p for p in model.parameters() if p.requires_grad]
        decay = [p for p in params if p.ndim >= 2]
        rest = [p for p in params if p.ndim < 2]
        return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                                  {"params": rest, "weight_decay": 0.0}], lr=lr, betas=betas, eps=eps)
    return build


def warmup_cosine(warmup: float):
    """(optimiser, total optimiser steps) -> per-step LambdaLR: linear warm-up over the first `warmup` share of the
    steps, then cosine decay to 0."""
    def build(opt, total):
        warm = max(1, int(warmup * total))
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (s + 1) / warm if s < warm else
                                                 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, total - warm))))
    return build


@dataclass
class FineTuneSettings:
    """A CLIP / SigLIP fine-tune (Long-CLIP has its own, with the authors' presets)."""
    epochs: int = 6
    batch_size: int = 40                 # per process
    lr: float = 1e-6
    weight_decay: float = 0.1
    warmup: float = 0.1                  # share of the steps warming up
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    grad_accum: int = 1
    precision: str = "auto"
    patience: int | None = 1
    max_grad_norm: float | None = None
    num_workers: int = 0
    cache_images: bool = False           # keep preprocessed images in memory (small collections)
    seed: int = 0


def fine_tune(bundle, train_pairs: Pairs, val_pairs: Pairs, settings, dirs: FineTuneDirs, *,
              step: Callable, text: TextInputs, make_optimizer: Callable, make_scheduler: Callable | None,
              dist: distributed.Distributed | None = None, progress=print,
              val_step: Callable | None = None) -> dict[str, Any]:
    """Fine-tune bundle.model in place (best validation-loss epoch kept); rank 0 saves the bundle to dirs.model.

    `bundle` has model, tokenizer, image_processor, source, note and save(dir); `settings` is a dataclass with (at
    least) the fields of FineTuneSettings that the loop reads (epochs, batch_size, grad_accum, precision, patience,
    max_grad_norm, num_workers, cache_images, seed), all of it fingerprinted: resuming with other values fails.
    dirs.training holds the loop's checkpoint (resume after a kill by calling again; a finished run returns at
    once) and history.json. Returns the settings, the truncation counts and the outcome.
    val_step: the objective of the validation loss, where it is not the training one (`step`)."""
    dist = dist or distributed.Distributed()
    runtime.seed_everything(settings.seed, dist.rank)
    collate = Collate(bundle.tokenizer, text)
    train_set = ImageTextDataset(*train_pairs, bundle.image_processor, cache=settings.cache_images)
    val_set = ImageTextDataset(*val_pairs, bundle.image_processor, cache=settings.cache_images)
    if len(train_set) < settings.batch_size * dist.world_size:
        raise ValueError(f"{len(train_set)} training pairs are fewer than one global batch of "
                         f"{settings.batch_size} x {dist.world_size}")
    # drop_last: a contrastive batch's loss depends on its size; a short last batch would be an outlier
    train_loader = distributed.make_loader(train_set, settings.batch_size, dist, shuffle=True,
                                        drop_last=getattr(settings, "drop_last", True), collate_fn=collate,
                                        seed=settings.seed, num_workers=settings.num_workers)
    validate = Validation(getattr(settings, "val_protocol", "ours"), val_set, settings.batch_size, dist,
                          val_step or step, settings.precision, collate, seed=settings.seed,
                          num_workers=settings.num_workers)
    # every caption counts, an image's several ones too (a tuple in train_pairs: `protocol.training_pairs`)
    train_texts = [t for c in train_pairs[1] for t in ((c,) if isinstance(c, str) else c)]
    truncation = {"train": token_truncation(bundle.tokenizer, train_texts, text.max_length),
                  "val": token_truncation(bundle.tokenizer, val_pairs[1], text.max_length)}
    if progress and dist.is_main:
        t = truncation["train"]
        progress(f"captions cut at {text.max_length} tokens: {t['captions_cut']}/{t['captions']} training "
                 f"captions, {t['tokens_cut']}/{t['tokens']} tokens ({100 * t['share_tokens_cut']:.1f}%)")
    config = training.TrainConfig(epochs=settings.epochs, grad_accum=settings.grad_accum,
                                  precision=settings.precision, max_grad_norm=settings.max_grad_norm,
                                  monitor="val_loss", mode="min", patience=settings.patience)
    result = training.fit(
        bundle.model, step, train_loader,
        validate=validate,
        make_optimizer=make_optimizer, make_scheduler=make_scheduler,
        config=config, out_dir=dirs.training, dist=dist,
        fingerprint={**asdict(settings), "num_workers": None, "source": bundle.source,
                     "train": len(train_set), "val": len(val_set)},
        progress=progress)
    bundle.model = result.model
    if dist.is_main:
        bundle.save(dirs.model)
    return {"settings": asdict(settings), "source": bundle.source, "note": bundle.note,
            "train_pairs": len(train_set), "val_pairs": len(val_set), "truncation": truncation,
            "best_val_loss": result.best}
