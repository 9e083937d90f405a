"""requirements.lock against pyproject.toml, environment.yml and the installed packages (artcap_lib.lockfile)."""
from __future__ import annotations

import re

import pytest
from packaging.requirements import Requirement

from artcap_lib import lockfile

LOCK_TEXT = lockfile.LOCK.read_text(encoding="utf-8")


def test_the_lock_was_resolved_from_the_dependencies_pyproject_declares_now():
    # fails when a dependency is added, removed or re-ranged without `bash scripts/lock.sh`
    assert lockfile.recorded_dependencies_hash(LOCK_TEXT) == \
        lockfile.dependencies_hash(lockfile.pyproject_dependencies()), "pyproject.toml moved: run scripts/lock.sh"


@pytest.mark.parametrize("python", ["3.11", "3.12"])
def test_every_declared_dependency_is_locked_within_its_range(python):
    pins = lockfile.pins_for(lockfile.linux(python), LOCK_TEXT)
    for text in lockfile.pyproject_dependencies():
        req = Requirement(text)
        name = lockfile.normalise(req.name)
        if name == "torch":              # pinned by constraints.txt, installed before the lock
            assert "torch" not in pins
            continue
        assert name in pins, f"{name} is declared but not locked for Python {python}"
        assert req.specifier.contains(pins[name], prereleases=True), (name, pins[name], str(req.specifier))


def test_every_pin_carries_hashes_and_no_cuda_runtime_is_locked():
    blocks = re.split(r"\n(?=[A-Za-z0-9])", LOCK_TEXT.split("\n", 3)[3])
    for block in blocks:
        if block.strip() and not block.startswith("#"):
            assert "--hash=sha256:" in block, block.splitlines()[0]
    names = {name for name, _, _ in lockfile.parse_lock(LOCK_TEXT)}
    assert not {n for n in names if n == "torch" or n.startswith(("nvidia-", "cuda-")) or n == "triton"}


def test_environment_yml_installs_the_same_pins():
    written = (lockfile.CHECKOUT / "environment.yml").read_text(encoding="utf-8")
    assert written == lockfile.environment_yml(text=LOCK_TEXT), "environment.yml is stale: run scripts/lock.sh"
    pinned = dict(re.findall(r"^\s+- ([A-Za-z0-9._-]+)==(\S+)", written, re.M))
    assert pinned.pop("torch") == re.search(r"^torch==(\S+)", (lockfile.CHECKOUT / "constraints.txt").read_text(),
                                            re.M)[1]
    assert pinned == lockfile.pins_for(lockfile.linux("3.11"), LOCK_TEXT)


def test_drift_names_each_package_that_differs_from_the_lock(tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text("a==1.0 \\\n    --hash=sha256:00\nb==2.0 ; python_version < '3'\nc==3.0\nd==4.0\n")
    installed = {"a": "1.0", "b": "9", "c": "3.1", "d": "4.0+cpu"}.get
    assert lockfile.drift(lock, installed) == {"lock": str(lock), "matches": False, "checked": 3,
                                               "differing": {"c": {"locked": "3.0", "installed": "3.1"}}}
    assert lockfile.drift(lock, {"a": "1.0", "c": "3.0", "d": "4.0"}.get)["matches"] is True
    assert lockfile.drift(lock, lambda name: None)["differing"]["a"] == {"locked": "1.0", "installed": None}


def test_this_environment_is_the_lock():
    # scripts/test.sh runs scripts/setup.sh first: the suite runs on exactly the locked packages (unless
    # ARTCAP_UNLOCKED asked for the newest ones, which this test then lists)
    import os
    result = lockfile.drift()
    if os.environ.get("ARTCAP_UNLOCKED"):
        pytest.skip(f"ARTCAP_UNLOCKED: {len(result['differing'])} package(s) differ from the lock")
    assert result["matches"], result["differing"]


def test_doctor_prints_each_check_and_fails_on_drift(capsys, monkeypatch):
    from artcap_lib.cli import main
    main(["doctor", "--profile", "paper", "--set", "captioning.batch_size=8"])
    lines = {line.split()[1]: line for line in capsys.readouterr().out.splitlines()}
    assert set(lines) == {"packages", "java", "wordnet", "kernel", "device", "profile"}
    assert "paper: departs from its sources in captioning.batch_size = 8 (source: 1)" in lines["profile"]
    monkeypatch.setattr(lockfile, "drift", lambda: {"matches": False, "checked": 2, "differing": {
        "nltk": {"locked": "3.10.4", "installed": "3.11.0"}}})
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "BAD  packages  2 locked, 1 differ: nltk 3.11.0 (locked 3.10.4)" in out
