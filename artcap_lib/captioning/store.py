"""The caption file: `captions/<captioner>.jsonl`, one JSON object per image, appended as batches finish.

A line is `{"id", "caption", "model", "prompt", "decoding", "new_tokens", "seconds"}` for a caption and
`{"id", "error", ...}` for an image that could not be captioned (unreadable file, ...). The file is the only
state of a captioning run: a run killed at any moment is resumed by reading which ids are already there.
Three guarantees make that safe, and they are why this is a small class and not `open(path, "a")`:

- every batch is written with one `write` of whole lines, then flushed and fsynced, so a kill can at worst
  leave one unterminated last line; opening the store cuts it off if it does not parse (the images on it are
  simply captioned again) and terminates it if it does (a complete record someone wrote without a newline);
- an id is written at most once with a caption (a failure may later be superseded by a caption when failed
  ids are retried), so resuming never duplicates;
- a corrupt line anywhere but at the end is not something a kill produces: it is an error naming the line;
- an empty caption is a failure, not a caption: it is written as `{"id", "error": "empty caption", ...}` and is
  never handed to a fine-tune (lines of older files with an empty caption read as failures too).

Stdlib only: every later step imports `read_captions` without pulling in torch.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator


EMPTY_CAPTION = "empty caption: the model gave no text after the answer marker"


class CaptionFileError(ValueError):
    """A caption file that is not a valid JSONL caption file (names the file and the line)."""


def is_failure(record: dict[str, Any]) -> bool:
    return "error" in record or not str(record.get("caption", "")).strip()


def _parse_lines(path: Path, text: str) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
    """(line number, record or None if unparsable, raw line) for each non-empty line."""
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            yield number, None, line
            continue
        if not isinstance(record, dict) or not isinstance(record.get("id"), str):
            raise CaptionFileError(f"{path}: line {number}: expected an object with a string 'id', got {line[:80]!r}")
        if not isinstance(record.get("caption"), str) and "error" not in record:
            raise CaptionFileError(f"{path}: line {number}: entry {record['id']}: needs a string 'caption' "
                                   f"or an 'error'")
        yield number, record, line


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Every record of a caption file, captions and failures, in file order.

    An unterminated, unparsable last line (a run killed mid-write, or a run still writing) is ignored;
    an unparsable line elsewhere is an error."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    records = []
    lines = list(_parse_lines(path, text))
    for index, (number, record, line) in enumerate(lines):
        if record is None:
            if index == len(lines) - 1 and not text.endswith("\n"):
                break
            raise CaptionFileError(f"{path}: line {number}: not valid JSON: {line[:80]!r}")
        records.append(record)
    return records


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


class CaptionStore:
    """Append-only writer for one caption file; knows which ids are done.

    >>> store = CaptionStore(path)            # repairs a torn last line, loads the ids already there
    >>> todo = [i for i in ids if not store.is_done(i)]
    >>> store.append([{"id": "1", "caption": "..."}])
    """

    def __init__(self, path: str | Path, retry_failed: bool = False):
        self.path = Path(path)
        self.retry_failed = retry_failed      # failed ids count as not done (a fixed image gets a second try)
        self.repaired_bytes = 0               # bytes of a torn last line cut off on opening
        self.captioned: set[str] = set()
        self.failed: set[str] = set()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self._repair_tail()
            for record in read_records(self.path):
                self._note(record)

    def _repair_tail(self) -> None:
        """Cut a last line that is unparsable back to the previous newline; terminate one that parses.

        Only the last line: a kill during one `write` can tear nothing else."""
        data = self.path.read_bytes()
        if not data:
            return
        body = data if data.endswith(b"\n") else data[: data.rfind(b"\n") + 1]
        tail = data[len(body):]
        if tail and _is_record(tail):      # complete, only the newline missing: keep it
            with open(self.path, "ab") as fh:
                fh.write(b"\n")
                fh.flush()
                os.fsync(fh.fileno())
            return
        if not tail:       # terminated: still check that the last complete line parses
            start = body.rfind(b"\n", 0, len(body) - 1) + 1
            try:
                json.loads(body[start:].decode("utf-8"))
                return
            except (UnicodeDecodeError, json.JSONDecodeError):
                body = body[:start]
        self.repaired_bytes = len(data) - len(body)
        with open(self.path, "r+b") as fh:
            fh.truncate(len(body))
            fh.flush()
            os.fsync(fh.fileno())

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
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write("".join(lines))
                fh.flush()
                os.fsync(fh.fileno())
        return len(lines)


def _is_record(line: bytes) -> bool:
    try:
        record = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(record, dict) and isinstance(record.get("id"), str) and ("caption" in record or "error" in record)


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
