"""BLIP's retrieval data pipeline: caption preprocessing, its training augmentation, and the pair dataset.

The recipe is the one of BLIP's `train_retrieval.py` (and the authors' Artpedia dataset class built on it):
training captions are lower-cased, stripped of `.!"()*#:;~` and cut to 30 words, then the tokenizer cuts them
to 35 tokens; training images get a random resized crop (scale 0.5-1, bicubic), a horizontal flip and two
RandAugment-style operations of magnitude 5 from BLIP's list; evaluation images are only resized. Everything
here is PIL + numpy + torch: torchvision is not installable next to this project's torch (it breaks it).
"""
from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps

from artcap_lib.imaging import CLIP_MEAN, CLIP_STD, resize      # BLIP normalises with CLIP's statistics
from artcap_lib.retrieval.protocol import pick_caption

TRAIN_MAX_WORDS = 30       # BLIP's retrieval configs cut training captions to 30 words ...
MAX_TOKENS = 35            # ... and the tokenizer to 35 tokens, in training and evaluation

_PUNCTUATION = re.compile(r"[.!\"()*#:;~]")       # BLIP's list: commas and apostrophes survive
_SPACES = re.compile(r"\s{2,}")


def pre_caption(caption: str, max_words: int | None = TRAIN_MAX_WORDS) -> str:
    """BLIP's caption normalisation: lower case, its punctuation list replaced by spaces, at most max_words."""
    text = _SPACES.sub(" ", _PUNCTUATION.sub(" ", caption.lower())).strip()
    words = text.split(" ")
    return " ".join(words[:max_words]) if max_words is not None and len(words) > max_words else text


def truncation_stats(captions: dict[str, str], tokenizer, max_words: int | None = TRAIN_MAX_WORDS,
                     max_tokens: int = MAX_TOKENS) -> dict[str, float]:
    """How much of each caption BLIP actually sees: words cut by pre_caption, then tokens cut by the tokenizer.

    `max_words=None` describes evaluation (raw caption, 35 tokens), as the authors scored the test queries.
    """
    if not captions:
        raise ValueError("truncation_stats: no captions")
    words, seen, cut_words, cut_tokens, cut_any = [], [], 0, 0, 0
    for text in captions.values():
        prepared = pre_caption(text, max_words) if max_words is not None else text
        n_tokens = len(tokenizer(prepared)["input_ids"])
        kept = tokenizer(prepared, truncation=True, max_length=max_tokens)["input_ids"]
        words.append(len(text.split()))
        seen.append(len(tokenizer.decode(kept, skip_special_tokens=True).split()))
        by_words = max_words is not None and len(pre_caption(text, None).split()) > max_words
        cut_words, cut_tokens = cut_words + by_words, cut_tokens + (n_tokens > max_tokens)
        cut_any += by_words or n_tokens > max_tokens
    n = len(words)
    return {"captions": n, "mean_words": float(np.mean(words)), "median_words": float(np.median(words)),
            "mean_words_seen": float(np.mean(seen)), "cut_by_words": cut_words / n, "cut_by_tokens": cut_tokens / n,
            "cut_any": cut_any / n}


# ---- augmentation --------------------------------------------------------------------------------------------
FILL = (128, 128, 128)   # BLIP fills pixels moved in by shear/translate/rotate with mid grey
MAX_LEVEL = 10.0


def _signed(value: float, rng: random.Random) -> float:
    return -value if rng.random() > 0.5 else value


def _affine(img: Image.Image, matrix: tuple[float, ...]) -> Image.Image:
    return img.transform(img.size, Image.Transform.AFFINE, matrix, resample=Image.Resampling.NEAREST, fillcolor=FILL)


# name -> op(img, level, rng); levels map to arguments as in BLIP's randaugment.py (magnitude 5 of 10)
RANDAUGMENT_OPS: dict[str, Callable[[Image.Image, float, random.Random], Image.Image]] = {
    "Identity": lambda img, m, rng: img,
    "AutoContrast": lambda img, m, rng: ImageOps.autocontrast(img),
    "Equalize": lambda img, m, rng: ImageOps.equalize(img),
    "Brightness": lambda img, m, rng: ImageEnhance.Brightness(img).enhance(m / MAX_LEVEL * 1.8 + 0.1),
    "Sharpness": lambda img, m, rng: ImageEnhance.Sharpness(img).enhance(m / MAX_LEVEL * 1.8 + 0.1),
    "ShearX": lambda img, m, rng: _affine(img, (1, _signed(m / MAX_LEVEL * 0.3, rng), 0, 0, 1, 0)),
    "ShearY": lambda img, m, rng: _affine(img, (1, 0, 0, _signed(m / MAX_LEVEL * 0.3, rng), 1, 0)),
    "TranslateX": lambda img, m, rng: _affine(img, (1, 0, _signed(m / MAX_LEVEL * 10, rng), 0, 1, 0)),
    "TranslateY": lambda img, m, rng: _affine(img, (1, 0, 0, 0, 1, _signed(m / MAX_LEVEL * 10, rng))),
    "Rotate": lambda img, m, rng: img.rotate(_signed(m / MAX_LEVEL * 30, rng), resample=Image.Resampling.NEAREST,
                                             fillcolor=FILL),
}
BLIP_OPS = ("Identity", "AutoContrast", "Brightness", "Sharpness", "Equalize",
            "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")   # the list train_retrieval.py uses


def rand_augment(img: Image.Image, rng: random.Random, n_ops: int = 2, magnitude: float = 5,
                 ops: Sequence[str] = BLIP_OPS, prob: float = 0.5) -> Image.Image:
    """BLIP's RandomAugment: draw n_ops operations (with replacement), apply each with probability prob."""
    for name in [ops[rng.randrange(len(ops))] for _ in range(n_ops)]:
        if rng.random() <= prob:
            img = RANDAUGMENT_OPS[name](img, magnitude, rng)
    return img


def random_resized_crop(img: Image.Image, size: int, rng: random.Random, scale=(0.5, 1.0),
                        ratio=(3 / 4, 4 / 3)) -> Image.Image:
    """A crop of random area (scale of the image) and aspect ratio, resized bicubically to size x size."""
    width, height = img.size
    area = width * height
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            left, top = rng.randint(0, width - w), rng.randint(0, height - h)
            break
    else:   # no fit in 10 tries (extreme aspect ratios): the largest central crop within the ratio bounds
        aspect = width / height
        w, h = (width, round(width / ratio[0])) if aspect < ratio[0] else \
            (round(height * ratio[1]), height) if aspect > ratio[1] else (width, height)
        w, h = min(w, width), min(h, height)
        left, top = (width - w) // 2, (height - h) // 2
    return img.resize((size, size), Image.Resampling.BICUBIC, box=(left, top, left + w, top + h))


def to_tensor(img: Image.Image, mean=CLIP_MEAN, std=CLIP_STD) -> torch.Tensor:
    """PIL RGB -> normalised (3, H, W) float tensor."""
    array = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return (array - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


@dataclass(frozen=True)
class BlipTransform:
    """Image -> tensor, BLIP's training augmentation (train=True) or its evaluation resize."""
    size: int
    train: bool
    mean: tuple[float, ...] = CLIP_MEAN
    std: tuple[float, ...] = CLIP_STD

    def __call__(self, img: Image.Image, rng: random.Random | None = None) -> torch.Tensor:
        img = img.convert("RGB")
        if not self.train:
            # = BLIP's transform_test (torchvision Resize((size, size), bicubic) on PIL) with the authors' Pillow
            # pass order, which Pillow 13 changed for tall images (artcap_lib/imaging.py)
            return to_tensor(resize(img, (self.size, self.size), Image.Resampling.BICUBIC), self.mean, self.std)
        rng = rng or random.Random()
        img = random_resized_crop(img, self.size, rng)
        if rng.random() < 0.5:
            img = ImageOps.mirror(img)
        return to_tensor(rand_augment(img, rng), self.mean, self.std)


class BlipPairs(torch.utils.data.Dataset):
    """(image tensor, caption, integer id) per artwork: BLIP's retrieval training set, one caption per image (drawn
    among `choices` where an image has several).

    The integer id (the position in `ids`) is what makes queue entries of the same image positives. Each item's
    augmentation draws its seed from torch's generator, which the training loop checkpoints, so a resumed run
    sees the same augmented images an uninterrupted one would.
    """

    def __init__(self, ids: Sequence[str], image_files: dict[str, Path], captions: dict[str, str],
                 transform: BlipTransform, max_words: int | None = TRAIN_MAX_WORDS,
                 choices: Mapping[str, Sequence[str]] | None = None):
        missing = [i for i in ids if i not in captions or i not in image_files]
        if missing:
            raise KeyError(f"BlipPairs: {len(missing)} id(s) lack a caption or an image, e.g. {missing[:5]}")
        self.ids, self.image_files, self.transform = list(ids), image_files, transform
        choices = choices or {}

        def prepared(text: str) -> str:
            return pre_caption(text, max_words) if max_words is not None else text
        # an image with several captions keeps them all (a tuple): one is drawn each time the image is read
        self.captions = [tuple(prepared(t) for t in choices[i]) if i in choices else prepared(captions[i])
                         for i in self.ids]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int):
        path = self.image_files[self.ids[index]]
        rng = random.Random(int(torch.randint(0, 2**62, (1,)))) if self.transform.train else None
        try:
            with Image.open(path) as img:
                pixels = self.transform(img, rng)
        except OSError as exc:
            raise OSError(f"artwork {self.ids[index]}: cannot read image {path}: {exc}") from exc
        return pixels, pick_caption(self.captions[index]), index


class BlipImages(torch.utils.data.Dataset):
    """Evaluation images (resized, no augmentation) in a fixed order."""

    def __init__(self, files: Sequence[Path], transform: BlipTransform):
        self.files, self.transform = list(files), transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor:
        try:
            with Image.open(self.files[index]) as img:
                return self.transform(img)
        except OSError as exc:
            raise OSError(f"cannot read image {self.files[index]}: {exc}") from exc


def collate(tokenizer, max_tokens: int = MAX_TOKENS):
    """Batch builder: stacked images, captions tokenised to at most max_tokens, integer ids."""
    def build(batch):
        pixels, texts, idx = zip(*batch)
        # padded to max_tokens, not to the longest: under torchrun the ITM negatives gather token ids across
        # processes, which needs one length everywhere
        tokens = tokenizer(list(texts), padding="max_length", truncation=True, max_length=max_tokens,
                           return_tensors="pt")
        return {"pixel_values": torch.stack(pixels), "input_ids": tokens["input_ids"],
                "attention_mask": tokens["attention_mask"], "idx": torch.tensor(idx, dtype=torch.long)}
    return build
