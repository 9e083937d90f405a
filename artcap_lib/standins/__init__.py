"""Stand-in models: the pocket models the demo and the tests train on the fly, full-size architectures with random
weights for the bench profile, and hub-faithful replicas of the paper's models for the rehearsal. Each is saved in
Hugging Face format and loaded through the same from_pretrained path as a real checkpoint.

Stage code never imports this package: `register` (called by `artcap_lib.model_names`) puts its names there, and
the stages ask `model_names.locate` / `model_names.pocket`."""


def register() -> None:
    from artcap_lib import model_names as names
    names.register_prefix(names.RANDOM, _random_model)
    names.register_prefix(names.REPLICA, _replica)
    names.register_pocket(names.POCKET_BLIP, build=_pocket_blip)
    names.register_pocket(names.POCKET_LONGCLIP, build=_pocket_clip_like)
    names.register_pocket(names.POCKET_CLIP, build=_pocket_clip_like)
    names.register_pocket(names.POCKET_SIGLIP, build=_pocket_siglip)
    for captioner in names.POCKET_CAPTIONERS:
        names.register_pocket(captioner, train=_captioner_trainer(captioner))


# the makers, each importing its module (and torch) only when a model is made
def _random_model(spec: str, models_dir, device: str) -> str:
    from artcap_lib.standins.random_models import resolve_model
    return resolve_model(spec, models_dir, device)


def _replica(spec: str, models_dir, device: str) -> str:
    from artcap_lib.model_names import REPLICA
    from artcap_lib.standins.replicas import ensure_replica
    return str(ensure_replica(spec[len(REPLICA):]))


def _pocket_blip(out_dir, image_size: int = 64, seed: int = 0):
    from artcap_lib.standins.pocket_blip import build_pocket_blip
    return build_pocket_blip(out_dir, image_size=image_size, seed=seed)


def _pocket_clip_like(corpus: list[str], seed: int = 0, max_positions: int | None = None):
    """(model, tokenizer, image processor) of a pocket Long-CLIP, or of a pocket CLIP with `max_positions` 77."""
    from artcap_lib.standins.pocket_longclip import PocketSpec, build_pocket_longclip
    spec = PocketSpec() if max_positions is None else PocketSpec(max_positions=max_positions)
    return build_pocket_longclip(corpus, spec, seed=seed)


def _pocket_siglip(corpus: list[str], seed: int = 0, batch_size: int = 64):
    from artcap_lib.standins.pocket_siglip import build_pocket_siglip
    return build_pocket_siglip(corpus, seed=seed, batch_size=batch_size)


def _captioner_trainer(name: str):
    def train(*args, **kwargs):
        from artcap_lib.standins.pocket_captioners import train_pocket_captioner
        return train_pocket_captioner(name, *args, **kwargs)
    return train
