"""Record how Hugging Face `datasets` itself reads the collection layouts our readers claim to read: the oracle of
tests/test_datasets_oracle.py, which runs without `datasets` installed (it is not a dependency of this project).

    python scripts/datasets_oracle.py          # needs `datasets` importable (e.g. pip install --target DIR datasets
                                               # dill multiprocess xxhash --no-deps; PYTHONPATH=DIR)

Writes tests/expected/datasets_oracle/:
  imagefolder.json   `load_dataset("imagefolder", data_dir=...)` on the museum folder of `artcap data museum-folder
                     --limit 12` with caption lists (metadata.jsonl at the top) and on the same paintings laid out in
                     train/validation/test folders with metadata.csv: per split, each row's file name and caption(s)
  hub/data/*.parquet a small image-text dataset written by `datasets` as the Hub stores one (two train shards and a
                     test shard, images embedded as 64-pixel JPEGs, captions: text or a list)
  hub.json           what `load_dataset("parquet", data_dir=hub/data)` reads back: per split, each row's image
                     path, caption(s) and the SHA-256 of its decoded RGB pixels
"""
from __future__ import annotations

import csv
import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "tests" / "expected" / "datasets_oracle"

from artcap_lib.data.rehearsal import museum_dir, museum_imagefolder, museum_objects  # noqa: E402

N = 12
SPLIT_FOLDERS = (("train", slice(0, 8)), ("validation", slice(8, 10)), ("test", slice(10, 12)))


def split_folder_layout(out: Path) -> Path:
    """The first N museum paintings in train/validation/test folders, each with images and a metadata.csv
    (file_name, text); tests/test_datasets_oracle.py builds the same with this function."""
    for split, part in SPLIT_FOLDERS:
        folder = out / split
        folder.mkdir(parents=True)
        with open(folder / "metadata.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["file_name", "text"])
            for record in museum_objects()[:N][part]:
                shutil.copyfile(museum_dir() / f"{record['objectID']}.jpg", folder / f"{record['objectID']}.jpg")
                writer.writerow([f"{record['objectID']}.jpg", f"{record['title']}. {record.get('medium', '')}"])
    return out


def pixels_sha(image) -> str:
    rgb = image.convert("RGB")
    return hashlib.sha256(rgb.tobytes() + repr(rgb.size).encode()).hexdigest()


def main() -> int:
    import datasets
    from datasets.table import embed_table_storage
    from PIL import Image

    OUT.mkdir(parents=True, exist_ok=True)
    record = {"datasets": datasets.__version__}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        layouts = {"metadata_jsonl": museum_imagefolder(tmp / "jsonl", N, caption_lists=True),
                   "split_folders_csv": split_folder_layout(tmp / "folders")}
        for name, folder in layouts.items():
            loaded = datasets.load_dataset("imagefolder", data_dir=str(folder), cache_dir=str(tmp / "cache"))
            record[name] = {split: [{"file": Path(row["image"].filename).name, "text": row["text"]}
                                    for row in loaded[split]] for split in loaded}
    (OUT / "imagefolder.json").write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")

    # a Hub dataset: datasets encodes the images (PIL -> bytes) and writes the shards
    features = datasets.Features({"image": datasets.Image(), "text": datasets.Sequence(datasets.Value("string")),
                                  "title": datasets.Value("string")})
    rows = {"train": [], "test": []}
    for k, obj in enumerate(museum_objects()[:N]):
        with Image.open(museum_dir() / f"{obj['objectID']}.jpg") as img:
            small = img.convert("RGB")
            small.thumbnail((64, 64))
        path = Path(tempfile.gettempdir()) / f"painting-{obj['objectID']}.jpg"
        small.save(path, quality=85)
        texts = [f"{obj['title']}.", f"A work in {obj.get('medium') or 'an unknown medium'}."][: 1 + k % 2]
        rows["test" if k >= 9 else "train"].append({"image": str(path), "text": texts, "title": obj["title"]})
    hub = OUT / "hub" / "data"
    shutil.rmtree(hub.parent, ignore_errors=True)
    hub.mkdir(parents=True)
    for split, items in rows.items():
        ds = datasets.Dataset.from_list(items, features=features)
        # as push_to_hub does: the image files' bytes embedded, their paths cut to the file name
        ds = ds.with_format("arrow").map(embed_table_storage, batched=True).with_format(None)
        shards = 2 if split == "train" else 1
        for index in range(shards):
            ds.shard(shards, index, contiguous=True).to_parquet(
                str(hub / f"{split}-{index:05d}-of-{shards:05d}.parquet"))
    loaded = datasets.load_dataset("parquet", data_dir=str(hub), cache_dir=tempfile.mkdtemp())
    hub_record = {"datasets": datasets.__version__,
                  **{split: [{"path": row["image"].filename or "", "text": row["text"], "title": row["title"],
                              "pixels": pixels_sha(row["image"])} for row in loaded[split]] for split in loaded}}
    # datasets keeps the file name an image came from: that is how it names the row's image (our id)
    table = datasets.load_dataset("parquet", data_dir=str(hub), cache_dir=tempfile.mkdtemp()).cast_column(
        "image", datasets.Image(decode=False))
    for split in hub_record:
        if split != "datasets":
            for row, raw in zip(hub_record[split], table[split]):
                row["path"] = raw["image"]["path"]
    (OUT / "hub.json").write_text(json.dumps(hub_record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
