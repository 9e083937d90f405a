"""Speed of retrieval fine-tuning (`artcap bench train`): optimiser steps of any registered model on synthetic
batches, timed the same way for every model (images/s, seconds per step, peak GPU memory).

Each model provides its step (`RetrievalModel.bench_step`: BLIP's full ITC + ITM objective with queues, Long-CLIP's
InfoNCE with the preset's optimiser); this module owns devices, warm-up, synchronisation and the result, so the
paper recipes' batch sizes can be checked against a card before a 6-epoch run.
"""
from __future__ import annotations

import time
from typing import Any

from artcap_lib.retrieval.protocol import BenchOptions

DEFAULT_ALIASES = ("", "L", "paper")     # the model's full-size architecture with random weights


def benchmark_training(model: str, source: str = "", batch_size: int = 0, steps: int = 10, warmup: int = 2,
                       tokens: int = 0, device: str = "auto", precision: str = "auto",
                       options: BenchOptions | None = None) -> dict[str, Any]:
    """Time `steps` training steps of `model` (a registry name) after `warmup` untimed ones.

    source: a model directory, hub id, random: spec, longclip-*.pt, "pocket" (an untrained pocket model), or
    "" / "L" / "paper" for the model's full-size architecture with random weights; batch_size and tokens 0 = the
    paper's setting for the model."""
    import torch

    from artcap_lib.retrieval import registry
    from artcap_lib.runtime import resolve_device
    adapter = registry.get(model)
    defaults = adapter.bench_defaults
    source = defaults["source"] if source in DEFAULT_ALIASES else source
    batch_size, tokens = batch_size or defaults["batch_size"], tokens or defaults["tokens"]
    dev = torch.device(resolve_device(device))
    bench = adapter.bench_step(source, batch_size, tokens, dev, precision, options or BenchOptions())
    cuda = dev.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(dev)
    for i in range(warmup):
        bench.step(i)
    if cuda:
        torch.cuda.synchronize(dev)
    start = time.perf_counter()
    for i in range(warmup, warmup + steps):
        bench.step(i)
    if cuda:
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - start
    out = {"benchmark": "train", "model": model, "source": bench.source, "device": str(dev), "precision": precision,
           "batch_size": batch_size, "tokens": tokens, "image_size": bench.image_size, "steps": steps,
           "seconds": seconds, "seconds_per_step": seconds / steps, "images_per_second": batch_size * steps / seconds,
           "parameters": bench.parameters, **bench.extras}
    if cuda:
        out["peak_memory_gib"] = torch.cuda.max_memory_allocated(dev) / 2**30
        out["gpu"] = torch.cuda.get_device_name(dev)
    return out
