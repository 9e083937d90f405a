"""An image-text dataset as the Hugging Face Hub stores it: Parquet shards, each row an image and its caption(s).

The layout (what `datasets` writes with `push_to_hub` / `to_parquet`, and the Hub's dataset viewer reads):

    DIR/data/train-00000-of-00002.parquet       a split's shards: `<split>-<shard>-of-<count>.parquet`, or
    DIR/data/test-00000-of-00001.parquet        `<split>/....parquet`, or a `split` column; else data.split_fractions
  or one .parquet file.

The image column holds `datasets.Image` values, a struct {bytes, path}: the encoded image file and, where it came
from a file, its name. The column is `data.image_column`, else the one the file's `datasets` features call an Image,
else the first struct column with `bytes` and `path` fields. The caption column is `data.caption_column`, else the
first of text, caption, captions, description; a list column gives several captions. The id is `data.id_column`, else
the image's file name without extension where every row has one (unique), else `<split>-<row>` in file order.

Rows are read in batches (a 100k-image dataset is never in memory at once): a first pass checks every row's metadata,
only then a second pass writes each image's bytes to the run's `data/images/<id>.<ext>` (the pipeline reads image
files), so a shard with a bad row writes nothing. Errors name the file, the row (1-based within the file) and the
column.
"""
from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any, Iterator

from artcap_lib.data.artpedia import id_problem
from artcap_lib.data.collection import (CAPTION_COLUMNS, SPLIT_NAMES, CollectionError, captions_of, sentences,
                                        split_name)

BATCH_ROWS = 256
_SHARD = re.compile(r"^(?P<split>[A-Za-z]+)(?:[-_]\d+(?:-of-\d+)?)?$")
_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "TIFF": ".tif", "BMP": ".bmp"}


def shards(path: Path) -> list[tuple[Path, str]]:
    """(parquet file, split its name or folder gives, "" for none), in path order."""
    files = [path] if path.is_file() else sorted(path.rglob("*.parquet"))
    if not files:
        raise CollectionError(f"data.path: {path} holds no .parquet file (a Hub dataset's data/<split>-*.parquet)")
    out = []
    for file in files:
        split = ""
        for name in (file.stem, file.parent.name):
            match = _SHARD.match(name)
            if match and match["split"].lower() in SPLIT_NAMES:
                split = split_name(match["split"], str(file))
                break
        out.append((file, split))
    return out


def _columns(file: Path, image_column: str, caption_column: str) -> tuple[str, str]:
    import pyarrow as pa
    import pyarrow.parquet as pq
    schema = pq.read_schema(file)
    names = schema.names
    if not image_column:
        features = json.loads((schema.metadata or {}).get(b"huggingface", b"{}")).get("info", {}).get("features", {})
        image_column = next((n for n, f in features.items() if isinstance(f, dict) and f.get("_type") == "Image"), "")
    if not image_column:
        image_column = next((f.name for f in schema if pa.types.is_struct(f.type)
                             and {"bytes", "path"} <= {c.name for c in f.type}), "")
    if image_column not in names:
        raise CollectionError(f"{file}: no image column {image_column or '(a datasets Image: struct of bytes, path)'}"
                              f" (columns: {', '.join(names)}); name it with data.image_column")
    column = caption_column or next((c for c in CAPTION_COLUMNS if c in names), "")
    if column not in names:
        raise CollectionError(f"{file}: no caption column {caption_column or '/'.join(CAPTION_COLUMNS)} (columns: "
                              f"{', '.join(names)}); name it with data.caption_column")
    return image_column, column


def _rows(file: Path, columns: list[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    import pyarrow.parquet as pq
    number = 0
    for batch in pq.ParquetFile(file).iter_batches(batch_size=BATCH_ROWS, columns=columns):
        for row in batch.to_pylist():
            number += 1
            yield number, row


def _image_value(value: Any, where: str) -> tuple[bytes | None, str]:
    if isinstance(value, dict) and ("bytes" in value or "path" in value):
        return value.get("bytes"), value.get("path") or ""
    raise CollectionError(f"{where}: not an image ({{bytes, path}}), got {type(value).__name__}")


def read_hfparquet(path: str | Path, images_dir: str | Path, caption_column: str = "", id_column: str = "",
                   image_column: str = "") -> dict[str, dict[str, Any]]:
    """{id: Artpedia entry} of a Parquet image-text dataset, its images written into images_dir."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    path, images_dir = Path(path), Path(images_dir)
    if not path.exists():
        raise CollectionError(f"data.path: {path} does not exist")
    found = []                                   # (file, row, id, entry without file_path, image path inside)
    for file, file_split in shards(path):
        image_col, caption_col = _columns(file, image_column, caption_column)
        names = {image_col, caption_col, *(c for c in (id_column, "split", "title", "year") if c)}
        schema = pq.read_schema(file)
        present = [c for c in schema.names if c in names]
        if id_column and id_column not in present:
            raise CollectionError(f"{file}: no column {id_column!r} (data.id_column)")
        # this pass needs only each image's path: the bytes, most of a shard, are read once, by the second pass
        image = schema.field(image_col).type
        if pa.types.is_struct(image) and "path" in {c.name for c in image}:
            present = [f"{c}.path" if c == image_col else c for c in present]
        for number, row in _rows(file, present):
            where = f"{file}: row {number}"
            _, inner = _image_value(row[image_col], f"{where}: column {image_col}")
            texts = captions_of(row[caption_col], f"{where}: column {caption_col}")
            split = file_split or split_name(row.get("split"), f"{where}: column split")
            own = str(row[id_column]).strip() if id_column else Path(inner).stem if inner else ""
            entry = {"title": str(row.get("title") or own or f"row {number}"), "img_url": "",
                     "year": row.get("year") if isinstance(row.get("year"), int) else None,
                     "visual_sentences": sentences(texts[0]), "contextual_sentences": [], "split": split,
                     "human_captions": texts}
            found.append((file, number, own, entry))
    ids = _ids(found, bool(id_column))
    artworks = {}
    for art_id, (file, number, _, entry) in zip(ids, found):
        if (why := id_problem(art_id)) is not None:
            raise CollectionError(f"{file}: row {number}: column {id_column or image_column or 'image'}: {why}")
        artworks[art_id] = entry
    _write_images(found, ids, artworks, images_dir, image_column, caption_column)
    return artworks


def _ids(found: list, from_column: bool) -> list[str]:
    """Ids from the id column, else the images' file names when every row has one and they are unique, else
    <split>-<n> counted per split in file order."""
    own = [f[2] for f in found]
    if from_column or (all(own) and len(set(own)) == len(own)):
        seen: dict[str, tuple] = {}
        for file, number, art_id, _ in found:
            if art_id in seen:
                raise CollectionError(f"{file}: row {number}: id {art_id!r} again (first at {seen[art_id][0]}: row "
                                      f"{seen[art_id][1]}); set data.id_column to a unique column")
            seen[art_id] = (file, number)
        return own
    counters: dict[str, int] = {}
    out = []
    for _, _, _, entry in found:
        key = entry["split"] or "row"
        counters[key] = counters.get(key, 0) + 1
        out.append(f"{key}-{counters[key]}")
    return out


def _write_images(found: list, ids: list[str], artworks: dict, images_dir: Path, image_column: str,
                  caption_column: str) -> None:
    """Second pass: each row's image bytes to images_dir/<id>.<ext> (the extension from the bytes' format)."""
    from PIL import Image
    images_dir.mkdir(parents=True, exist_ok=True)
    position = {(f[0], f[1]): art_id for f, art_id in zip(found, ids)}
    for file in dict.fromkeys(f[0] for f in found):
        image_col, _ = _columns(file, image_column, caption_column)
        for number, row in _rows(file, [image_col]):
            art_id = position[(file, number)]
            data, inner = _image_value(row[image_col], f"{file}: row {number}: column {image_col}")
            if not data:
                source = (file.parent / inner) if inner else None
                if source is None or not source.is_file():
                    raise CollectionError(f"{file}: row {number}: column {image_col}: no image bytes, and its path "
                                          f"{inner!r} is not a file")
                data = source.read_bytes()
            try:
                with Image.open(io.BytesIO(data)) as img:
                    suffix = _FORMATS.get(img.format or "", ".img")
                    img.verify()
            except Exception as err:                # PIL raises many kinds for a file it cannot read
                raise CollectionError(f"{file}: row {number}: column {image_col}: not a readable image ({err})") \
                    from None
            target = images_dir / f"{art_id}{suffix}"
            target.write_bytes(data)
            artworks[art_id]["file_path"] = str(target.resolve())
