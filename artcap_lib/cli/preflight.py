"""Checks a command makes before it loads anything heavy, so that a model or device that cannot work is one line
naming the setting (`errors.UserError`) and not a traceback from deep inside transformers or torch minutes later.

    check_device(cfg)                                   # --device cuda on a torch without CUDA
    check_model("captioning.model", spec.model)         # a folder that is not there, or holds no model; a hub id
                                                        # offline and not cached
"""
from __future__ import annotations

import os

from artcap_lib.cli.errors import UserError
from artcap_lib.config import looks_local, user_path

OFFLINE_VALUES = ("1", "true", "yes", "on")


def check_device(cfg) -> None:
    """A CUDA device on a machine or torch build without one."""
    if not str(cfg.device).startswith("cuda"):
        return
    import torch
    if torch.cuda.is_available():
        return
    why = (f"this torch ({torch.__version__}) is built without CUDA" if torch.version.cuda is None
           else "torch sees no CUDA GPU here")
    raise UserError(f"device: {cfg.device}, but {why}: use --device cpu, or auto (a GPU when there is one)")


def check_model(key: str, value: str) -> None:
    """A model field that `from_pretrained` cannot load: a path that does not exist or holds no config.json, or a
    hub id that is not in the local cache while the hub is offline. Stand-in specs (pocket names, random:,
    replica:) are built by the run and pass."""
    from artcap_lib.model_names import POCKET_MODELS, RANDOM, REPLICA
    if value in POCKET_MODELS or value.startswith((REPLICA, RANDOM)):
        return
    if looks_local(value):
        path = user_path(value)
        if not path.exists():
            raise UserError(f"{key}: {path} does not exist (a local model folder; a hub id looks like org/name)")
        if path.is_file():
            raise UserError(f"{key}: {path} is a file; give the model's folder (config.json and the weights)")
        if not (path / "config.json").is_file():
            raise UserError(f"{key}: {path} holds no model (no config.json): give the folder that has config.json "
                            f"and the weights")
        return
    from huggingface_hub.utils import HFValidationError, validate_repo_id
    try:
        validate_repo_id(value)
    except HFValidationError:
        raise UserError(f"{key}: {value!r} is neither an existing folder nor a hub id (org/name)") from None
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in OFFLINE_VALUES:
        from huggingface_hub import try_to_load_from_cache
        if not isinstance(try_to_load_from_cache(value, "config.json"), str):
            raise UserError(f"{key}: {value} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set: "
                            f"download it once online (without HF_HUB_OFFLINE), or give a local folder")
