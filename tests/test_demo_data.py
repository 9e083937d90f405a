import hashlib
import json

from artcap_lib.data.artpedia import human_caption, load_artworks
from artcap_lib.data.demo import COLOURS, KINDS, DemoSizes, generate_collection

SMALL = DemoSizes(train=12, val=4, test=6, pretrain=10)


def digest(folder):
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            h.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes_other_seed_other_collection(tmp_path):
    generate_collection(tmp_path / "a", SMALL, image_size=48, seed=3)
    generate_collection(tmp_path / "b", SMALL, image_size=48, seed=3)
    generate_collection(tmp_path / "c", SMALL, image_size=48, seed=4)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a") != digest(tmp_path / "c")


def test_collection_is_valid_artpedia_with_disjoint_pool_and_ground_truth(tmp_path):
    paths = generate_collection(tmp_path, SMALL, image_size=48, seed=0)
    artworks = load_artworks(paths["artworks"])
    pool = load_artworks(paths["pretrain_pool"])
    scenes = json.loads(paths["scenes"].read_text())
    assert [sum(a["split"] == s for a in artworks.values()) for s in ("train", "val", "test")] == [12, 4, 6]
    assert len(pool) == 10 and not set(pool) & set(artworks)
    assert set(scenes) == set(artworks) | set(pool)
    for art_id, entry in artworks.items():
        assert (tmp_path / entry["file_path"]).is_file()
        main = scenes[art_id]["objects"][0]
        assert main["kind"] in KINDS and main["colour"] in COLOURS
        # the human caption is written from the scene: it names the main object and its colour
        assert f"{main['colour']} {main['kind']}" in human_caption(entry)
        assert scenes[art_id]["background"] in human_caption(entry)


def test_phrasing_varies_across_artworks(tmp_path):
    paths = generate_collection(tmp_path, DemoSizes(40, 0, 0, 0), image_size=32, seed=1)
    firsts = {a["visual_sentences"][0].split()[1] for a in load_artworks(paths["artworks"]).values()}
    assert len(firsts) >= 3
