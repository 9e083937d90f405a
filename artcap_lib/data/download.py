"""Polite, resumable download of Artpedia's images (Wikimedia) with a record of everything left out.

Wikimedia wants a descriptive User-Agent, rate-limits with HTTP 429 + Retry-After, and hosts scans far above
PIL's decompression-bomb limit; some URLs are gone (85 were 404 in Dec 2024). So: a few workers, retries with
exponential backoff, Retry-After honoured, a pixel cap checked *before* decoding, each file decoded once to
prove it is an image, the authors' normalisation (fit inside 1000x1000 by an integer factor), atomic writes,
and excluded.json listing every dropped id with its URL and reason. A re-run skips good files and permanent
failures (404, undecodable, too large) and retries only the transient ones.
"""
from __future__ import annotations

import email.utils
import io
import math
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from PIL import Image

from artcap_lib.data.artpedia import id_problem
from artcap_lib.files import atomic_write_bytes, read_json

USER_AGENT = "artcap/0.1 (reproduction of an Artpedia retrieval study; https://github.com/artcap) python-urllib"
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".gif", ".tif", ".tiff", ".bmp", ".webp"}
STORED_EXTENSIONS = sorted(IMAGE_EXTENSIONS) + [".img"]     # what _store may name a file: the URL's or the format's
PERMANENT_HTTP = {400, 401, 403, 404, 410, 451}
MAX_WORKERS = 8          # polite cap, whatever the user asks for
MAX_RETRY_AFTER = 300.0  # seconds: a server asking for longer is treated as a transient failure


@dataclass
class Outcome:
    id: str
    url: str
    status: str                 # ok | cached | excluded
    file_path: str | None = None
    reason: str | None = None
    transient: bool = False     # excluded for a reason worth retrying on the next run
    attempts: int = 0


class _Skip(Exception):
    def __init__(self, reason: str, transient: bool = False):
        super().__init__(reason)
        self.reason, self.transient = reason, transient


@dataclass
class Downloader:
    out_dir: Path
    max_side: int = 1000
    max_pixels: int = 400_000_000
    max_bytes: int = 300_000_000
    retries: int = 4
    backoff: float = 2.0        # seconds; doubles after each failed attempt
    timeout: float = 60.0
    user_agent: str = USER_AGENT
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self):
        self.out_dir = Path(self.out_dir)
        self.images = self.out_dir / "images"

    # -- one image ------------------------------------------------------------------------------------
    def fetch(self, art_id: str, url: str) -> Outcome:
        why = id_problem(art_id)       # the schema's rule, again here: an id becomes a file name below
        if why:
            return Outcome(art_id, url, "excluded", reason=why, transient=False)
        existing = self._existing(art_id)
        if existing is not None:
            return Outcome(art_id, url, "cached", file_path=f"images/{existing.name}")
        attempts = 0
        try:
            data, attempts = self._get(url)
            path = self._store(art_id, url, data)
            return Outcome(art_id, url, "ok", file_path=f"images/{path.name}", attempts=attempts)
        except _Skip as skip:
            return Outcome(art_id, url, "excluded", reason=skip.reason, transient=skip.transient,
                           attempts=max(attempts, 1))

    def _existing(self, art_id: str) -> Path | None:
        # exact names, never a glob: ids 1 and 1.5 must not share images/1.5.png
        for path in (self.images / f"{art_id}{ext}" for ext in STORED_EXTENSIONS):
            if path.is_file():
                try:
                    with Image.open(path) as im:
                        im.verify()
                    return path
                except Exception:
                    path.unlink()      # a damaged leftover: fetch it again
        return None

    def _get(self, url: str) -> tuple[bytes, int]:
        request = urllib.request.Request(url, headers={"User-Agent": self.user_agent})
        delay = self.backoff
        last = "no attempt"
        for attempt in range(1, self.retries + 2):
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    length = response.headers.get("Content-Length")
                    if length and length.isdigit() and int(length) > self.max_bytes:
                        raise _Skip(f"too large: {int(length)} bytes > {self.max_bytes}")
                    data = response.read(self.max_bytes + 1)
                    if len(data) > self.max_bytes:
                        raise _Skip(f"too large: more than {self.max_bytes} bytes")
                    return data, attempt
            except urllib.error.HTTPError as err:
                if err.code in PERMANENT_HTTP:
                    raise _Skip(f"HTTP {err.code}") from None
                last = f"HTTP {err.code}"
                wait = _retry_after(err.headers.get("Retry-After")) if err.code in (429, 503) else None
                if wait is not None and wait > MAX_RETRY_AFTER:
                    raise _Skip(f"{last}: Retry-After {wait:.0f} s is too long", transient=True) from None
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as err:
                last = f"network error: {getattr(err, 'reason', err)}"
                wait = None
            if attempt > self.retries:
                break
            self.sleep(wait if wait is not None else delay)
            delay *= 2
        raise _Skip(f"{last} after {self.retries + 1} attempts", transient=True)

    def _store(self, art_id: str, url: str, data: bytes) -> Path:
        try:
            with Image.open(io.BytesIO(data)) as probe:   # reads the header only: size before any decoding
                width, height = probe.size
                fmt = probe.format
        except Exception as exc:
            raise _Skip(f"undecodable: not an image ({type(exc).__name__})") from None
        if width * height > self.max_pixels:
            raise _Skip(f"too large: {width}x{height} pixels > {self.max_pixels}")
        try:
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                factor = math.ceil(max(width, height) / self.max_side)
                if factor > 1:     # the authors' normalisation: an integer factor, default resampling
                    image = image.resize((width // factor, height // factor))
                    buffer = io.BytesIO()
                    if fmt == "JPEG" and image.mode not in ("RGB", "L", "CMYK"):
                        image = image.convert("RGB")
                    image.save(buffer, format=fmt or "PNG")
                    data = buffer.getvalue()
        except Exception as exc:
            raise _Skip(f"undecodable: {type(exc).__name__}: {exc}") from None
        suffix = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).suffix.lower()
        if suffix not in IMAGE_EXTENSIONS:
            suffix = {"JPEG": ".jpg", "PNG": ".png", "GIF": ".gif", "TIFF": ".tif", "WEBP": ".webp"}.get(fmt, ".img")
        path = self.images / f"{art_id}{suffix}"
        atomic_write_bytes(path, data)
        return path


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def download_images(artworks: dict[str, dict[str, Any]], out_dir: str | Path, workers: int = 4,
                    retry_excluded: bool = False, progress: bool = True, **options) -> "DownloadReport":
    """Fetch every entry's image into out_dir/images; report the entries kept (with file_path) and excluded.

    Previously excluded ids (out_dir/excluded.json) with a permanent reason are not asked for again unless
    retry_excluded is set; their records are carried over so nothing is forgotten.
    """
    downloader = Downloader(Path(out_dir), **options)
    previous = {}
    excluded_path = Path(out_dir) / "excluded.json"
    if excluded_path.is_file() and not retry_excluded:
        previous = {r["id"]: r for r in read_json(excluded_path) if not r.get("transient")}
    todo = [(k, v["img_url"]) for k, v in artworks.items() if k not in previous]
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    bar = _progress(len(todo), progress)
    with ThreadPoolExecutor(max_workers=max(1, min(workers, MAX_WORKERS))) as pool:
        for outcome in pool.map(lambda job: downloader.fetch(*job), todo):
            with lock:
                outcomes.append(outcome)
                bar.update(1)
    bar.close()
    kept = {}
    excluded = [r for k, r in previous.items() if k in artworks]
    for o in outcomes:
        if o.status == "excluded":
            excluded.append({"id": o.id, "url": o.url, "reason": o.reason, "transient": o.transient})
        else:
            kept[o.id] = dict(artworks[o.id], file_path=o.file_path)
    counts = {s: sum(o.status == s for o in outcomes) for s in ("ok", "cached", "excluded")}
    counts["previously_excluded"] = len(excluded) - counts["excluded"]
    return DownloadReport({k: kept[k] for k in artworks if k in kept}, sorted(excluded, key=lambda r: r["id"]), counts)


@dataclass
class DownloadReport:
    kept: dict[str, dict[str, Any]]     # entries with an image on disk, file_path added
    excluded: list[dict[str, Any]]      # {id, url, reason, transient}
    counts: dict[str, int]              # ok (fetched now), cached (already there), excluded, previously_excluded


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm
    return tqdm(total=total, desc="images", unit="img", disable=not enabled)
