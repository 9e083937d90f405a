"""How a dual encoder reads its data: (image, caption) pairs, and captions turned into the text inputs its text tower
was trained on (`TextInputs`), with the cut counted (`token_truncation`).

Text inputs differ by model family, and a wrong choice does not fail, it silently degrades every feature:
  CLIP / Long-CLIP  causal text tower pooled at the end token: padding to the longest caption with an attention mask
                    reads exactly what padding to the context would (positions after the end token are never seen).
  SigLIP            bidirectional text tower pooled at the LAST position, trained on texts padded to 64 tokens with
                    no mask: padding must be to max_length and no attention mask may be passed, or the pooled
                    position (and what it attends to) is not the one it was trained on. The hub processor does not
                    pad unless asked (its tokenizer returns input_ids only), hence padding is set here, never left
                    to the processor's defaults.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from PIL import Image

from artcap_lib.retrieval.protocol import pick_caption


@dataclass(frozen=True)
class TextInputs:
    """What the text tower gets: captions cut at max_length tokens (special tokens included), padded to the longest
    caption of the batch or to max_length, with or without an attention mask."""
    max_length: int
    pad_to_max_length: bool = False
    attention_mask: bool = True

    def encode(self, tokenizer, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        # the mask is asked for or not: a tokenizer's model_input_names (SigLIP's: input_ids only) do not decide it
        text = tokenizer(list(texts), padding="max_length" if self.pad_to_max_length else "longest", truncation=True,
                         max_length=self.max_length, return_attention_mask=self.attention_mask, return_tensors="pt")
        out = {"input_ids": text["input_ids"]}
        if self.attention_mask:
            out["attention_mask"] = text["attention_mask"]
        return out


class ImageTextDataset(torch.utils.data.Dataset):
    """(image, caption) pairs; images are preprocessed by the model's processor (optionally kept in memory). A
    caption may be a tuple of an image's several captions (`protocol.training_pairs`)."""

    def __init__(self, image_paths: Sequence[Path], captions: Sequence, image_processor, cache: bool = False):
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
        # an image with several captions (a tuple) gets one drawn each time it is read
        return {"pixel_values": self.pixels(i), "caption": pick_caption(self.captions[i])}


class Collate:
    """Stack the images and turn the captions into the model's text inputs."""

    def __init__(self, tokenizer, text: TextInputs):
        self.tokenizer, self.text = tokenizer, text

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return {"pixel_values": torch.stack([it["pixel_values"] for it in items]),
                **self.text.encode(self.tokenizer, [it["caption"] for it in items])}


def token_truncation(tokenizer, captions: Iterable[str], max_length: int) -> dict[str, Any]:
    """How much of the captions a max_length context cuts (tokens counted with the tokenizer's special tokens, after
    its own normalisation: SigLIP's drops punctuation)."""
    lengths = [len(ids) for ids in tokenizer(list(captions), truncation=False)["input_ids"]]
    cut = [max(0, n - max_length) for n in lengths]
    total = sum(lengths)
    return {"max_length": max_length, "captions": len(lengths), "captions_cut": sum(c > 0 for c in cut),
            "tokens": total, "tokens_cut": sum(cut), "share_tokens_cut": sum(cut) / total if total else 0.0,
            "longest": max(lengths, default=0), "mean_tokens": total / len(lengths) if lengths else 0.0}
