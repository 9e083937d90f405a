"""`artcap replicas build`: hub-faithful replicas of the paper's models (published files, tiny random weights).

    artcap replicas build --out /tmp/replicas
    artcap replicas build --out /tmp/replicas --profile paper   # also checks that the profile takes the overrides

Each replica (standins.replicas) has the published config, tokenizer and processor files of llava-hf/llava-1.5-7b-hf,
Salesforce/blip-itm-large-coco, openai/clip-vit-large-patch14, BeichenZhang/LongCLIP-L (longclip-L.pt),
distilbert-base-uncased and google/siglip-base-patch16-224, and BLIP's original model_large_retrieval_coco.pth (the
paper profile's blip.model) in BLIP's own layout, with shrunk sizes and random weights: the paper profile's
loading, prompting, tokenising and scoring paths can then be rehearsed on a CPU, offline. The command prints where
each replica is and the --set overrides that point a profile at them.
"""
from __future__ import annotations

import shlex

from artcap_lib.cli.options import add_profile_options, profile_from_args, profile_overrides


def add_cli(sub) -> None:
    p = sub.add_parser("replicas", help="hub-faithful replicas of the paper's models (tiny random weights)",
                       description=__doc__.split("\n\n", 1)[1])
    actions = p.add_subparsers(dest="replicas_action", required=True, metavar="ACTION")
    build = actions.add_parser("build", help="build all replicas into a directory",
                               description=__doc__.split("\n\n", 1)[1])
    build.add_argument("--out", required=True, metavar="DIR", help="where the replicas go (DIR/<hub id>)")
    build.add_argument("--downloads", default="", metavar="DIR",
                       help="where the open-clip-torch wheel (CLIP's BPE) is kept (default: DIR/.downloads)")
    add_profile_options(build, default_profile="paper")
    build.set_defaults(func=_build)


def overrides(paths) -> dict[str, str]:
    """The profile keys that point the paper profile's models at the replicas."""
    from artcap_lib.standins import replicas as r
    return {"captioning.model": str(paths[r.LLAVA]), "metrics.bertscore_model": str(paths[r.DISTILBERT]),
            "longclip.model": str(paths[r.LONGCLIP]), "longclip.tokenizer": str(paths[r.CLIP]),
            "blip.model": str(paths[r.BLIP_ORIGINAL]), "clip.model": str(paths[r.CLIP]),
            "siglip.model": str(paths[r.SIGLIP])}


def _build(args) -> int:
    from artcap_lib.config import load_profile
    from artcap_lib.standins.replicas import MANIFEST, build_replicas
    profile_from_args(args)                         # a bad --profile / --set fails before anything is built
    paths = build_replicas(args.out, args.downloads or None)
    width = max(map(len, paths))
    for name, path in paths.items():
        print(f"{name:<{width}}  {path}")
    sets = overrides(paths)
    load_profile(args.profile, {**profile_overrides(args), **sets})     # the keys exist in the profile
    print(f"manifest: {args.out}/{MANIFEST}")
    print("profile overrides: " + " ".join(f"--set {shlex.quote(f'{k}={v}')}" for k, v in sets.items()))
    return 0
