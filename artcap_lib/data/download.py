"""Polite, resumable download of Artpedia's images (Wikimedia) with a record of everything left out.

Wikimedia wants a descriptive User-Agent, rate-limits with HTTP 429 + Retry-After, and hosts scans far above
PIL's decompression-bomb limit; some URLs are gone (85 were 404 in Dec 2024). So: a few workers, retries with
exponential backoff, Retry-After honoured, a total deadline per image (a server that drip-feeds a body cannot
hold a worker for minutes), a body shorter than its Content-Length retried, redirects followed only to http(s) on
the default ports or the original one, a pixel cap checked *before* decoding (it replaces PIL's own bomb limit, so
`max_pixels` means what it says in both directions), each file decoded once to prove it is an image, the authors'
normalisation (fit inside 1000x1000 by an integer factor), atomic writes, and excluded.json listing every dropped
id with its URL and reason. A re-run skips good files and permanent failures (404, undecodable, too large) and
retries only the transient ones; an unreadable excluded.json is reported and rebuilt, never a traceback.
"""
from __future__ import annotations

import email.utils
import http.client
import io
import math
import contextlib
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
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
READ_CHUNK = 1 << 20     # bytes read at a time, so the deadline is checked while a body arrives


class _SafeRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to http(s), and only to the default port of the scheme or the request's own port:
    an image URL has no business sending the downloader to ftp://, file:// or an arbitrary local service."""

    def http_error_302(self, req, fp, code, msg, headers):
        # checked before urllib's own handling, which turns a redirect to file:// into a retryable HTTP error
        target = headers.get("Location") or headers.get("URI")
        if target:
            old, new = urllib.parse.urlsplit(req.full_url), urllib.parse.urlsplit(urllib.parse.urljoin(req.full_url,
                                                                                                        target))
            try:
                port = new.port
            except ValueError:
                port = -1
            if new.scheme not in ("http", "https") or port not in {None, 80 if new.scheme == "http" else 443, old.port}:
                raise _Skip(f"refused redirect to {target[:200]!r} (only http(s) on the default or the original port)")
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


_OPENER = urllib.request.build_opener(_SafeRedirects)
_PIL_LIMIT_LOCK = threading.Lock()
_PIL_LIMIT_USERS = 0


@contextlib.contextmanager
def _pixel_limit(max_pixels: int):
    """PIL refuses images above 2 x Image.MAX_IMAGE_PIXELS (~179 Mpx) by itself; the downloader checks the size
    from the header against `max_pixels` instead, so PIL's limit is lifted to it while downloads run."""
    global _PIL_LIMIT_USERS
    with _PIL_LIMIT_LOCK:
        if _PIL_LIMIT_USERS == 0:
            _pixel_limit.saved = Image.MAX_IMAGE_PIXELS
        _PIL_LIMIT_USERS += 1
        if Image.MAX_IMAGE_PIXELS is not None:
            Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS, max_pixels)
    try:
        yield
    finally:
        with _PIL_LIMIT_LOCK:
            _PIL_LIMIT_USERS -= 1
            if _PIL_LIMIT_USERS == 0:
                Image.MAX_IMAGE_PIXELS = _pixel_limit.saved


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


class _Truncated(Exception):
    """The connection closed before Content-Length bytes arrived: worth another attempt."""


@dataclass
class Downloader:
    out_dir: Path
    max_side: int = 1000
    max_pixels: int = 400_000_000
    max_bytes: int = 300_000_000
    retries: int = 4
    backoff: float = 2.0        # seconds; doubles after each failed attempt
    timeout: float = 60.0       # seconds without a byte before a read fails
    deadline: float = 600.0     # seconds one image may take in all: attempts, bodies and waits between them
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
            with _pixel_limit(self.max_pixels):
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
        give_up_at = time.monotonic() + self.deadline
        for attempt in range(1, self.retries + 2):
            try:
                with _OPENER.open(request, timeout=self.timeout) as response:
                    length = response.headers.get("Content-Length")
                    length = int(length) if length and length.isdigit() else None
                    if length is not None and length > self.max_bytes:
                        raise _Skip(f"too large: {length} bytes > {self.max_bytes}")
                    data = self._read_body(response, give_up_at)
                    if length is not None and len(data) < length:
                        raise _Truncated(f"truncated body: {len(data)} of {length} bytes")
                    return data, attempt
            except urllib.error.HTTPError as err:
                if err.code in PERMANENT_HTTP:
                    raise _Skip(f"HTTP {err.code}") from None
                last = f"HTTP {err.code}"
                wait = _retry_after(err.headers.get("Retry-After")) if err.code in (429, 503) else None
                if wait is not None and wait > MAX_RETRY_AFTER:
                    raise _Skip(f"{last}: Retry-After {wait:.0f} s is too long", transient=True) from None
            except _Truncated as err:
                last, wait = str(err), None
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError, http.client.HTTPException) as err:
                if isinstance(getattr(err, "reason", None), _Skip):     # a refused redirect, wrapped by urllib
                    raise err.reason from None
                last = f"network error: {getattr(err, 'reason', err)}"
                wait = None
            pause = wait if wait is not None else delay
            if attempt > self.retries:
                break
            if time.monotonic() + pause > give_up_at:
                raise _Skip(f"{last}; no time left for another attempt within the {self.deadline:.0f} s deadline",
                            transient=True)
            self.sleep(pause)
            delay *= 2
        raise _Skip(f"{last} after {attempt} attempts", transient=True)

    def _read_body(self, response, give_up_at: float) -> bytes:
        chunks, size = [], 0
        while True:
            if time.monotonic() > give_up_at:
                raise _Skip(f"deadline: no complete body within {self.deadline:.0f} s ({size} bytes so far)",
                            transient=True)
            chunk = response.read1(READ_CHUNK) if hasattr(response, "read1") else response.read(READ_CHUNK)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            size += len(chunk)
            if size > self.max_bytes:
                raise _Skip(f"too large: more than {self.max_bytes} bytes")

    def _store(self, art_id: str, url: str, data: bytes) -> Path:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)     # our cap decides, below
                with Image.open(io.BytesIO(data)) as probe:      # reads the header only: size before any decoding
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
    previous, warnings = {}, []
    excluded_path = Path(out_dir) / "excluded.json"
    if excluded_path.is_file() and not retry_excluded:
        previous, problem = read_excluded(excluded_path)
        if problem:
            warnings.append(f"{excluded_path}: {problem}; ignored and rebuilt (its ids are asked for again)")
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
    return DownloadReport({k: kept[k] for k in artworks if k in kept}, sorted(excluded, key=lambda r: r["id"]), counts,
                          warnings)


def read_excluded(path: Path) -> tuple[dict[str, dict[str, Any]], str | None]:
    """{id: record} of the permanent exclusions in an excluded.json, or ({}, why) when it cannot be trusted."""
    try:
        records = read_json(path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return {}, f"unreadable ({type(exc).__name__}: {exc})"
    if not isinstance(records, list) or not all(isinstance(r, dict) and isinstance(r.get("id"), str)
                                                and isinstance(r.get("reason"), str) for r in records):
        return {}, "not a list of {id, url, reason, transient} records"
    return {r["id"]: r for r in records if not r.get("transient")}, None


@dataclass
class DownloadReport:
    kept: dict[str, dict[str, Any]]     # entries with an image on disk, file_path added
    excluded: list[dict[str, Any]]      # {id, url, reason, transient}
    counts: dict[str, int]              # ok (fetched now), cached (already there), excluded, previously_excluded
    warnings: list[str] = field(default_factory=list)    # state files that were unreadable and rebuilt


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm
    return tqdm(total=total, desc="images", unit="img", disable=not enabled)
