"""What a fine-tune on the shared loop leaves in its folder to resume from: the checkpoint (model, optimiser, RNGs,
history), the best epoch's weights and the history of the curves, written atomically and read back refusing any
file the loop did not write."""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from artcap_lib.files import read_json


CHECKPOINT = "checkpoint.pt"     # everything needed to resume, rewritten after every epoch
BEST_MODEL = "best_model.pt"     # the state_dict of the best epoch so far
HISTORY = "history.json"


def save_atomic(obj: Any, path: Path) -> None:
    # write beside the target and rename: a kill mid-write leaves the previous file intact
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def rng_state() -> dict[str, Any]:
    """Every RNG's state as tensors and plain values only, so that a checkpoint loads with weights_only=True."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(),
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss],
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class CheckpointError(ValueError):
    """A checkpoint that cannot be trusted or does not belong to this run; nothing of it was used."""


def load_checkpoint(path: Path) -> dict[str, Any]:
    # weights_only=True: a run directory may come from another machine, and unpickling arbitrary objects runs code.
    # This loop writes only tensors and plain values (see rng_state), so its own checkpoints always load.
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:         # UnpicklingError for foreign objects, or a damaged file
        raise CheckpointError(f"{path}: refused, not a checkpoint of plain tensors and values ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:200]}); nothing was loaded. Delete it to train that "
                              "stage again from its start.") from None
    if not isinstance(ckpt, dict) or not {"model", "optimizer", "rng", "epoch", "history"} <= set(ckpt):
        raise CheckpointError(f"{path}: refused, not a checkpoint written by artcap's training loop; nothing was "
                              "loaded. Delete it to train that stage again from its start.")
    return ckpt


def read_history(out_dir: str | Path) -> dict[str, Any]:
    return read_json(Path(out_dir) / HISTORY)
