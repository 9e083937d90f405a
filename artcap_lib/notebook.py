"""What every notebook does first: load the profile, resolve the run directory, seed, set the plot style.

A notebook opened in JupyterLab while `artcap reproduce` writes the same run directory is refused (the run's lock,
`files.RunLock`); notebooks run by that reproduce are its children and pass. Two notebooks a user runs by hand at
once are not locked against each other: exploring one while reading another is what JupyterLab is for."""
from __future__ import annotations

import os

from artcap_lib.config import Profile, RunPaths, load_profile
from artcap_lib.files import RunLock
from artcap_lib.runtime import seed_everything


def setup(profile: str = "demo", overrides: dict | None = None) -> tuple[Profile, RunPaths]:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    cfg = load_profile(profile, overrides)
    paths = RunPaths.for_profile(cfg)
    RunLock(paths.root, "a notebook").acquire().release()     # refused while another run writes here
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
