"""`artcap longclip run | convert | export | stretch`: Long-CLIP's Experiment 2 and its checkpoint formats.

    artcap longclip run --profile paper                      # baseline + both fine-tunes + scores (notebook 05)
    torchrun --nproc_per_node 4 -m artcap_lib.cli longclip run --profile paper   # the same on 4 GPUs (DDP)
    artcap longclip convert longclip-L.pt out/longclip-L-hf --tokenizer openai/clip-vit-large-patch14
    artcap longclip export RUN/retrieval/longclip/human/model longclip-L-human.pt   # for the original code
    artcap longclip stretch openai/clip-vit-base-patch16 out/clip-b16-248          # 77 -> 248 positions
"""
from __future__ import annotations

from artcap_lib.cli.options import add_profile_options, writing_run

MODEL = "longclip"


def add_cli(sub) -> None:
    lc = sub.add_parser("longclip", help="Long-CLIP: Experiment 2 runs, checkpoint conversion, position stretching")
    lsub = lc.add_subparsers(dest="longclip_command", required=True, metavar="ACTION")

    p = lsub.add_parser("run", help="baseline and fine-tunes scored on the test split (resumes where it stopped)",
                        description=__doc__)
    p.add_argument("--variant", action="append", default=[],
                   help="a variant to train and score, repeatable: baseline, human, synthetic or synthetic-<captioner> "
                        "(default: all of the profile's)")
    add_profile_options(p, MODEL, "device", "seed")
    p.set_defaults(func=_run)

    p = lsub.add_parser("convert", help="a longclip-*.pt (original layout) -> Hugging Face CLIPModel directory")
    p.add_argument("checkpoint")
    p.add_argument("out_dir")
    p.add_argument("--tokenizer", default="openai/clip-vit-large-patch14",
                   help="CLIP tokenizer saved with the model (hub id or directory)")
    add_profile_options(p)          # accepted like everywhere; the conversion itself reads no profile value
    p.set_defaults(func=_convert)

    p = lsub.add_parser("export", help="a CLIPModel directory -> a .pt in Long-CLIP's original layout")
    p.add_argument("model_dir")
    p.add_argument("out_file")
    add_profile_options(p)          # accepted like everywhere; the conversion itself reads no profile value
    p.set_defaults(func=_export)

    p = lsub.add_parser("stretch", help="a 77-position CLIP -> 248 positions (first 20 kept, the rest 4x)")
    p.add_argument("model")
    p.add_argument("out_dir")
    add_profile_options(p)          # accepted like everywhere; the conversion itself reads no profile value
    p.set_defaults(func=_stretch)


def _run(args) -> int:
    from artcap_lib.retrieval import displays, experiment
    from artcap_lib.runtime import distributed_rank
    cfg, paths = writing_run(args, "artcap longclip run")
    out = experiment.run(cfg, paths, MODEL, args.variant or None)
    if distributed_rank()[0] == 0:
        print("\n".join(displays.headlines(out)))
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
    positions = bundle.model.config.text_config.max_position_embeddings
    print(f"{args.model} -> {args.out_dir}: {bundle.note or f'already {positions} positions'}")
    return 0
