"""SemArt (Garcia & Vogiatzis, "How to Read Paintings: Semantic Art Understanding with Multi-Modal Retrieval",
ECCV Workshops 2018), as published (SemArt.zip, researchdata.aston.ac.uk/380), read into the run's Artpedia schema.

    DIR/semart_train.csv   semart_val.csv   semart_test.csv      the authors' train / val / test splits
    DIR/Images/<IMAGE_FILE>                                     e.g. Images/28496-early05.jpg

The three files are tab-separated, with a header row of the nine columns IMAGE_FILE, DESCRIPTION, AUTHOR, TITLE,
TECHNIQUE, DATE, TYPE, SCHOOL, TIMEFRAME (the Web Gallery of Art's catalogue: AUTHOR as "GOYA Y LUCIENTES, Francisco
de", DATE as "c. 1503" or "1525-30"), and are not UTF-8: the authors' code reads them with pandas'
`read_csv(..., delimiter='\\t')` (noagarcia/SemArt, dataloader.py) and their later code adds `encoding='Cp1252'`
(the context-art code of Garcia et al., ECCV-W 2020), as most code that loads SemArt does (cp1252 / latin-1). So a
file is read as UTF-8 when it is valid UTF-8 (a copy someone re-saved), else as cp1252; `data.encoding` overrides.

Each row is one painting: the id is IMAGE_FILE without extension; DESCRIPTION, the catalogue's comment (several
sentences, one per image), is the human caption (`visual_sentences` its sentences, `human_captions` [it]); TITLE the
title; the year the first 3-4 digit number of DATE (None for "16th century" or "-"); the split the file's. Images stay
in Images/ (`file_path` absolute). AUTHOR, TECHNIQUE, TYPE, SCHOOL and TIMEFRAME have no place in the schema and are
not read. A file, row or column that does not fit is an error naming the file, the row (1-based, after the header)
and the column.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from artcap_lib.data.artpedia import id_problem
from artcap_lib.data.csvtable import column, read_text, table
from artcap_lib.data.collection import CollectionError, first_year, sentences

FILES = {"train": "semart_train.csv", "val": "semart_val.csv", "test": "semart_test.csv"}
IMAGES = "Images"
ENCODING = "cp1252"                                          # the published files'
USED = ("IMAGE_FILE", "DESCRIPTION", "TITLE", "DATE")        # of the nine columns, the ones the schema has room for


def read_semart(folder: str | Path, encoding: str = "") -> dict[str, dict[str, Any]]:
    """{id: Artpedia entry} of a SemArt folder, every entry with the split of the file that lists it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CollectionError(f"data.path: {folder} is not a folder (SemArt's: semart_train.csv, semart_val.csv, "
                              "semart_test.csv, Images/)")
    missing = [name for name in FILES.values() if not (folder / name).is_file()]
    if missing:
        raise CollectionError(f"{folder}: no {', '.join(missing)}: this is not SemArt's folder (unzip SemArt.zip "
                              "and point data.path at its SemArt/ folder)")
    artworks: dict[str, dict[str, Any]] = {}
    first_seen: dict[str, str] = {}
    for split, name in FILES.items():
        path = folder / name
        # csv's default quoting, as pandas' read_csv (the authors' reader) has it: a cell that opens with '"' is quoted
        header, rows = table(path, read_text(path, encoding, fallback=ENCODING), "\t")
        if len(header) == 1 and "," in header[0]:
            raise CollectionError(f"{path}: header: one column {header[0][:60]!r}...: SemArt's files are "
                                  "tab-separated (this one was re-saved with commas?)")
        cols = {c: column(header, c, "SemArt", path) for c in USED}
        for number, row in rows:
            where = f"{path}: row {number}"
            file_name = row[cols["IMAGE_FILE"]].strip()
            image = folder / IMAGES / file_name
            if not file_name or not image.is_file():
                raise CollectionError(f"{where}: column IMAGE_FILE: {file_name!r} is not in {folder / IMAGES}")
            art_id = Path(file_name).stem
            if (why := id_problem(art_id)) is not None:
                raise CollectionError(f"{where}: column IMAGE_FILE: {why}")
            if art_id in artworks:
                raise CollectionError(f"{where}: column IMAGE_FILE: {file_name!r} again "
                                      f"(first at {first_seen[art_id]})")
            description = row[cols["DESCRIPTION"]].strip()
            if not description:
                raise CollectionError(f"{where}: column DESCRIPTION: empty")
            artworks[art_id] = {
                "title": row[cols["TITLE"]].strip() or art_id, "img_url": "",
                "year": first_year(row[cols["DATE"]]),
                "visual_sentences": sentences(description), "contextual_sentences": [], "split": split,
                "file_path": str(image.resolve()), "human_captions": [description]}
            first_seen[art_id] = where
    return artworks
