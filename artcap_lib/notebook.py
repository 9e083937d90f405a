"""What every notebook does first: load the profile, resolve the run directory, seed, set the plot style."""
from __future__ import annotations

import os

from artcap_lib.config import Profile, RunPaths, load_profile
from artcap_lib.runtime import seed_everything


def setup(profile: str = "demo", overrides: dict | None = None) -> tuple[Profile, RunPaths]:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    cfg = load_profile(profile, overrides)
    paths = RunPaths.for_profile(cfg)
    paths.root.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed)
    _plot_style()
    return cfg, paths


def _plot_style() -> None:
    try:
        import matplotlib
        import seaborn as sns
    except ImportError:
        return
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    matplotlib.rcParams.update({"figure.dpi": 100, "savefig.dpi": 200, "savefig.bbox": "tight"})
