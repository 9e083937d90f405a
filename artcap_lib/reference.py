"""The authors' published artefacts (github.com/jcgohr/artwork-caption-gen at a pinned commit).

Users get them downloaded from that commit and SHA-256-checked into a cache; tests and offline machines point
ARTCAP_REFERENCE_DIR at a local mirror with the same layout (checked against the same hashes). Nothing of
theirs is committed here: only the file names and their hashes.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import urllib.request
from pathlib import Path
from typing import Any

from artcap_lib.files import atomic_write_bytes, sha256_file

COMMIT = "922787d3a38c358385091b8c85984aac475773c7"
BASE_URL = f"https://raw.githubusercontent.com/jcgohr/artwork-caption-gen/{COMMIT}/"
_RUNS = "results/retrieval_experiment"
SHA256 = {
    "captions/train_captions.json": "8211be957389758d2e6a2450f1bdc60a68fc950477405ea467dc834a9a6f61e3",
    "captions/val_captions.json": "a21fade20f7258e8f19602aace044c9b7f52680d424b37924f1f682d18d97e96",
    "captions/test_captions.json": "9ceb3df07e205c48e5b514323db59755642132193b4c45cdec6ecf36eb920eee",
    "captions/generated_queries.json": "d604ec7d759946bdeec01dd70be3b2106b2bec8ac196f4fb46e0f04f91b294f4",
    "metrics/LlamaCaptioner.tsv": "549b81e34bf40c0a69c210530f34dffa28b39a8428ade7ed52b89057ae2a55e6",
    "misc/stats.json": "992c1f54b18608bd9dcb0761e08ace34fb8d0bd2f7e5947b4ce4fa14df41f22f",
    "misc/test_artpedia.json": "c4dca0390fc6a4240dee5d216820ac9d6c34427253b341c5ec1de12769d29c43",
    f"{_RUNS}/qrel.json": "7a70420104084851c58e4390b3fdd4078a7d6d0d7ed8471127d7655095f578da",
    f"{_RUNS}/blip_results/Artpedia_queries/baseline_scores.json": "4e6ad0534d284b695bdd4c6d2760cb95f47257f9fae43df05fba4f28a3697ff0",
    f"{_RUNS}/blip_results/Artpedia_queries/baseline_means.json": "94b34f5c973092420bc9c797ec380a91572f5d575c3a32a4bcac1a2e2ec21235",
    f"{_RUNS}/blip_results/Artpedia_queries/true_scores.json": "9dba2d5f7c50b08388639934cc86035fb9bdbfdb02ff1aef7fd976091f499627",
    f"{_RUNS}/blip_results/Artpedia_queries/true_means.json": "03e39b0b29f89c4bf0d8b87a26f8925f9329acb1322807deefebd7d02b8dc423",
    f"{_RUNS}/blip_results/Artpedia_queries/llava_scores.json": "f1f1874e9374325181b5a9bb00758963f8119af213d0096d5b0e6d47452106b0",
    f"{_RUNS}/blip_results/Artpedia_queries/llava_means.json": "d858c8f760c01e3e8b8307910d044c4dfa2b4eebe5ed7b8bb7edfd4def263642",
    f"{_RUNS}/blip_results/Artpedia_queries/llava_true_blip_fused.json": "95467b6af6695e457fec9fb255e174840658a896a5abb4e61571031fe4891b62",
    f"{_RUNS}/blip_results/Llama_queries/baseline_scores.json": "e7b18a151768ca2854f52ac39ed752f17bbbaf2473b9b07dcba6f32073f83c53",
    f"{_RUNS}/blip_results/Llama_queries/baseline_mean.json": "be8a3966adf790e1994fd6667ce501b5f56b1ca7f82bcbc08e0c6b8c33f368f6",
    f"{_RUNS}/blip_results/Llama_queries/true_scores.json": "40be51a5e3d3730d0875e2931bb2fef47316aa58aae0696fbec3cccd5e192534",
    f"{_RUNS}/blip_results/Llama_queries/true_mean.json": "7bf1a6bdc998327d159cb35cbece71578c6f4c047e4a0f9fa0a3cd27362e5bac",
    f"{_RUNS}/blip_results/Llama_queries/llava_scores.json": "be5be22c53025b0bb79c5f4bfe1263e0f9ea2046f12b1d28c3c69f9df505e111",
    f"{_RUNS}/blip_results/Llama_queries/llava_mean.json": "5b11e55bbf3a2cb4c2be5399ce1dc904fd7e4d46136e691085873737529affea",
    f"{_RUNS}/longclip_results/Artpedia_queries/baseline_scores.json": "a741fb33aa96c26dd018e7e96fc94ff7ba7e8f48cdc2b4a2d0ec7efe1a731e98",
    f"{_RUNS}/longclip_results/Artpedia_queries/baseline_means.json": "dfd9ee6c46dc6a25a65ba9ff46122c5472e33a99961dbb046be0afe04e65ce51",
    f"{_RUNS}/longclip_results/Artpedia_queries/true_scores.json": "bfd4459d0923934d5a332cd823fe2be4010fc7b42e8ca76305149343ac9080a9",
    f"{_RUNS}/longclip_results/Artpedia_queries/true_means.json": "9122c207909d9a6452c30a03dd3e3b1ec3a4a9423bdce136e5fd9b2dc46c5b2d",
    f"{_RUNS}/longclip_results/Artpedia_queries/llava_scores.json": "f1dc912827bbaa0b896b00ee53228484b25b0ab8fb9d74f0a35b9c06aa42c729",
    f"{_RUNS}/longclip_results/Artpedia_queries/llava_means.json": "c75e223354940d1d7fc9be2fe4df1f341097a9ff57d02d89b8bc6a43340490b0",
    f"{_RUNS}/longclip_results/Artpedia_queries/llava_true_clip_fused.json": "a7e371cca4a5b2ca7b637e4b5a8df35924116290c29e1448c2181a8f68eb4c85",
    f"{_RUNS}/longclip_results/Llama_queries/baseline_scores.json": "ba9922d3d6cf306eccef6de28828328d646991e3116e8b6a222da929ab81b7be",
    f"{_RUNS}/longclip_results/Llama_queries/baseline_means.json": "f877b0ed7a789dca197e28a6bd1ebf197db9d769f6e2d61d785ef5eb4638c41a",
    f"{_RUNS}/longclip_results/Llama_queries/true_scores.json": "d9bb84af74315abc14ba604a986fa41227ce5f6b4cf9dc268c9b2ddc0da16595",
    f"{_RUNS}/longclip_results/Llama_queries/true_means.json": "b6a98746344663bd78f0e980d235f8cb7f04e4ed90704e0e2bc64a47f6ddc063",
    f"{_RUNS}/longclip_results/Llama_queries/llava_scores.json": "8f768cdaa21a5c03c03fc74b761e84b0271a5c44e1a3e65ab18d22032e46f6c7",
    f"{_RUNS}/longclip_results/Llama_queries/llava_means.json": "81555632177e07ace56763549e0e2d88a768cadeaa79b276617acaebf2ef1baf",
}
CAPTION_FILES = {"train": "captions/train_captions.json", "val": "captions/val_captions.json",
                 "test": "captions/test_captions.json"}
PAPER_SPLIT_SIZES = {"train": 2173, "val": 325, "test": 333}


class ReferenceArtefactError(RuntimeError):
    pass


def mirror_dir() -> Path | None:
    """The local mirror named by ARTCAP_REFERENCE_DIR, if any."""
    value = os.environ.get("ARTCAP_REFERENCE_DIR")
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "artcap" / "reference" / COMMIT


def is_available(relpath: str) -> bool:
    """Whether a file can be had without error (in the mirror, or downloadable when there is no mirror)."""
    mirror = mirror_dir()
    return (mirror / relpath).is_file() if mirror else True


def reference_file(relpath: str) -> Path:
    """Path of one verified artefact: from the mirror, else the cache, else downloaded from the pinned commit."""
    if relpath not in SHA256:
        raise ReferenceArtefactError(f"{relpath!r} is not one of the pinned reference artefacts")
    mirror = mirror_dir()
    if mirror is not None:
        path = mirror / relpath
        if not path.is_file():
            raise ReferenceArtefactError(f"{path} not found in ARTCAP_REFERENCE_DIR={mirror}")
    else:
        path = cache_dir() / relpath
        if path.is_file() and sha256_file(path) != SHA256[relpath]:
            path.unlink()                 # a damaged cache entry (older code kept bad downloads): fetch it again
        if not path.is_file():
            _download(relpath, path)
    digest = sha256_file(path)
    if digest != SHA256[relpath]:
        raise ReferenceArtefactError(f"{path}: SHA-256 {digest} does not match the pinned {SHA256[relpath]} "
                             f"(commit {COMMIT}); the file is not the authors' published version")
    return path


def _download(relpath: str, dest: Path) -> None:
    url = os.environ.get("ARTCAP_REFERENCE_URL", BASE_URL).rstrip("/") + "/" + relpath
    request = urllib.request.Request(url, headers={"User-Agent": "artcap (paper reproduction; reference artefacts)"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            data = response.read()
    except OSError as exc:
        raise ReferenceArtefactError(f"cannot download {url}: {exc}. Offline? Set ARTCAP_REFERENCE_DIR to a local copy "
                             f"of the repository at commit {COMMIT}.") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256[relpath]:         # checked before it is cached: a bad download is never kept
        raise ReferenceArtefactError(f"{url}: SHA-256 {digest} does not match the pinned {SHA256[relpath]} (commit "
                                     f"{COMMIT}); not cached, the next run downloads it again")
    atomic_write_bytes(dest, data)


def load_json(relpath: str) -> Any:
    with open(reference_file(relpath), encoding="utf-8") as fh:
        return json.load(fh)


def split_ids() -> dict[str, list[str]]:
    """The authors' split ids (train 2173 / val 325 / test 333), from their caption files, in file order.

    A split whose file the mirror lacks is left out rather than guessed."""
    return {split: list(load_json(rel)) for split, rel in CAPTION_FILES.items() if is_available(rel)}


def llava_captions(splits=("train", "val", "test")) -> dict[str, str]:
    """{artpedia id: LLaVA-1.5-7B caption} as published (the 'LlavaCaptioner' field)."""
    out: dict[str, str] = {}
    for split in splits:
        if is_available(CAPTION_FILES[split]):
            out.update({k: v["LlavaCaptioner"] for k, v in load_json(CAPTION_FILES[split]).items()})
    return out


def llama_queries() -> dict[str, str]:
    """The 333 Llama-3.2-11B-Vision-Instruct retrieval queries of the test images."""
    return {k: v["LlamaCaptioner"] for k, v in load_json("captions/generated_queries.json").items()}


def experiment1_rows() -> list[dict[str, str]]:
    """The authors' per-image Experiment 1 table (train split), as strings, columns as stored.

    Read without CSV quoting: captions contain quote characters that are not field delimiters."""
    with open(reference_file("metrics/LlamaCaptioner.tsv"), encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
