"""The authors' artefacts: pinned, hash-checked, from a mirror or downloaded; and step 01 of the reference profile."""
import functools
import shutil
import threading
from collections import Counter
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from artcap_lib import reference
from artcap_lib.data.step import align_splits, run as prepare_data
from artcap_lib.files import read_json
from artcap_lib.config import RunPaths
from artcap_lib.config import load_profile


def test_split_ids_and_captions_from_the_mirror(reference_dir):
    splits = reference.split_ids()
    assert len(splits["train"]) == 2173 and len(splits["test"]) == 333
    assert not set(splits["train"]) & set(splits["test"])
    captions = reference.llava_captions(("test",))
    assert set(captions) == set(splits["test"]) and all(captions.values())
    rows = reference.experiment1_rows()
    assert len(rows) == 2173 and rows[0]["id"] == "2" and "meteor_score" in rows[0]


def test_a_tampered_mirror_is_refused(reference_dir, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    shutil.copytree(f"{reference_dir}/captions", mirror / "captions")
    path = mirror / "captions" / "test_captions.json"
    path.write_bytes(path.read_bytes().replace(b"The image", b"This image", 1))
    monkeypatch.setenv("ARTCAP_REFERENCE_DIR", str(mirror))
    with pytest.raises(reference.ReferenceArtefactError, match="does not match the pinned"):
        reference.llava_captions(("test",))
    with pytest.raises(reference.ReferenceArtefactError, match="not found"):
        reference.reference_file("results/retrieval_experiment/qrel.json")


def test_download_from_the_pinned_commit_checks_hashes_and_caches(reference_dir, tmp_path, monkeypatch):
    hits = Counter()

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self):
            hits[self.path] += 1
            super().do_GET()

        def log_message(self, *args):
            pass
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=reference_dir))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        monkeypatch.delenv("ARTCAP_REFERENCE_DIR")
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
        monkeypatch.setenv("ARTCAP_REFERENCE_URL", f"http://127.0.0.1:{httpd.server_port}/")
        assert len(reference.llama_queries()) == 333
        assert len(reference.llama_queries()) == 333          # second time from the cache
        assert hits == Counter({"/captions/generated_queries.json": 1})
        cached = tmp_path / "cache" / "artcap" / "reference" / reference.COMMIT / "captions/generated_queries.json"
        assert cached.is_file()
        with pytest.raises(reference.ReferenceArtefactError, match="cannot download"):
            reference.reference_file("captions/val_captions.json")    # not served here: a clear error
    finally:
        httpd.shutdown()


def test_reference_profile_step_01(reference_dir, tmp_path):
    cfg = load_profile("reference", {"run_dir": str(tmp_path)})
    summary = prepare_data(cfg, RunPaths.for_profile(cfg))
    assert summary["artworks"] == 2173 and summary["splits"]["test"] == 333
    artworks = read_json(tmp_path / "data" / "artworks.json")
    assert artworks["2"]["visual_sentences"][0].startswith("It is also stylistically earlier")


def test_align_splits_follows_the_authors_and_reports_differences():
    ours = {i: {"split": s, "img_url": f"u{i}"} for i, s in [("1", "train"), ("2", "val"), ("3", "test"), ("4", "train")]}
    authors = {"train": ["1", "2"], "val": [], "test": ["3", "5"]}
    aligned, dropped, report = align_splits(ours, authors)
    assert {k: v["split"] for k, v in aligned.items()} == {"1": "train", "2": "train", "3": "test"}
    assert [d["id"] for d in dropped] == ["4"] and dropped[0]["reason"] == "not in the authors' filtered splits"
    assert report["moved"] == [{"id": "2", "artpedia_split": "val", "authors_split": "train"}]
    assert report["missing_from_ours"]["test"] == ["5"]


def test_paper_profile_step_01_from_a_zip_with_images_and_aligned_splits(reference_dir, tmp_path):
    import io
    import json
    import zipfile
    from PIL import Image

    images = tmp_path / "site"
    images.mkdir()
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        Image.new("RGB", (40, 30), (10, 200, 30)).save(images / name)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(SimpleHTTPRequestHandler, directory=images))
    httpd.RequestHandlerClass.log_message = lambda *a: None
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_port}/"
    # "10092" is a test id of the authors, "2" a train id; "123456" was filtered out by them
    artpedia = {i: {"title": i, "img_url": base + n, "year": 1600, "visual_sentences": ["A scene."],
                    "contextual_sentences": [], "split": "val"} for i, n in [("10092", "a.jpg"), ("2", "b.jpg"),
                                                                           ("123456", "c.jpg")]}
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("artpedia/artpedia.json", json.dumps(artpedia))
    (tmp_path / "artpedia.zip").write_bytes(archive.getvalue())
    try:
        cfg = load_profile("paper", {"run_dir": str(tmp_path / "run"), "data.artpedia_json": str(tmp_path / "artpedia.zip")})
        summary = prepare_data(cfg, RunPaths.for_profile(cfg), progress=False)
    finally:
        httpd.shutdown()
    data = tmp_path / "run" / "data"
    artworks = read_json(data / "artworks.json")
    assert {k: v["split"] for k, v in artworks.items()} == {"10092": "test", "2": "train"}
    assert all((data / v["file_path"]).is_file() for v in artworks.values())
    assert [r["id"] for r in read_json(data / "excluded.json")] == ["123456"]
    alignment = read_json(data / "split_alignment.json")
    assert len(alignment["moved"]) == 2 and len(alignment["missing_from_ours"]["test"]) == 332
    assert summary["excluded"] == 1


def test_a_download_that_fails_its_hash_is_never_cached_and_a_bad_cache_entry_is_fetched_again(
        reference_dir, tmp_path, monkeypatch):
    import shutil
    served = tmp_path / "served"
    shutil.copytree(f"{reference_dir}/captions", served / "captions")
    good = (served / "captions/generated_queries.json").read_bytes()
    (served / "captions/generated_queries.json").write_bytes(good.replace(b"painting", b"pAinting", 1))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(SimpleHTTPRequestHandler, directory=served))
    httpd.RequestHandlerClass.log_message = lambda *a: None
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        monkeypatch.delenv("ARTCAP_REFERENCE_DIR")
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
        monkeypatch.setenv("ARTCAP_REFERENCE_URL", f"http://127.0.0.1:{httpd.server_port}/")
        cached = tmp_path / "cache" / "artcap" / "reference" / reference.COMMIT / "captions/generated_queries.json"
        with pytest.raises(reference.ReferenceArtefactError, match="not cached"):
            reference.reference_file("captions/generated_queries.json")
        assert not cached.exists()
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_bytes(b"left by an older version")             # a bad entry already in the cache
        (served / "captions/generated_queries.json").write_bytes(good)
        assert reference.reference_file("captions/generated_queries.json") == cached
        assert cached.read_bytes() == good
    finally:
        httpd.shutdown()
