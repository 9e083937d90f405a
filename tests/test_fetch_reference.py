"""scripts/fetch_reference.py, the once-only fetch of the authors' artefacts that scripts/test.sh runs without a
mirror: downloads and verifies into the cache, says so and exits 3 when offline, refuses a tampered file."""
import functools
import importlib.util
import os
import shutil
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def fetch(tmp_path, **env):
    base = {k: v for k, v in os.environ.items() if k != "ARTCAP_REFERENCE_DIR"}
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "fetch_reference.py")], capture_output=True,
                          text=True, env={**base, "XDG_CACHE_HOME": str(tmp_path / "cache"), **env}, timeout=300)


def fetch_in_process(tmp_path, monkeypatch, capsys, url, pinned):
    """main() with the pinned set cut to `pinned` (a mirror may lack files the real commit has)."""
    from artcap_lib import reference
    spec = importlib.util.spec_from_file_location("fetch_reference", ROOT / "scripts" / "fetch_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.delenv("ARTCAP_REFERENCE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("ARTCAP_REFERENCE_URL", url)
    monkeypatch.setattr(reference, "SHA256", {rel: reference.SHA256[rel] for rel in pinned})
    code = module.main()
    return code, capsys.readouterr().err


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def served(reference_dir, tmp_path):
    """A copy of the mirror served over HTTP, standing in for the pinned commit on GitHub."""
    root = tmp_path / "served"
    shutil.copytree(reference_dir, root)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


def test_fetches_every_file_once_into_the_cache(tmp_path, served, monkeypatch, capsys):
    from artcap_lib import reference
    root, url = served
    pinned = [rel for rel in reference.SHA256 if (root / rel).is_file()]
    code, err = fetch_in_process(tmp_path, monkeypatch, capsys, url, pinned)
    assert code == 0, err
    cache = tmp_path / "cache" / "artcap" / "reference" / reference.COMMIT
    assert all((cache / rel).is_file() for rel in pinned)
    code, err = fetch_in_process(tmp_path, monkeypatch, capsys, "http://127.0.0.1:9/", pinned)  # no network needed
    assert code == 0 and "downloading" not in err


def test_offline_says_so_and_exits_3(tmp_path):
    done = fetch(tmp_path, ARTCAP_REFERENCE_URL="http://127.0.0.1:9/")   # nothing listens on the discard port
    assert done.returncode == 3 and "offline" in done.stderr and "skipped" in done.stderr


def test_a_tampered_file_is_refused(tmp_path, served, monkeypatch, capsys):
    root, url = served
    (root / "misc" / "stats.json").write_text("{}")
    code, err = fetch_in_process(tmp_path, monkeypatch, capsys, url, ["misc/stats.json"])
    assert code == 1 and "does not match the pinned" in err


def test_a_mirror_is_verified_not_copied(tmp_path, reference_dir):
    done = fetch(tmp_path, ARTCAP_REFERENCE_DIR=reference_dir)
    assert done.returncode == 0 and "verified in ARTCAP_REFERENCE_DIR" in done.stderr, done.stderr
    assert not (tmp_path / "cache").exists()
