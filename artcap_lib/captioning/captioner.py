"""Captioning: any Hugging Face image-text-to-text checkpoint over a collection, batched, resumable, sharded.

The paper's captioner, as the authors ran it: llava-hf/llava-1.5-7b-hf in fp16, one user turn (image, then
"Caption this image") through the processor's chat template, greedy decoding, max_new_tokens=200, and the
answer is the decoded text after "ASSISTANT:". Everything of that is a parameter; the rest is about speed and
not losing work:

- the model inputs are the processor's own (`prompts.model_inputs`: the chat template tokenised once, one list of
  images per prompt, or the processor's task prefix / task token for families without a template), so any
  image-text-to-text family captions as its model card's recipe does (tests/test_captioner_families.py);
- batches of a decoder-only model are padded on the LEFT: it continues from the last position of each row, so
  right padding would put pad tokens between the prompt and the answer and silently change the captions
  (tests/test_captioning.py checks batched == one-at-a-time, token for token, and that right padding differs);
  an encoder-decoder (Florence-2, BLIP-2 on Flan-T5) keeps its tokenizer's side, and its `generate` returns the
  decoder's tokens only, so its answer is all of them after the decoder's start token;
- images are read and preprocessed by a background thread while the model generates the previous batch;
- each finished batch is appended to captions/<name>.jsonl (caption_store), so a killed run resumes where it
  stopped; an unreadable image becomes a failure line, not a crash;
- on CUDA out-of-memory the batch is split in half and retried, and later batches use the smaller size;
- under torchrun / accelerate launch (RANK, WORLD_SIZE set) each process takes every WORLD_SIZE-th image,
  writes its own shard file, and rank 0 merges the shards into the caption file at the end.

Needs only torch, transformers and pillow.
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch
from PIL import Image

from artcap_lib.captioning.prompts import chat_prompt, model_inputs
from artcap_lib.checkpoints import load_pretrained
from artcap_lib.model_names import locate
from artcap_lib.progress import Bar
from artcap_lib.runtime import distributed_rank
from artcap_lib.captioning.store import CaptionStore, merge_shards, shard_path

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
GPU_DTYPE = "float16"          # "auto" on a GPU: the precision the authors ran LLaVA-1.5 in


def resolve_dtype(dtype: str, device: str | torch.device) -> str:
    """A dtype name, "auto" resolved: float32 on a CPU (float16 there is slow and changes some greedy captions),
    GPU_DTYPE on CUDA. Unknown names are an error before any model is loaded."""
    if dtype == "auto":
        return GPU_DTYPE if torch.device(device).type == "cuda" else "float32"
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r}: expected auto or one of {', '.join(DTYPES)}")
    return dtype


@dataclass
class Decoding:
    """Generation parameters; recorded in every caption line."""
    max_new_tokens: int = 200
    do_sample: bool = False                   # greedy, as the authors
    num_beams: int = 1
    cache_implementation: str | None = None  # e.g. "static": fixed-shape KV cache, what torch.compile needs (GPU)
    min_new_tokens: int | None = None        # benchmarks: force a fixed answer length (random weights never stop)

    def generate_kwargs(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


class Captioner:
    """A model + processor + prompt; turns PIL images into captions."""

    def __init__(self, model, processor, prompt: str = "Caption this image", decoding: Decoding | None = None,
                 answer_marker: str = "ASSISTANT:", model_name: str | None = None):
        self.model = model.eval()
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        # generate returns the prompt + the answer for a decoder-only model, the decoder's tokens for the other kind
        self.encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))
        if not self.encoder_decoder:
            # Decoder-only generation continues every row from its last column: padding must go on the left.
            self.tokenizer.padding_side = "left"
        self.prompt = prompt
        self.decoding = decoding or Decoding()
        self.answer_marker = answer_marker     # "" = the answer is the decoded new tokens (decoder-only only)
        self.model_name = model_name or getattr(model, "name_or_path", "") or type(model).__name__
        self.max_rows: int | None = None       # lowered after an out-of-memory error
        self.oom_splits = 0

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, dtype: str = "auto", device: str = "cpu",
                        attn_implementation: str | None = None, engine: str = "generate", **kwargs) -> "Captioner":
        """Load any image-text-to-text checkpoint: a hub id, a local directory (AutoProcessor + AutoModel) or a
        random_models spec ("random:llava-1.5-7b", the bench profile). dtype: auto (see resolve_dtype) or a
        DTYPES name. engine: generate | fast | fast_compiled (fast_decode.GreedyDecoder for greedy decoding; same
        captions as generate in fp32)."""
        from transformers import AutoModelForImageTextToText

        from artcap_lib.captioning.processors import load_processor

        from artcap_lib.captioning.fast_decode import ENGINES, FastGenerateModel
        if engine not in ENGINES:
            raise ValueError(f"engine {engine!r}: expected one of {', '.join(ENGINES)}")
        dtype = resolve_dtype(dtype, device)      # before a random: spec materialises a full-size model
        spec, name_or_path = str(name_or_path), locate(name_or_path, device=device)
        processor = load_processor(name_or_path)      # AutoProcessor, or its image-only form without torchvision
        extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
        model = load_pretrained(AutoModelForImageTextToText, name_or_path, dtype=DTYPES[dtype], **extra).to(device)
        if engine != "generate":
            if getattr(model.config, "is_encoder_decoder", False):
                raise ValueError(f"engine {engine!r} drives decoder-only models; {spec} is an encoder-decoder: "
                                 "use engine 'generate'")
            model = FastGenerateModel(model, compile=engine == "fast_compiled")
        return cls(model, processor, model_name=kwargs.pop("model_name", spec), **kwargs)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def chat_prompt(self, prompt: str | None = None) -> str:
        """This captioner's prompt (or `prompt`) as text in the model's conversation format, for display
        (`prompts.chat_prompt`); captioning tokenises through `prepare`."""
        return chat_prompt(self.processor, self.prompt if prompt is None else prompt)

    def prepare(self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None):
        """Processor outputs for a batch (on the CPU; runs in the prefetch thread): `prompts.model_inputs`."""
        return model_inputs(self.processor, list(images), list(prompts) if prompts else [self.prompt] * len(images))

    @torch.inference_mode()
    def generate_ids(self, inputs) -> tuple[list[list[int]], list[list[int]]]:
        """(new token ids, prompt ids) per row; new ids cut after the first end-of-sequence token (the rest is
        padding), prompt ids as fed (padding included; decoding skips it). A decoder-only model's `generate` returns
        the prompt then the new tokens; an encoder-decoder's returns the decoder's start token(s) then the new ones."""
        dtype = next(self.model.parameters()).dtype
        inputs = {k: (v.to(self.device, dtype) if torch.is_floating_point(v) else v.to(self.device))
                  for k, v in inputs.items()}
        out = self.model.generate(**inputs, **self.decoding.generate_kwargs(),
                                  pad_token_id=self.tokenizer.pad_token_id)
        prompt_ids = inputs["input_ids"]
        if self.encoder_decoder:
            start = inputs["decoder_input_ids"].shape[1] if "decoder_input_ids" in inputs else 1
        else:
            start = prompt_ids.shape[1]
        rows = answer_ids(out, start, self.model.generation_config.eos_token_id)
        return rows, prompt_ids.tolist()

    def answer(self, prompt_ids: list[int], new_ids: list[int]) -> str:
        """The authors' parsing: decode prompt + answer, keep the text after the first answer marker; without a
        marker (or where the decoded text lacks it, or for an encoder-decoder, whose prompt is not the decoder's
        text), the decoded new tokens."""
        if self.answer_marker and not self.encoder_decoder:
            text = self.tokenizer.decode(prompt_ids + new_ids, skip_special_tokens=True)
            at = text.find(self.answer_marker)
            if at != -1:
                return text[at + len(self.answer_marker):].strip()
        return self.tokenizer.decode(new_ids, skip_special_tokens=True).strip()

    def caption(self, images: Sequence[Image.Image], inputs=None) -> list[tuple[str, int]]:
        """(caption, new token count) per image; splits the batch on CUDA out-of-memory."""
        if self.max_rows and len(images) > self.max_rows:
            return [r for i in range(0, len(images), self.max_rows) for r in self.caption(images[i:i + self.max_rows])]
        try:
            new_ids, prompt_ids = self.generate_ids(inputs if inputs is not None else self.prepare(images))
        except torch.OutOfMemoryError:
            if len(images) == 1:
                raise
            oom = True
        else:
            oom = False
        if oom:        # retried outside the except block, so the failed attempt's tensors can be freed
            inputs = None
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            self.oom_splits += 1
            half = (len(images) + 1) // 2
            self.max_rows = half
            return self.caption(images[:half]) + self.caption(images[half:])
        return [(self.answer(p, n), len(n)) for p, n in zip(prompt_ids, new_ids)]


# ---------------------------------------------------------------------------------------------- a collection
def answer_ids(out: torch.Tensor, prompt_len: int, eos_token_id: int | list[int] | None) -> list[list[int]]:
    """The generated ids of each row of `generate`'s output, cut after the first end-of-sequence token (what
    follows is padding)."""
    eos = set(eos_token_id if isinstance(eos_token_id, list) else [eos_token_id]) if eos_token_id is not None else set()
    rows = []
    for ids in out[:, prompt_len:].tolist():
        cut = next((i + 1 for i, t in enumerate(ids) if t in eos), len(ids))
        rows.append(ids[:cut])
    return rows


def load_image(path: str | Path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")


def _prepare_batch(captioner: Captioner, batch: list[tuple[str, Path]]) -> dict[str, Any]:
    """Read a batch's images (failures noted, not raised) and run the processor: the prefetch thread's job."""
    ok, images, failures = [], [], []
    for art_id, path in batch:
        try:
            images.append(load_image(path))
            ok.append(art_id)
        except Exception as exc:            # unreadable, truncated, missing: a failure line, never a crash
            failures.append({"id": art_id, "error": f"{type(exc).__name__}: {exc}", "image": str(path)})
    inputs = captioner.prepare(images) if images else None
    return {"ids": ok, "images": images, "inputs": inputs, "failures": failures}


def prefetch(batches: Iterable[Any], prepare: Callable[[Any], Any], depth: int = 2) -> Iterator[Any]:
    """Yield prepare(batch) for each batch, computed by a background thread up to `depth` batches ahead."""
    results: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def work():
        try:
            for batch in batches:
                item = prepare(batch)
                while not stop.is_set():
                    try:
                        results.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            results.put(done)
        except BaseException as exc:          # handed to the consumer, raised there
            results.put(exc)

    thread = threading.Thread(target=work, name="caption-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = results.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


def caption_into(captioner: Captioner, items: Sequence[tuple[str, Path]], store: CaptionStore, batch_size: int,
                 progress: bool = False) -> dict[str, Any]:
    """Caption the items not yet in `store`, appending each batch as it finishes. Returns throughput figures."""
    todo = [(i, p) for i, p in items if not store.is_done(i)]
    batches = [todo[i:i + batch_size] for i in range(0, len(todo), batch_size)]
    decoding = asdict(captioner.decoding)
    captioned = failed = new_tokens = 0
    generate_seconds = 0.0
    start = time.perf_counter()
    bar = Bar(len(todo), f"captioning ({captioner.model_name})", unit="img", show=progress)
    for prepared in prefetch(batches, lambda b: _prepare_batch(captioner, b)):
        failed += store.append({**f, "model": captioner.model_name, "prompt": captioner.prompt}
                               for f in prepared["failures"])
        if prepared["ids"]:
            t0 = time.perf_counter()
            results = captioner.caption(prepared["images"], prepared["inputs"])
            seconds = time.perf_counter() - t0
            generate_seconds += seconds
            # seconds: the batch's generation time shared equally by its images
            captioned += store.append({"id": art_id, "caption": text, "model": captioner.model_name,
                                       "prompt": captioner.prompt, "decoding": decoding, "new_tokens": n,
                                       "seconds": seconds / len(results)}
                                      for art_id, (text, n) in zip(prepared["ids"], results))
            new_tokens += sum(n for _, n in results)
        bar.update(len(prepared["ids"]) + len(prepared["failures"]))
    bar.close()
    wall = time.perf_counter() - start
    return {"images": len(items), "already_done": len(items) - len(todo), "captioned": captioned, "failed": failed,
            "new_tokens": new_tokens, "seconds": wall, "generate_seconds": generate_seconds,
            "images_per_second": captioned / wall if wall and captioned else 0.0,
            "tokens_per_second": new_tokens / generate_seconds if generate_seconds else 0.0,
            "batch_size": batch_size, "oom_splits": captioner.oom_splits}


def caption_collection(captioner: Captioner, items: Sequence[tuple[str, Path]], out: str | Path, batch_size: int = 16,
                       retry_failed: bool = False, progress: bool = False) -> dict[str, Any]:
    """Caption `items` ((id, image path) pairs) into the JSONL file `out`, resuming whatever is already there.

    In one process the file is written directly. Under torchrun/accelerate each rank takes items[rank::world],
    writes out's shard for its rank, and rank 0 merges all shards into `out` once every rank is done."""
    rank, world = distributed_rank()
    out = Path(out)
    if world == 1:
        merge_shards(out)                  # a killed multi-process run's shards are finished work
        summary = caption_into(captioner, items, CaptionStore(out, retry_failed), batch_size, progress)
        return {**summary, "rank": 0, "world_size": 1}

    import torch.distributed as dist
    created = not dist.is_initialized()
    if created:   # gloo: only barriers cross processes, and gloo works whatever the devices are
        dist.init_process_group("gloo", timeout=timedelta(hours=12))
    try:
        if rank == 0:
            merge_shards(out)              # and repair out's last line before anyone reads it
            CaptionStore(out)
        dist.barrier()
        done = CaptionStore(out, retry_failed) if out.exists() else None
        mine = [item for item in items[rank::world] if done is None or not done.is_done(item[0])]
        store = CaptionStore(shard_path(out, rank, world), retry_failed)
        summary = caption_into(captioner, mine, store, batch_size, progress and rank == 0)
        dist.barrier()
        if rank == 0:
            summary["merged"] = merge_shards(out)
        dist.barrier()
    finally:
        if created:
            dist.destroy_process_group()
    return {**summary, "rank": rank, "world_size": world}


def collection_items(artworks, splits: Sequence[str] | None = None,
                     limit: int | None = None) -> list[tuple[str, Path]]:
    """(id, image path) of the artworks to caption, in file order; entries without an image are an error.
    `artworks`: an artworks.json, or its `artpedia.Catalogue` where the caller has read it already."""
    from artcap_lib.data.artpedia import Catalogue, read_catalogue
    catalogue = artworks if isinstance(artworks, Catalogue) else read_catalogue(artworks)
    items = []
    for art_id, entry in catalogue.artworks.items():
        if splits and entry["split"] not in splits:
            continue
        path = catalogue.images[art_id]
        if path is None:
            raise ValueError(f"{catalogue.path}: entry {art_id}: no file_path (run step 01 / artcap data download)")
        items.append((art_id, path))
    return items[:limit] if limit else items

