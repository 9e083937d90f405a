"""A collection in Hugging Face's ImageFolder layout, read into the run's Artpedia-schema artworks.

The layout (what `datasets.load_dataset("imagefolder", data_dir=DIR)` reads):

    DIR/metadata.jsonl | metadata.csv           one row per image; `file_name` is the image's path relative to the
    DIR/<any folders>/<images>                   metadata file's folder; an optional `split` column
  or
    DIR/train/metadata.jsonl + images            one folder per split: train, validation (val, valid, dev), test
    DIR/test/metadata.jsonl + images

Every other column is the image's metadata. The caption is `data.caption_column` (empty: the first of text, caption,
captions, description that the file has); a list (JSON array in JSONL) is several human captions of one image. The
id is `data.id_column` (empty: the image's file name without extension, which must then be unique). A `title`
column becomes the title, a `year` (or `date`) column the year where it is an integer.

Each artwork keeps its image where it is (`file_path` absolute: a 100k-image folder is not copied) and its
captions as `visual_sentences` (the first caption, cut into sentences) plus `human_captions` (all of them: both
Experiments use every one).
Rows without a split are split by `data.split_fractions` with `seed`. A row, file or column this reader does not
understand is an error naming the file, the row (1-based, after the CSV header) and the column.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterator

from artcap_lib.data.artpedia import id_problem
from artcap_lib.data.collection import (CAPTION_COLUMNS, SPLIT_NAMES, CollectionError, captions_of, first_year,
                                        sentences, split_name)

METADATA_FILES = ("metadata.jsonl", "metadata.csv")


def metadata_files(folder: Path) -> list[tuple[Path, str | None]]:
    """(metadata file, split its folder names or None) of an ImageFolder directory."""
    top = [folder / name for name in METADATA_FILES if (folder / name).is_file()]
    per_split = [(sub / name, SPLIT_NAMES[sub.name.lower()]) for sub in sorted(folder.iterdir())
                 if sub.is_dir() and sub.name.lower() in SPLIT_NAMES
                 for name in METADATA_FILES if (sub / name).is_file()]
    if len(top) > 1:
        raise CollectionError(f"{folder}: both metadata.jsonl and metadata.csv: keep one")
    if top and per_split:
        raise CollectionError(f"{folder}: a metadata file at the top and in split folders "
                              f"({', '.join(str(p.relative_to(folder)) for p, _ in per_split)}): keep one layout")
    if not top and not per_split:
        raise CollectionError(f"{folder}: no metadata.jsonl or metadata.csv (at the top, or in train/, "
                              "validation/, test/ folders): this is not an ImageFolder collection")
    return [(top[0], None)] if top else per_split


def rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number, row) of a metadata file; row 1 is the first record (after a CSV's header)."""
    if path.suffix == ".jsonl":
        with open(path, encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise CollectionError(f"{path}: row {number}: not a JSON object ({err.msg})") from None
                if not isinstance(record, dict):
                    raise CollectionError(f"{path}: row {number}: not a JSON object")
                yield number, record
        return
    with open(path, encoding="utf-8-sig", newline="") as fh:
        for number, record in enumerate(csv.DictReader(fh), 1):
            if None in record:
                raise CollectionError(f"{path}: row {number}: more fields than the header's {len(record) - 1}")
            yield number, record


def read_imagefolder(folder: str | Path, caption_column: str = "", id_column: str = "") -> dict[str, dict[str, Any]]:
    """{id: Artpedia entry} of an ImageFolder directory; entries whose metadata names no split get split ""
    (`assign_splits` gives them one)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CollectionError(f"data.path: {folder} is not a folder")
    artworks: dict[str, dict[str, Any]] = {}
    where_seen: dict[str, str] = {}
    for meta, folder_split in metadata_files(folder):
        column = None
        for number, row in rows(meta):
            where = f"{meta}: row {number}"
            if column is None:
                column = caption_column or next((c for c in CAPTION_COLUMNS if c in row), "")
                if not column or column not in row:
                    raise CollectionError(f"{meta}: no caption column {caption_column or '/'.join(CAPTION_COLUMNS)} "
                                          f"(columns: {', '.join(row)}); name it with data.caption_column")
            if "file_name" not in row or not isinstance(row["file_name"], str) or not row["file_name"].strip():
                raise CollectionError(f"{where}: column file_name: missing (the image's path relative to {meta.name})")
            image = (meta.parent / row["file_name"].strip()).resolve()
            if not image.is_file():
                raise CollectionError(f"{where}: column file_name: {row['file_name']!r} is not a file ({image})")
            art_id = str(row[id_column]).strip() if id_column else image.stem
            if id_column and id_column not in row:
                raise CollectionError(f"{where}: no column {id_column!r} (data.id_column)")
            if (why := id_problem(art_id)) is not None:
                raise CollectionError(f"{where}: column {id_column or 'file_name'}: {why}")
            if art_id in artworks:
                raise CollectionError(f"{where}: id {art_id!r} again (first at {where_seen[art_id]}); ids come from "
                                      f"{'column ' + id_column if id_column else 'the file names'}: set data.id_column "
                                      "to a unique column")
            split = folder_split or split_name(row.get("split"), f"{where}: column split")
            texts = captions_of(row[column], f"{where}: column {column}")
            artworks[art_id] = {
                "title": str(row.get("title") or image.stem), "img_url": "",
                "year": first_year(row.get("year", row.get("date"))),
                "visual_sentences": sentences(texts[0]), "contextual_sentences": [], "split": split,
                "file_path": str(image), "human_captions": texts}
            where_seen[art_id] = where
    if not artworks:
        raise CollectionError(f"{folder}: the metadata lists no image")
    return artworks
