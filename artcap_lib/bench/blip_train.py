"""Speed of BLIP retrieval fine-tuning: optimiser steps of the full objective on synthetic batches.

Times what one fine-tuning step costs (ITC with momentum encoders and queues, ITM with hard negatives, backward,
AdamW) for a model directory, a `random:` architecture (bench profile: `random:blip-itm-large-coco` = ViT-L at
384 px + BERT-base, random weights) or a freshly built pocket BLIP. Reports images/s and peak GPU memory, so
the paper recipe's batch 16 at 384 px can be checked against a card before a 6-epoch run.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from artcap_lib.retrieval.blip import model as blip
from artcap_lib.retrieval import training


def benchmark_training(model: str | Path | None = "random:blip-itm-large-coco", batch_size: int = 16,
                       steps: int = 10, warmup: int = 2,
                       queue_size: int = 2048, device: str = "auto", precision: str = "auto",
                       grad_checkpointing: bool = True, models_dir: str | Path = "papermill_runs/bench/models",
                       max_tokens: int = 35) -> dict[str, Any]:
    """Seconds per optimiser step and images/s after `warmup` steps; model None = an untrained pocket BLIP."""
    from artcap_lib.standins.random_models import resolve_model
    dev = training.setup_distributed(device).device
    label = "pocket-blip (untrained)" if model is None else str(model)
    with tempfile.TemporaryDirectory() as tmp:
        if model is None:
            from artcap_lib.standins.pocket_blip import build_pocket_blip
            model = build_pocket_blip(Path(tmp) / "pocket-blip")
        source = resolve_model(str(model), models_dir, device)
        net, tokenizer, _, _ = blip.load_blip(source, dev)
    if grad_checkpointing:
        net.vision_model.activation_checkpointing_enable()
    size = net.config.vision_config.image_size
    enc = blip.enc_token_id(tokenizer, net.config.text_config.vocab_size)
    objective = blip.BlipRetrievalObjective(net, enc, max(queue_size, batch_size)).to(dev)
    objective.train()
    optimizer = torch.optim.AdamW([p for p in objective.parameters() if p.requires_grad], lr=1e-6, weight_decay=0.05)
    # captions of BLIP's training length: 30 words, cut to 35 tokens
    texts = [" ".join(["a painting of a woman in a red dress beside a window"] * 3)] * batch_size
    tokens = tokenizer(texts, padding="max_length", truncation=True, max_length=max_tokens, return_tensors="pt")
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    times = []
    for step in range(warmup + steps):
        batch = {"pixel_values": torch.randn(batch_size, 3, size, size), "input_ids": tokens["input_ids"],
                 "attention_mask": tokens["attention_mask"],
                 "idx": torch.arange(step * batch_size, (step + 1) * batch_size)}
        batch = training.to_device(batch, dev)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        start = time.perf_counter()
        with training.autocast_context(dev, precision):
            loss = objective(**batch)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        if step >= warmup:
            times.append(time.perf_counter() - start)
    seconds = sum(times) / len(times)
    return {"benchmark": "blip_training_step", "model": "blip", "source": label, "device": str(dev),
            "precision": precision, "tokens": max_tokens,
            "batch_size": batch_size, "image_size": size, "queue_size": objective.queue_size,
            "grad_checkpointing": grad_checkpointing, "steps": steps,
            "parameters": sum(p.numel() for p in net.parameters()),
            "seconds_per_step": seconds, "images_per_second": batch_size / seconds,
            **({"peak_memory_gib": torch.cuda.max_memory_allocated(dev) / 2**30} if dev.type == "cuda" else {})}
