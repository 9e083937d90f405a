"""`artcap blip finetune | experiment`: BLIP fine-tuning (one process, or torchrun for several GPUs) and Experiment 2.

    artcap blip finetune --profile paper --variant human                  # one GPU (or CPU)
    torchrun --nproc_per_node 4 -m artcap_lib.cli blip finetune --profile paper --variant synthetic
    artcap blip experiment --profile demo --set run_dir=/tmp/run          # what notebook 04 runs
"""
from __future__ import annotations


def add_cli(sub) -> None:
    blip = sub.add_parser("blip", help="BLIP retrieval: fine-tune on a caption source, run Experiment 2")
    bsub = blip.add_subparsers(dest="blip_command", required=True, metavar="ACTION")

    p = bsub.add_parser("finetune", help="fine-tune the profile's BLIP on human or synthetic captions "
                        "(resumes after a kill; launch with torchrun for several GPUs)")
    p.add_argument("--profile", default="demo")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--variant", choices=("human", "synthetic"), required=True)
    p.set_defaults(func=_finetune)

    p = bsub.add_parser("experiment", help="train what is missing and score every variant (notebook 04)")
    p.add_argument("--profile", default="demo")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=_experiment)


def _setup(args):
    from artcap_lib.notebook import setup
    from artcap_lib.config import parse_overrides
    return setup(args.profile, parse_overrides(args.set))


def _finetune(args) -> int:
    from artcap_lib.retrieval.blip import experiment as be
    from artcap_lib.data.artpedia import by_split, human_caption, load_artworks
    from artcap_lib.retrieval.inputs import synthetic_captions
    cfg, paths = _setup(args)
    artworks = load_artworks(paths.artworks, require_urls=False)
    train_ids, val_ids = sorted(by_split(artworks, "train")), sorted(by_split(artworks, "val"))
    captions = ({i: human_caption(e) for i, e in artworks.items()} if args.variant == "human"
                else synthetic_captions(paths.caption_file(cfg.captioning.name), train_ids + val_ids))
    baseline = be.pretrain_pocket(cfg, paths) if cfg.blip.model == be.POCKET else be.model_source(cfg, paths)
    history = be.train_blip(baseline, paths.retrieval / "blip" / args.variant, train_ids, val_ids, captions,
                            be.image_files(paths.artworks, artworks), cfg.blip, epochs=cfg.blip.epochs, lr=cfg.blip.lr,
                            seed=cfg.seed, device=cfg.device)
    print(f"best epoch {history['best_epoch']}: val mean recall {history['best']:.4f} "
          f"-> {paths.retrieval / 'blip' / args.variant / 'model'}")
    return 0


def _experiment(args) -> int:
    from artcap_lib.retrieval.blip.experiment import run_blip_experiment
    cfg, paths = _setup(args)
    summary = run_blip_experiment(cfg, paths)["summary"]
    for variant, per_set in summary["test_metrics"]["itc"].items():
        for query_set, metrics in per_set.items():
            print(f"{variant:9s} {query_set:8s} R@1 {metrics['recall@1']:.4f}  MRR {metrics['mrr']:.4f}")
    return 0


def bench_train(args) -> dict:
    """`artcap bench train --model blip`: --arch "" / L = BLIP ViT-L (random:blip-itm-large-coco, random weights),
    pocket = an untrained pocket BLIP, anything else a model directory, hub id or random: spec."""
    from artcap_lib.bench.blip_train import benchmark_training
    arch = args.arch or "L"
    model = {"L": "random:blip-itm-large-coco", "pocket": None}.get(arch, arch)
    return benchmark_training(model, batch_size=args.batch_size or 16, steps=args.steps, warmup=args.warmup,
                              device=args.device, precision=args.precision, max_tokens=args.tokens or 35)
