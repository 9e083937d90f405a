"""BLIP's section of a profile (`blip:`): the recipe of its fine-tune and its scoring, each value with its help and
its rule. Imports nothing heavy: the profile loader reads it through the registry."""
from __future__ import annotations

from dataclasses import dataclass

from artcap_lib.settings import MODEL, setting


@dataclass
class BlipConfig:
    model: str = setting(
        "https://storage.googleapis.com/sfr-vision-language-research/BLIP/models/model_large_retrieval_coco.pth",
        "BLIP's original checkpoint (URL or local .pth: converted once, bringing its temp, momentum encoders and "
        "queues), a hub id or HF dir (e.g. Salesforce/blip-itm-large-coco: no temp, momentum encoders or queues), or "
        "\"pocket-blip\" (demo: built + pre-trained by 04)", kind=MODEL)
    epochs: int = setting(6, "the authors' recipe (BLIP train_retrieval.py on Artpedia) ...", at_least=1)
    batch_size: int = setting(16, "... per process; the queue and the ITM negatives see the global batch", at_least=1)
    lr: float = setting(5e-6, "AdamW, cosine to 0 over the epochs (set per epoch, as BLIP does)", positive=True)
    weight_decay: float = setting(0.05)
    image_size: int = setting(384, at_least=1)
    queue_size: int = setting(57600,
        "the authors' (their Artpedia configs); a checkpoint's queues of this length are taken, else random unit "
        "vectors (id -100). On 2,173 images most of it stays what it started as; 2048 (< the images) is filled in one "
        "epoch",
        at_least=1)
    momentum: float = setting(0.995, "momentum encoders' EMA", within=(0.0, 1.0))
    alpha: float = setting(0.4, "momentum distillation weight, ramped up over the first epoch", within=(0.0, 1.0))
    text_dropout: float = setting(0.1,
        "BERT hidden + attention dropout while training: upstream med_config.json's 0.1 (the hub checkpoint's text "
        "config says 0.0, HF's default)",
        within=(0.0, 0.9))
    temp_init: float = setting(0.07,
        "starting ITC temperature where the checkpoint has no trained `temp` (the hub conversion); BLIP's original "
        "checkpoint brings its own",
        within=(0.001, 0.5))
    drop_path: float = setting(0.1,
        "stochastic depth of the ViT and its momentum copy, rising linearly over the layers to this rate (upstream "
        "create_vit: 0.1 for ViT-L); 0 = none",
        within=(0.0, 0.9))
    augment: bool = setting(True,
        "BLIP's training augmentation in the fine-tune (random resized crop, horizontal flip, RandAugment); the demo "
        "turns it off: its captions name left and right and colours, which a flip or a colour op makes false")
    max_words: int = setting(30, "training captions cut to 30 words (pre_caption) ...", at_least=1)
    max_tokens: int = setting(35, "... and 35 tokens; queries are raw captions cut to 35 tokens", at_least=1)
    k_test: int = setting(256, "ITM re-ranking: candidates per query from ITC", at_least=1)
    itm_rerank: bool = setting(True, "also score test queries with ITC top-k re-ranked by ITM (beside ITC)")
    select_with: str = setting("itm",
        "validation mean recall for model selection: itm (the authors) | itc",
        choices=('itm', 'itc'))
    grad_checkpointing: bool = setting(True, "the authors' vit_grad_ckpt (ViT-L at 384 px)")
    precision: str = setting("fp32",
        "training and validation (which picks the kept epoch): fp32 (the authors', no autocast) | bf16 | auto (bf16 "
        "autocast on GPUs that support it)",
        choices=('fp32', 'bf16', 'auto'))
    score_precision: str = setting("fp32",
        "test scoring: fp32 (the authors scored BLIP in fp32) | fp16 | bf16 | auto",
        choices=('fp32', 'fp16', 'bf16', 'auto'))
    keep_checkpoint: bool = setting(False,
        "keep the objective + optimiser checkpoint (~7 GB at ViT-L) after a finished fine-tune; only a resume of an "
        "unfinished one needs it")
    eval_batch_size: int = setting(32, at_least=1)
    num_workers: int = setting(4, "data-loader processes")
    threads: int = setting(0,
        "torch intra-op threads (0 = torch's default); the pocket model's tiny ops cost ~9x the CPU with 2 threads "
        "than with 1 on a loaded 2-core machine")
    pretrain_epochs: int = setting(0, "pocket-blip only: epochs on the demo pre-training pool (= the baseline)")
    pretrain_lr: float = setting(1e-3, "pocket-blip only: learning rate of that pre-training", positive=True)
    pretrain_momentum: float = setting(0.9,
        "pocket-blip only: from random weights a 0.995 EMA would stay near random",
        within=(0.0, 1.0))

