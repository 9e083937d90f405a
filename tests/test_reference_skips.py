"""No silent skips of the parity tests (tests/conftest.py): without the authors' artefacts the run ends with a block
naming the skipped tests and how to run them; ARTCAP_REQUIRE_REFERENCE=1 (CI) makes the skip a failure; a complete
fetched cache is used in place of a mirror. Each case runs pytest on a two-test file under this conftest."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PARITY_TESTS = '''
def test_needs_the_authors(reference_dir):
    assert reference_dir

def test_plain():
    assert True
'''


def run_pytest(tmp_path, **env):
    suite = tmp_path / "suite"
    suite.mkdir(exist_ok=True)
    shutil.copy(ROOT / "tests" / "conftest.py", suite / "conftest.py")
    (suite / "test_parity_probe.py").write_text(PARITY_TESTS, encoding="utf-8")
    base = {k: v for k, v in os.environ.items() if k not in ("ARTCAP_REFERENCE_DIR", "ARTCAP_REQUIRE_REFERENCE")}
    base["XDG_CACHE_HOME"] = str(tmp_path / "cache")          # an empty cache unless a test fills it
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", str(suite)],
                          cwd=suite, capture_output=True, text=True, env={**base, **env}, timeout=300)


def test_a_run_without_the_artefacts_ends_with_the_skipped_parity_tests(tmp_path):
    done = run_pytest(tmp_path)
    assert done.returncode == 0, done.stdout
    out = done.stdout
    assert "1 parity tests skipped: the authors' artefacts are absent" in out
    assert "test_parity_probe.py (1): test_needs_the_authors" in out
    assert "scripts/fetch_reference.py" in out and "ARTCAP_REFERENCE_DIR=/path/to/artwork-caption-gen" in out
    assert out.rindex("parity tests skipped") > out.rindex("short test summary")   # at the very end


def test_ci_turns_the_skip_into_a_failure(tmp_path):
    done = run_pytest(tmp_path, ARTCAP_REQUIRE_REFERENCE="1")
    assert done.returncode == 1
    assert "1 passed, 1 error" in done.stdout and "ARTCAP_REQUIRE_REFERENCE=1 but" in done.stdout


def test_a_complete_cache_stands_in_for_the_mirror(tmp_path):
    from artcap_lib import reference
    cache = tmp_path / "cache" / "artcap" / "reference" / reference.COMMIT
    for rel in reference.SHA256:                                 # the layout fetch_reference.py leaves
        (cache / rel).parent.mkdir(parents=True, exist_ok=True)
        (cache / rel).write_text("{}")
    done = run_pytest(tmp_path)
    assert "2 passed" in done.stdout and "parity tests skipped" not in done.stdout
    (cache / next(iter(reference.SHA256))).unlink()              # an incomplete cache is not used
    assert "1 skipped" in run_pytest(tmp_path).stdout


def test_a_mirror_is_used_as_it_is(tmp_path):
    done = run_pytest(tmp_path, ARTCAP_REFERENCE_DIR=str(tmp_path))
    assert "2 passed" in done.stdout
