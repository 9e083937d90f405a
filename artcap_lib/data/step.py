"""Step 01: put a profile's collection into the run directory, in the Artpedia schema.

demo         generate the procedural collection (+ pre-training pool and ground-truth scenes)
artpedia     artpedia.json (local, or artpedia.zip downloaded), images downloaded, splits aligned with the authors'
imagefolder  a folder in Hugging Face's ImageFolder layout (data.path; `imagefolder.py`), images left where they
             are, split by its own split column / folders, by data.split_fractions or by data.splits_file (`collection.py`:
             a former run's data/splits.json); with data.demo_pretrain > 0 the
             demo's procedural pre-training pool is generated too, for the pocket models of the collection profile
semart       SemArt's folder (semart_train/val/test.csv + Images/; `semart.py`), its own splits
artcap       ArtCap's ArtCap.json + images (`artcapset.py`), split by data.split_fractions
parquet      a Hugging Face Hub dataset's Parquet shards (`hfparquet.py`): images written into data/images/, split
             by the shard names, a split column or data.split_fractions
csv          one CSV/TSV table, a museum export (`csvtable.py`): local images left in place, http(s) ones downloaded
             into data/images/ by the Artpedia downloader; split by its split column or data.split_fractions
             (semart, artcap and csv, like imagefolder, also generate the demo's pre-training pool when
             data.demo_pretrain > 0)
reference    no images: the authors' split ids and the human captions of their Experiment 1 table

Writes data/artworks.json, data/excluded.json, data/splits.json (and data/split_alignment.json for artpedia).
"""
from __future__ import annotations

import io
import urllib.request
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

from artcap_lib import reference
from artcap_lib.data import collection
from artcap_lib.data.artpedia import ArtpediaError, SPLITS, load_artworks, validate_entries
from artcap_lib.data.demo import DemoSizes, generate_collection
from artcap_lib.data.download import USER_AGENT, download_images
from artcap_lib.files import atomic_write_bytes, read_json, write_json


# the collections a reader turns into artworks (data.path is what each reads)
COLLECTIONS = {"imagefolder": "the collection's folder", "semart": "SemArt's folder (semart_train.csv, ..., Images/)",
               "artcap": "the folder holding ArtCap.json", "csv": "the CSV/TSV file",
               "parquet": "a Hugging Face Hub dataset's folder of Parquet shards (or one .parquet file)"}


def run(cfg, paths, progress: bool = True) -> dict[str, Any]:
    """Run step 01 for a Profile into RunPaths; return a summary (also written as data/summary.json)."""
    source = cfg.data.source
    paths.data.mkdir(parents=True, exist_ok=True)
    if source == "demo":
        d = cfg.data
        generate_collection(paths.data, DemoSizes(d.demo_train, d.demo_val, d.demo_test, d.demo_pretrain),
                            image_size=d.demo_image_size, seed=cfg.seed)
        write_json(paths.excluded, [])
        artworks = load_artworks(paths.artworks)
    elif source == "artpedia":
        artworks = _prepare_artpedia(cfg, paths, progress)
    elif source == "rehearsal":
        artworks = _prepare_rehearsal(cfg, paths, progress)
    elif source in COLLECTIONS:
        artworks = _prepare_collection(cfg, paths, progress)
    elif source == "reference":
        artworks = _prepare_reference(paths)
    else:
        raise ValueError(f"data.source must be demo, artpedia, {', '.join(COLLECTIONS)}, rehearsal or reference, "
                         f"not {source!r}")
    by_split = {s: [k for k, v in artworks.items() if v["split"] == s] for s in SPLITS}
    if source == "reference":
        by_split = reference.split_ids()
    write_json(paths.splits, by_split)
    summary = {"source": source, "artworks": len(artworks), "splits": {s: len(v) for s, v in by_split.items()},
               "excluded": len(read_json(paths.excluded))}
    write_json(paths.data_summary, summary)
    return summary


def fetch_artpedia_json(source: str, url: str, dest_dir: Path) -> Path:
    """artpedia.json from a local .json, a local .zip, or (source "") the dataset's zip at `url`."""
    dest = dest_dir / "artpedia.json"
    if source and Path(source).suffix == ".json":
        return Path(source)
    if source:
        blob = Path(source).read_bytes()
    else:
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        with urllib.request.urlopen(request, timeout=120) as response:
            blob = response.read()
        atomic_write_bytes(dest_dir / "artpedia.zip", blob)
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        names = [n for n in archive.namelist() if n.endswith("artpedia.json")]
        if not names:
            raise ArtpediaError(Path(source or url), [])
        atomic_write_bytes(dest, archive.read(names[0]))
    return dest


def _prepare_artpedia(cfg, paths, progress: bool) -> dict[str, Any]:
    return _download_collection(load_artworks(fetch_artpedia_json(cfg.data.artpedia_json, cfg.data.artpedia_url,
                                                                  paths.data)), cfg, paths, progress)


def _prepare_rehearsal(cfg, paths, progress: bool) -> dict[str, Any]:
    """Real paintings served on loopback for the download, then exactly the artpedia path (data/rehearsal.py)."""
    from artcap_lib.data.rehearsal import museum_artpedia, serve_paintings
    d = cfg.data
    with serve_paintings() as url:
        path = paths.data / "artpedia.json"
        write_json(path, museum_artpedia(url, d.demo_train, d.demo_val, d.demo_test))
        return _download_collection(load_artworks(path), cfg, paths, progress)


def read_collection(cfg, paths) -> dict[str, Any]:
    """The artworks of data.path as data.source's reader reads them (checked before anything is written; Parquet
    shards then write their images into the run)."""
    d = cfg.data
    if not d.path:
        raise collection.CollectionError(f"data.source {d.source} needs data.path: {COLLECTIONS[d.source]} "
                              "(--set data.path=...)")
    if d.source == "semart":
        from artcap_lib.data.semart import read_semart
        return read_semart(d.path, d.encoding)
    if d.source == "artcap":
        from artcap_lib.data.artcapset import read_artcap
        return read_artcap(d.path)
    if d.source == "csv":
        from artcap_lib.data.csvtable import read_csv_collection
        return read_csv_collection(d.path, d.caption_column, d.id_column, d.image_column, d.encoding)
    if d.source == "parquet":
        from artcap_lib.data.hfparquet import read_hfparquet
        return read_hfparquet(d.path, paths.data / "images", d.caption_column, d.id_column, d.image_column)
    from artcap_lib.data.imagefolder import read_imagefolder
    return read_imagefolder(d.path, d.caption_column, d.id_column)


def _prepare_collection(cfg, paths, progress: bool) -> dict[str, Any]:
    d = cfg.data
    artworks = read_collection(cfg, paths)
    # before any download: an image that fails to arrive must not move the others to another split
    if d.splits_file:
        collection.reuse_splits(artworks, d.splits_file)
        how = {"source": "data.splits_file", "file": str(Path(d.splits_file).resolve())}
    else:
        assigned = collection.assign_splits(artworks, d.split_fractions, cfg.seed)
        how = {"source": "the collection's own" if not sum(assigned.values()) else "seeded draw",
               "fractions": d.split_fractions, "seed": cfg.seed, "assigned": assigned,
               "kept_from_source": len(artworks) - sum(assigned.values())}
    if d.demo_pretrain:             # the pocket models' pre-training pool (procedural, disjoint by construction)
        generate_collection(paths.data, DemoSizes(0, 0, 0, d.demo_pretrain), image_size=d.demo_image_size,
                            seed=cfg.seed)
    remote = {k: v for k, v in artworks.items() if not v.get("file_path")}     # csv rows that name a URL
    excluded: list[dict[str, Any]] = []
    if remote:
        kept, excluded = _download(remote, cfg, paths, progress)
        artworks = {k: kept.get(k, v) for k, v in artworks.items() if k in kept or k not in remote}
    write_json(paths.excluded, excluded)
    write_json(paths.artworks, artworks)
    collection.record_splits(paths.data, artworks, how)
    return artworks


def _download(artworks: dict[str, Any], cfg, paths, progress: bool) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(kept entries with file_path, exclusion records) of the images downloaded into the run."""
    report = download_images(artworks, paths.data, workers=cfg.data.download_workers, progress=progress,
                             max_side=cfg.data.max_side, max_pixels=cfg.data.max_pixels)
    for warning in report.warnings:
        print(f"warning: {warning}")
    return report.kept, sorted(report.excluded, key=lambda r: r["id"])


def _download_collection(artpedia: dict[str, Any], cfg, paths, progress: bool) -> dict[str, Any]:
    kept, excluded = _download(artpedia, cfg, paths, progress)
    if cfg.data.align_with_authors:
        kept, dropped, alignment = align_splits(kept, reference.split_ids())
        excluded = excluded + dropped
        write_json(paths.data / "split_alignment.json", alignment)
    write_json(paths.excluded, sorted(excluded, key=lambda r: r["id"]))
    write_json(paths.artworks, kept)
    return kept


def align_splits(artworks: dict[str, Any], authors: dict[str, list[str]]) -> tuple[dict, list[dict], dict]:
    """Give every entry the split the authors used; entries the authors had filtered out are excluded.

    Returns (aligned entries, exclusion records, a report of the differences)."""
    split_of = {i: s for s, ids in authors.items() for i in ids}
    aligned, dropped, moved = {}, [], []
    for key, entry in artworks.items():
        if key not in split_of:
            dropped.append({"id": key, "url": entry.get("img_url"), "transient": False,
                            "reason": "not in the authors' filtered splits"})
            continue
        if entry["split"] != split_of[key]:
            moved.append({"id": key, "artpedia_split": entry["split"], "authors_split": split_of[key]})
        aligned[key] = dict(entry, split=split_of[key])
    missing = {s: [i for i in ids if i not in artworks] for s, ids in authors.items()}
    report = {"authors": {s: len(ids) for s, ids in authors.items()},
              "ours": dict(Counter(v["split"] for v in aligned.values())),
              "missing_from_ours": missing, "moved": moved, "dropped": [d["id"] for d in dropped]}
    return aligned, dropped, report


def _prepare_reference(paths) -> dict[str, Any]:
    """The reference profile has no images: each train artwork carries the human caption the authors scored."""
    split_of = {i: s for s, ids in reference.split_ids().items() for i in ids}
    artworks = {}
    for row in reference.experiment1_rows():
        artworks[row["id"]] = {"title": "", "img_url": "", "year": None, "visual_sentences": [row["True_caption"]],
                               "contextual_sentences": [], "split": split_of.get(row["id"], "train")}
    problems = [p for p in validate_entries(artworks, require_urls=False) if p.severity == "error"]
    if problems:
        raise ArtpediaError(paths.artworks, problems)
    write_json(paths.artworks, artworks)
    write_json(paths.excluded, [])
    return artworks
