"""The demo profile's collection: procedurally painted "artworks" in the real Artpedia schema.

Each image is drawn from a small scene (a background colour, one large main object, a few small ones), and
its human-style visual sentences are written from that same scene with varied phrasing, so later steps can
check whether a caption is *right* (the scene is the ground truth) and retrieval has something to learn.
A disjoint pre-training pool, generated the same way, is what the pocket models learn from before the
experiment, playing the role of web-scale pre-training. Everything is a pure function of the seed.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from artcap_lib.files import write_json

COLOURS = {   # name -> RGB; chosen to stay distinct after JPEG and downscaling
    "red": (200, 30, 35), "blue": (35, 70, 200), "yellow": (235, 205, 40), "green": (40, 150, 60),
    "white": (245, 245, 240), "black": (20, 20, 25), "orange": (240, 130, 20), "purple": (130, 50, 160),
}
BACKGROUNDS = {
    "sky blue": (140, 190, 235), "cream": (240, 228, 200), "dark grey": (70, 72, 78),
    "pale green": (180, 215, 170), "pink": (235, 180, 195), "brown": (120, 85, 55),
}
KINDS = ("circle", "square", "triangle", "star", "house", "tree")
POSITIONS = {"left": 0.25, "centre": 0.5, "right": 0.75}

ARTISTS = ("Aurelio Vance", "Mathilde Oster", "Jonas Bregović", "Clara Whitcombe", "Ilse Marquand",
           "Tomasz Riel", "Beatrix Hollow", "Emil Sørlie", "Paulina Dacosta", "Hugo Lindqvist")
MUSEUMS = ("the Municipal Gallery of Vell", "the Harlan Collection", "the National Museum of Osterby",
           "a private collection in Lyon", "the Rijkstad Museum", "the Castello di Brena")
CITIES = ("Antwerp", "Venice", "Seville", "Prague", "Bruges", "Naples", "Uppsala")


@dataclass(frozen=True)
class DemoSizes:
    train: int = 240
    val: int = 40
    test: int = 60
    pretrain: int = 800


def random_scene(rng: np.random.Generator) -> dict[str, Any]:
    background = str(rng.choice(list(BACKGROUNDS)))
    main = {"kind": str(rng.choice(KINDS)), "colour": str(rng.choice(_colours_against(background))),
            "position": str(rng.choice(list(POSITIONS))), "size": "large"}
    objects = [main]
    free = [p for p in POSITIONS if p != main["position"]]
    for _ in range(int(rng.integers(0, 3))):
        objects.append({"kind": str(rng.choice(KINDS)), "colour": str(rng.choice(_colours_against(background))),
                        "position": free.pop(int(rng.integers(len(free)))), "size": "small",
                        "height": str(rng.choice(["top", "bottom"]))})
    return {"background": background, "objects": objects}


def _colours_against(background: str) -> list[str]:
    # an object never vanishes into its background (a white square on cream, a black one on dark grey)
    clash = {"cream": {"white", "yellow"}, "dark grey": {"black"}, "pale green": {"green"},
             "pink": {"white"}, "brown": {"black", "orange"}, "sky blue": {"blue", "white"}}
    return [c for c in COLOURS if c not in clash.get(background, set())]


def paint(scene: dict[str, Any], size: int, rng: np.random.Generator) -> Image.Image:
    """Render a scene at 2x and downsample (anti-aliasing), with a little brush-stroke texture."""
    s = size * 2
    img = Image.new("RGB", (s, s), BACKGROUNDS[scene["background"]])
    draw = ImageDraw.Draw(img)
    ground = BACKGROUNDS[scene["background"]]
    for _ in range(40):   # visible brushwork in the ground
        x0, y0 = rng.integers(0, s, 2)
        dx, dy = rng.integers(-s // 4, s // 4, 2)
        tone = tuple(min(255, max(0, b + int(d))) for b, d in zip(ground, rng.integers(-18, 19, 3)))
        draw.line([(int(x0), int(y0)), (int(x0 + dx), int(y0 + dy))], fill=tone, width=int(rng.integers(1, 4)))
    for obj in scene["objects"][::-1]:    # small objects first: the main one is painted over them
        large = obj["size"] == "large"
        r = s * (0.19 + 0.03 * rng.random() if large else 0.09 + 0.02 * rng.random())
        cx = s * POSITIONS[obj["position"]] + rng.normal(0, s * 0.02)
        cy = s * (0.5 if large else (0.22 if obj.get("height") == "top" else 0.78)) + rng.normal(0, s * 0.02)
        _draw_kind(draw, obj["kind"], cx, cy, r, COLOURS[obj["colour"]])
    return img.filter(ImageFilter.GaussianBlur(0.6)).resize((size, size), Image.Resampling.LANCZOS)


def _draw_kind(draw: ImageDraw.ImageDraw, kind: str, cx: float, cy: float, r: float, rgb) -> None:
    if kind == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=rgb)
    elif kind == "square":
        draw.rectangle([cx - r * 0.85, cy - r * 0.85, cx + r * 0.85, cy + r * 0.85], fill=rgb)
    elif kind == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r * 0.8), (cx + r, cy + r * 0.8)], fill=rgb)
    elif kind == "star":
        pts = [(cx + (r if i % 2 == 0 else r * 0.45) * math.sin(i * math.pi / 5),
                cy - (r if i % 2 == 0 else r * 0.45) * math.cos(i * math.pi / 5)) for i in range(10)]
        draw.polygon(pts, fill=rgb)
    elif kind == "house":
        draw.rectangle([cx - r * 0.7, cy - r * 0.1, cx + r * 0.7, cy + r * 0.9], fill=rgb)
        draw.polygon([(cx - r * 0.9, cy - r * 0.1), (cx, cy - r), (cx + r * 0.9, cy - r * 0.1)], fill=rgb)
        draw.rectangle([cx - r * 0.15, cy + r * 0.4, cx + r * 0.15, cy + r * 0.9], fill=(60, 40, 30))
    elif kind == "tree":
        draw.rectangle([cx - r * 0.15, cy + r * 0.1, cx + r * 0.15, cy + r], fill=(90, 60, 35))
        draw.ellipse([cx - r * 0.75, cy - r, cx + r * 0.75, cy + r * 0.35], fill=rgb)
    else:
        raise ValueError(f"unknown kind {kind!r}")


_POSITION_PHRASES = {
    "left": ["on the left of the canvas", "at the left", "on the left side of the picture", "towards the left edge"],
    "centre": ["in the centre of the composition", "in the middle of the canvas", "at the centre",
               "right in the middle of the picture"],
    "right": ["on the right of the canvas", "at the right", "on the right side of the picture",
              "towards the right edge"],
}
_MAIN_TEMPLATES = [
    "A large {colour} {kind} {verb} {where}.",
    "The painting shows a big {colour} {kind} {where}.",
    "{Where_cap}, the artist placed a large {colour} {kind}.",
    "{A_colour} {kind} dominates the picture, {where}.",
]
_VERBS = ["stands", "is set", "is painted", "sits"]
_BACKGROUND_TEMPLATES = [
    "The background is painted in {bg}.", "It is set against a {bg} ground.",
    "The ground of the painting is a flat {bg}.", "Behind it, the canvas is covered in {bg} tones.",
]
_SMALL_TEMPLATES = [
    "A small {colour} {kind} appears {where}, near the {height}.",
    "Near the {height}, a little {colour} {kind} can be seen {where}.",
    "There is also a small {colour} {kind} {where}.",
]
_STYLE_SENTENCES = [
    "The brushwork is loose and clearly visible.", "The forms are simplified into flat areas of colour.",
    "Thin strokes of paint cross the ground.", "The composition is sparse and calm.",
]


def visual_sentences(scene: dict[str, Any], rng: np.random.Generator) -> list[str]:
    main, *small = scene["objects"]
    where = str(rng.choice(_POSITION_PHRASES[main["position"]]))
    sentences = [str(rng.choice(_MAIN_TEMPLATES)).format(
        colour=main["colour"], kind=main["kind"], verb=str(rng.choice(_VERBS)), where=where,
        Where_cap=where[0].upper() + where[1:],
        A_colour=("An " if main["colour"][0] in "aeiou" else "A ") + main["colour"])]
    sentences.append(str(rng.choice(_BACKGROUND_TEMPLATES)).format(bg=scene["background"]))
    for obj in small:
        sentences.append(str(rng.choice(_SMALL_TEMPLATES)).format(
            colour=obj["colour"], kind=obj["kind"], height=obj["height"],
            where=str(rng.choice(_POSITION_PHRASES[obj["position"]]))))
    if rng.random() < 0.4:
        sentences.append(str(rng.choice(_STYLE_SENTENCES)))
    return sentences


def contextual_sentences(artist: str, year: int, rng: np.random.Generator) -> list[str]:
    return [f"The painting was made by {artist} in {year}.",
            f"It is now in {rng.choice(MUSEUMS)}.",
            f"{artist.split()[0]} painted it after a stay in {rng.choice(CITIES)}."]


def title_of(scene: dict[str, Any], rng: np.random.Generator) -> str:
    main = scene["objects"][0]
    return str(rng.choice([f"Composition with {main['colour'].title()} {main['kind'].title()}",
                           f"{main['kind'].title()} on {scene['background'].title()}",
                           f"Study of a {main['kind']}"]))


def generate_collection(out_dir: str | Path, sizes: DemoSizes = DemoSizes(), image_size: int = 96,
                        seed: int = 0) -> dict[str, Path]:
    """Write the demo collection under out_dir and return the paths written.

    out_dir/artworks.json (train/val/test), pretrain_pool.json (disjoint, split "train"), scenes.json
    ({id: scene} for both), images/<id>.jpg. Ids are numeric strings as in Artpedia; the pool's start at 900000.
    """
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    split_of = ["train"] * sizes.train + ["val"] * sizes.val + ["test"] * sizes.test
    order = rng.permutation(len(split_of))    # splits interleaved over ids, as in Artpedia
    artworks, pool, scenes = {}, {}, {}
    jobs = [(str(1000 + i), split_of[order[i]], artworks) for i in range(len(split_of))]
    jobs += [(str(900000 + i), "train", pool) for i in range(sizes.pretrain)]
    for art_id, split, target in jobs:
        item_rng = np.random.default_rng([seed, int(art_id)])   # each artwork its own stream: stable ids
        scene = random_scene(item_rng)
        artist, year = str(item_rng.choice(ARTISTS)), int(item_rng.integers(1450, 1950))
        file_path = f"images/{art_id}.jpg"
        paint(scene, image_size, item_rng).save(out / file_path, quality=92)
        target[art_id] = {
            "title": title_of(scene, item_rng),
            "img_url": f"https://example.org/artcap-demo/{art_id}.jpg",
            "year": year,
            "visual_sentences": visual_sentences(scene, item_rng),
            "contextual_sentences": contextual_sentences(artist, year, item_rng),
            "split": split,
            "file_path": file_path,
        }
        scenes[art_id] = scene
    paths = {"artworks": out / "artworks.json", "pretrain_pool": out / "pretrain_pool.json",
             "scenes": out / "scenes.json"}
    write_json(paths["artworks"], artworks)
    write_json(paths["pretrain_pool"], pool)
    write_json(paths["scenes"], scenes)
    return paths


_MAIN_OBJECT = re.compile(r"\b(" + "|".join(sorted(COLOURS, key=len, reverse=True)) + r") ("
                          + "|".join(KINDS) + r")\b")


def main_object_accuracy(captions: dict[str, str], scenes: dict[str, dict]) -> dict[str, Any]:
    """The demo's ground truth held to its captions: how often a caption's first "<colour> <kind>" phrase is the scene's main object.

    The first such phrase is the object the caption leads with, i.e. the one it presents as the main subject;
    background colours ("sky blue background") are never followed by a kind, so they do not count."""
    rows = {}
    for art_id, caption in captions.items():
        truth = scenes[art_id]["objects"][0]
        found = _MAIN_OBJECT.search(caption.lower())
        colour, kind = (found.group(1), found.group(2)) if found else (None, None)
        rows[art_id] = {"colour_right": colour == truth["colour"], "kind_right": kind == truth["kind"],
                        "said": f"{colour} {kind}" if found else None, "truth": f"{truth['colour']} {truth['kind']}"}
    n = len(rows)
    rate = lambda key: sum(r[key] for r in rows.values()) / n if n else float("nan")   # noqa: E731
    both = sum(r["colour_right"] and r["kind_right"] for r in rows.values()) / n if n else float("nan")
    return {"n": n, "colour_and_kind": both, "colour": rate("colour_right"), "kind": rate("kind_right"),
            "chance_colour_and_kind": 1 / (len(KINDS) * (len(COLOURS) - 1.5)),   # ~1.5 colours barred per background
            "per_image": rows}
