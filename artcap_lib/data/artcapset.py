"""ArtCap (Lu, Guo, Dai & Wang, "ArtCap: A Dataset for Image Captioning of Fine Art Paintings", IEEE Transactions on
Computational Social Systems; 3,606 paintings, five human captions each), read into the run's Artpedia schema.

What is published, as far as we could find (the paper's own page is not in our sources): one JSON file,
`ArtCap.json`, mapping each image's file name to its list of captions,

    DIR/ArtCap.json            {"34256.jpg": ["a painter was copying a model ...", ...five...], ...}
    DIR/<folder>/34256.jpg     the images, distributed as a separate archive of an `images` folder

Evidence: code that loads it reads `ArtCap.json` with `json.load` and iterates `data.items()` as (file name, captions)
(whxtdxsa/ArtCaptioning, code_art_images/data_prepare.py), and a README documents the same format beside an image
folder (18,030 image-caption pairs = 3,606 x 5); KALE (Jiang, Ehinger & Lau, 2024; Yanbei-Jiang/Artwork-Interpretation)
unzips the images into data/ArtCap/images and re-publishes its own split as a list of [file name, [captions]] pairs
(data/ArtCap/artcap_train_val.json, artcap_test.json). Other copies name the image folder ArtCap_Images_Dataset.
ArtCap publishes no split: the users above each cut their own.

So this reader takes data.path as the folder holding ArtCap.json (any case) or as the JSON file itself, and accepts
the variants seen: a mapping name -> captions (a list, or one caption), a list of [name, captions] pairs, or a list of
{image | file_name | filename | image_name: name, captions | caption | sentences: captions, split?} records. An image
is found at its name relative to the JSON's folder, else by its file name anywhere below that folder (whatever the
image folder is called). The id is the file name without extension, the title the same (ArtCap has no titles), the
year None; all captions are `human_captions`, the first one's sentences `visual_sentences`. Entries without a split
are split by `data.split_fractions` with `seed`. A problem is an error naming the file, the entry (1-based, "row")
and the field ("column").
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from artcap_lib.data.artpedia import id_problem
from artcap_lib.data.download import IMAGE_EXTENSIONS
from artcap_lib.data.collection import CollectionError, captions_of, sentences, split_name

CAPTION_FILE = "ArtCap.json"
NAME_KEYS = ("image", "file_name", "filename", "image_name")
CAPTION_KEYS = ("captions", "caption", "sentences")


def caption_file(path: Path) -> Path:
    if path.is_file():
        return path
    if not path.is_dir():
        raise CollectionError(f"data.path: {path} is neither ArtCap's folder nor its {CAPTION_FILE}")
    found = [p for p in path.iterdir() if p.is_file() and p.name.lower() == CAPTION_FILE.lower()]
    if not found:
        raise CollectionError(f"{path}: no {CAPTION_FILE}: point data.path at the folder holding it, or at the file")
    return found[0]


def entries(path: Path, data: Any) -> Iterator[tuple[int, str, Any, str]]:
    """(entry number, image name, captions as stored, split or "") of each of the file's variants."""
    if isinstance(data, dict):
        for number, (name, captions) in enumerate(data.items(), 1):
            yield number, name, captions, ""
        return
    if not isinstance(data, list):
        raise CollectionError(f"{path}: top level is {type(data).__name__}: ArtCap's is an object of image name -> "
                              "captions (or a list of [name, captions] pairs or of records)")
    for number, item in enumerate(data, 1):
        where = f"{path}: row {number}"
        if isinstance(item, list) and len(item) == 2:
            yield number, item[0], item[1], ""
        elif isinstance(item, dict):
            name_key = next((k for k in NAME_KEYS if k in item), None)
            caption_key = next((k for k in CAPTION_KEYS if k in item), None)
            if name_key is None or caption_key is None:
                missing = "/".join(NAME_KEYS) if name_key is None else "/".join(CAPTION_KEYS)
                raise CollectionError(f"{where}: column {missing}: missing (keys: {', '.join(item)})")
            yield number, item[name_key], item[caption_key], split_name(item.get("split"), f"{where}: column split")
        else:
            raise CollectionError(f"{where}: an entry must be [image name, captions] or a record, "
                                  f"got {json.dumps(item)[:80]}")


def read_artcap(path: str | Path) -> dict[str, dict[str, Any]]:
    """{id: Artpedia entry} of ArtCap; entries without a split in the file get split ""."""
    json_path = caption_file(Path(path))
    try:
        data = json.loads(json_path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as err:
        raise CollectionError(f"{json_path}: not UTF-8 (byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise CollectionError(f"{json_path}: not JSON (line {err.lineno} column {err.colno}: {err.msg})") from None
    root = json_path.parent
    below: dict[str, list[Path]] | None = None          # file name -> images below root, built on first need
    artworks: dict[str, dict[str, Any]] = {}
    first_seen: dict[str, int] = {}
    for number, name, stored, split in entries(json_path, data):
        where = f"{json_path}: row {number}"
        if not isinstance(name, str) or not name.strip():
            raise CollectionError(f"{where}: column image: {name!r} is not an image file name")
        image = root / name.strip()
        if not image.is_file():
            if below is None:
                below = {}
                for p in sorted(root.rglob("*")):
                    if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file():
                        below.setdefault(p.name, []).append(p)
            places = below.get(Path(name.strip()).name, [])
            if len(places) != 1:
                raise CollectionError(f"{where}: column image: {name!r} is " + (
                    f"not a file below {root}" if not places
                    else f"ambiguous: {', '.join(str(p.relative_to(root)) for p in places)}"))
            image = places[0]
        art_id = image.stem
        if (why := id_problem(art_id)) is not None:
            raise CollectionError(f"{where}: column image: {why}")
        if art_id in artworks:
            raise CollectionError(f"{where}: column image: id {art_id!r} again (first at row {first_seen[art_id]})")
        texts = captions_of(stored, f"{where}: column captions")
        artworks[art_id] = {
            "title": art_id, "img_url": "", "year": None,
            "visual_sentences": sentences(texts[0]), "contextual_sentences": [], "split": split,
            "file_path": str(image.resolve()), "human_captions": texts}
        first_seen[art_id] = number
    if not artworks:
        raise CollectionError(f"{json_path}: lists no image")
    return artworks
