"""The rehearsal profile's parts: real paintings in Artpedia's schema behind a loopback server, fetched by the real
downloader, and `replica:` model specs built once (the whole profile runs end to end in .ci/run)."""
import json

from PIL import Image

from artcap_lib.config import load_profile
from artcap_lib.data.artpedia import load_artworks, validate_entries
from artcap_lib.data.download import download_images
from artcap_lib.data.rehearsal import museum_artpedia, museum_dir, museum_objects, serve_paintings
from artcap_lib.model_names import locate


def test_museum_paintings_in_artpedias_schema_come_through_the_real_downloader(tmp_path):
    assert len(museum_objects()) == 174
    with serve_paintings() as url:
        artpedia = museum_artpedia(url, train=2, val=1, test=1)
        assert validate_entries(artpedia) == []
        path = tmp_path / "artpedia.json"
        path.write_text(json.dumps(artpedia))
        report = download_images(load_artworks(path), tmp_path / "run", progress=False)
    assert report.counts["ok"] == 4 and report.excluded == []
    assert [e["split"] for e in artpedia.values()] == ["train", "train", "val", "test"]
    for art_id, entry in report.kept.items():
        with Image.open(tmp_path / "run" / entry["file_path"]) as got, Image.open(museum_dir() / f"{art_id}.jpg") as real:
            assert got.size == real.size                   # under 1000 px: stored as served, byte for byte
        assert entry["visual_sentences"] and entry["title"]


def test_replica_specs_are_built_once_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("ARTCAP_REPLICAS", str(tmp_path / "replicas"))
    assert locate("distilbert-base-uncased") == "distilbert-base-uncased"      # not a replica spec: as given
    first = locate("replica:distilbert-base-uncased")
    stamp = (tmp_path / "replicas" / "distilbert-base-uncased" / "config.json").stat().st_mtime_ns
    again = locate("replica:distilbert-base-uncased", paths=None)
    assert first == again and (tmp_path / "replicas" / "distilbert-base-uncased" / "config.json").stat().st_mtime_ns == stamp


def test_the_rehearsal_profile_is_the_paper_path_on_replicas():
    cfg, paper = load_profile("rehearsal"), load_profile("paper")
    assert cfg.data.source == "rehearsal" and not cfg.data.align_with_authors
    for section in ("captioning", "blip", "longclip"):       # a replica is named by the hub id or the URL's path
        published = getattr(paper, section).model.removeprefix("https://storage.googleapis.com/")
        assert getattr(cfg, section).model == "replica:" + published.replace("/longclip-L.pt", "")
    assert cfg.metrics.bertscore_model == "replica:" + paper.metrics.bertscore_model
    assert cfg.captioning.prompt == paper.captioning.prompt and cfg.blip.image_size == paper.blip.image_size


def test_blip_finetune_and_longclip_run_on_the_replicas_under_torchrun(tmp_path):
    """`artcap blip finetune` and `artcap longclip run` on the hub-faithful replicas with two CPU processes (gloo),
    on real paintings; the one-process path is the rehearsal profile's own run in CI."""
    import os
    import socket
    import subprocess
    import sys

    from artcap_lib.captioning.step import run as run_captioning
    from artcap_lib.config import RunPaths
    from artcap_lib.data.step import run as prepare_data
    from artcap_lib.files import read_json
    sets = {"run_dir": str(tmp_path / "run"), "data.demo_train": 4, "data.demo_val": 2, "data.demo_test": 2,
            "captioning.max_new_tokens": 4, "blip.queue_size": 4, "blip.k_test": 2, "blip.batch_size": 2,
            "longclip.batch_size": 2}
    env = {**os.environ, "ARTCAP_REPLICAS": str(tmp_path / "replicas"), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "ARTCAP_BLIP_CACHE": str(tmp_path / "blip-original")}      # the original layout's conversion
    os.environ["ARTCAP_REPLICAS"] = env["ARTCAP_REPLICAS"]
    try:
        cfg = load_profile("rehearsal", sets)
        paths = RunPaths.for_profile(cfg)
        prepare_data(cfg, paths, progress=False)
        run_captioning(cfg, paths, progress=False)
    finally:
        del os.environ["ARTCAP_REPLICAS"]
    flags = [arg for key, value in sets.items() for arg in ("--set", f"{key}={value}")]
    for command in (["blip", "finetune", "--variant", "human"], ["longclip", "run", "--variant", "human"]):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
                               "--master_addr", "127.0.0.1", "--master_port", str(port), "-m", "artcap_lib.cli",
                               *command, "--profile", "rehearsal", *flags],
                              capture_output=True, text=True, timeout=900, env=env)
        assert done.returncode == 0, (command, done.stderr[-3000:])
    for model in ("blip", "longclip"):
        record = read_json(paths.fine_tune_record(model, "human"))
        assert record["world_size"] == 2 and (paths.variant_model(model, "human") / "config.json").is_file()
    one = subprocess.run([sys.executable, "-m", "artcap_lib.cli", "blip", "finetune", "--variant", "synthetic",
                          "--profile", "rehearsal", *flags], capture_output=True, text=True, timeout=900, env=env)
    assert one.returncode == 0, one.stderr[-3000:]                        # and in one process
    assert read_json(paths.fine_tune_record("blip", "synthetic"))["world_size"] == 1
    assert read_json(paths.retrieval_model("longclip") / "results.json")["query_sets"]["artpedia"]["variants"]["human"]
