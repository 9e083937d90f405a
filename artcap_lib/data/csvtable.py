"""A collection as one CSV/TSV table (a museum's export), read into the run's Artpedia-schema artworks.

    FILE.csv | FILE.tsv | FILE.txt      one row per image; a header row names the columns
    <images>                            paths relative to FILE's folder, absolute paths, or http(s) URLs

The delimiter is the one of comma, tab and semicolon that splits the header into the most columns (exports from
spreadsheets in many locales use ';'). The text is UTF-8 (a byte-order mark, as Excel writes, is dropped) unless
`data.encoding` names another (an export from Excel on Windows is often cp1252).

Columns, matched exactly or else ignoring case:
  image      `data.image_column`; "" = the first of image, file_name, filename, file, path, image_path,
             image_url, img_url, url. A URL is downloaded into the run by the same polite downloader as Artpedia's
             images (data/images/<id>.<ext>, normalised to data.max_side); a path is left where it is.
  caption    `data.caption_column`, several separated by commas ("label_text,description"); "" = the first of text,
             caption, captions, description. Each non-empty cell of a row is one human caption of its image, in the
             order the columns are named; the first is what Experiments 1 and 2 use.
  id         `data.id_column`; "" = a column `id` if there is one, else the image's file name without extension.
  title, year (else date, else the first column named "... year" or "... date", as "Object Date"), split: used
             where present; a year is the first 3-4 digit number of its cell ("ca. 1665" -> 1665).

Rows without a split are split by `data.split_fractions` with `seed` (before any download, so an image that fails
to download does not reshuffle the others). A row this reader does not understand is an error naming the file, the
row (1-based, after the header) and the column.
"""
from __future__ import annotations

import codecs
import csv
import io
import urllib.parse
from pathlib import Path
from typing import Any, Iterator

from artcap_lib.data.artpedia import id_problem
from artcap_lib.data.collection import CAPTION_COLUMNS, CollectionError, first_year, sentences, split_name

DELIMITERS = {"\t": "tab", ";": "semicolon", ",": "comma"}   # on a tie, the earlier one: tab before ';' before ','
IMAGE_COLUMNS = ("image", "file_name", "filename", "file", "path", "image_path", "image_url", "img_url", "url")


def read_text(path: Path, encoding: str = "", fallback: str = "") -> str:
    """The file's text in `encoding`; without one, UTF-8 (BOM dropped), else `fallback` where the caller knows the
    layout's own encoding. Bytes that do not decode are an error naming the row and column they sit in."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise CollectionError(f"{path}: cannot read ({err.strerror or err})") from None
    for name in [encoding] if encoding else ["utf-8-sig"] + ([fallback] if fallback else []):
        try:
            # "utf-8" named by the user too drops a BOM: kept, it would become part of the first column's name
            return raw.decode("utf-8-sig" if codecs.lookup(name).name == "utf-8" else name)
        except LookupError:
            raise CollectionError(f"data.encoding: {name!r} is not an encoding Python knows") from None
        except UnicodeDecodeError as err:
            failed = err
    hint = "data.encoding names another" if encoding else "set data.encoding (Excel on Windows often writes cp1252)"
    raise CollectionError(f"{path}: {_where_in_table(raw, failed.start)}: byte 0x{raw[failed.start]:02x} is not "
                          f"{failed.encoding}: {hint}")


def _where_in_table(raw: bytes, offset: int) -> str:
    """'row N: column C' of a byte offset, parsing the text before it (quoted cells may span lines)."""
    before = list(csv.reader(io.StringIO(raw[:offset + 1].decode("utf-8", errors="replace"), newline=""),
                             delimiter=sniff_delimiter(raw.decode("utf-8", errors="replace"))))
    header, rows = (before[0], before[1:]) if before else ([], [])
    if not rows:
        return f"header: column {len(header)}"
    column = header[len(rows[-1]) - 1] if 0 < len(rows[-1]) <= len(header) else f"{len(rows[-1])}"
    return f"row {len(rows)}: column {column}"


def sniff_delimiter(text: str) -> str:
    """The delimiter that splits the header row into the most columns."""
    head = text.split("\n", 1)[0]
    return max(DELIMITERS, key=lambda d: len(next(csv.reader([head], delimiter=d), [])))


def table(path: Path, text: str, delimiter: str) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """(header, iterator of (row number, {column: cell})); a row with more or fewer cells than the header is an
    error (in a tab-separated file it is most often a caption broken over two lines)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [h.strip() for h in next(reader, [])]
    if not header or header == [""]:
        raise CollectionError(f"{path}: empty: no header row")

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        number = 0
        for cells in reader:
            if not cells:                   # a blank line (csv's own rule: not a record)
                continue
            number += 1
            if len(cells) != len(header):
                what = (f"column {header[len(cells)]}: missing" if len(cells) < len(header)
                        else f"a cell after the last column {header[-1]}")
                raise CollectionError(f"{path}: row {number}: {what} ({len(cells)} cells, the header has "
                                      f"{len(header)}; {DELIMITERS.get(delimiter, repr(delimiter))}-separated; first "
                                      f"cell {cells[0][:60]!r})")
            yield number, dict(zip(header, cells))
    return header, rows()


def column(header: list[str], wanted: str, what: str, path: Path, setting: str = "") -> str:
    """The header's name for `wanted` (exact, else ignoring case); missing -> an error naming the columns."""
    found = wanted if wanted in header else next((h for h in header if h.casefold() == wanted.casefold()), None)
    if found is None:
        raise CollectionError(f"{path}: header: no {what} column {wanted!r} (columns: {', '.join(header)})"
                              + (f"; name it with {setting}" if setting else ""))
    return found


def first_present(header: list[str], names: tuple[str, ...]) -> str | None:
    folded = {h.casefold(): h for h in reversed(header)}
    return next((folded[n] for n in names if n in folded), None)


def is_url(value: str) -> bool:
    return value.lower().startswith(("http://", "https://"))


def read_csv_collection(path: str | Path, caption_column: str = "", id_column: str = "", image_column: str = "",
                        encoding: str = "") -> dict[str, dict[str, Any]]:
    """{id: Artpedia entry} of a CSV/TSV file. Entries with an image URL have `img_url` and no `file_path` yet (the
    data step downloads them); entries without a split get split ""."""
    path = Path(path)
    if not path.is_file():
        raise CollectionError(f"data.path: {path} is not a file (data.source csv reads one CSV/TSV file)")
    text = read_text(path, encoding)
    delimiter = sniff_delimiter(text)
    header, rows = table(path, text, delimiter)
    image_col = (column(header, image_column, "image", path, "data.image_column") if image_column
                 else first_present(header, IMAGE_COLUMNS))
    if image_col is None:
        raise CollectionError(f"{path}: header: no image column ({'/'.join(IMAGE_COLUMNS)}; columns: "
                              f"{', '.join(header)}); name it with data.image_column")
    names = [c.strip() for c in caption_column.split(",") if c.strip()]
    caption_cols = ([column(header, c, "caption", path, "data.caption_column") for c in names] if names
                    else [c for c in [first_present(header, CAPTION_COLUMNS)] if c])
    if not caption_cols:
        raise CollectionError(f"{path}: header: no caption column ({'/'.join(CAPTION_COLUMNS)}; columns: "
                              f"{', '.join(header)}); name it (or several, comma-separated) with data.caption_column")
    id_col = column(header, id_column, "id", path, "data.id_column") if id_column else first_present(header, ("id",))
    title_col = first_present(header, ("title",))
    year_col = first_present(header, ("year", "date")) or next(        # "Object Date", "Creation Year"
        (h for h in header if h.casefold().split()[-1:] in (["year"], ["date"])), None)
    split_col = first_present(header, ("split",))
    artworks: dict[str, dict[str, Any]] = {}
    seen: dict[str, int] = {}
    for number, row in rows:
        where = f"{path}: row {number}"
        image = row[image_col].strip()
        if not image:
            raise CollectionError(f"{where}: column {image_col}: empty (the image's path or URL)")
        if is_url(image):
            stem, file_path = Path(urllib.parse.unquote(urllib.parse.urlsplit(image).path)).stem, None
        else:
            local = Path(image).expanduser()
            local = (local if local.is_absolute() else path.parent / local).resolve()
            if not local.is_file():
                raise CollectionError(f"{where}: column {image_col}: {image!r} is not a file ({local})")
            stem, file_path = local.stem, str(local)
        art_id = row[id_col].strip() if id_col else stem
        if (why := id_problem(art_id)) is not None:
            raise CollectionError(f"{where}: column {id_col or image_col}: {why}"
                                  + ("" if id_col else "; name an id column with data.id_column"))
        if art_id in artworks:
            raise CollectionError(f"{where}: column {id_col or image_col}: id {art_id!r} again (first at row "
                                  f"{seen[art_id]}); set data.id_column to a column that is unique")
        texts = [row[c].strip() for c in caption_cols if row[c].strip()]
        if not texts:
            raise CollectionError(f"{where}: column {', '.join(caption_cols)}: empty caption")
        artworks[art_id] = {
            "title": row[title_col].strip() if title_col and row[title_col].strip() else stem,
            "img_url": image if file_path is None else "",
            "year": first_year(row[year_col]) if year_col else None,
            "visual_sentences": sentences(texts[0]), "contextual_sentences": [],
            "split": split_name(row[split_col].strip(), f"{where}: column {split_col}") if split_col else "",
            "human_captions": texts}
        if file_path is not None:
            artworks[art_id]["file_path"] = file_path
        seen[art_id] = number
    if not artworks:
        raise CollectionError(f"{path}: no rows after the header")
    return artworks
