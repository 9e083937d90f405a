"""`artcap blip finetune | experiment`: BLIP fine-tuning (one process, or torchrun for several GPUs) and Experiment 2.

    artcap blip finetune --profile paper --variant human                  # one GPU (or CPU)
    torchrun --nproc_per_node 4 -m artcap_lib.cli blip finetune --profile paper --variant synthetic
    artcap blip experiment --profile demo --set run_dir=/tmp/run          # what notebook 04 runs
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
