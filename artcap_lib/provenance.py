"""What produced a result: git commit, package versions, device. Written into every manifest.json / run.json."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent    # git is asked about the checkout holding this code


PACKAGES = ("artcap", "torch", "transformers", "tokenizers", "accelerate", "numpy", "pandas", "pillow", "nltk",
            "rouge", "torcheval", "bert-score", "pycocoevalcap", "ranx", "papermill", "adabelief-pytorch")


def git_state() -> dict:
    def git(*args):
        return subprocess.run(["git", "-C", str(PACKAGE_DIR), *args], capture_output=True, text=True, timeout=10)
    try:
        head = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": head.stdout.strip() or None if head.returncode == 0 else None,
            "dirty": bool(dirty.stdout.strip()) if dirty.returncode == 0 else None}


def package_versions(names=PACKAGES) -> dict[str, str | None]:
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def device_info() -> dict:
    info = {"platform": platform.platform(), "python": sys.version.split()[0], "cpu_count": os.cpu_count()}
    try:
        import torch
    except ImportError:
        return info
    info["torch_threads"] = torch.get_num_threads()
    info["cuda"] = torch.cuda.is_available()
    if info["cuda"]:
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        info["cuda_version"] = torch.version.cuda
    return info


def environment() -> dict:
    from artcap_lib.lockfile import drift
    lock = drift()     # whether the installed packages are requirements.lock's (a run regenerates only with them)
    return {"git": git_state(), "packages": package_versions(), "device": device_info(),
            "lock": {k: lock[k] for k in ("matches", "checked", "differing")}}
