"""What the captioning benchmarks (`caption`, `decode`) run on: the profile's captioner as a directory
`from_pretrained` loads, synthetic paintings, and the device sync that stops a timer when the GPU's work does."""
from __future__ import annotations

from pathlib import Path

import torch


def sync_device(device: torch.device) -> None:
    """Wait for queued GPU work, so that a timer stops when the work does."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_images(n: int, size: int, seed: int = 0) -> list:
    """n synthetic paintings (the demo painter) as PIL images."""
    import numpy as np

    from artcap_lib.data.demo import paint, random_scene
    rng = np.random.default_rng(seed)
    return [paint(random_scene(rng), size, rng) for _ in range(n)]


def bench_model(cfg, paths, workdir: str | Path) -> tuple[str, bool]:
    """(what `from_pretrained` loads, whether its weights are random) for the profile's captioning.model: a random:
    spec materialised under the run's models/; "pocket-llava" = the run's trained pocket model, or, where the run
    has none, one freshly built and untrained in `workdir` (the CPU smoke benchmark); else the hub id or directory."""
    from artcap_lib.model_names import POCKET_LLAVA, RANDOM, locate
    spec = cfg.captioning.model
    if spec == POCKET_LLAVA and not (paths.pocket_model(POCKET_LLAVA) / "training.json").is_file():
        import numpy as np

        from artcap_lib.data.demo import random_scene
        from artcap_lib.standins.pocket_llava import assistant_caption, build_pocket_llava
        rng = np.random.default_rng(cfg.seed)
        net, processor = build_pocket_llava([assistant_caption(random_scene(rng)) for _ in range(200)])
        location = str(Path(workdir) / POCKET_LLAVA)
        net.save_pretrained(location)
        processor.save_pretrained(location)
        return location, True
    return locate(spec, paths, cfg.device), spec.startswith(RANDOM)
