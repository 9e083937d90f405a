"""A collection's train/val/test assignment, written into the run and reusable by the next one.

Every run writes `data/splits.json` ({split: [ids]}, the file to cite or to hand to another run; `data.step`), and a
collection run `data/split_assignment.json` (where its splits came from: the source's own, a seeded draw, or a
splits file). `data.splits_file` names such a file (any run's `data/splits.json`, or an {id: split} object written
by hand): its splits replace the source's and the seeded draw. An id of the collection it does not list is an
error, as is an id it lists that the collection lacks (a file of another collection)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from artcap_lib.data.artpedia import SPLITS
from artcap_lib.data.imagefolder import CollectionError
from artcap_lib.files import write_json

SPLIT_NAMES = {"train": "train", "val": "val", "validation": "val", "valid": "val", "dev": "val", "test": "test"}


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
        name = SPLIT_NAMES.get(str(split).strip().lower())
        if name is None:
            raise SplitsFileError(f"data.splits_file {path}: id {art_id!r}: {split!r} is not a split "
                                  f"(train, val/validation, test)")
        out[str(art_id)] = name
    return out


def reuse(artworks: dict[str, dict[str, Any]], path: str | Path) -> None:
    """Give every artwork the split the file names for it (see the module docstring for the errors)."""
    splits = read_splits_file(path)
    unlisted = [i for i in artworks if i not in splits]
    foreign = [i for i in splits if i not in artworks]
    for ids, what in ((unlisted, "lists no split for"), (foreign, "names ids the collection lacks:")):
        if ids:
            raise SplitsFileError(f"data.splits_file {path} {what} {len(ids)} id(s), e.g. {', '.join(ids[:5])}")
    for art_id, entry in artworks.items():
        entry["split"] = splits[art_id]


def record(data_dir: Path, artworks: dict[str, dict[str, Any]], how: dict[str, Any]) -> None:
    """Write data/split_assignment.json: `how` (where the splits came from) and the counts per split."""
    counts = {s: sum(a["split"] == s for a in artworks.values()) for s in SPLITS}
    write_json(data_dir / "split_assignment.json", {**how, "counts": counts})
