"""`artcap bench caption`: how fast the captioning pipeline runs, in images/s and tokens/s.

Three figures for the batched pipeline (the exact code `artcap caption` runs: prefetch thread, left-padded
batches, JSONL appends):
- images/s end to end, and generated tokens/s over the time spent in `generate`;
- prefill tokens/s: prompt + image tokens per second, timed by a `generate` that stops after one token;
- decode tokens/s: the tokens after the first over the remaining generate time;
and, with --baseline, images/s of the authors' loop (one image per `generate` call) on the same images.
Random weights (`--model random:<arch>`, an untrained pocket model) never emit the end token, so answers are
forced to captioning.max_new_tokens there.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from artcap_lib.bench.subjects import bench_images, bench_model, sync_device
from artcap_lib.captioning.captioner import Captioner, caption_into, load_image
from artcap_lib.captioning.store import CaptionStore


def synthetic_paintings(out_dir: str | Path, n: int, size: int, seed: int = 0) -> list[tuple[str, Path]]:
    """n demo-style paintings (`subjects.bench_images`) as JPEG files: (id, path) items for the pipeline."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    items = []
    for i, image in enumerate(bench_images(n, size, seed)):
        path = out / f"{i}.jpg"
        image.save(path, quality=92)
        items.append((str(i), path))
    return items


def time_prefill(captioner: Captioner, items: list[tuple[str, Path]], batch_size: int) -> tuple[float, int]:
    """(seconds, prompt tokens) of one-token generates over the batches: the prefill's share of the work."""
    settings = captioner.decoding
    one_token = type(settings)(**{**settings.__dict__, "max_new_tokens": 1, "min_new_tokens": None})
    captioner.decoding, seconds, tokens = one_token, 0.0, 0
    try:
        for i in range(0, len(items), batch_size):
            inputs = captioner.prepare([load_image(p) for _, p in items[i:i + batch_size]])
            sync_device(captioner.device)
            t0 = time.perf_counter()
            captioner.generate_ids(inputs)
            seconds += time.perf_counter() - t0
            tokens += int(inputs["attention_mask"].sum())
    finally:
        captioner.decoding = settings
    return seconds, tokens


def time_one_at_a_time(captioner: Captioner, items: list[tuple[str, Path]]) -> dict[str, float]:
    """The authors' loop: open, process and generate one image at a time, no prefetch, no batching."""
    model, processor = captioner.model, captioner.processor
    prompt = captioner.chat_prompt()
    dtype = next(model.parameters()).dtype
    tokens = 0
    sync_device(captioner.device)
    start = time.perf_counter()
    for _, path in items:
        inputs = processor(images=load_image(path), text=prompt, return_tensors="pt").to(captioner.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
        with torch.inference_mode():
            out = model.generate(**inputs, **captioner.decoding.generate_kwargs(),
                                 pad_token_id=captioner.tokenizer.pad_token_id)
        tokens += out.shape[1] - inputs["input_ids"].shape[1]
    seconds = time.perf_counter() - start
    return {"images_per_second": len(items) / seconds, "tokens_per_second": tokens / seconds, "seconds": seconds}


def benchmark_captioning(captioner: Captioner, items: list[tuple[str, Path]], batch_size: int,
                         baseline: bool = False, warmup: bool = True) -> dict[str, Any]:
    """Time the batched pipeline (and, if asked, the one-at-a-time baseline) on `items`."""
    with tempfile.TemporaryDirectory() as tmp:
        if warmup:       # first-call costs (allocator, kernels, lazy init) are not throughput
            caption_into(captioner, items[:min(len(items), batch_size)], CaptionStore(Path(tmp) / "warmup.jsonl"),
                         batch_size)
        run = caption_into(captioner, items, CaptionStore(Path(tmp) / "bench.jsonl"), batch_size)
    prefill_seconds, prefill_tokens = time_prefill(captioner, items, batch_size)
    decode_tokens = run["new_tokens"] - run["captioned"]       # the first token of each answer comes with prefill
    decode_seconds = max(run["generate_seconds"] - prefill_seconds, 1e-9)
    result = {
        "images": len(items), "batch_size": batch_size, "max_new_tokens": captioner.decoding.max_new_tokens,
        "images_per_second": run["images_per_second"], "tokens_per_second": run["tokens_per_second"],
        "new_tokens_per_image": run["new_tokens"] / max(run["captioned"], 1),
        "prefill_tokens_per_second": prefill_tokens / prefill_seconds if prefill_seconds else 0.0,
        "prompt_tokens_per_image": prefill_tokens / len(items),
        "decode_tokens_per_second": decode_tokens / decode_seconds if decode_tokens > 0 else 0.0,
        "seconds": run["seconds"], "oom_splits": run["oom_splits"],
    }
    if baseline:
        one = time_one_at_a_time(captioner, items)
        result["baseline_images_per_second"] = one["images_per_second"]
        result["baseline_tokens_per_second"] = one["tokens_per_second"]
        result["speedup"] = result["images_per_second"] / one["images_per_second"]
    return result


def bench_caption(cfg, paths, images: int, baseline: bool = False, decoders: bool = False) -> dict[str, Any]:
    """`artcap bench caption`: the profile's captioner (cfg.captioning on cfg.device) over `images` synthetic
    paintings, batched as the pipeline runs; baseline: also one image per generate; decoders: also
    `decode.compare_decoders` on the same images."""
    from artcap_lib.captioning.captioner import Decoding, resolve_dtype
    from artcap_lib.runtime import resolve_device, use_threads
    c = cfg.captioning
    use_threads(c.threads)
    device = resolve_device(cfg.device)
    dtype = resolve_dtype(c.dtype, device)
    with tempfile.TemporaryDirectory() as tmp:
        location, random_weights = bench_model(cfg, paths, tmp)
        decoding = Decoding(max_new_tokens=c.max_new_tokens, cache_implementation=c.cache_implementation or None,
                            min_new_tokens=c.max_new_tokens if random_weights else None)   # random: never ends
        name = c.model + (" (untrained)" if random_weights and not c.model.startswith("random:") else "")
        captioner = Captioner.from_pretrained(location, dtype=dtype, device=device, decoding=decoding,
                                              engine=c.engine, prompt=c.prompt, model_name=name)
        size = captioner.processor.image_processor.crop_size["height"]
        items = synthetic_paintings(tmp + "/images", images, size, seed=cfg.seed)
        result = benchmark_captioning(captioner, items, c.batch_size, baseline=baseline)
        if decoders or baseline:
            from artcap_lib.bench.decode import compare_decoders
            result["decoders"] = compare_decoders(
                getattr(captioner.model, "_model", captioner.model), captioner.processor,
                [load_image(p) for _, p in items], c.batch_size, c.max_new_tokens, decoding.min_new_tokens,
                prompt=captioner.prompt)
    return {"benchmark": "caption", "model": captioner.model_name, "device": device, "dtype": dtype,
            "engine": c.engine, "random_weights": random_weights, "threads": torch.get_num_threads(), **result}
