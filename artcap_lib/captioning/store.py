"""The caption file: `captions/<captioner>.jsonl`, one JSON object per image, appended as batches finish.

A line is `{"id", "caption", "model", "prompt", "decoding", "new_tokens", "seconds"}` for a caption and
`{"id", "error", ...}` for an image that could not be captioned (unreadable file, ...). The file is the only
state of a captioning run: a run killed at any moment is resumed by reading which ids are already there.
These guarantees make that safe, and they are why this is a small class and not `open(path, "a")`:

- every batch is written with one `write` of whole lines, then flushed and fsynced, so a kill can at worst
  leave one unterminated last line; opening the store for writing cuts it off if it does not parse (the images
  on it are simply captioned again, and the cut is reported on stderr) and terminates it if it does (a complete
  record someone wrote without a newline);
- a complete (newline-terminated) line that does not parse is not something a kill produces: it is someone's
  writing (a hand edit's trailing comma, a stray byte), so it is an error naming the file and line, wherever it
  is, and nothing is cut;
- an id is written at most once with a caption (a failure may later be superseded by a caption when failed
  ids are retried), so resuming never duplicates; every writer holds the file's lock (`files.FileLock`), so two
  commands writing one file is refused instead of each appending what the other writes;
- an empty caption is a failure, not a caption: it is written as `{"id", "error": "empty caption", ...}` and is
  never handed to a fine-tune (lines of older files with an empty caption read as failures too).

A UTF-8 byte-order mark at the start of the file (an editor's save) is read as the encoding marker it is.
Stdlib only: every later step imports `read_captions` without pulling in torch.
"""
from __future__ import annotations

import json
import os
import sys
import weakref
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Iterator

from artcap_lib.files import FileLock


EMPTY_CAPTION = "empty caption: the model gave no text after the answer marker"
BOM = b"\xef\xbb\xbf"
WRITER_REMEDY = "wait for it to finish, or caption into another file (--out)"


class CaptionFileError(ValueError):
    """A caption file that is not a valid JSONL caption file (names the file and the line)."""


def is_failure(record: dict[str, Any]) -> bool:
    return "error" in record or not str(record.get("caption", "")).strip()


def writer_lock(path: str | Path) -> FileLock:
    """The lock every writer of the caption file `path` holds (taken before a model loads, to be refused early)."""
    return FileLock(path, WRITER_REMEDY)


def _decode(line: bytes) -> tuple[Any, str]:
    """(parsed JSON or None, why not) for one line's bytes."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 (byte {exc.start + 1}: {line[exc.start:exc.start + 1]!r})"
    if "\x00" in text:
        return None, f"holds a NUL byte at column {text.index(chr(0)) + 1}"
    try:
        return json.loads(text), ""
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc.msg} at column {exc.colno})"


def _parse_lines(path: Path, data: bytes) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
    """(line number, record or None if unparsable, why not) for each non-blank line of a caption file's bytes."""
    if data.startswith(BOM):
        data = data[len(BOM):]
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        record, why = _decode(line)
        if why:
            yield number, None, f"{why}: {line[:80].decode('utf-8', 'replace')!r}"
            continue
        if not isinstance(record, dict) or not isinstance(record.get("id"), str):
            raise CaptionFileError(f"{path}: line {number}: expected an object with a string 'id', got {line[:80]!r}")
        if not isinstance(record.get("caption"), str) and "error" not in record:
            raise CaptionFileError(f"{path}: line {number}: entry {record['id']}: needs a string 'caption' "
                                   f"or an 'error'")
        yield number, record, ""


def _records(path: Path, data: bytes) -> list[dict[str, Any]]:
    records = []
    lines = list(_parse_lines(path, data))
    for index, (number, record, why) in enumerate(lines):
        if record is None:
            if index == len(lines) - 1 and not data.endswith(b"\n"):
                break
            raise CaptionFileError(f"{path}: line {number}: {why}; a complete line is never a torn write, so it "
                                   f"is left as it is: correct or delete it by hand")
        records.append(record)
    return records


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Every record of a caption file, captions and failures, in file order.

    An unterminated, unparsable last line (a run killed mid-write, or a run still writing) is ignored;
    an unparsable complete line is an error."""
    path = Path(path)
    return _records(path, path.read_bytes())


def read_captions(path: str | Path) -> dict[str, str]:
    """id -> caption for every successfully captioned image (failures left out)."""
    captions: dict[str, str] = {}
    for record in read_records(path):
        if not is_failure(record):
            if record["id"] in captions:
                raise CaptionFileError(f"{path}: entry {record['id']}: captioned twice")
            captions[record["id"]] = record["caption"]
    return captions


def read_failures(path: str | Path) -> dict[str, str]:
    """id -> error for every image whose latest record is a failure."""
    failures: dict[str, str] = {}
    for record in read_records(path):
        if is_failure(record):
            failures[record["id"]] = str(record.get("error", EMPTY_CAPTION))
        else:
            failures.pop(record["id"], None)
    return failures


def writers(path: str | Path) -> Counter:
    """(model, prompt, source) -> number of records, for the captioners that wrote a caption file (source: None for
    a captioner run, the origin of imported captions)."""
    return Counter((r.get("model"), r.get("prompt"), r.get("source")) for r in read_records(path))


class CaptionStore:
    """Append-only writer for one caption file; knows which ids are done.

    >>> store = CaptionStore(path)            # repairs a torn last line, loads the ids already there
    >>> todo = [i for i in ids if not store.is_done(i)]
    >>> store.append([{"id": "1", "caption": "..."}])

    Reading which ids are done takes no lock (every rank of a torchrun launch does it); a repair or an append
    takes the file's writer lock and keeps it while the store lives."""

    def __init__(self, path: str | Path, retry_failed: bool = False):
        self.path = Path(path)
        self.retry_failed = retry_failed      # failed ids count as not done (a fixed image gets a second try)
        self.repaired_bytes = 0               # bytes of a torn last line cut off on opening
        self._lock = writer_lock(self.path)
        weakref.finalize(self, self._lock.release)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            data = self.path.read_bytes()
            if data and not data.endswith(b"\n"):
                self._lock.acquire()
                self._repair_tail()
        self._load()

    def _load(self) -> None:
        """(Re)read the ids of the file; remembers its size to notice another writer's lines before appending."""
        self.captioned: set[str] = set()
        self.failed: set[str] = set()
        data = self.path.read_bytes() if self.path.exists() else b""
        for record in _records(self.path, data):
            self._note(record)
        self._size = len(data)

    def _repair_tail(self) -> None:
        """Terminate an unterminated last line that parses (a record written without its newline); cut one that
        does not back to the previous newline (a torn write), saying so. Only the last line: a kill during one
        `write` can tear nothing else."""
        data = self.path.read_bytes()
        if not data or data.endswith(b"\n"):
            return
        body = data[: data.rfind(b"\n") + 1]
        tail = data[len(body):]
        with open(self.path, "r+b") as fh:
            if _is_record(tail[len(BOM):] if not body and tail.startswith(BOM) else tail):
                fh.seek(0, os.SEEK_END)
                fh.write(b"\n")
            else:
                fh.truncate(len(body))
                self.repaired_bytes = len(tail)
            fh.flush()
            os.fsync(fh.fileno())
        if self.repaired_bytes:
            print(f"{self.path}: cut off an unterminated last line ({self.repaired_bytes} bytes: a run killed "
                  f"mid-write): {tail[:60]!r}; its images are captioned again", file=sys.stderr)

    def _note(self, record: dict[str, Any]) -> None:
        if is_failure(record):
            if record["id"] not in self.captioned:
                self.failed.add(record["id"])
        else:
            self.captioned.add(record["id"])
            self.failed.discard(record["id"])

    def is_done(self, art_id: str) -> bool:
        return art_id in self.captioned or (art_id in self.failed and not self.retry_failed)

    def append(self, records: Iterable[dict[str, Any]]) -> int:
        """Write the new records as one flushed+fsynced write; returns how many were new.

        A caption is new unless the id already has one; a failure is new unless the id has any record
        (so retrying a failed image that fails again adds no line)."""
        self._lock.acquire()                  # refused while another process writes this file
        if os.path.getsize(self.path) != self._size:
            self._repair_tail()               # lines another writer added before we held the lock
            self._load()
        lines, batch_ids = [], set()
        for record in records:
            if "error" not in record and not str(record.get("caption", "")).strip():
                record = {**{k: v for k, v in record.items() if k != "caption"}, "error": EMPTY_CAPTION}
            art_id = record["id"]
            known = self.captioned | self.failed if "error" in record else self.captioned
            if art_id in known or art_id in batch_ids:
                continue
            batch_ids.add(art_id)
            lines.append(json.dumps(record, ensure_ascii=False) + "\n")
            self._note(record)
        if lines:
            data = "".join(lines).encode("utf-8")
            with open(self.path, "ab") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            self._size += len(data)
        return len(lines)

    def close(self) -> None:
        """Let other writers in (also done when the store is garbage-collected)."""
        self._lock.release()


def _is_record(line: bytes) -> bool:
    record, why = _decode(line)
    return not why and isinstance(record, dict) and isinstance(record.get("id"), str) and (
        "caption" in record or "error" in record)


def shard_path(path: str | Path, rank: int, world_size: int) -> Path:
    """captions/llava.jsonl -> captions/llava.rank1-of-4.jsonl: one writer per process, no shared file."""
    path = Path(path)
    return path.with_name(f"{path.stem}.rank{rank}-of-{world_size}{path.suffix}")


def merge_shards(path: str | Path) -> int:
    """Append the new records of every shard of `path` (any world size) to it, then delete the shards.

    Duplicate-free and safe to repeat after a kill: merged records are skipped, shards go only at the end."""
    path = Path(path)
    shards = sorted(path.parent.glob(f"{path.stem}.rank*-of-*{path.suffix}"))
    if not shards:
        return 0
    store = CaptionStore(path)
    added = 0
    for shard in shards:
        CaptionStore(shard)           # repairs the torn last line of a killed rank
        added += store.append(read_records(shard))
    for shard in shards:
        shard.unlink()
    return added
