"""`artcap caption`: caption a collection with any Hugging Face image-text-to-text model.

    artcap caption --profile demo                  # step 02 of the run, as notebook 02: its artworks -> its captions
    artcap caption --profile paper --engine fast   # any captioning.* field is a flag (or --set captioning.KEY=...)
    artcap caption --profile zoo --captioner pocket-qwen2-vl   # one captioner of a run that lists several
    artcap caption --profile paper --artworks A.json --out llava.jsonl --model DIR   # ad-hoc paths
    torchrun --nproc_per_node 4 -m artcap_lib.cli caption ...   # same command, images sharded over 4 GPUs

The captioner's settings are the profile's in both forms (default profile: demo, a CPU one). Re-running the same
command resumes: images already in the caption file are skipped."""
from __future__ import annotations

import json
import sys

from artcap_lib.cli.options import (add_profile_options, input_path, output_file, positive_int, profile_from_args,
                                    writing_run)


def add_cli(sub) -> None:
    p = sub.add_parser("caption", help="caption images with an MLLM into a resumable JSONL file",
                       description=__doc__.split("\n\n", 1)[1])
    p.add_argument("--artworks", type=input_path,
                   help="artworks.json (Artpedia schema with file_path); default: the run's "
                   "data/artworks.json")
    p.add_argument("--out", type=output_file, help="caption file (JSONL), appended to and resumed; default: the run's "
                   "captions/<captioner>.jsonl")
    p.add_argument("--captioner", default=None, help="only this captioner of the profile's captioning.captioners "
                   "(default: all of them; with --artworks/--out: the first)")
    p.add_argument("--split", action="append", choices=["train", "val", "test"],
                   help="only these splits (repeatable; default: all)")
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N images (after --split)")
    p.add_argument("--retry-failed", action="store_true", help="caption again the images recorded as failures")
    p.add_argument("--summary", type=output_file, default=None,
                   help="also write the run's throughput figures to this JSON file")
    add_profile_options(p, "captioning", "device", "run_dir")
    p.set_defaults(func=_caption)


def _caption(args) -> int:
    from artcap_lib.captioning.captioner import collection_items
    from artcap_lib.captioning.step import caption_artworks, captioner_spec, run as run_captioning
    from artcap_lib.config import ProfileError, captioners
    from artcap_lib.files import write_json

    whole_run = args.artworks is None and args.out is None and not args.split and args.limit is None
    cfg, paths = profile_from_args(args)
    try:
        spec = captioner_spec(cfg, args.captioner)
    except KeyError as err:
        print(f"artcap caption: {err.args[0]}", file=sys.stderr)
        return 2
    out = args.out or paths.caption_file(spec.name)
    needs_step_01 = cfg.captioning.source == "model" and args.artworks is None
    if needs_step_01 and not paths.root.exists():          # a mistyped run_dir: say so, create nothing
        return _no_step_01(paths)
    if whole_run or out.is_relative_to(paths.root):
        # a caption file of the run (notebook 02's, or --split/--limit into it) is the run's: one writer, and
        # no later notebook reads it while it grows; a file elsewhere has its own lock (the caption store's)
        cfg, paths = writing_run(args, "artcap caption")
    if needs_step_01 and not paths.artworks.is_file():
        return _no_step_01(paths)
    if cfg.captioning.source == "model":
        artworks = args.artworks or paths.artworks
        try:
            collection_items(artworks, args.split, args.limit)     # a bad collection: one line, before any model
        except (OSError, ValueError) as err:
            print(f"artcap caption: {err}", file=sys.stderr)
            return 2
        check_captioners(cfg, [spec] if not whole_run or args.captioner else captioners(cfg))
    elif not whole_run:
        raise ProfileError(f"--artworks/--out/--split/--limit caption with a model; this profile's "
                           f"captioning.source is {cfg.captioning.source!r}")
    progress = sys.stderr.isatty()
    if whole_run:                                  # exactly notebook 02's step
        summaries = run_captioning(cfg, paths, progress=progress, retry_failed=args.retry_failed,
                                   only=args.captioner)
    else:
        summaries = {spec.name: caption_artworks(cfg, paths, artworks, out, args.split, args.limit,
                                                 args.retry_failed, progress, spec)}
    if all(s.get("rank", 0) == 0 for s in summaries.values()):
        for summary in summaries.values():
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in summary.items()}))
        if args.summary:
            write_json(args.summary, summaries if len(summaries) > 1 else next(iter(summaries.values())))
    return 0


def _no_step_01(paths) -> int:
    print(f"artcap caption: run_dir: {paths.root} has no {paths.artworks.relative_to(paths.root)}, so step 01 has not "
          f"run there: run it (artcap reproduce --only 01), check run_dir, or give --artworks", file=sys.stderr)
    return 2


def check_captioners(cfg, specs) -> None:
    """The device and each captioner's model, before any model loads (`preflight`)."""
    from artcap_lib.cli.preflight import check_device, check_model
    check_device(cfg)
    for spec in specs:
        check_model("captioning.model" if not cfg.captioning.captioners else
                    f"captioning.captioners[{spec.name}].model", spec.model)
