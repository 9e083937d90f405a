"""The loss of the Long-CLIP authors' February 2025 finetuner, the one whose fine-tunes gave their stored results
(`preset: stored`), as steps for the shared loop.

Their `ContrastiveLoss(temperature=0.07)` (github.com/jcgohr/artwork-caption-gen, src/finetuner.py at 2fae93c,
lines 76-95) takes two matrices A and B, L2-normalises the rows of each, and averages the cross-entropies of the
rows and of the columns of A @ B.T / 0.07 against the diagonal. Their loop applied it to two different things:

  training    `loss_func(*model(images, texts))` (line 170): the pair the model's forward returned.
  validation  `loss_func(model.encode_image(images), model.encode_text(texts))` (lines 206-208): the features, so
              the validation loss is InfoNCE at the fixed temperature 0.07 (`objectives.infonce_step` with
              temperature 0.07: normalised features, cosine / 0.07).

What the forward returned is not in any commit, and it is an inference: their submodule was upstream Long-CLIP at
3966af9, whose `CLIP.forward(image, text_long, text_short, rank)` takes four arguments and returns two losses, so
their call with two arguments needed a local change that was never committed. The same file carries CLIP's original
forward, commented out just above, which takes `(image, text)` and returns `logits_per_image, logits_per_text`
(`logit_scale.exp() * image_features @ text_features.t()` of the normalised features, and its transpose): exactly
the names their loop unpacks. We take that one as their forward. The alternative, a forward written to return the
features (then training and validation would both be InfoNCE at 0.07), would have had to be written anew and named
otherwise by the call. Their later fork of Long-CLIP (github.com/aidan073/Long-CLIP, from March 2025) replaced it
with a forward that returns the InfoNCE loss itself, the `committed` preset's.

Under that reading the training loss compares each image's row of logits (its scaled similarities to the batch's
texts) with each text's row of `logits_per_text` (its similarities to the batch's images): for image i and text j,
logit = cos(row i of L, column j of L) / 0.07 with L = logits_per_image. It rewards an image and its caption for
ranking the rest of the batch alike, a second-order similarity, and the learnt scale cancels in the normalisation
(it gets no gradient beyond weight decay). It is their loss, reproduced as written, not a recommendation.

Under DDP the matrix needs every process's features (a column of L spans the global batch), so each process
computes the whole global loss from the gathered features; the gathered rows' backward sums the processes'
gradients (`distributed.all_gather_with_grad`), and DDP's average of the processes' parameter gradients is then the
gradient of that one loss. Their runs used one GPU.
"""
from __future__ import annotations

import functools

import torch
from torch import nn

from artcap_lib.retrieval import distributed, training
from artcap_lib.retrieval.dualenc import objectives

TEMPERATURE = 0.07


def logit_matrix_loss(logits_per_image: torch.Tensor, logits_per_text: torch.Tensor,
                      temperature: float = TEMPERATURE) -> torch.Tensor:
    """Their ContrastiveLoss on the two (n, n) logit matrices: rows L2-normalised, multiplied, divided by the
    temperature; the mean of the row-wise and the column-wise cross-entropy against the diagonal."""
    a = nn.functional.normalize(logits_per_image, p=2, dim=1)
    b = nn.functional.normalize(logits_per_text, p=2, dim=1)
    logits = a @ b.T / temperature
    targets = torch.arange(len(logits), device=logits.device)
    return (nn.functional.cross_entropy(logits, targets) + nn.functional.cross_entropy(logits.T, targets)) / 2


def training_step(model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Their training loss over the (all-gathered) batch, the logits built as CLIP's forward builds them: the learnt
    scale, uncapped, times the normalised features' dot products (CLIPModel's embeds are normalised)."""
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                pixel_values=batch["pixel_values"])
    image, text = out.image_embeds.float(), out.text_embeds.float()
    all_image, all_text = distributed.all_gather_with_grad(image), distributed.all_gather_with_grad(text)
    scale = training.unwrap(model).logit_scale.exp()
    logits_per_image = scale * all_image @ all_text.T
    return {"loss": logit_matrix_loss(logits_per_image, logits_per_image.T), "logit_scale": scale.detach()}


# their validation: the same class over the features = InfoNCE at the fixed temperature 0.07
validation_step = functools.partial(objectives.infonce_step, temperature=TEMPERATURE)
