"""How a dual encoder's validation loss is measured: the number that picks the kept epoch and stops training early.

  ours     the validation pairs in a fixed order, at the training precision, each batch weighted by its size: for
           given weights the same number on every run, at any process count, after any resume.
  authors  the Long-CLIP authors' validation (both versions of their finetuner, github.com/jcgohr/artwork-caption-gen
           src/finetuner.py at 2fae93c and 922787d): the pairs reshuffled at every validation (their val DataLoader
           has shuffle=True), no autocast (fp32, although training ran fp16 autocast), and the plain mean of the
           batches' losses, so the short last batch weighs as much as a full one. A contrastive loss depends on
           which pairs share a batch, so their number moves between epochs with the shuffle alone, and the epoch it
           picks moves with it. Their shuffle was unseeded; here it is a function of (seed, epoch), so a resumed run
           validates on the batches an uninterrupted one would.
"""
from __future__ import annotations

from typing import Callable

from artcap_lib.retrieval import distributed, training

PROTOCOLS = ("ours", "authors")


class Validation:
    """validate(model) for `training.fit`: the mean validation losses (val_<key>) under one protocol; `set_epoch`
    (called by fit before each validation) picks the authors' shuffle of that epoch."""

    def __init__(self, protocol: str, dataset, batch_size: int, dist: distributed.Distributed, step: Callable,
                 precision: str, collate, seed: int = 0, num_workers: int = 0):
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown validation protocol {protocol!r} (known: {', '.join(PROTOCOLS)})")
        self.protocol, self.dist, self.step, self.precision = protocol, dist, step, precision
        self.loader = distributed.make_loader(dataset, batch_size, dist, shuffle=protocol == "authors",
                                           collate_fn=collate, seed=seed, num_workers=num_workers)

    def set_epoch(self, epoch: int) -> None:
        if self.protocol == "authors":
            self.loader.sampler.set_epoch(epoch)

    def __call__(self, model) -> dict[str, float]:
        if self.protocol == "authors":
            return training.mean_losses(model, self.step, self.loader, self.dist, "fp32", per_batch=True)
        return training.mean_losses(model, self.step, self.loader, self.dist, self.precision)
