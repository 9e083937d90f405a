"""`artcap caption`: caption a collection with any Hugging Face image-text-to-text model.

    artcap caption --artworks RUN/data/artworks.json --model llava-hf/llava-1.5-7b-hf --out RUN/captions/llava.jsonl
    torchrun --nproc_per_node 4 -m artcap_lib.cli caption ...   # same command, images sharded over 4 GPUs

Re-running the same command resumes: images already in --out are skipped."""
from __future__ import annotations

import json
import sys


def add_cli(sub) -> None:
    p = sub.add_parser("caption", help="caption images with an MLLM into a resumable JSONL file",
                       description=__doc__.split("\n\n", 1)[1] if "\n\n" in __doc__ else None)
    p.add_argument("--artworks", required=True, help="artworks.json (Artpedia schema with file_path), e.g. RUN/data/artworks.json")
    p.add_argument("--model", required=True, help="hub id or local directory, e.g. llava-hf/llava-1.5-7b-hf or RUN/models/pocket-llava")
    p.add_argument("--out", required=True, help="caption file (JSONL), appended to and resumed")
    p.add_argument("--split", action="append", choices=["train", "val", "test"],
                   help="only these splits (repeatable; default: all)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--limit", type=int, default=None, help="only the first N images (after --split)")
    p.add_argument("--prompt", default="Caption this image")
    p.add_argument("--max-new-tokens", type=int, default=200)
    p.add_argument("--dtype", default="float16", choices=["float32", "float16", "bfloat16"])
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (under torchrun: LOCAL_RANK's GPU)")
    p.add_argument("--answer-marker", default="ASSISTANT:", help='the answer is the text after this ("" = new tokens)')
    p.add_argument("--cache-implementation", default=None, help='KV cache passed to generate, e.g. "static"')
    p.add_argument("--retry-failed", action="store_true", help="caption again the images recorded as failures")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--summary", default=None, help="also write the run's throughput figures to this JSON file")
    p.set_defaults(func=_caption)


def _caption(args) -> int:
    import torch
    from artcap_lib.captioning.captioner import Captioner, Decoding, caption_collection, collection_items
    from artcap_lib.files import write_json
    from artcap_lib.runtime import process_device, resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        items = collection_items(args.artworks, args.split, args.limit)
    except (OSError, ValueError) as err:
        print(f"artcap caption: {err}", file=sys.stderr)
        return 2
    device = process_device(resolve_device(args.device))
    captioner = Captioner.from_pretrained(
        args.model, dtype=args.dtype, device=device, prompt=args.prompt, answer_marker=args.answer_marker,
        decoding=Decoding(max_new_tokens=args.max_new_tokens, cache_implementation=args.cache_implementation))
    summary = caption_collection(captioner, items, args.out, args.batch_size, retry_failed=args.retry_failed,
                                 progress=sys.stderr.isatty())
    if summary["rank"] == 0:
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in summary.items()}))
        if args.summary:
            write_json(args.summary, summary)
    return 0
