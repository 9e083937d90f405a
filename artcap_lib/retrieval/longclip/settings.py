"""Long-CLIP's section of a profile (`longclip:`): the checkpoint, the preset and the recipe values a preset fills
in, each value with its help and its rule. Imports nothing heavy: the profile loader reads it through the registry."""
from __future__ import annotations

from dataclasses import dataclass

from artcap_lib.retrieval.longclip import presets
from artcap_lib.retrieval.longclip.presets import FROM_PRESET
from artcap_lib.settings import MODEL, ProfileError, setting


@dataclass
class LongClipConfig:
    """Long-CLIP's section; every recipe value left out of a profile is its preset's (retrieval/longclip/presets.py)."""
    model: str = setting("BeichenZhang/LongCLIP-L/longclip-L.pt",
        "HF dir / hub id, a longclip-*.pt file (path or <hub repo>/<file>.pt), or \"pocket-longclip\" (demo: "
        "pre-trained here)", kind=MODEL)
    tokenizer: str = setting("openai/clip-vit-large-patch14",
        "CLIP BPE tokenizer for .pt checkpoints (HF models bring theirs)", kind=MODEL)
    stretch_77: bool = setting(True, "a 77-position CLIP is stretched to 248 positions on load (Long-CLIP's recipe)")
    max_length: int = setting(248, "text tokens; longer captions are cut (the cut is logged)", at_least=1)
    preset: str = setting("stored",
        "stored (the authors' February finetuner, which wrote their stored results) | committed (their later committed "
        "code, 922787d) | adamw (AdamW + warm-up/cosine); the recipe values below default to the preset's",
        choices=('stored', 'committed', 'adamw'))
    epochs: int = setting(FROM_PRESET, "stored, committed, adamw: 6", at_least=1)
    batch_size: int = setting(FROM_PRESET, "per process; stored 30, committed 40, adamw 40", at_least=1)
    lr: float = setting(FROM_PRESET, "stored 1e-7, committed 5e-7, adamw 5e-7", positive=True)
    weight_decay: float = setting(FROM_PRESET,
        "1e-3: AdaBelief's, coupled (stored, committed); adamw: decoupled, matrices")
    warmup: float = setting(FROM_PRESET, "share of steps warming up (OneCycle pct_start): 0.1", within=(0.0, 0.99))
    grad_accum: int = setting(1, "micro-batches per step (does not add contrastive negatives)", at_least=1)
    precision: str = setting(FROM_PRESET,
        "training: fp16 (fp16 autocast + GradScaler on CUDA, fp32 elsewhere: the authors', stored and committed) | "
        "auto (bf16 autocast on GPUs that have it: no loss scaling, nothing skipped; adamw) | bf16 | fp32",
        choices=('fp16', 'auto', 'bf16', 'fp32'))
    patience: int = setting(FROM_PRESET,
        "early stop after this many epochs without val-loss improvement; 0 = never (stored: 0, the best epoch of all "
        "kept; committed, adamw: 1)")
    val_protocol: str = setting(FROM_PRESET,
        "authors (reshuffled each epoch, fp32, plain mean over batches: stored, committed) | ours (fixed order, "
        "training precision, weighted by batch size: adamw)",
        choices=('authors', 'ours'))
    scale_cap: bool = setting(FROM_PRESET,
        "cap InfoNCE's learnt scale at 100 as CLIP does (adamw) or leave it free as the authors' forward (stored, "
        "where the loss cancels it, and committed)")
    drop_last: bool = setting(FROM_PRESET,
        "drop the last short training batch (adamw: every batch has the same negatives) or keep it as the authors' "
        "loader (stored, committed)")
    max_grad_norm: float = setting(0.0, "gradient clipping; 0 = none (the authors did not clip)")
    score: str = setting("dot", "dot (the authors' raw dot product) | cosine", choices=('dot', 'cosine'))
    score_precision: str = setting("fp16",
        "test scoring: fp16 (the authors scored Long-CLIP in fp16; on GPUs, fp32 on a CPU) | bf16 | fp32 | auto (= the "
        "training precision's rule)",
        choices=('fp16', 'bf16', 'fp32', 'auto'))
    eval_batch_size: int = setting(64, at_least=1)
    num_workers: int = setting(4, "data-loader processes")
    threads: int = setting(0,
        "torch intra-op threads (0 = torch's default); demo: 1, the pocket model's tiny ops made 2 threads spin (26 s "
        "vs 2 s per pre-training epoch, loaded box)")
    keep_checkpoint: bool = setting(False, "keep the optimiser-state checkpoint after a finished fine-tune")
    pretrain_epochs: int = setting(40, "demo: pocket pre-training on the pre-training pool (the baseline)")
    pretrain_lr: float = setting(2e-3, positive=True)
    pretrain_batch_size: int = setting(64, at_least=1)

    def __post_init__(self):
        try:
            presets.fill(self)
        except ValueError as exc:      # an unknown or renamed preset: one line, naming the new name
            raise ProfileError(str(exc)) from None
