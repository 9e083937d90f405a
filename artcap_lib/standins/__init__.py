"""Stand-in models, quarantined here: the pocket models the demo and the tests train on the fly, and full-size
architectures with random weights for the bench profile. Each is saved in Hugging Face format and loaded through
the same from_pretrained path as a real checkpoint."""


# A profile names a pocket model by one of these; its files live in the run directory (RunPaths.pocket_model).
POCKET_LLAVA = "pocket-llava"          # trained by notebook 02 on the demo's pre-training pool
POCKET_LLAVA_NEXT = "pocket-llava-next"  # the zoo's second captioner, trained by notebook 02 the same way
POCKET_QWEN2VL = "pocket-qwen2-vl"      # a Qwen2-VL (ChatML, merged patches, M-RoPE), trained by notebook 02 the same way
POCKET_BLIP = "pocket-blip"            # pre-trained by notebook 04
POCKET_LONGCLIP = "pocket-longclip"    # pre-trained by notebook 05
POCKET_CLIP = "pocket-clip"            # pre-trained by notebook 05 (retrieval/dualenc/clip.py)
POCKET_SIGLIP = "pocket-siglip"        # pre-trained by notebook 05 (retrieval/dualenc/siglip.py)
POCKET_MODELS = (POCKET_LLAVA, POCKET_LLAVA_NEXT, POCKET_QWEN2VL, POCKET_BLIP, POCKET_LONGCLIP, POCKET_CLIP, POCKET_SIGLIP)


REPLICA = "replica:"    # replica:<hub id>: the hub-faithful replica of that model (standins/replicas.py)


def replica_location(spec: str) -> str | None:
    """The built replica for a `replica:<hub id>` spec (built once into replicas.replicas_root()), else None."""
    if not str(spec).startswith(REPLICA):
        return None
    from artcap_lib.standins.replicas import ensure_replica
    return str(ensure_replica(str(spec)[len(REPLICA):]))


def model_location(spec: str, paths, device: str = "auto") -> str:
    """What `from_pretrained` gets for a profile's model field: a pocket name -> the run's folder of that pocket model;
    a `random:<arch>` spec -> that architecture with random weights, materialised once under the run's models/;
    `replica:<hub id>` -> the hub-faithful replica of it (the rehearsal profile); anything else (a hub id, a local
    directory or file) as given."""
    if spec in POCKET_MODELS:
        return str(paths.pocket_model(spec))
    if str(spec).startswith(REPLICA):
        return replica_location(spec)
    from artcap_lib.standins.random_models import resolve_model
    return resolve_model(spec, paths.models, device)
