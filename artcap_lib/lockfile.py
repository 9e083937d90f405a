"""The pinned environment: requirements.lock (written by scripts/lock.sh) against pyproject.toml and the installed
packages.

A run's numbers regenerate only with the packages that made them (a later transformers may change an image processor,
a later nltk a metric), so setup installs the lock, every manifest records whether the installed packages still
match it (`drift`), and tests/test_lock.py fails when pyproject.toml's dependencies moved without the lock.

    python -m artcap_lib.lockfile --drift                    # installed vs lock, one line per difference
    python -m artcap_lib.lockfile --pyproject-hash           # what scripts/lock.sh records in the lock's header
    python -m artcap_lib.lockfile --write-environment F      # conda's environment.yml from the lock
    python -m artcap_lib.lockfile --constraints 3.12         # the lock's pins for one Python, as pip constraints
"""
from __future__ import annotations

import hashlib
import re
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

CHECKOUT = Path(__file__).resolve().parent.parent
LOCK = CHECKOUT / "requirements.lock"
PYPROJECT = CHECKOUT / "pyproject.toml"
EXTRAS = ("dev",)                    # the extras scripts/setup.sh installs, and so the lock covers
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")
_DEPS_HASH = re.compile(r"^# pyproject-dependencies-sha256: ([0-9a-f]{64})$", re.M)


def normalise(name: str) -> str:
    """PEP 503 name: Pillow, pillow and PIL-low spell one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_lock(text: str) -> list[tuple[str, str, str | None]]:
    """(name, version, marker or None) per pinned line, in file order; hash lines and comments skipped."""
    pins = []
    for line in text.splitlines():
        match = _PIN.match(line.strip())
        if match:
            pins.append((normalise(match[1]), match[2], match[3].strip() if match[3] else None))
    return pins


def pins_for(environment: dict[str, str] | None = None, text: str | None = None) -> dict[str, str]:
    """{name: version} that apply to an environment (default: this interpreter), markers evaluated."""
    from packaging.markers import Marker
    text = LOCK.read_text(encoding="utf-8") if text is None else text
    return {name: version for name, version, marker in parse_lock(text)
            if marker is None or Marker(marker).evaluate(environment)}


def installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def drift(lock: Path = LOCK, installed=installed_version) -> dict[str, Any]:
    """Whether the installed packages are the lock's: {lock, matches, checked, differing: {name: {locked,
    installed}}}. A local build suffix is not a difference (torch's +cpu/+cu128 is chosen per machine)."""
    if not lock.is_file():
        return {"lock": str(lock), "matches": None, "checked": 0, "differing": {}, "note": "no lock file"}
    pins = pins_for(text=lock.read_text(encoding="utf-8"))
    differing = {}
    for name, version in sorted(pins.items()):
        have = installed(name)
        if have is None or have.split("+")[0] != version:
            differing[name] = {"locked": version, "installed": have}
    return {"lock": str(lock), "matches": not differing, "checked": len(pins), "differing": differing}


def pyproject_dependencies(path: Path = PYPROJECT) -> list[str]:
    """The requirement strings setup installs: [project] dependencies plus the EXTRAS."""
    import tomllib
    project = tomllib.loads(path.read_text(encoding="utf-8"))["project"]
    extras = project.get("optional-dependencies", {})
    return list(project["dependencies"]) + [req for extra in EXTRAS for req in extras.get(extra, [])]


def dependencies_hash(requirements: list[str]) -> str:
    """Order- and spacing-blind digest of a requirement list: what the lock was resolved from."""
    lines = sorted(re.sub(r"\s+", "", req).lower() for req in requirements)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def recorded_dependencies_hash(text: str) -> str | None:
    match = _DEPS_HASH.search(text)
    return match[1] if match else None


def linux(python: str) -> dict[str, str]:
    """The marker environment of CPython `python` (e.g. "3.12") on Linux x86_64."""
    return {"python_version": python, "python_full_version": f"{python}.0", "sys_platform": "linux",
            "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
            "implementation_name": "cpython", "platform_python_implementation": "CPython"}


def environment_yml(python: str = "3.11", text: str | None = None) -> str:
    """conda's environment.yml: the lock's pins for Linux and that Python, torch from constraints.txt."""
    env = linux(python)
    torch = (CHECKOUT / "constraints.txt").read_text(encoding="utf-8")
    torch_pin = re.search(r"^torch==\S+", torch, re.M)[0]
    pins = "\n".join(f"      - {name}=={version}" for name, version in sorted(pins_for(env, text).items()))
    return (
        "# conda users: `conda env create -f environment.yml && conda activate artcap` (from the repository root),\n"
        "# then `pip install --no-deps -e .`, `bash scripts/install_wordnet.sh \"$CONDA_PREFIX/nltk_data\"` and\n"
        "# `python -m ipykernel install --sys-prefix --name artcap`. pip users: scripts/setup.sh does all of this.\n"
        "# Written by scripts/lock.sh from requirements.lock (the same pins, without hashes); do not edit.\n"
        "name: artcap\n"
        "channels:\n"
        "  - conda-forge\n"
        "dependencies:\n"
        f"  - python={python}\n"
        "  - pip\n"
        "  - openjdk=17          # pycocoevalcap's PTB tokenizer, METEOR 1.5 and SPICE\n"
        "  - pip:\n"
        f"      - {torch_pin}   # constraints.txt: first, so nothing pulls another build\n"
        f"{pins}\n")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--pyproject-hash"]:
        print(dependencies_hash(pyproject_dependencies()))
    elif len(args) == 2 and args[0] == "--write-environment":
        Path(args[1]).write_text(environment_yml(), encoding="utf-8")
    elif len(args) == 2 and args[0] == "--constraints":      # pip -c file of the lock's pins for that Python
        print("\n".join(f"{n}=={v}" for n, v in sorted(pins_for(linux(args[1])).items())))
    elif args == ["--drift"]:
        result = drift()
        for name, d in result["differing"].items():
            print(f"{name}: locked {d['locked']}, installed {d['installed'] or 'nothing'}")
        print(f"{result['checked']} locked packages, "
              + ("all as locked" if result["matches"] else f"{len(result['differing'])} differ"))
        return 0 if result["matches"] else 1
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
