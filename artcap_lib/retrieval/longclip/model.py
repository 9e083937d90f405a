"""Long-CLIP as a transformers CLIPModel: loading, the contrastive fine-tuning recipe, and retrieval scores.

A Long-CLIP model here is a `LongClip` bundle (CLIPModel with 248 text positions + CLIP tokenizer + CLIP image
processor), loaded by `load_model` from
  - a Hugging Face-format directory or hub id (a 77-position CLIP is stretched to 248 positions, see
    `longclip_convert.stretch_clip_model`, unless stretch_77 is off),
  - an original `longclip-*.pt` file, or `<hub repo>/<file>.pt` (e.g. `BeichenZhang/LongCLIP-L/longclip-L.pt`),
    converted on load (`longclip_convert`); such files carry no tokenizer, hence the `tokenizer` argument.

Fine-tuning (`fine_tune`) is the authors' recipe on the shared loop (`training.fit`): symmetric InfoNCE over the
batch with CLIP's learnable temperature (features all-gathered across processes under DDP), all parameters
trainable, no augmentation, captions cut at 248 tokens (the cut is counted), early stop on validation loss.
Presets:
  paper  AdaBelief(lr, eps 1e-16, betas (0.9, 0.995), weight_decay 1e-3 coupled, rectify) + OneCycleLR(max_lr=lr,
         pct_start=warmup, linear annealing) stepped per batch: the authors' finetuner (lr 5e-7, batch 40, 6 epochs).
  adamw  AdamW(lr, betas (0.9, 0.98), eps 1e-6, weight_decay on matrices only) with linear warm-up then cosine
         decay to 0: CLIP's own recipe; steadier than AdaBelief at the larger learning rates small models want.

Scores (`score_matrix`): the authors ranked by the raw dot product of the projected features ("dot"); "cosine"
normalises them first (CLIP's training geometry), an option reported as such, never silently.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from PIL import Image
from torch import nn

from artcap_lib.retrieval.longclip import convert as longclip_convert
from artcap_lib import runtime
from artcap_lib.checkpoints import load_pretrained
from artcap_lib.retrieval import training
from artcap_lib.retrieval.protocol import FineTuneDirs

LONG_CONTEXT = longclip_convert.LONG_CONTEXT
PRESETS = ("paper", "adamw")
SCORES = ("dot", "cosine")


@dataclass
class LongClip:
    model: Any              # transformers CLIPModel
    tokenizer: Any          # CLIPTokenizer
    image_processor: Any    # CLIPImageProcessor(Pil)
    source: str             # where it was loaded from
    note: str = ""          # what was done on load (conversion, stretching)

    def save(self, out_dir: str | Path) -> None:
        out_dir = Path(out_dir)
        self.model.save_pretrained(out_dir)
        self.tokenizer.save_pretrained(out_dir)
        self.image_processor.save_pretrained(out_dir)


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
# data


class ImageTextDataset(torch.utils.data.Dataset):
    """(image, caption) pairs; images are preprocessed by the model's processor (optionally kept in memory)."""

    def __init__(self, image_paths: Sequence[Path], captions: Sequence[str], image_processor, cache: bool = False):
        if len(image_paths) != len(captions):
            raise ValueError(f"{len(image_paths)} images but {len(captions)} captions")
        self.image_paths, self.captions, self.processor = list(image_paths), list(captions), image_processor
        self.cache: dict[int, torch.Tensor] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.captions)

    def pixels(self, i: int) -> torch.Tensor:
        if self.cache is not None and i in self.cache:
            return self.cache[i]
        try:
            with Image.open(self.image_paths[i]) as img:
                pixels = self.processor(images=img.convert("RGB"), return_tensors="pt")["pixel_values"][0]
        except OSError as exc:
            raise OSError(f"image {self.image_paths[i]}: cannot be read: {exc}") from exc
        if self.cache is not None:
            self.cache[i] = pixels
        return pixels

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"pixel_values": self.pixels(i), "caption": self.captions[i]}


class Collate:
    """Stack images and tokenise captions: padded to the longest in the batch, cut at max_length (248)."""

    def __init__(self, tokenizer, max_length: int = LONG_CONTEXT):
        self.tokenizer, self.max_length = tokenizer, max_length

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        text = self.tokenizer([it["caption"] for it in items], padding="longest", truncation=True,
                              max_length=self.max_length, return_tensors="pt")
        return {"pixel_values": torch.stack([it["pixel_values"] for it in items]),
                "input_ids": text["input_ids"], "attention_mask": text["attention_mask"]}


def token_truncation(tokenizer, captions: Iterable[str], max_length: int = LONG_CONTEXT) -> dict[str, Any]:
    """How much of the captions a max_length context cuts (tokens counted with <|startoftext|>/<|endoftext|>)."""
    lengths = [len(ids) for ids in tokenizer(list(captions), truncation=False)["input_ids"]]
    cut = [max(0, n - max_length) for n in lengths]
    total = sum(lengths)
    return {"max_length": max_length, "captions": len(lengths), "captions_cut": sum(c > 0 for c in cut),
            "tokens": total, "tokens_cut": sum(cut), "share_tokens_cut": sum(cut) / total if total else 0.0,
            "longest": max(lengths, default=0), "mean_tokens": total / len(lengths) if lengths else 0.0}


# ---------------------------------------------------------------------------------------------------------------
# the objective


def _embeds(out) -> torch.Tensor:
    return out if isinstance(out, torch.Tensor) else out.pooler_output   # transformers 4 tensors / 5 outputs


def contrastive_step(model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Symmetric InfoNCE with CLIP's learnable temperature over the (all-gathered) batch.

    Each process scores its own images against every process's texts and vice versa (targets offset by its
    rank), so DDP's gradient average equals the single-process loss over the global batch."""
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                pixel_values=batch["pixel_values"])
    image, text = out.image_embeds.float(), out.text_embeds.float()      # L2-normalised by CLIPModel
    all_image, all_text = training.all_gather_with_grad(image), training.all_gather_with_grad(text)
    # CLIP caps the scale at 100 (temperature 0.01) so the logits cannot blow up
    scale = training.unwrap(model).logit_scale.clamp(max=math.log(100)).exp()
    import torch.distributed as tdist
    rank = tdist.get_rank() if tdist.is_available() and tdist.is_initialized() else 0
    targets = torch.arange(len(image), device=image.device) + rank * len(image)
    loss_i2t = nn.functional.cross_entropy(scale * image @ all_text.T, targets)
    loss_t2i = nn.functional.cross_entropy(scale * text @ all_image.T, targets)
    return {"loss": (loss_i2t + loss_t2i) / 2, "loss_i2t": loss_i2t, "loss_t2i": loss_t2i,
            "logit_scale": scale.detach()}


def make_optimizer(preset: str, lr: float, weight_decay: float):
    """model -> optimiser, for training.fit (see the module docstring for the presets)."""
    if preset == "paper":
        def build(model):
            from adabelief_pytorch import AdaBelief   # the authors' optimiser (adabelief-pytorch 0.2.1)
            return AdaBelief(model.parameters(), lr=lr, eps=1e-16, betas=(0.9, 0.995), weight_decay=weight_decay,
                             weight_decouple=False, rectify=True, print_change_log=False)
        return build
    if preset == "adamw":
        def build(model):
            params = [p for p in model.parameters() if p.requires_grad]
            decay = [p for p in params if p.ndim >= 2]     # matrices decay; gains, biases, temperature do not
            rest = [p for p in params if p.ndim < 2]
            return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                                      {"params": rest, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.98), eps=1e-6)
        return build
    raise ValueError(f"unknown Long-CLIP preset {preset!r} (known: {', '.join(PRESETS)})")


def make_scheduler(preset: str, lr: float, warmup: float):
    """(optimiser, total optimiser steps) -> per-step scheduler, for training.fit."""
    if preset == "paper":
        return lambda opt, total: torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=lr, total_steps=total, pct_start=warmup, anneal_strategy="linear")
    if preset == "adamw":
        def build(opt, total):
            warm = max(1, int(warmup * total))
            return torch.optim.lr_scheduler.LambdaLR(
                opt, lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, total - warm))))
        return build
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
    from dataclasses import asdict

    dist = dist or training.Distributed()
    if settings.preset not in PRESETS:
        raise ValueError(f"unknown Long-CLIP preset {settings.preset!r} (known: {', '.join(PRESETS)})")
    runtime.seed_everything(settings.seed, dist.rank)
    collate = Collate(bundle.tokenizer, settings.max_length)
    train_set = ImageTextDataset(*train_pairs, bundle.image_processor, cache=settings.cache_images)
    val_set = ImageTextDataset(*val_pairs, bundle.image_processor, cache=settings.cache_images)
    if len(train_set) < settings.batch_size * dist.world_size:
        raise ValueError(f"{len(train_set)} training pairs are fewer than one global batch of "
                         f"{settings.batch_size} x {dist.world_size}")
    # drop_last: a contrastive batch's loss depends on its size; a short last batch would be an outlier
    train_loader = training.make_loader(train_set, settings.batch_size, dist, shuffle=True, drop_last=True,
                                        collate_fn=collate, seed=settings.seed, num_workers=settings.num_workers)
    val_loader = training.make_loader(val_set, settings.batch_size, dist, shuffle=False, collate_fn=collate,
                                      num_workers=settings.num_workers)
    truncation = {"train": token_truncation(bundle.tokenizer, train_pairs[1], settings.max_length),
                  "val": token_truncation(bundle.tokenizer, val_pairs[1], settings.max_length)}
    if progress and dist.is_main:
        t = truncation["train"]
        progress(f"captions cut at {settings.max_length} tokens: {t['captions_cut']}/{t['captions']} training "
                 f"captions, {t['tokens_cut']}/{t['tokens']} tokens ({100 * t['share_tokens_cut']:.1f}%)")
    config = training.TrainConfig(epochs=settings.epochs, grad_accum=settings.grad_accum,
                                  precision=settings.precision, max_grad_norm=settings.max_grad_norm,
                                  monitor="val_loss", mode="min", patience=settings.patience, seed=settings.seed)
    result = training.fit(
        bundle.model, contrastive_step, train_loader,
        validate=lambda m: training.mean_losses(m, contrastive_step, val_loader, dist, settings.precision),
        make_optimizer=make_optimizer(settings.preset, settings.lr, settings.weight_decay),
        make_scheduler=make_scheduler(settings.preset, settings.lr, settings.warmup),
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


# ---------------------------------------------------------------------------------------------------------------
# retrieval scores


@torch.no_grad()
def encode_images(bundle: LongClip, image_paths: Sequence[Path], batch_size: int = 64,
                  device: str | torch.device = "cpu", precision: str = "auto") -> torch.Tensor:
    """(n, d) projected image features (not normalised), in float32 on the CPU."""
    dataset = ImageTextDataset(image_paths, [""] * len(image_paths), bundle.image_processor)
    model = bundle.model.to(device).eval()
    device = torch.device(device)
    out = []
    for start in range(0, len(dataset), batch_size):
        pixels = torch.stack([dataset.pixels(i) for i in range(start, min(start + batch_size, len(dataset)))])
        with training.autocast_context(device, precision):
            out.append(_embeds(model.get_image_features(pixel_values=pixels.to(device))).float().cpu())
    return torch.cat(out)


@torch.no_grad()
def encode_texts(bundle: LongClip, texts: Sequence[str], batch_size: int = 64, device: str | torch.device = "cpu",
                 max_length: int = LONG_CONTEXT, precision: str = "auto") -> torch.Tensor:
    """(n, d) projected text features (not normalised); texts cut at max_length tokens like the authors'."""
    model = bundle.model.to(device).eval()
    device = torch.device(device)
    out = []
    for start in range(0, len(texts), batch_size):
        enc = bundle.tokenizer(list(texts[start:start + batch_size]), padding="longest", truncation=True,
                               max_length=max_length, return_tensors="pt").to(device)
        with training.autocast_context(device, precision):
            features = model.get_text_features(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
        out.append(_embeds(features).float().cpu())
    return torch.cat(out)


def score_matrix(text_features: torch.Tensor, image_features: torch.Tensor, kind: str = "dot") -> torch.Tensor:
    """(n_texts, n_images): raw dot products (the authors' ranking) or cosine similarities."""
    if kind == "cosine":
        text_features = nn.functional.normalize(text_features, dim=-1)
        image_features = nn.functional.normalize(image_features, dim=-1)
    elif kind != "dot":
        raise ValueError(f"unknown score {kind!r} (known: {', '.join(SCORES)})")
    return text_features @ image_features.T
