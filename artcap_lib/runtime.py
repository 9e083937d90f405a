"""The process a step runs in: its device, its rank under a multi-process launch, its seeds and torch threads.

One home for these, because captioning, training and the benchmarks all ask the same questions. torch is imported
where needed, so profile-only tools (the report, the reference profile) never load it.
"""
from __future__ import annotations

import os
import random


def resolve_device(name: str = "auto") -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'; anything else is returned as given."""
    if name != "auto":
        return name
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"


def distributed_rank() -> tuple[int, int]:
    """(rank, world size) from the launcher's environment (torchrun, accelerate launch); (0, 1) otherwise."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def process_device(device: str) -> str:
    """Under a multi-process launch each process takes the GPU named by LOCAL_RANK."""
    if device.startswith("cuda") and distributed_rank()[1] > 1:
        return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    return device


def seed_everything(seed: int, rank: int = 0) -> None:
    """Seed Python, NumPy and torch; each process gets its own stream (seed + rank) for dropout and the like."""
    import numpy as np
    random.seed(seed + rank)
    np.random.seed(seed + rank)
    try:
        import torch
    except ImportError:
        return
    torch.manual_seed(seed + rank)


def use_threads(n: int) -> None:
    """n > 0: that many torch intra-op threads (pocket models' ops are too small to share between threads)."""
    if n > 0:
        import torch
        torch.set_num_threads(n)
