"""Our readers of Hugging Face layouts against `datasets` itself: what `load_dataset("imagefolder")` and
`load_dataset("parquet")` made of the same files, recorded by scripts/datasets_oracle.py (tests/expected/
datasets_oracle/; `datasets` is not a dependency of this project, so the oracle is stored, as the processor one)."""
import hashlib
import importlib.util
import json
from pathlib import Path

import pytest
from PIL import Image

from artcap_lib.config import RunPaths, load_profile
from artcap_lib.data import step as data_step
from artcap_lib.data.artpedia import load_artworks
from artcap_lib.data.collection import CollectionError
from artcap_lib.data.hfparquet import read_hfparquet
from artcap_lib.data.imagefolder import read_imagefolder
from artcap_lib.data.rehearsal import museum_imagefolder

ROOT = Path(__file__).resolve().parents[1]
ORACLE = ROOT / "tests" / "expected" / "datasets_oracle"
SPLIT = {"train": "train", "validation": "val", "test": "test"}


def _oracle_script():
    spec = importlib.util.spec_from_file_location("datasets_oracle", ROOT / "scripts" / "datasets_oracle.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _texts(value) -> list[str]:
    return value if isinstance(value, list) else [value]


def test_imagefolder_reads_what_datasets_reads(tmp_path):
    oracle = json.loads((ORACLE / "imagefolder.json").read_text(encoding="utf-8"))
    script = _oracle_script()
    layouts = {"metadata_jsonl": museum_imagefolder(tmp_path / "jsonl", script.N, caption_lists=True),
               "split_folders_csv": script.split_folder_layout(tmp_path / "folders")}
    for name, folder in layouts.items():
        ours = read_imagefolder(folder)
        theirs = {Path(row["file"]).stem: (split, row["text"]) for split, rows in oracle[name].items()
                  for row in rows}
        assert set(ours) == set(theirs), name
        for art_id, (split, text) in theirs.items():
            assert ours[art_id]["human_captions"] == _texts(text), (name, art_id)
            if name == "split_folders_csv":          # datasets' splits are the folder names
                assert ours[art_id]["split"] == SPLIT[split], (name, art_id)
            else:                                    # no split in the layout: datasets calls it all train
                assert split == "train" and ours[art_id]["split"] == ""
    several = [i for i, a in read_imagefolder(layouts["metadata_jsonl"]).items() if len(a["human_captions"]) > 1]
    assert len(several) == script.N // 3                # the oracle covers images with several captions


def test_hub_parquet_shards_read_as_datasets_reads_them(tmp_path):
    oracle = json.loads((ORACLE / "hub.json").read_text(encoding="utf-8"))
    ours = read_hfparquet(ORACLE / "hub" / "data", tmp_path / "images")
    rows = [(split, row) for split, block in oracle.items() if split != "datasets" for row in block]
    assert sorted(ours) == sorted(Path(row["path"]).stem for _, row in rows)     # ids: the images' file names
    for split, row in rows:
        entry = ours[Path(row["path"]).stem]
        assert entry["split"] == SPLIT[split] and entry["human_captions"] == row["text"]
        assert entry["title"] == row["title"]
        with Image.open(entry["file_path"]) as img:              # the embedded bytes, written as the run's image
            rgb = img.convert("RGB")
            assert hashlib.sha256(rgb.tobytes() + repr(rgb.size).encode()).hexdigest() == row["pixels"]


def test_a_parquet_shards_image_bytes_are_read_once(tmp_path, monkeypatch):
    """The first pass (ids, captions, splits) reads each image's path only; the bytes, most of a shard, only the
    second, which writes them."""
    from artcap_lib.data import hfparquet
    asked, rows = [], hfparquet._rows
    monkeypatch.setattr(hfparquet, "_rows", lambda file, columns: (asked.append(list(columns)), rows(file, columns))[1])
    read_hfparquet(ORACLE / "hub" / "data", tmp_path / "images")
    shards = len(hfparquet.shards(ORACLE / "hub" / "data"))
    first, second = asked[:shards], asked[shards:]
    assert all("image.path" in c and "image" not in c for c in first) and second == [["image"]] * shards


def test_a_parquet_collection_becomes_a_run_with_its_shards_splits(tmp_path):
    cfg = load_profile("collection", {"run_dir": str(tmp_path / "run"), "data.source": "parquet",
                                      "data.path": str(ORACLE / "hub"), "data.demo_pretrain": 0})
    paths = RunPaths.for_profile(cfg)
    summary = data_step.run(cfg, paths, progress=False)
    assert summary["splits"] == {"train": 9, "val": 0, "test": 3}
    artworks = load_artworks(paths.artworks, require_urls=False)
    assert all(Path(a["file_path"]).parent == paths.data / "images" for a in artworks.values())


def test_a_parquet_file_without_a_caption_column_names_file_and_columns(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    table = pa.table({"image": [{"bytes": b"x", "path": "a.jpg"}], "label": ["cat"]})
    pq.write_table(table, tmp_path / "train-00000-of-00001.parquet")
    with pytest.raises(CollectionError, match=r"train-00000-of-00001.parquet: no caption column .*columns: image, label"):
        read_hfparquet(tmp_path, tmp_path / "images")
    with pytest.raises(CollectionError, match=r"row 1: column image: not a readable image"):
        read_hfparquet(tmp_path, tmp_path / "images", caption_column="label")
    assert not (tmp_path / "images").exists() or not any((tmp_path / "images").iterdir())
