"""One large file from a URL: resumable after a kill, its size and SHA-256 recorded beside it.

A checkpoint of gigabytes is downloaded into `<name>.part`; a later call sends `Range: bytes=<what is there>-` and
appends, so an interrupted download goes on where it stopped (a server that ignores the range gets the whole file
again). The finished file is renamed into place only when complete (the announced length, when the server names
one), and `<name>.json` records the URL, the size and the SHA-256, so a run can say exactly which bytes it used.
"""
from __future__ import annotations

import http.client
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

from artcap_lib.files import read_json, sha256_file, write_json

USER_AGENT = "artcap (paper reproduction; model checkpoints)"
CHUNK = 1 << 20
RECORD_SUFFIX = ".json"


class FetchError(RuntimeError):
    pass


def record_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + RECORD_SUFFIX)


def fetched(path: str | Path) -> dict[str, Any] | None:
    """The record of a finished download at path ({url, size, sha256}), or None when there is none (or the file's
    size no longer matches it)."""
    path, record = Path(path), record_path(path)
    if not (path.is_file() and record.is_file()):
        return None
    info = read_json(record)
    return info if info.get("size") == path.stat().st_size else None


def fetch(url: str, dest: str | Path, progress: Callable[[str], None] | None = print,
          timeout: float = 60.0) -> dict[str, Any]:
    """Download url to dest (resuming dest.part), record and return {url, size, sha256, path}. A finished download
    with its record is returned as it is, without network."""
    dest = Path(dest)
    done = fetched(dest)
    if done is not None:
        return {**done, "path": str(dest)}
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": USER_AGENT}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:       # the range starts at the end: the part file is already complete
            response = None
        else:
            raise FetchError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from exc
    except OSError as exc:
        raise FetchError(f"cannot download {url}: {exc}. Offline? Download it elsewhere and give the local path "
                         "instead.") from exc
    expected = None
    if response is not None:
        with response:
            resumed = response.status == 206
            if not resumed:
                have = 0                   # the server sent the whole file: start over
            length = response.headers.get("Content-Length")
            expected = have + int(length) if length is not None else None
            if progress:
                progress(f"downloading {url} -> {dest}" + (f" (resuming at {have:,} bytes)" if resumed else ""))
            try:
                _copy(response, part, "ab" if resumed else "wb", progress, expected)
            except (OSError, http.client.HTTPException) as exc:     # a dropped connection: keep what came
                raise FetchError(f"{url}: interrupted after {part.stat().st_size:,} bytes ({exc!r}); run again "
                                 "to resume") from exc
    size = part.stat().st_size
    if expected is not None and size != expected:
        raise FetchError(f"{url}: got {size:,} of {expected:,} bytes; run again to resume")
    os.replace(part, dest)
    info = {"url": url, "size": size, "sha256": sha256_file(dest), "fetched": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_json(record_path(dest), info)
    return {**info, "path": str(dest)}


def _copy(response, part: Path, mode: str, progress, expected: int | None) -> None:
    reported = time.monotonic()
    with open(part, mode) as fh:
        while True:
            block = response.read(CHUNK)
            if not block:
                break
            fh.write(block)
            if progress and time.monotonic() - reported > 30:
                reported = time.monotonic()
                total = f" of {expected:,}" if expected else ""
                progress(f"  {fh.tell():,}{total} bytes")
        fh.flush()
        os.fsync(fh.fileno())
