"""Shared test settings: offline, CPU, and the authors' artefacts from a local mirror when one is present."""
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


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
        pytest.skip("ARTCAP_REFERENCE_DIR is not set to a local mirror of the authors' artefacts")
    return value


@pytest.fixture(scope="module")
def one_torch_thread():
    """Pocket models on a shared CPU: one torch thread is much faster than two contending ones.
    Use per module with `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
