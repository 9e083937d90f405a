"""`artcap longclip run | convert | export | stretch`, and the Long-CLIP part of `artcap bench train`.

    artcap longclip run --profile paper                      # baseline + both fine-tunes + scores (notebook 05)
    torchrun --nproc_per_node 4 -m artcap_lib.cli longclip run --profile paper   # the same on 4 GPUs (DDP)
    artcap longclip convert longclip-L.pt out/longclip-L-hf --tokenizer openai/clip-vit-large-patch14
    artcap longclip export RUN/retrieval/longclip/human/model longclip-L-human.pt   # for the original code
    artcap longclip stretch openai/clip-vit-base-patch16 out/clip-b16-248          # 77 -> 248 positions
"""
from __future__ import annotations


def add_cli(sub) -> None:
    lc = sub.add_parser("longclip", help="Long-CLIP: Experiment 2 runs, checkpoint conversion, position stretching")
    lsub = lc.add_subparsers(dest="longclip_command", required=True, metavar="ACTION")

    p = lsub.add_parser("run", help="baseline and fine-tunes scored on the test split (resumes where it stopped)")
    p.add_argument("--profile", default="demo")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="profile override, repeatable")
    p.add_argument("--variant", action="append", default=[], help="baseline | human | synthetic (default: all)")
    p.set_defaults(func=_run)

    p = lsub.add_parser("convert", help="a longclip-*.pt (original layout) -> Hugging Face CLIPModel directory")
    p.add_argument("checkpoint")
    p.add_argument("out_dir")
    p.add_argument("--tokenizer", default="openai/clip-vit-large-patch14",
                   help="CLIP tokenizer saved with the model (hub id or directory)")
    p.set_defaults(func=_convert)

    p = lsub.add_parser("export", help="a CLIPModel directory -> a .pt in Long-CLIP's original layout")
    p.add_argument("model_dir")
    p.add_argument("out_file")
    p.set_defaults(func=_export)

    p = lsub.add_parser("stretch", help="a 77-position CLIP -> 248 positions (first 20 kept, the rest 4x)")
    p.add_argument("model")
    p.add_argument("out_dir")
    p.set_defaults(func=_stretch)


def _run(args) -> int:
    import json

    from artcap_lib.retrieval.longclip import experiment as longclip_experiment
    from artcap_lib.notebook import setup
    from artcap_lib.config import parse_overrides

    cfg, paths = setup(args.profile, parse_overrides(args.set))
    summary = longclip_experiment.run_experiment(cfg, paths, args.variant or longclip_experiment.VARIANTS)
    if "precision@1" in summary:
        print(json.dumps({"precision@1": summary["precision@1"], "results": str(longclip_experiment.model_dir(paths)
                                                                                  / "results.json")}, indent=2))
    return 0


def _convert(args) -> int:
    from artcap_lib.retrieval.longclip.model import load_model
    bundle = load_model(args.checkpoint, tokenizer=args.tokenizer)
    bundle.save(args.out_dir)
    print(f"{args.checkpoint} -> {args.out_dir} ({bundle.note})")
    return 0


def _export(args) -> int:
    from transformers import CLIPModel

    from artcap_lib.retrieval.longclip.convert import save_openai_checkpoint
    save_openai_checkpoint(CLIPModel.from_pretrained(args.model_dir), args.out_file)
    print(f"{args.model_dir} -> {args.out_file} (Long-CLIP layout)")
    return 0


def _stretch(args) -> int:
    from artcap_lib.retrieval.longclip.model import load_model
    bundle = load_model(args.model, stretch_77=True)
    bundle.save(args.out_dir)
    print(f"{args.model} -> {args.out_dir}: {bundle.note or 'already ' + str(bundle.model.config.text_config.max_position_embeddings) + ' positions'}")
    return 0


def bench_train(args) -> dict:
    """`artcap bench train --model longclip`: full-size Long-CLIP-L with random weights (`random_models`) unless
    --arch names a model directory, a longclip-*.pt, another random: spec, or "pocket" (the demo's, untrained)."""
    from artcap_lib.retrieval.longclip import model as longclip
    from artcap_lib.runtime import resolve_device
    from artcap_lib.standins.random_models import resolve_model

    device = resolve_device(args.device)
    arch = args.arch or "random:longclip-L"
    if arch == "pocket":
        import numpy as np

        from artcap_lib.data.demo import random_scene, visual_sentences
        from artcap_lib.standins.pocket_longclip import build_pocket_longclip
        rng = np.random.default_rng(0)
        corpus = [" ".join(visual_sentences(random_scene(rng), rng)) for _ in range(200)]
        bundle = longclip.LongClip(*build_pocket_longclip(corpus), source="pocket Long-CLIP, untrained")
    else:
        bundle = longclip.load_model(resolve_model(arch, device=device), tokenizer=args.tokenizer)
        bundle.source = arch
    return longclip.benchmark_training(bundle, batch_size=args.batch_size or 40, steps=args.steps,
                                       warmup=args.warmup, tokens=args.tokens or 96, device=device,
                                       precision=args.precision, preset=args.preset)
