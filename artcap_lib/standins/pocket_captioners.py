"""The pocket captioners a profile can name, and the one call that trains any of them on the demo's pool.

    train_pocket_captioner(name, pool_json, scenes_json, out_dir, ...)   -> the training report (training.json)

Each writes a Hugging Face directory (model + processor) to out_dir and training.json last, so a directory with
training.json is whole. The captioning step (`captioning.step.ensure_pocket_captioner`) trains one on first use.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from artcap_lib.standins import POCKET_LLAVA


def _train_llava(pool_json, scenes_json, out_dir, steps, batch_size, lr, image_size, prompt, seed):
    from artcap_lib.standins.pocket_llava import PocketSpec, train_pocket_llava
    return train_pocket_llava(pool_json, scenes_json, out_dir, steps=steps, batch_size=batch_size, lr=lr,
                              spec=PocketSpec(image_size=image_size), prompt=prompt, seed=seed)


POCKET_CAPTIONERS: dict[str, Callable[..., dict[str, Any]]] = {
    POCKET_LLAVA: _train_llava,
}


def train_pocket_captioner(name: str, pool_json: str | Path, scenes_json: str | Path, out_dir: str | Path,
                           steps: int, batch_size: int, lr: float, image_size: int, prompt: str,
                           seed: int = 0) -> dict[str, Any]:
    """Build the pocket captioner `name`, train it on the pre-training pool and save it to out_dir."""
    if name not in POCKET_CAPTIONERS:
        raise KeyError(f"no pocket captioner {name!r} (known: {', '.join(POCKET_CAPTIONERS)})")
    return POCKET_CAPTIONERS[name](pool_json, scenes_json, out_dir, steps, batch_size, lr, image_size, prompt, seed)
