"""`artcap blip finetune | experiment | convert`: BLIP fine-tuning (one process, or torchrun for several GPUs),
Experiment 2, and BLIP's original checkpoints as Hugging Face models.

    artcap blip finetune --profile paper --variant human                  # one GPU (or CPU)
    torchrun --nproc_per_node 4 -m artcap_lib.cli blip finetune --profile paper --variant synthetic
    artcap blip experiment --profile demo --set run_dir=/tmp/run          # what notebook 04 runs
    artcap blip convert model_large_retrieval_coco.pth --out models/blip-large-coco   # or the checkpoint's URL
"""
from __future__ import annotations

from artcap_lib.cli.options import add_profile_options, writing_run

MODEL = "blip"


def add_cli(sub) -> None:
    blip = sub.add_parser("blip", help="BLIP retrieval: fine-tune on a caption source, run Experiment 2")
    bsub = blip.add_subparsers(dest="blip_command", required=True, metavar="ACTION")

    p = bsub.add_parser("finetune", help="fine-tune the profile's BLIP on human or synthetic captions "
                        "(resumes after a kill; launch with torchrun for several GPUs)", description=__doc__)
    p.add_argument("--variant", required=True,
                   help="human, synthetic (the first captioner's captions) or synthetic-<captioner>")
    add_profile_options(p, MODEL, "device", "seed")
    p.set_defaults(func=_finetune)

    p = bsub.add_parser("experiment", help="train what is missing and score every variant (notebook 04)",
                        description=__doc__)
    add_profile_options(p, MODEL, "device", "seed")
    p.set_defaults(func=_experiment)

    p = bsub.add_parser("convert", help="BLIP's original .pth (path or URL) -> a Hugging Face model directory plus "
                        "the temp, momentum encoders and queues it holds, which a fine-tune from it starts with",
                        description=__doc__)
    p.add_argument("source", help="a .pth in BLIP's layout ({'model': state_dict}) or its URL (downloaded "
                   "resumably into the cache, size and SHA-256 recorded)")
    p.add_argument("--out", required=True, help="the model directory to write (blip.model can then name it)")
    p.add_argument("--image-size", type=int, default=None,
                   help="image side; the ViT position table is interpolated as upstream does (default: the "
                        "checkpoint's own)")
    add_profile_options(p)          # accepted like everywhere; the conversion itself reads no profile value
    p.set_defaults(func=_convert)


def _finetune(args) -> int:
    from artcap_lib.retrieval import experiment
    from artcap_lib.runtime import distributed_rank
    cfg, paths = writing_run(args, f"artcap blip finetune --variant {args.variant}")
    record = experiment.fine_tune(cfg, paths, MODEL, args.variant)
    if distributed_rank()[0] == 0:
        print(f"best epoch {record['best_epoch']}: {record['monitor']} {record['best']:.4f} "
              f"-> {paths.variant_model(MODEL, args.variant)}")
    return 0


def _experiment(args) -> int:
    from artcap_lib.retrieval import displays, experiment
    from artcap_lib.runtime import distributed_rank
    cfg, paths = writing_run(args, "artcap blip experiment")
    out = experiment.run(cfg, paths, MODEL)
    if distributed_rank()[0] == 0:
        print("\n".join(displays.headlines(out)))
    return 0


def _convert(args) -> int:
    from artcap_lib.retrieval.blip import original
    path, _ = original.local_file(args.source)
    original.convert(path, args.out, args.image_size, source=args.source)     # prints what it held and used
    print(f"-> {args.out}")
    return 0
