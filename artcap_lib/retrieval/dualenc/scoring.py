"""Retrieval scores of a dual encoder: projected features of images and texts (float32, on the CPU) and the
(n_texts, n_images) score matrix of a kind.

    dot      raw dot product of the projected features (the Long-CLIP authors' ranking)
    cosine   dot product of the L2-normalised features (CLIP's and SigLIP's training geometry)
    sigmoid  SigLIP's pair logit, exp(logit_scale) * cosine + logit_bias: what its sigmoid turns into the probability
             that the pair matches. An increasing affine map of the cosine (the scale is positive), so it ranks
             exactly as the cosine does; its values are the model's own calibrated scores.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from artcap_lib.retrieval import training
from artcap_lib.retrieval.dualenc.data import ImageTextDataset, TextInputs

SCORES = ("dot", "cosine", "sigmoid")


def embeds(out) -> torch.Tensor:
    return out if isinstance(out, torch.Tensor) else out.pooler_output   # transformers 4 tensors / 5 outputs


@torch.no_grad()
def encode_images(bundle, image_paths: Sequence[Path], batch_size: int = 64, device: str | torch.device = "cpu",
                  precision: str = "auto") -> torch.Tensor:
    """(n, d) projected image features (not normalised), in float32 on the CPU."""
    dataset = ImageTextDataset(image_paths, [""] * len(image_paths), bundle.image_processor)
    model = bundle.model.to(device).eval()
    device = torch.device(device)
    out = []
    for start in range(0, len(dataset), batch_size):
        pixels = torch.stack([dataset.pixels(i) for i in range(start, min(start + batch_size, len(dataset)))])
        with training.autocast_context(device, precision):
            out.append(embeds(model.get_image_features(pixel_values=pixels.to(device))).float().cpu())
    return torch.cat(out)


@torch.no_grad()
def encode_texts(bundle, texts: Sequence[str], text: TextInputs, batch_size: int = 64,
                 device: str | torch.device = "cpu", precision: str = "auto") -> torch.Tensor:
    """(n, d) projected text features (not normalised); texts become inputs exactly as in training (`text`)."""
    model = bundle.model.to(device).eval()
    device = torch.device(device)
    out = []
    for start in range(0, len(texts), batch_size):
        enc = {k: v.to(device) for k, v in text.encode(bundle.tokenizer, texts[start:start + batch_size]).items()}
        with training.autocast_context(device, precision):
            features = model.get_text_features(**enc)
        out.append(embeds(features).float().cpu())
    return torch.cat(out)


def score_matrix(text_features: torch.Tensor, image_features: torch.Tensor, kind: str = "dot",
                 logit_scale: float | None = None, logit_bias: float | None = None) -> torch.Tensor:
    """(n_texts, n_images) scores of `kind` (see the module docstring); "sigmoid" needs the model's logit_scale
    (before exp) and logit_bias."""
    if kind not in SCORES:
        raise ValueError(f"unknown score {kind!r} (known: {', '.join(SCORES)})")
    if kind in ("cosine", "sigmoid"):
        text_features = nn.functional.normalize(text_features, dim=-1)
        image_features = nn.functional.normalize(image_features, dim=-1)
    scores = text_features @ image_features.T
    if kind == "sigmoid":
        if logit_scale is None or logit_bias is None:
            raise ValueError("the sigmoid score needs the model's logit_scale and logit_bias")
        scores = scores * torch.tensor(float(logit_scale)).exp() + float(logit_bias)
    return scores


def embedding_scores(text_features: torch.Tensor, image_features: torch.Tensor, kind: str = "dot",
                     logit_scale: float | None = None, logit_bias: float | None = None):
    """`score_matrix`'s scores as a `topk.EmbeddingScores`: the matrix itself only where someone asks for it
    (small collections, the same numbers as before), else streamed top-k from the (normalised) features."""
    from artcap_lib.retrieval.topk import EmbeddingScores
    if kind not in SCORES:
        raise ValueError(f"unknown score {kind!r} (known: {', '.join(SCORES)})")
    if kind == "sigmoid" and (logit_scale is None or logit_bias is None):
        raise ValueError("the sigmoid score needs the model's logit_scale and logit_bias")
    q, x = text_features, image_features
    if kind in ("cosine", "sigmoid"):
        q, x = nn.functional.normalize(q, dim=-1), nn.functional.normalize(x, dim=-1)
    # the sigmoid's map in score_matrix's float32 arithmetic: exp of the scale as a float32 tensor
    scale = float(torch.tensor(float(logit_scale)).exp()) if kind == "sigmoid" else 1.0
    bias = float(logit_bias) if kind == "sigmoid" else 0.0
    return EmbeddingScores(q, x, lambda: score_matrix(text_features, image_features, kind, logit_scale,
                                                      logit_bias).numpy(), scale, bias)
