"""Step 01: put a profile's collection into the run directory, in the Artpedia schema.

demo         generate the procedural collection (+ pre-training pool and ground-truth scenes)
artpedia     artpedia.json (local, or artpedia.zip downloaded), images downloaded, splits aligned with the authors'
imagefolder  a folder in Hugging Face's ImageFolder layout (data.path; `imagefolder.py`), images left where they
             are, split by its own split column / folders, by data.split_fractions or by data.splits_file (`splits.py`:
             a former run's data/splits.json); with data.demo_pretrain > 0 the
             demo's procedural pre-training pool is generated too, for the pocket models of the collection profile
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
from artcap_lib.data import splits
from artcap_lib.data.artpedia import ArtpediaError, SPLITS, load_artworks, validate_entries
from artcap_lib.data.demo import DemoSizes, generate_collection
from artcap_lib.data.download import USER_AGENT, download_images
from artcap_lib.files import atomic_write_bytes, read_json, write_json


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
    elif source == "imagefolder":
        artworks = _prepare_imagefolder(cfg, paths)
    elif source == "reference":
        artworks = _prepare_reference(paths)
    else:
        raise ValueError(f"data.source must be demo, artpedia, imagefolder, rehearsal or reference, not {source!r}")
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


def _prepare_imagefolder(cfg, paths) -> dict[str, Any]:
    from artcap_lib.data.imagefolder import assign_splits, read_imagefolder
    d = cfg.data
    if not d.path:
        raise ValueError("data.source imagefolder needs data.path: the collection's folder (--set data.path=DIR)")
    artworks = read_imagefolder(d.path, d.caption_column, d.id_column)      # fails before anything is written
    if d.splits_file:
        splits.reuse(artworks, d.splits_file)
        how = {"source": "data.splits_file", "file": str(Path(d.splits_file).resolve())}
    else:
        assigned = assign_splits(artworks, d.split_fractions, cfg.seed)
        how = {"source": "collection" if not sum(assigned.values()) else "seeded draw", "fractions": d.split_fractions,
               "seed": cfg.seed, "assigned": assigned, "kept_from_source": len(artworks) - sum(assigned.values())}
    if d.demo_pretrain:             # the pocket models' pre-training pool (procedural, disjoint by construction)
        generate_collection(paths.data, DemoSizes(0, 0, 0, d.demo_pretrain), image_size=d.demo_image_size,
                            seed=cfg.seed)
    write_json(paths.excluded, [])
    write_json(paths.artworks, artworks)
    splits.record(paths.data, artworks, how)
    return artworks


def _download_collection(artpedia: dict[str, Any], cfg, paths, progress: bool) -> dict[str, Any]:
    report = download_images(artpedia, paths.data, workers=cfg.data.download_workers, progress=progress,
                             max_side=cfg.data.max_side, max_pixels=cfg.data.max_pixels)
    kept, excluded = report.kept, report.excluded
    for warning in report.warnings:
        print(f"warning: {warning}")
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
