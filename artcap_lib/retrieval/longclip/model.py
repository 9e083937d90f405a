"""Long-CLIP as a transformers CLIPModel: loading, the contrastive fine-tuning recipe, and retrieval scores.

A Long-CLIP model here is a `LongClip` bundle (CLIPModel with 248 text positions + CLIP tokenizer + CLIP image
processor), loaded by `load_model` from
  - a Hugging Face-format directory or hub id (a 77-position CLIP is stretched to 248 positions, see
    `longclip_convert.stretch_clip_model`, unless stretch_77 is off),
  - an original `longclip-*.pt` file, or `<hub repo>/<file>.pt` (e.g. `BeichenZhang/LongCLIP-L/longclip-L.pt`),
    converted on load (`longclip_convert`); such files carry no tokenizer, hence the `tokenizer` argument.

Fine-tuning (`fine_tune`) is one of the presets (`presets`) on the dual encoders' loop (`dualenc.recipe`, on
`training.fit`): all parameters trainable, no augmentation, captions cut at 248 tokens (the cut is counted), the
epoch of least validation loss kept, features all-gathered across processes under DDP. The preset names the loss:
  stored      the authors' February ContrastiveLoss over the logit matrices (`stored_loss`), validated as InfoNCE at
              temperature 0.07;
  committed,  symmetric InfoNCE with CLIP's learnable temperature (`dualenc.objectives.infonce_step`, capped at 100
  adamw       or not: `scale_cap`), validated on the same loss;
and the optimiser:
  stored, committed  AdaBelief(lr, eps 1e-16, betas (0.9, 0.995), weight_decay 1e-3 coupled, rectify) +
                     OneCycleLR(max_lr=lr, pct_start=warmup, linear annealing) stepped per batch: both versions of
                     the authors' finetuner.
  adamw              AdamW(lr, betas (0.9, 0.98), eps 1e-6, weight_decay on matrices only) with linear warm-up then
                     cosine decay to 0: CLIP's own recipe; steadier than AdaBelief at the larger learning rates small
                     models want.

Scores (`score_matrix`): the authors ranked by the raw dot product of the projected features ("dot"); "cosine"
normalises them first (CLIP's training geometry), an option reported as such, never silently.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from artcap_lib.checkpoints import load_pretrained
from artcap_lib.retrieval import distributed, training
from artcap_lib.retrieval.dualenc import data, objectives, recipe, scoring
from artcap_lib.retrieval.dualenc.adapter import DualEncoder
from artcap_lib.retrieval.dualenc.data import ImageTextDataset  # noqa: F401  (part of this module's interface)
from artcap_lib.retrieval.longclip import convert as longclip_convert
from artcap_lib.retrieval.longclip import presets, stored_loss
from artcap_lib.retrieval.longclip.presets import FROM_PRESET
from artcap_lib.retrieval.protocol import FineTuneDirs

LONG_CONTEXT = longclip_convert.LONG_CONTEXT
PRESETS = tuple(presets.PRESETS)
SCORES = ("dot", "cosine")


@dataclass
class LongClip(DualEncoder):
    """A CLIPModel with 248 text positions + its CLIP tokenizer + CLIP image processor (`dualenc.DualEncoder`)."""


# ---------------------------------------------------------------------------------------------------------------
# loading


def load_model(source: str | Path, tokenizer: str = "", stretch_77: bool = True) -> LongClip:
    """A LongClip from an HF directory / hub id or a longclip-*.pt checkpoint (see the module docstring)."""
    from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

    text = str(source)
    if text.endswith(".pt"):
        path = Path(text) if Path(text).is_file() else _hub_file(text)
        if not tokenizer:
            raise ValueError(f"{source}: a .pt checkpoint has no tokenizer; set longclip.tokenizer "
                             "(e.g. openai/clip-vit-large-patch14, or a local directory holding one)")
        model = longclip_convert.load_openai_checkpoint(path)
        bundle = LongClip(model, AutoTokenizer.from_pretrained(tokenizer), _clip_processor(model), text,
                          note=f"converted from the original layout ({path.name})")
    else:
        model = load_pretrained(CLIPModel, text)
        bundle = LongClip(model, AutoTokenizer.from_pretrained(text), AutoImageProcessor.from_pretrained(text), text)
        positions = model.config.text_config.max_position_embeddings
        if positions == 77 and stretch_77:
            bundle.model = longclip_convert.stretch_clip_model(model)
            bundle.note = "77 text positions stretched to 248 (first 20 kept, the rest interpolated 4x)"
        elif positions != LONG_CONTEXT:
            bundle.note = f"{positions} text positions (not Long-CLIP's 248)"
    # CLIP tokenizers say 77; the model's context is what counts (texts are cut there, see Collate)
    bundle.tokenizer.model_max_length = bundle.model.config.text_config.max_position_embeddings
    return bundle


def _hub_file(spec: str) -> Path:
    """'<owner>/<repo>/<file>.pt' -> the file from the Hugging Face hub (cached; offline when HF_HUB_OFFLINE=1)."""
    parts = spec.split("/")
    if len(parts) < 3:
        raise FileNotFoundError(f"{spec}: no such file, and not of the form <owner>/<repo>/<file>.pt")
    from huggingface_hub import hf_hub_download
    return Path(hf_hub_download("/".join(parts[:2]), "/".join(parts[2:])))


def _clip_processor(model):
    """OpenAI CLIP's preprocessing at the model's resolution: bicubic resize, centre crop, CLIP mean/std."""
    # The authors' Long-CLIP `preprocess` (torchvision) as they ran it: transformers' CLIP processor crops one
    # pixel off theirs on about a quarter of non-square images, and Pillow 13 resamples tall ones in another
    # pass order (artcap_lib/imaging.py, docs/PREPROCESSING.md; tests/test_processor_parity.py checks it).
    from artcap_lib.imaging import openai_clip_processor
    return openai_clip_processor(model.config.vision_config.image_size)


# ---------------------------------------------------------------------------------------------------------------
# data (shared by the dual encoders: dualenc.data)


def text_inputs(max_length: int = LONG_CONTEXT) -> data.TextInputs:
    """Long-CLIP's text inputs: cut at max_length (248), padded to the batch's longest caption, with a mask."""
    return data.TextInputs(max_length)


class Collate(data.Collate):
    """Stack images and tokenise captions: padded to the longest in the batch, cut at max_length (248)."""

    def __init__(self, tokenizer, max_length: int = LONG_CONTEXT):
        super().__init__(tokenizer, text_inputs(max_length))


def token_truncation(tokenizer, captions: Iterable[str], max_length: int = LONG_CONTEXT) -> dict[str, Any]:
    """How much of the captions a max_length context cuts (tokens counted with <|startoftext|>/<|endoftext|>)."""
    return data.token_truncation(tokenizer, captions, max_length)


# ---------------------------------------------------------------------------------------------------------------
# the objectives: CLIP's symmetric InfoNCE (dualenc.objectives), the authors' February loss (stored_loss)

_embeds = scoring.embeds
contrastive_step = objectives.infonce_step


def objective_steps(settings: "FineTuneSettings"):
    """(training step, validation step) of the settings' preset. The InfoNCE steps are looked up here, at call time:
    a test may replace `contrastive_step` (to kill a run mid-epoch)."""
    chosen = presets.preset(settings.preset)
    if chosen.loss == "logit_contrastive":
        return stored_loss.training_step, stored_loss.validation_step
    train = functools.partial(contrastive_step, scale_cap=settings.scale_cap)
    return train, train


def make_optimizer(preset: str, lr: float, weight_decay: float):
    """model -> optimiser, for training.fit (see the module docstring for the presets)."""
    optimiser = presets.preset(preset).optimiser
    if optimiser == "adabelief":
        def build(model):
            from adabelief_pytorch import AdaBelief   # the authors' optimiser (adabelief-pytorch 0.2.1)
            return AdaBelief(model.parameters(), lr=lr, eps=1e-16, betas=(0.9, 0.995), weight_decay=weight_decay,
                             weight_decouple=False, rectify=True, print_change_log=False)
        return build
    return recipe.adamw(lr, weight_decay, betas=(0.9, 0.98), eps=1e-6)


def make_scheduler(preset: str, lr: float, warmup: float):
    """(optimiser, total optimiser steps) -> per-step scheduler, for training.fit."""
    if presets.preset(preset).optimiser == "adabelief":
        return lambda opt, total: torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=lr, total_steps=total, pct_start=warmup, anneal_strategy="linear")
    return recipe.warmup_cosine(warmup)


# ---------------------------------------------------------------------------------------------------------------
# fine-tuning


@dataclass
class FineTuneSettings:
    """A Long-CLIP fine-tune; every value left at FROM_PRESET is the preset's (`presets.PRESETS`)."""
    preset: str = "stored"
    epochs: int = FROM_PRESET
    batch_size: int = FROM_PRESET        # per process
    lr: float = FROM_PRESET
    weight_decay: float = FROM_PRESET
    warmup: float = FROM_PRESET          # OneCycle pct_start / AdamW warm-up share of the steps
    grad_accum: int = 1
    precision: str = FROM_PRESET         # training: auto | bf16 | fp16 (+ GradScaler on CUDA) | fp32
    patience: int | None = FROM_PRESET   # epochs without improvement before stopping; None (or 0) = never stop
    val_protocol: str = FROM_PRESET      # ours | authors (dualenc.validation)
    scale_cap: bool = FROM_PRESET        # InfoNCE's learnt scale capped at 100 (CLIP) or free (the authors')
    drop_last: bool = FROM_PRESET        # drop the last short training batch (ours) or keep it (the authors')
    max_grad_norm: float | None = None
    max_length: int = LONG_CONTEXT
    num_workers: int = 0
    cache_images: bool = False           # keep preprocessed images in memory (small collections)
    seed: int = 0

    def __post_init__(self):
        presets.fill(self)
        self.patience = self.patience or None      # a profile's 0 = never stop early


def fine_tune(bundle: LongClip, train_pairs: tuple[list[Path], list[str]], val_pairs: tuple[list[Path], list[str]],
              settings: FineTuneSettings, dirs: FineTuneDirs, dist: distributed.Distributed | None = None,
              progress=print) -> dict[str, Any]:
    """Fine-tune bundle.model in place (best validation-loss epoch kept); rank 0 saves it to dirs.model.

    dirs.training holds the loop's checkpoint (resume after a kill by calling again; a finished run returns at
    once) and history.json. Returns the settings, the truncation counts and the outcome."""
    train_step, val_step = objective_steps(settings)
    return recipe.fine_tune(bundle, train_pairs, val_pairs, settings, dirs, step=train_step,
                            text=text_inputs(settings.max_length),
                            make_optimizer=make_optimizer(settings.preset, settings.lr, settings.weight_decay),
                            make_scheduler=make_scheduler(settings.preset, settings.lr, settings.warmup),
                            dist=dist, progress=progress, val_step=val_step)


# ---------------------------------------------------------------------------------------------------------------
# retrieval scores


def encode_images(bundle: LongClip, image_paths: Sequence[Path], batch_size: int = 64,
                  device: str | torch.device = "cpu", precision: str = "auto") -> torch.Tensor:
    """(n, d) projected image features (not normalised), in float32 on the CPU."""
    return scoring.encode_images(bundle, image_paths, batch_size, device, precision)


def encode_texts(bundle: LongClip, texts: Sequence[str], batch_size: int = 64, device: str | torch.device = "cpu",
                 max_length: int = LONG_CONTEXT, precision: str = "auto") -> torch.Tensor:
    """(n, d) projected text features (not normalised); texts cut at max_length tokens like the authors'."""
    return scoring.encode_texts(bundle, texts, text_inputs(max_length), batch_size, device, precision)


def score_matrix(text_features: torch.Tensor, image_features: torch.Tensor, kind: str = "dot") -> torch.Tensor:
    """(n_texts, n_images): raw dot products (the authors' ranking) or cosine similarities."""
    if kind not in SCORES:
        raise ValueError(f"unknown score {kind!r} (known: {', '.join(SCORES)})")
    return scoring.score_matrix(text_features, image_features, kind)
