"""Long-CLIP as a transformers CLIPModel: loading, the contrastive fine-tuning recipe, and retrieval scores.

A Long-CLIP model here is a `LongClip` bundle (CLIPModel with 248 text positions + CLIP tokenizer + CLIP image
processor), loaded by `load_model` from
  - a Hugging Face-format directory or hub id (a 77-position CLIP is stretched to 248 positions, see
    `longclip_convert.stretch_clip_model`, unless stretch_77 is off),
  - an original `longclip-*.pt` file, or `<hub repo>/<file>.pt` (e.g. `BeichenZhang/LongCLIP-L/longclip-L.pt`),
    converted on load (`longclip_convert`); such files carry no tokenizer, hence the `tokenizer` argument.

Fine-tuning (`fine_tune`) is the authors' recipe on the dual encoders' loop (`dualenc.recipe`, on `training.fit`):
symmetric InfoNCE over the batch with CLIP's learnable temperature (features all-gathered across processes under
DDP), all parameters trainable, no augmentation, captions cut at 248 tokens (the cut is counted), early stop on
validation loss.
Presets:
  paper  AdaBelief(lr, eps 1e-16, betas (0.9, 0.995), weight_decay 1e-3 coupled, rectify) + OneCycleLR(max_lr=lr,
         pct_start=warmup, linear annealing) stepped per batch: the authors' finetuner (lr 5e-7, batch 40, 6 epochs).
  adamw  AdamW(lr, betas (0.9, 0.98), eps 1e-6, weight_decay on matrices only) with linear warm-up then cosine
         decay to 0: CLIP's own recipe; steadier than AdaBelief at the larger learning rates small models want.

Scores (`score_matrix`): the authors ranked by the raw dot product of the projected features ("dot"); "cosine"
normalises them first (CLIP's training geometry), an option reported as such, never silently.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from artcap_lib.checkpoints import load_pretrained
from artcap_lib.retrieval import training
from artcap_lib.retrieval.dualenc import data, objectives, recipe, scoring
from artcap_lib.retrieval.dualenc.adapter import DualEncoder
from artcap_lib.retrieval.dualenc.data import ImageTextDataset  # noqa: F401  (part of this module's interface)
from artcap_lib.retrieval.longclip import convert as longclip_convert
from artcap_lib.retrieval.protocol import FineTuneDirs

LONG_CONTEXT = longclip_convert.LONG_CONTEXT
PRESETS = ("paper", "adamw")
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
    from transformers import CLIPImageProcessorPil
    size = model.config.vision_config.image_size
    return CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size})


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
# the objective: CLIP's symmetric InfoNCE (dualenc.objectives)

_embeds = scoring.embeds
contrastive_step = objectives.infonce_step


def make_optimizer(preset: str, lr: float, weight_decay: float):
    """model -> optimiser, for training.fit (see the module docstring for the presets)."""
    if preset == "paper":
        def build(model):
            from adabelief_pytorch import AdaBelief   # the authors' optimiser (adabelief-pytorch 0.2.1)
            return AdaBelief(model.parameters(), lr=lr, eps=1e-16, betas=(0.9, 0.995), weight_decay=weight_decay,
                             weight_decouple=False, rectify=True, print_change_log=False)
        return build
    if preset == "adamw":
        return recipe.adamw(lr, weight_decay, betas=(0.9, 0.98), eps=1e-6)
    raise ValueError(f"unknown Long-CLIP preset {preset!r} (known: {', '.join(PRESETS)})")


def make_scheduler(preset: str, lr: float, warmup: float):
    """(optimiser, total optimiser steps) -> per-step scheduler, for training.fit."""
    if preset == "paper":
        return lambda opt, total: torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=lr, total_steps=total, pct_start=warmup, anneal_strategy="linear")
    if preset == "adamw":
        return recipe.warmup_cosine(warmup)
    raise ValueError(f"unknown Long-CLIP preset {preset!r} (known: {', '.join(PRESETS)})")


# ---------------------------------------------------------------------------------------------------------------
# fine-tuning


@dataclass
class FineTuneSettings:
    preset: str = "paper"
    epochs: int = 6
    batch_size: int = 40                 # per process
    lr: float = 5e-7
    weight_decay: float = 1e-3
    warmup: float = 0.1                  # OneCycle pct_start / AdamW warm-up share of the steps
    grad_accum: int = 1
    precision: str = "auto"
    patience: int | None = 1             # the authors stop at the first epoch whose validation loss does not improve
    max_grad_norm: float | None = None
    max_length: int = LONG_CONTEXT
    num_workers: int = 0
    cache_images: bool = False           # keep preprocessed images in memory (small collections)
    seed: int = 0


def fine_tune(bundle: LongClip, train_pairs: tuple[list[Path], list[str]], val_pairs: tuple[list[Path], list[str]],
              settings: FineTuneSettings, dirs: FineTuneDirs, dist: training.Distributed | None = None,
              progress=print) -> dict[str, Any]:
    """Fine-tune bundle.model in place (best validation-loss epoch kept); rank 0 saves it to dirs.model.

    dirs.training holds the loop's checkpoint (resume after a kill by calling again; a finished run returns at
    once) and history.json. Returns the settings, the truncation counts and the outcome."""
    if settings.preset not in PRESETS:
        raise ValueError(f"unknown Long-CLIP preset {settings.preset!r} (known: {', '.join(PRESETS)})")
    # contrastive_step is looked up here, at call time: a test may replace it (to kill a run mid-epoch)
    return recipe.fine_tune(bundle, train_pairs, val_pairs, settings, dirs, step=contrastive_step,
                            text=text_inputs(settings.max_length),
                            make_optimizer=make_optimizer(settings.preset, settings.lr, settings.weight_decay),
                            make_scheduler=make_scheduler(settings.preset, settings.lr, settings.warmup),
                            dist=dist, progress=progress)


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
