"""What every collection reader shares (imagefolder, semart, artcap, csv): the error that names file, row and
column; captions, sentences and years as catalogues write them; split names; and a collection's train/val/test
assignment, written into the run and reusable by the next one.

Splits. Every run writes `data/splits.json` ({split: [ids]}, the file to cite or to hand to another run; `data.step`),
and a collection run `data/split_assignment.json` (where its splits came from: the source's own, a seeded draw, or a
splits file). `data.splits_file` names such a file (any run's `data/splits.json`, or an {id: split} object written by
hand): its splits replace the source's and the seeded draw. An id of the collection it does not list is an error, as
is an id it lists that the collection lacks (a file of another collection).
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from artcap_lib.data.artpedia import SPLITS
from artcap_lib.files import write_json

CAPTION_COLUMNS = ("text", "caption", "captions", "description")
SPLIT_NAMES = {"train": "train", "validation": "val", "val": "val", "valid": "val", "dev": "val", "test": "test"}
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_YEAR = re.compile(r"(?<![0-9])[0-9]{3,4}(?![0-9])")


class CollectionError(ValueError):
    """A collection file that does not fit its layout: the message names the file, row and column."""


def captions_of(value: Any, where: str) -> list[str]:
    """One caption or a list of them (a JSON array; in CSV, a cell holding one)."""
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            pass                                        # a caption that starts with "[": kept as it is
    found = [value] if isinstance(value, str) else value if isinstance(value, list) else None
    if found is None or not all(isinstance(c, str) for c in found):
        raise CollectionError(f"{where}: a caption must be text or a list of texts, got {type(value).__name__}")
    found = [c.strip() for c in found if c.strip()]
    if not found:
        raise CollectionError(f"{where}: empty caption")
    return found


def sentences(caption: str) -> list[str]:
    """A caption cut into sentences (Artpedia's visual sentences joined with one space give it back)."""
    return [s for s in _SENTENCE_END.split(caption.strip()) if s]


def first_year(date: Any) -> int | None:
    """The year a catalogue's date gives: an integer as it is; in text the first number of three or four digits
    ("c. 1503" -> 1503, "1525-30" -> 1525, "1480s" -> 1480), else None ("16th century", "-", "")."""
    if isinstance(date, int) and not isinstance(date, bool):
        return date
    found = _YEAR.search(date) if isinstance(date, str) else None
    return int(found.group()) if found else None


def split_name(value: Any, where: str) -> str:
    """train, val or test for a split as a source names it ("validation", "TEST"), "" for none."""
    if value in (None, ""):
        return ""
    name = SPLIT_NAMES.get(str(value).strip().lower())
    if name is None:
        raise CollectionError(f"{where}: {value!r} is not a split (train, validation/val/valid/dev, test)")
    return name


def assign_splits(artworks: dict[str, dict[str, Any]], fractions: list[float], seed: int) -> dict[str, int]:
    """Give every entry without a split one, shuffled with `seed` and cut by the train/val/test `fractions`; returns
    how many were assigned to each. A source's own splits are kept."""
    import numpy as np

    from artcap_lib.data.artpedia import ordered_ids
    todo = ordered_ids(i for i, a in artworks.items() if not a["split"])
    order = [todo[k] for k in np.random.default_rng(seed).permutation(len(todo))]
    total = sum(fractions)
    n_train = round(len(order) * fractions[0] / total)
    n_val = round(len(order) * fractions[1] / total)
    counts = dict(zip(SPLITS, (n_train, n_val, len(order) - n_train - n_val)))
    start = 0
    for split, count in counts.items():
        for art_id in order[start:start + count]:
            artworks[art_id]["split"] = split
        start += count
    return counts


class SplitsFileError(CollectionError):
    """A splits file that does not fit the collection: the message names the file and the ids."""


def read_splits_file(path: str | Path) -> dict[str, str]:
    """{id: train | val | test} of a splits file (JSON object; split names as the ImageFolder layout spells them)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise SplitsFileError(f"data.splits_file {path}: cannot be read as JSON ({err})") from None
    if not isinstance(data, dict):
        raise SplitsFileError(f"data.splits_file {path}: must be a JSON object ({{split: [ids]}} or {{id: split}})")
    if data and all(isinstance(v, list) for v in data.values()):          # a run's data/splits.json
        data = {str(i): split for split, ids in data.items() for i in ids}
    out = {}
    for art_id, split in data.items():
        where = f"data.splits_file {path}: id {art_id!r}"
        out[str(art_id)] = split_name(split, where)
        if not out[str(art_id)]:
            raise SplitsFileError(f"{where}: no split")
    return out


def reuse_splits(artworks: dict[str, dict[str, Any]], path: str | Path) -> None:
    """Give every artwork the split the file names for it (see the module docstring for the errors)."""
    splits = read_splits_file(path)
    unlisted = [i for i in artworks if i not in splits]
    foreign = [i for i in splits if i not in artworks]
    for ids, what in ((unlisted, "lists no split for"), (foreign, "names ids the collection lacks:")):
        if ids:
            raise SplitsFileError(f"data.splits_file {path} {what} {len(ids)} id(s), e.g. {', '.join(ids[:5])}")
    for art_id, entry in artworks.items():
        entry["split"] = splits[art_id]


def record_splits(data_dir: Path, artworks: dict[str, dict[str, Any]], how: dict[str, Any]) -> None:
    """Write data/split_assignment.json: `how` (where the splits came from) and the counts per split."""
    counts = {s: sum(a["split"] == s for a in artworks.values()) for s in SPLITS}
    write_json(data_dir / "split_assignment.json", {**how, "counts": counts})
