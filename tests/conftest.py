"""Shared test settings: offline, CPU, and the authors' artefacts from a local mirror or the fetched cache.

The parity tests need the authors' published artefacts. They come from ARTCAP_REFERENCE_DIR (a local mirror of
their repository), else from the cache that scripts/fetch_reference.py fills (scripts/test.sh runs it). Without
either they are skipped and the run ends with a block saying which, why, and how to run them; with
ARTCAP_REQUIRE_REFERENCE=1 (CI) such a skip is a failure instead.
"""
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REFERENCE_SKIP = "ARTCAP_REFERENCE_DIR is not set to a local mirror of the authors' artefacts"
REQUIRE_REFERENCE = os.environ.get("ARTCAP_REQUIRE_REFERENCE") == "1"
_skipped_for_reference: list[str] = []


def _use_a_complete_cache() -> None:
    """A cache holding every pinned file has the mirror's layout: point ARTCAP_REFERENCE_DIR at it, so that the
    tests (and the code they call, which verifies each file's SHA-256 on reading) use it offline."""
    if os.environ.get("ARTCAP_REFERENCE_DIR"):
        return
    from artcap_lib import reference
    cache = reference.cache_dir()
    if all((cache / rel).is_file() for rel in reference.SHA256):
        os.environ["ARTCAP_REFERENCE_DIR"] = str(cache)


_use_a_complete_cache()


def pytest_collection_modifyitems(config, items):
    try:
        import torch
        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if not has_cuda:
        skip = pytest.mark.skip(reason="needs CUDA")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def reference_dir():
    """The local mirror of the authors' artefacts (ARTCAP_REFERENCE_DIR); tests that need it skip without it."""
    value = os.environ.get("ARTCAP_REFERENCE_DIR")
    if not value or not os.path.isdir(value):
        pytest.skip(REFERENCE_SKIP)
    return value


def _is_reference_skip(report) -> bool:
    if not report.skipped or not isinstance(report.longrepr, tuple):
        return False
    return "ARTCAP_REFERENCE_DIR" in str(report.longrepr[2])   # this fixture's and the parity module's reason


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if _is_reference_skip(report):
        _skipped_for_reference.append(report.nodeid)
        if REQUIRE_REFERENCE:
            report.outcome = "failed"
            report.longrepr = (f"ARTCAP_REQUIRE_REFERENCE=1 but the authors' artefacts are absent: {REFERENCE_SKIP} "
                               f"and the cache is incomplete (python scripts/fetch_reference.py fills it)")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """After the short test summary (the outermost wrapper's code after yield runs last), where it is seen."""
    yield
    if not _skipped_for_reference or REQUIRE_REFERENCE:
        return
    from artcap_lib import reference
    tr = terminalreporter
    tr.section(f"{len(_skipped_for_reference)} parity tests skipped: the authors' artefacts are absent", sep="=",
               yellow=True, bold=True)
    tr.line("These tests compare our numbers with the authors' published ones (github.com/jcgohr/artwork-caption-gen "
            f"at {reference.COMMIT[:7]}).")
    tr.line(f"Why: ARTCAP_REFERENCE_DIR is not set and the cache {reference.cache_dir()} is incomplete "
            "(offline when scripts/test.sh tried to fetch it?).")
    by_file: dict[str, list[str]] = {}
    for nodeid in _skipped_for_reference:
        path, _, name = nodeid.partition("::")
        by_file.setdefault(path, []).append(name)
    for path, names in by_file.items():
        tr.line(f"  {path} ({len(names)}): {', '.join(names)}")
    tr.line("Run them: online, `.venv/bin/python scripts/fetch_reference.py` (34 files, ~21 MB, SHA-256-checked, "
            "once) then the tests again;")
    tr.line("      or with a local copy of their repository at that commit: "
            "`ARTCAP_REFERENCE_DIR=/path/to/artwork-caption-gen bash scripts/test.sh`.")


@pytest.fixture(scope="module")
def one_torch_thread():
    """Pocket models on a shared CPU: one torch thread is much faster than two contending ones.
    Use per module with `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
