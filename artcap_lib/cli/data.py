"""`artcap data validate | download | prepare`.

    artcap data prepare --profile demo                 # step 01 into the run directory, as notebook 01
    artcap data validate artpedia.json                 # or, without a path, the run's data/artworks.json
    artcap data museum-folder --out DIR                # a real collection in the ImageFolder layout, to try
    artcap data download --artpedia artpedia.json --out DIR --workers 4"""
from __future__ import annotations

import sys
from pathlib import Path

from artcap_lib.cli.options import add_profile_options, profile_from_args, writing_run


def add_cli(sub) -> None:
    data = sub.add_parser("data", help="Artpedia-schema files: validate, download images, prepare a run")
    dsub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    p = dsub.add_parser("validate", help="check an artpedia.json-schema file; exit 1 listing every problem")
    p.add_argument("path", nargs="?", default=None, help="the file (default: the run's data/artworks.json)")
    add_profile_options(p)
    p.set_defaults(func=_validate)

    p = dsub.add_parser("download", help="download the images of an artpedia.json-schema file")
    p.add_argument("--out", required=True, help="output folder: images/, artworks.json, excluded.json")
    p.add_argument("--retries", type=int, default=4, help="attempts per image on transient errors")
    p.add_argument("--retry-excluded", action="store_true", help="ask again for permanently excluded ids")
    add_profile_options(p, "data.artpedia_json", "data.download_workers", "data.max_side", "data.max_pixels",
                        flag_names={"data.artpedia_json": "--artpedia", "data.download_workers": "--workers"})
    p.set_defaults(func=_download)

    p = dsub.add_parser("museum-folder", help="174 public-domain paintings with their museum records as a collection "
                                              "in the ImageFolder layout (images + metadata.jsonl), to try "
                                              "data.source imagefolder on")
    p.add_argument("--out", required=True, help="the folder to write")
    p.add_argument("--limit", type=int, default=None, help="only the first N paintings")
    p.add_argument("--caption-lists", action="store_true",
                   help="captions as lists, two for every third painting (several human captions per image)")
    add_profile_options(p)              # like every command (it reads no profile value)
    p.set_defaults(func=_museum_folder)

    p = dsub.add_parser("prepare", help="step 01 of a profile into its run directory")
    add_profile_options(p, "data", "seed")
    p.set_defaults(func=_prepare)


def _museum_folder(args) -> int:
    from artcap_lib.config import user_path
    from artcap_lib.data.rehearsal import museum_imagefolder
    print(museum_imagefolder(user_path(args.out), args.limit, args.caption_lists))
    return 0


def _validate(args) -> int:
    from artcap_lib.data.artpedia import validate_file
    path = args.path or profile_from_args(args)[1].artworks
    problems = validate_file(path)
    for problem in problems:
        print(f"{path}: {problem}")
    errors = sum(p.severity == "error" for p in problems)
    warnings = len(problems) - errors
    print(f"{path}: {'INVALID' if errors else 'valid'} ({errors} error(s), {warnings} warning(s))")
    return 1 if errors else 0


def _download(args) -> int:
    from artcap_lib.config import ProfileError
    from artcap_lib.data.artpedia import ArtpediaError, load_artworks
    from artcap_lib.data.download import download_images
    from artcap_lib.files import write_json
    d = profile_from_args(args)[0].data
    if not d.artpedia_json:
        raise ProfileError("data.artpedia_json is empty: give --artpedia artpedia.json")
    try:
        artworks = load_artworks(d.artpedia_json)
    except ArtpediaError as err:
        print(f"artcap data download: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    report = download_images(artworks, out, workers=d.download_workers, retry_excluded=args.retry_excluded,
                             max_side=d.max_side, max_pixels=d.max_pixels, retries=args.retries)
    for warning in report.warnings:
        print(f"artcap data download: warning: {warning}", file=sys.stderr)
    write_json(out / "artworks.json", report.kept)
    write_json(out / "excluded.json", report.excluded)
    c = report.counts
    print(f"{len(report.kept)} images ready ({c['ok']} downloaded, {c['cached']} already there); "
          f"{len(report.excluded)} excluded ({c['previously_excluded']} from earlier runs) -> {out / 'excluded.json'}")
    return 0


def _prepare(args) -> int:
    from artcap_lib.data import step as data_step
    cfg, paths = writing_run(args, "artcap data prepare")
    print(data_step.run(cfg, paths, progress=sys.stderr.isatty()))
    return 0
