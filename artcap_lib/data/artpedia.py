"""The Artpedia schema: loading, validation, and the human caption of an artwork.

artpedia.json is `{id: {title, img_url, year, visual_sentences, contextual_sentences, split}}`. Our run
directories keep exactly that schema in data/artworks.json and add `file_path` (relative to the JSON's
folder) once an image is on disk, so any tool that reads Artpedia reads our files too.
"""
from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

SPLITS = ("train", "val", "test")
REQUIRED = {
    "title": str,
    "img_url": str,
    "year": (int, type(None)),
    "visual_sentences": list,
    "contextual_sentences": list,
    "split": str,
}
OPTIONAL = {"file_path": str, "human_captions": list}      # all human captions (the collection readers)
# An id names the artwork's files (images/<id>.<ext>) and keys every run and score file, so it must never be able to
# act as a path, a hidden file or a glob: letters, digits, '.', '_' and '-', starting with a letter or digit, at
# most 128 characters (Artpedia's ids are integers).
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def id_problem(art_id: Any) -> str | None:
    """Why `art_id` cannot be an artwork id, or None when it can."""
    if not isinstance(art_id, str) or not ID_PATTERN.fullmatch(art_id):
        shown = repr(art_id) if len(str(art_id)) <= 60 else repr(str(art_id)[:57]) + f"... ({len(str(art_id))} chars)"
        return (f"id {shown} is not usable: ids must be 1-128 letters, digits, '.', '_' or '-', starting with a letter "
                "or digit (they become file names)")
    return None


@dataclass(frozen=True)
class Problem:
    entry: str | None     # the artwork id, or None for a problem with the whole file
    field: str | None
    message: str
    severity: str = "error"   # error | warning

    def __str__(self) -> str:
        where = " / ".join(x for x in (f"entry {self.entry}" if self.entry else None, self.field) if x)
        return f"{self.severity}: {where + ': ' if where else ''}{self.message}"


class ArtpediaError(ValueError):
    def __init__(self, path: Path, problems: list[Problem]):
        self.path, self.problems = path, problems
        errors = [p for p in problems if p.severity == "error"]
        shown = "\n  ".join(str(p) for p in errors[:20])
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        super().__init__(f"{path}: {len(errors)} problem(s)\n  {shown}{more}")


def human_caption(entry: dict[str, Any]) -> str:
    """The paper's human caption: the visual sentences joined with one space (contextual ones unused)."""
    return " ".join(entry["visual_sentences"])


def human_captions(entry: dict[str, Any]) -> list[str]:
    """Every human caption of an artwork: a collection's `human_captions` where it gives several (ArtCap, an
    ImageFolder with caption lists), else the one `human_caption` (Artpedia)."""
    return list(entry.get("human_captions") or [human_caption(entry)])


def reference_of(entry: dict[str, Any]) -> str | list[str]:
    """Experiment 1's reference: the text where the artwork has one human caption, the list where it has
    several (scored in each metric's multi-reference form)."""
    texts = human_captions(entry)
    return texts[0] if len(texts) == 1 else texts


def validate_entries(data: Any, require_urls: bool = True) -> list[Problem]:
    """Every problem of a parsed artpedia.json, errors and warnings, in file order."""
    if not isinstance(data, dict):
        return [Problem(None, None, f"top level must be an object of id -> entry, got {type(data).__name__}")]
    problems: list[Problem] = []
    seen_urls: dict[str, str] = {}
    for key, entry in data.items():
        why = id_problem(key)
        if why:
            problems.append(Problem((key if len(key) <= 60 else key[:57] + "...") or "''", "id", why))
        if not isinstance(entry, dict):
            problems.append(Problem(key, None, f"entry must be an object, got {type(entry).__name__}"))
            continue
        for name, kind in REQUIRED.items():
            if name not in entry:
                problems.append(Problem(key, name, "missing key"))
            elif not isinstance(entry[name], kind) or isinstance(entry[name], bool):
                problems.append(Problem(key, name, f"wrong type {type(entry[name]).__name__}"))
        for name, kind in OPTIONAL.items():
            if name in entry and not isinstance(entry[name], kind):
                problems.append(Problem(key, name, f"wrong type {type(entry[name]).__name__}"))
        for name in ("visual_sentences", "contextual_sentences"):
            sentences = entry.get(name)
            if isinstance(sentences, list):
                for i, s in enumerate(sentences):
                    if not isinstance(s, str):
                        problems.append(Problem(key, f"{name}[{i}]", f"must be a string, got {type(s).__name__}"))
        visual = entry.get("visual_sentences")
        if isinstance(visual, list) and not any(isinstance(s, str) and s.strip() for s in visual):
            problems.append(Problem(key, "visual_sentences", "empty: the human caption would be empty"))
        split = entry.get("split")
        if isinstance(split, str) and split not in SPLITS:
            problems.append(Problem(key, "split", f"unknown split {split!r} (expected one of {', '.join(SPLITS)})"))
        url = entry.get("img_url")
        # an image on disk (a local collection's) needs no URL: "" is how such an entry says it has none
        local = url == "" and isinstance(entry.get("file_path"), str) and bool(entry["file_path"])
        if isinstance(url, str) and require_urls and not local:
            if not url.lower().startswith(("http://", "https://")):
                problems.append(Problem(key, "img_url", f"not an http(s) URL: {url!r}"))
            elif url in seen_urls:
                problems.append(Problem(key, "img_url", f"same image URL as entry {seen_urls[url]}", "warning"))
            else:
                seen_urls[url] = key
    return problems


def read_artpedia_json(path: str | Path) -> tuple[Any, list[Problem]]:
    """Parse a JSON file strictly (UTF-8, valid JSON); problems instead of exceptions."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, [Problem(None, None, f"cannot read: {exc}")]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [Problem(None, None, f"not UTF-8 (byte {exc.start}: {raw[exc.start:exc.start + 1]!r})")]
    duplicates: list[list[str]] = []      # per parsed object, innermost first: the top level is the last one

    def keep_pairs(pairs):
        seen, twice = set(), []
        for key, _ in pairs:
            if key in seen:
                twice.append(key)
            seen.add(key)
        duplicates.append(twice)
        return dict(pairs)
    try:
        data = json.loads(text, object_pairs_hook=keep_pairs)
    except json.JSONDecodeError as exc:
        return None, [Problem(None, None, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}")]
    # json keeps the last of two equal keys: an entry (or a field) written twice would silently vanish
    problems = [Problem(key, None, "appears twice in the file (the second would silently replace the first)")
                for key in (duplicates[-1] if duplicates else [])]
    problems += [Problem(None, key, "a field appears twice in one entry") for twice in duplicates[:-1] for key in twice]
    return (None if problems else data), problems


def validate_file(path: str | Path) -> list[Problem]:
    data, problems = read_artpedia_json(path)
    return problems if problems else validate_entries(data)


def load_artworks(path: str | Path, require_urls: bool = True) -> dict[str, dict[str, Any]]:
    """Load and validate an Artpedia-schema file; raise ArtpediaError naming every bad entry and field.

    require_urls=False accepts entries without an image URL (the reference profile has no images)."""
    data, problems = read_artpedia_json(path)
    if not problems:
        problems = validate_entries(data, require_urls=require_urls)
    if any(p.severity == "error" for p in problems):
        raise ArtpediaError(Path(path), problems)
    return data


def image_path(artworks_json: str | Path, entry: dict[str, Any]) -> Path | None:
    """Absolute path of an entry's image; `file_path` is stored relative to the JSON's folder."""
    fp = entry.get("file_path")
    if not fp:
        return None
    p = Path(fp)
    return p if p.is_absolute() else _folder(str(artworks_json), os.getcwd()) / p


@functools.lru_cache(maxsize=8)
def _folder(artworks_json: str, cwd: str) -> Path:
    # resolved once per file (and working directory), not once per entry: 100k entries took 8 s of resolve()
    return Path(artworks_json).resolve().parent


@dataclass(frozen=True)
class Catalogue:
    """What a run's steps read of an artworks file, resolved once: every entry, each split's ids (in
    `ordered_ids` order), every human caption of each artwork and where its image is (None: not fetched)."""
    path: Path
    artworks: dict[str, dict[str, Any]]
    ids: dict[str, list[str]]                   # split -> ids
    captions: dict[str, list[str]]              # id -> its human captions (`human_captions`)
    images: dict[str, Path | None]              # id -> its image (`image_path`)


def read_catalogue(path: str | Path, require_urls: bool = True) -> Catalogue:
    """`load_artworks` (validated) resolved into a `Catalogue`."""
    artworks = load_artworks(path, require_urls=require_urls)
    return Catalogue(Path(path), artworks, {split: ordered_ids(by_split(artworks, split)) for split in SPLITS},
                     {i: human_captions(e) for i, e in artworks.items()},
                     {i: image_path(path, e) for i, e in artworks.items()})


def by_split(artworks: dict[str, dict[str, Any]], splits: Iterable[str] | str) -> dict[str, dict[str, Any]]:
    wanted = {splits} if isinstance(splits, str) else set(splits)
    return {k: v for k, v in artworks.items() if v.get("split") in wanted}


_INTEGER = re.compile(r"-?[0-9]+")


def ordered_ids(ids: Iterable[str]) -> list[str]:
    """The one order of artwork ids everywhere (splits, runs, score matrices): numeric when every id is an integer
    (Artpedia's 2, 3, 23, ...; a string sort would put 23 before 3), else string order."""
    ids = list(ids)
    if all(_INTEGER.fullmatch(str(i)) for i in ids):
        return sorted(ids, key=lambda i: (int(i), str(i)))     # "01" and "1": both 1, string order decides
    return sorted(ids, key=str)
