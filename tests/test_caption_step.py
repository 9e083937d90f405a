"""Step 02 in the reference profile: the authors' LLaVA captions imported into the common caption file."""
import pytest

from artcap_lib import reference
from artcap_lib.captioning.step import import_reference_captions
from artcap_lib.model_names import locate
from artcap_lib.captioning.store import read_captions, read_records
from artcap_lib.config import RunPaths


def test_reference_captions_import_in_the_common_format(reference_dir, tmp_path):
    paths = RunPaths(tmp_path / "run", tmp_path / "figures")
    first = import_reference_captions(paths, "llava")
    published = reference.llava_captions()
    assert read_captions(paths.caption_file("llava")) == published
    assert first["imported"] == len(published) == first["captions"]
    record = read_records(paths.caption_file("llava"))[0]
    assert {"id", "caption", "model", "prompt", "decoding", "new_tokens", "seconds"} <= set(record)
    assert record["model"] == "llava-hf/llava-1.5-7b-hf" and record["prompt"] == "Caption this image"
    assert record["decoding"]["do_sample"] is False and record["decoding"]["max_new_tokens"] == 200
    assert import_reference_captions(paths, "llava")["imported"] == 0          # idempotent: no duplicate lines
    assert len(read_records(paths.caption_file("llava"))) == len(published)


def test_pocket_model_name_resolves_to_the_run_directory(tmp_path):
    paths = RunPaths(tmp_path / "run", tmp_path / "figures")
    assert locate("pocket-llava", paths) == str(tmp_path / "run" / "models" / "pocket-llava")
    assert locate("llava-hf/llava-1.5-7b-hf", paths) == "llava-hf/llava-1.5-7b-hf"
    with pytest.raises(ValueError, match="pocket model of a run"):
        locate("pocket-llava")
