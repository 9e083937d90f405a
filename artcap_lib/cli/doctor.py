"""`artcap doctor [--profile P]`: what this machine will run with, before a long run finds out: the packages against
requirements.lock, Java (the coco metrics), NLTK's WordNet (METEOR), the notebooks' kernel, the device torch sees,
and the profile as resolved against its sources table (the paper profile: the authors' recipe). Exit status 1 when
something a run needs is missing or differs from the lock; a departure from the sources is reported, not an error."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from artcap_lib.cli.options import add_profile_options, profile_from_args


def add_cli(sub) -> None:
    p = sub.add_parser("doctor", help="check the environment: packages vs requirements.lock, Java, WordNet, kernel, GPU")
    add_profile_options(p)
    p.set_defaults(func=_doctor)


def checks(cfg=None, profile: str | None = None) -> list[tuple[str, bool, str]]:
    """(what, ok, detail) for each thing a run relies on (and, given a profile, how it departs from its sources)."""
    from artcap_lib.lockfile import drift
    out = []
    lock = drift()
    if lock["matches"] is None:
        out.append(("packages", False, "no requirements.lock beside this checkout"))
    else:
        differing = "; ".join(f"{n} {d['installed'] or 'missing'} (locked {d['locked']})"
                              for n, d in sorted(lock["differing"].items()))
        out.append(("packages", lock["matches"], f"{lock['checked']} locked, "
                    + ("all as locked" if lock["matches"] else f"{len(lock['differing'])} differ: {differing}")))
    java = shutil.which("java")
    version = ""
    if java:
        run = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
        version = (run.stderr or run.stdout).splitlines()[0] if (run.stderr or run.stdout) else ""
    out.append(("java", java is not None, f"{java} ({version})" if java else
                "not on PATH: the coco metrics backend (PTB tokenizer, METEOR 1.5, SPICE) cannot run"))
    try:
        from nltk.data import find
        out.append(("wordnet", True, find("corpora/wordnet")))
    except LookupError:
        out.append(("wordnet", False, "NLTK finds no WordNet: bash scripts/install_wordnet.sh .venv/nltk_data"))
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    from artcap_lib.runner import KERNEL_NAME
    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
        ours = Path(spec.argv[0]).resolve() == Path(sys.executable).resolve()     # as runner.ensure_kernel
        out.append(("kernel", True, f"{KERNEL_NAME}: {spec.argv[0]}" + ("" if ours else
                    " (another Python than this one; artcap reproduce re-installs it)")))
    except NoSuchKernel:
        out.append(("kernel", True, f"no '{KERNEL_NAME}' kernel yet: artcap reproduce installs it on first use"))
    import torch
    if torch.cuda.is_available():
        gpus = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        out.append(("device", True, f"CUDA {torch.version.cuda}: {gpus} (torch {torch.__version__})"))
    else:
        out.append(("device", True, f"CPU only (torch {torch.__version__}); the paper profile wants a GPU"))
    if cfg is not None:
        from artcap_lib.profile_sources import departures, load_sources
        moved = departures(cfg, profile)
        if not load_sources(cfg.profile):
            detail = f"{cfg.profile}: loads; no sources table"
        elif moved:
            detail = f"{cfg.profile}: departs from its sources in " + ", ".join(
                f"{k} = {d['value']!r} (source: {d['source_value']!r})" for k, d in sorted(moved.items()))
        else:
            detail = f"{cfg.profile}: every value as its sources give it (artcap profile {cfg.profile})"
        out.append(("profile", True, detail))
    return out


def _doctor(args) -> int:
    cfg, _ = profile_from_args(args)
    results = checks(cfg, args.profile)
    for what, ok, detail in results:
        print(f"{'ok ' if ok else 'BAD'}  {what:<9} {detail}")
    return 0 if all(ok for _, ok, _ in results) else 1
