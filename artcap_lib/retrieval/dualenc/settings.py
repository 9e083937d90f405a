"""The dual encoders' sections of a profile (`clip:` and `siglip:`): the recipe of each fine-tune and its scoring,
each value with its help and its rule. Imports nothing heavy: the profile loader reads it through the registry."""
from __future__ import annotations

from dataclasses import dataclass

from artcap_lib.settings import MODEL, setting


@dataclass
class ClipConfig:
    model: str = setting("openai/clip-vit-large-patch14",
        "hub id or HF dir (77 text positions, never stretched), replica:openai/clip-vit-large-patch14, "
        "random:clip-vit-large-patch14, or \"pocket-clip\" (demo: pre-trained here)", kind=MODEL)
    epochs: int = setting(6, "as Long-CLIP's fine-tunes, so the two differ in the context only", at_least=1)
    batch_size: int = setting(40, "per process; InfoNCE negatives come from the global batch", at_least=1)
    lr: float = setting(1e-6,
        "AdamW (betas 0.9/0.98, eps 1e-6); a ViT-L/14 from 400M pairs forgets fast: 1e-6 is the small end of CLIP "
        "fine-tuning rates, fit for ~300 steps",
        positive=True)
    weight_decay: float = setting(0.1, "decoupled, matrices only (gains, biases, the temperature spared)")
    warmup: float = setting(0.1, "share of steps warming up linearly, then cosine decay to 0", within=(0.0, 0.99))
    grad_accum: int = setting(1, "micro-batches per step (does not add contrastive negatives)", at_least=1)
    precision: str = setting("auto",
        "auto (bf16 autocast on GPUs that have it) | bf16 | fp32",
        choices=('auto', 'bf16', 'fp32'))
    patience: int = setting(1, "early stop after this many epochs without val-loss improvement; 0 = never")
    max_grad_norm: float = setting(0.0, "gradient clipping; 0 = none")
    score: str = setting("cosine",
        "cosine (CLIP's own geometry) | dot (raw dot product, Long-CLIP authors')",
        choices=('cosine', 'dot'))
    score_precision: str = setting("fp32",
        "test scoring: fp32 (exact; 333 test images cost nothing) | fp16 | bf16 | auto",
        choices=('fp32', 'fp16', 'bf16', 'auto'))
    eval_batch_size: int = setting(64, at_least=1)
    num_workers: int = setting(4, "data-loader processes")
    threads: int = setting(0, "torch intra-op threads (0 = torch's default); pocket models: 1")
    keep_checkpoint: bool = setting(False, "keep the optimiser-state checkpoint after a finished fine-tune")
    pretrain_epochs: int = setting(24,
        "pocket-clip only: epochs on the demo pre-training pool (= the baseline); demo test R@1 0.305 of 200 (8 "
        "epochs: 0.055), ~30 s on 1 thread")
    pretrain_lr: float = setting(2e-3,
        "pocket-clip only: from random weights, steps of from-scratch training size",
        positive=True)
    pretrain_batch_size: int = setting(64, "pocket-clip only", at_least=1)


@dataclass
class SiglipConfig(ClipConfig):
    """CLIP's section with SigLIP's values where they differ (the rest, field order included, is inherited)."""
    model: str = setting("google/siglip-base-patch16-224",
        "hub id or HF dir (SiglipModel; its SiglipTokenizer needs sentencepiece), "
        "replica:google/siglip-base-patch16-224, random:siglip-base-patch16-224, or \"pocket-siglip\" (demo: "
        "pre-trained here)", kind=MODEL)
    epochs: int = setting(6, "as the other dual encoders' fine-tunes", at_least=1)
    batch_size: int = setting(40,
        "per process; the sigmoid loss pairs each image with the global batch's texts",
        at_least=1)
    lr: float = setting(1e-5,
        "AdamW (betas 0.9/0.95: SigLIP's lowered beta2, eps 1e-8); 10x CLIP-L's: a B/16 moves less per step than an "
        "L/14 and the sigmoid loss's gradient does not grow with the negatives, so batch 40 needs no smaller step",
        positive=True)
    weight_decay: float = setting(0.1, "decoupled, matrices only (gains, biases, logit_scale/logit_bias spared)")
    grad_accum: int = setting(1, "micro-batches per step (does not add pairs to the loss)", at_least=1)
    score: str = setting("sigmoid",
        "sigmoid (the pair logit exp(logit_scale) * cosine + logit_bias, SigLIP's own) | cosine; both rank alike (the "
        "scale is positive)",
        choices=('sigmoid', 'cosine'))
    pretrain_epochs: int = setting(24,
        "pocket-siglip only: epochs on the demo pre-training pool (= the baseline); demo test R@1 0.15 of 200 (8 "
        "epochs: 0.015), ~30 s on 1 thread")
    pretrain_lr: float = setting(2e-3,
        "pocket-siglip only: from random weights (t = 10, b = -log(batch) to start)",
        positive=True)
    pretrain_batch_size: int = setting(64, "pocket-siglip only", at_least=1)
