"""Experiment 2 of the paper profile on the authors' published LLaVA captions (`captioning.source: reference`): the
synthetic fine-tune reads their captions, not a LLaVA run's, so a GPU run can tell the fine-tune from the captioner."""
from __future__ import annotations

import pytest

from artcap_lib import reference
from artcap_lib.captioning.step import run as run_captioning
from artcap_lib.captioning.store import CaptionStore, read_records
from artcap_lib.config import RunPaths, load_profile
from artcap_lib.files import write_json
from artcap_lib.retrieval.inputs import load_inputs


def _paper_run(tmp_path, authors_ids):
    """A paper-profile run directory whose step 01 kept some of the authors' ids (images are not read here)."""
    cfg = load_profile("paper", {"run_dir": str(tmp_path / "run"), "figures_dir": str(tmp_path / "fig"),
                                 "captioning.source": "reference"})
    paths = RunPaths.for_profile(cfg)
    artworks = {i: {"title": i, "img_url": f"https://upload.wikimedia.org/{i}.jpg", "year": 1600,
                    "visual_sentences": [f"Painting {i}.", "A second sentence."], "contextual_sentences": [],
                    "split": split, "file_path": f"images/{i}.jpg"} for split, ids in authors_ids.items() for i in ids}
    write_json(paths.artworks, artworks)
    return cfg, paths


def test_the_synthetic_fine_tune_reads_the_authors_captions(reference_dir, tmp_path):
    splits = reference.split_ids()
    # the local mirror may lack val_captions.json: the authors' test ids stand in as the run's val split here
    chosen = {"train": splits["train"][:5], "val": splits["test"][:3], "test": splits["test"][3:6]}
    cfg, paths = _paper_run(tmp_path, chosen)
    summary = run_captioning(cfg, paths, progress=False)["llava"]
    assert summary["source"] == "reference" and summary["commit"] == reference.COMMIT

    published = reference.llava_captions()
    inputs = load_inputs(cfg, paths)
    synthetic = inputs.captions("synthetic")
    assert synthetic == {i: published[i] for i in chosen["train"] + chosen["val"]}
    assert inputs.captions("human")[chosen["train"][0]] == f"Painting {chosen['train'][0]}. A second sentence."
    assert all(r["source"].endswith(reference.COMMIT) for r in read_records(paths.caption_file("llava")))


def test_imported_captions_never_mix_with_a_captioner_run(reference_dir, tmp_path):
    splits = reference.split_ids()
    cfg, paths = _paper_run(tmp_path, {"train": splits["train"][:2], "val": [], "test": []})
    CaptionStore(paths.caption_file("llava")).append([{"id": splits["train"][0], "caption": "from our LLaVA run"}])
    with pytest.raises(ValueError, match=r"llava\.jsonl: 1 caption\(s\) were written by a captioner run"):
        run_captioning(cfg, paths, progress=False)
    assert len(read_records(paths.caption_file("llava"))) == 1     # nothing appended beside it
