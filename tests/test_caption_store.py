"""The caption JSONL store: append, resume, no duplicates, a torn last line repaired, shards merged."""
import json
import subprocess
import sys

import pytest

from artcap_lib.captioning.store import (CaptionFileError, CaptionStore, merge_shards, read_captions, read_failures,
                                      read_records, shard_path)
from artcap_lib.files import FileLockedError


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


@pytest.mark.parametrize("torn", [b'{"id": "3", "capt', b'{"id": "3", "caption": "c"\x00\x00', b"\x00\x00\x00",
                                  b'{"id": "3", "caption": "caf\xc3'])          # the last: cut inside a character
def test_torn_last_line_is_cut_off_on_open_and_reported(tmp_path, torn, capsys):
    path = tmp_path / "c.jsonl"
    CaptionStore(path).append([{"id": "1", "caption": "a"}, {"id": "2", "caption": "b"}])
    good = path.read_bytes()
    with open(path, "ab") as fh:
        fh.write(torn)
    assert read_captions(path) == {"1": "a", "2": "b"}      # readers ignore an unterminated last line (a run writing)
    store = CaptionStore(path)
    assert store.repaired_bytes == len(torn)
    assert f"{path}: cut off an unterminated last line ({len(torn)} bytes" in capsys.readouterr().err
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


@pytest.mark.parametrize("line, why", [
    ('{"id": "3", "caption": "c"},', "not valid JSON (Extra data at column 28)"),     # a hand edit's trailing comma
    ('{"id": "3", "caption": "c"}\x00', "holds a NUL byte at column 28"),
    ('{"id": "3", "caption": "c"', "not valid JSON"),
])
def test_a_complete_invalid_last_line_is_an_error_and_nothing_is_cut(tmp_path, line, why):
    """Only a kill's unterminated tail is repaired: a newline-terminated line is someone's writing. Opening the store
    used to delete such a line silently, and its image was captioned again."""
    path = tmp_path / "c.jsonl"
    CaptionStore(path).append([{"id": "1", "caption": "a"}, {"id": "2", "caption": "b"}])
    with open(path, "a") as fh:
        fh.write(line + "\n")
    before = path.read_bytes()
    for open_it in (CaptionStore, read_captions):
        with pytest.raises(CaptionFileError) as err:
            open_it(path)
        assert str(err.value).startswith(f"{path}: line 3: {why}") and "by hand" in str(err.value)
    assert path.read_bytes() == before


@pytest.mark.parametrize("newline", ["\n", ""])
def test_a_byte_order_mark_is_read_as_an_encoding_marker(tmp_path, newline):
    """An editor saving a one-line file as 'UTF-8 with BOM': the line is a caption, not garbage to cut."""
    path = tmp_path / "c.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"id": "1", "caption": "a"}).encode() + newline.encode())
    store = CaptionStore(path)
    assert store.repaired_bytes == 0 and store.is_done("1")
    assert store.append([{"id": "1", "caption": "again"}, {"id": "2", "caption": "b"}]) == 1
    assert read_captions(path) == {"1": "a", "2": "b"}


def test_a_second_writing_process_is_refused_naming_the_first(tmp_path):
    """Two `artcap caption --out same.jsonl` at once wrote 236 lines for 120 ids: one writer per caption file."""
    path = tmp_path / "c.jsonl"
    holder = subprocess.Popen([sys.executable, "-c", "from artcap_lib.captioning.store import CaptionStore; "
                               f"import sys; s = CaptionStore({str(path)!r}); "
                               "s.append([{'id': '1', 'caption': 'a'}]); print('held', flush=True); sys.stdin.read()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        reader = CaptionStore(path)                  # reading which ids are done takes no lock (torchrun ranks)
        assert reader.is_done("1")
        with pytest.raises(FileLockedError, match=rf"{path} is being written by pid {holder.pid} \(python"):
            reader.append([{"id": "2", "caption": "b"}])
    finally:
        holder.communicate("")
    assert reader.append([{"id": "1", "caption": "dup"}, {"id": "2", "caption": "b"}]) == 1   # free again
    assert [r["id"] for r in lines(path)] == ["1", "2"]


def test_stores_of_one_process_share_the_lock_and_see_each_others_lines(tmp_path):
    path = tmp_path / "c.jsonl"
    first, second = CaptionStore(path), CaptionStore(path)
    assert first.append([{"id": "1", "caption": "a"}]) == 1
    assert second.append([{"id": "1", "caption": "dup"}, {"id": "2", "caption": "b"}]) == 1
    assert first.append([{"id": "2", "caption": "dup"}]) == 0
    assert [r["id"] for r in lines(path)] == ["1", "2"]


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
