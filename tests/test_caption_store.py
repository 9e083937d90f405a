"""The caption JSONL store: append, resume, no duplicates, a torn last line repaired, shards merged."""
import json

import pytest

from artcap_lib.captioning.store import (CaptionFileError, CaptionStore, merge_shards, read_captions, read_failures,
                                      read_records, shard_path)


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_append_skips_ids_already_captioned(tmp_path):
    path = tmp_path / "c.jsonl"
    store = CaptionStore(path)
    assert store.append([{"id": "1", "caption": "a"}, {"id": "2", "caption": "b"}, {"id": "1", "caption": "again"}]) == 2
    reopened = CaptionStore(path)
    assert reopened.is_done("1") and reopened.is_done("2") and not reopened.is_done("3")
    assert reopened.append([{"id": "2", "caption": "dup"}, {"id": "3", "caption": "c"}]) == 1
    assert read_captions(path) == {"1": "a", "2": "b", "3": "c"}


def test_failures_are_kept_apart_and_superseded_by_a_later_caption(tmp_path):
    path = tmp_path / "c.jsonl"
    CaptionStore(path).append([{"id": "1", "error": "OSError: truncated"}, {"id": "2", "caption": "b"}])
    assert read_captions(path) == {"2": "b"}
    assert read_failures(path) == {"1": "OSError: truncated"}
    assert CaptionStore(path).is_done("1")                          # not retried by default
    retry = CaptionStore(path, retry_failed=True)
    assert not retry.is_done("1")
    assert retry.append([{"id": "1", "error": "OSError: still bad"}]) == 0   # a second failure adds no line
    assert retry.append([{"id": "1", "caption": "fixed"}]) == 1
    assert read_captions(path) == {"1": "fixed", "2": "b"} and read_failures(path) == {}


@pytest.mark.parametrize("tail", ['{"id": "3", "capt', '{"id": "3", "caption": "c"\x00\x00\n', "\x00\x00\x00"])
def test_torn_last_line_is_cut_off_on_open(tmp_path, tail):
    path = tmp_path / "c.jsonl"
    CaptionStore(path).append([{"id": "1", "caption": "a"}, {"id": "2", "caption": "b"}])
    good = path.read_bytes()
    with open(path, "a") as fh:
        fh.write(tail)
    if not tail.endswith("\n"):          # readers ignore an unterminated last line (a run still writing)
        assert read_captions(path) == {"1": "a", "2": "b"}
    store = CaptionStore(path)
    assert store.repaired_bytes == len(tail.encode())
    assert path.read_bytes() == good and not store.is_done("3")
    store.append([{"id": "3", "caption": "c"}])
    assert [r["id"] for r in lines(path)] == ["1", "2", "3"]



def test_a_complete_last_line_without_its_newline_is_kept(tmp_path):
    """A valid record whose newline is missing (written by hand, or by another tool) is data, not a torn write."""
    path = tmp_path / "c.jsonl"
    CaptionStore(path).append([{"id": "1", "caption": "a"}])
    with open(path, "a") as fh:
        fh.write('{"id": "2", "caption": "b"}')
    store = CaptionStore(path)
    assert store.repaired_bytes == 0 and store.is_done("2")
    assert store.append([{"id": "2", "caption": "again"}, {"id": "3", "caption": "c"}]) == 1
    assert [r["id"] for r in lines(path)] == ["1", "2", "3"] and read_captions(path)["2"] == "b"


@pytest.mark.parametrize("empty", ["", "   ", "\n"])
def test_an_empty_caption_is_a_failure_not_a_caption(tmp_path, empty):
    path = tmp_path / "c.jsonl"
    store = CaptionStore(path, retry_failed=True)
    assert store.append([{"id": "1", "caption": empty, "model": "m"}, {"id": "2", "caption": "b"}]) == 2
    assert read_captions(path) == {"2": "b"}
    assert read_failures(path) == {"1": "empty caption: the model gave no text after the answer marker"}
    assert "caption" not in lines(path)[0] and lines(path)[0]["model"] == "m"
    assert not store.is_done("1")                      # retried like any failure
    # a line of an older file with an empty caption reads as a failure too
    with open(path, "a") as fh:
        fh.write(json.dumps({"id": "3", "caption": " "}) + "\n")
    assert "3" not in read_captions(path) and "3" in read_failures(path)
    assert CaptionStore(path).is_done("3") and not CaptionStore(path, retry_failed=True).is_done("3")


def test_corrupt_line_in_the_middle_is_an_error_naming_the_line(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"id": "1", "caption": "a"}\nnot json\n{"id": "2", "caption": "b"}\n')
    with pytest.raises(CaptionFileError, match=r"c\.jsonl: line 2"):
        read_captions(path)
    path.write_text('{"id": "1", "text": "a"}\n')
    with pytest.raises(CaptionFileError, match="entry 1: needs a string 'caption'"):
        read_records(path)


def test_a_caption_twice_is_an_error(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"id": "1", "caption": "a"}\n{"id": "1", "caption": "b"}\n')
    with pytest.raises(CaptionFileError, match="entry 1: captioned twice"):
        read_captions(path)


def test_merge_shards_is_duplicate_free_and_removes_the_shards(tmp_path):
    path = tmp_path / "c.jsonl"
    CaptionStore(path).append([{"id": "0", "caption": "zero"}])
    CaptionStore(shard_path(path, 0, 2)).append([{"id": "0", "caption": "zero again"}, {"id": "2", "caption": "two"}])
    CaptionStore(shard_path(path, 1, 2)).append([{"id": "1", "caption": "one"}, {"id": "3", "error": "bad"}])
    with open(shard_path(path, 1, 2), "a") as fh:      # a rank killed mid-write
        fh.write('{"id": "5", "cap')
    assert merge_shards(path) == 3
    assert read_captions(path) == {"0": "zero", "1": "one", "2": "two"}
    assert read_failures(path) == {"3": "bad"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.jsonl"]
    assert merge_shards(path) == 0
