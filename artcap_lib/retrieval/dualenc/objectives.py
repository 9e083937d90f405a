"""The contrastive objectives of the dual encoders, as steps for the shared loop (`training.fit`): each takes the
(possibly DDP-wrapped) model and a batch and returns {"loss", ...} of scalars.

Under DDP each process's features are gathered from all processes (`distributed.all_gather_with_grad`: the backward
sums every process's gradient for the gathered rows), and each process scores its own images against all texts,
so DDP's average of the per-process gradients is the gradient of the single-process loss over the global batch.

  infonce_step  CLIP's symmetric InfoNCE with its learnable temperature (capped at 100): cross-entropy of each image
                over all texts and of each text over all images, averaged. Options for the Long-CLIP authors'
                recipes: the scale uncapped (their forward's), or a fixed temperature instead of the learnt one.
  sigmoid_step  SigLIP's pairwise sigmoid loss (Zhai et al. 2023, eq. 1): every (image, text) pair of the global
                batch is an independent binary problem, positive on the diagonal, with logit t * cos + b, where
                t = exp(logit_scale) and b = logit_bias are both learnt; the sum over pairs is divided by the
                batch size. No softmax over the batch, so no global normalisation is needed: process r's share is
                its images against all texts, and the shares of all processes cover every pair exactly once.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from artcap_lib.retrieval import distributed, training


def _rank() -> int:
    import torch.distributed as tdist
    return tdist.get_rank() if tdist.is_available() and tdist.is_initialized() else 0


def infonce_step(model: nn.Module, batch: dict[str, torch.Tensor], scale_cap: bool = True,
                 temperature: float | None = None) -> dict[str, torch.Tensor]:
    """Symmetric InfoNCE with CLIP's learnable temperature over the (all-gathered) batch.

    Each process scores its own images against every process's texts and vice versa (targets offset by its
    rank), so DDP's gradient average equals the single-process loss over the global batch.
    scale_cap: CLIP's cap of the learnt scale at 100; False leaves it free (the Long-CLIP authors' forward).
    temperature: score with this fixed temperature (scale 1 / temperature) instead of the learnt one."""
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                pixel_values=batch["pixel_values"])
    image, text = out.image_embeds.float(), out.text_embeds.float()      # L2-normalised by CLIPModel
    all_image, all_text = distributed.all_gather_with_grad(image), distributed.all_gather_with_grad(text)
    if temperature is not None:
        scale = torch.tensor(1.0 / temperature, device=image.device)
    elif scale_cap:
        # CLIP caps the scale at 100 (temperature 0.01) so the logits cannot blow up
        scale = training.unwrap(model).logit_scale.clamp(max=math.log(100)).exp()
    else:
        scale = training.unwrap(model).logit_scale.exp()
    targets = torch.arange(len(image), device=image.device) + _rank() * len(image)
    loss_i2t = nn.functional.cross_entropy(scale * image @ all_text.T, targets)
    loss_t2i = nn.functional.cross_entropy(scale * text @ all_image.T, targets)
    return {"loss": (loss_i2t + loss_t2i) / 2, "loss_i2t": loss_i2t, "loss_t2i": loss_t2i,
            "logit_scale": scale.detach()}


def sigmoid_loss(image: torch.Tensor, texts: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor,
                 offset: int = 0) -> torch.Tensor:
    """-(1/n) sum_i sum_j log sigmoid(z_ij (scale * image_i . text_j + bias)) over this process's n images i and all
    texts j, z_ij = +1 where text j is image i's own (j = offset + i), -1 otherwise. Features L2-normalised."""
    logits = scale * image @ texts.T + bias
    rows = torch.arange(len(image), device=image.device)
    labels = -torch.ones_like(logits)
    labels[rows, rows + offset] = 1.0
    return -nn.functional.logsigmoid(labels * logits).sum() / len(image)


def sigmoid_step(model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """SigLIP's pairwise sigmoid loss over the (all-gathered) batch; the model is a transformers SiglipModel (its
    forward normalises the embeddings). The batch's text inputs are passed as they are (SigLIP: no mask)."""
    out = model(pixel_values=batch["pixel_values"],
                **{k: batch[k] for k in ("input_ids", "attention_mask") if k in batch})
    image, text = out.image_embeds.float(), out.text_embeds.float()
    all_text = distributed.all_gather_with_grad(text)
    m = training.unwrap(model)
    # unbounded, as SigLIP trains it (no cap like CLIP's): the bias, not the temperature, offsets the many negatives
    scale, bias = m.logit_scale.float().exp().squeeze(), m.logit_bias.float().squeeze()
    loss = sigmoid_loss(image, all_text, scale, bias, offset=_rank() * len(image))
    return {"loss": loss, "logit_scale": scale.detach(), "logit_bias": bias.detach()}
