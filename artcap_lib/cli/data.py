"""`artcap data validate | download | prepare`."""
from __future__ import annotations

import sys
from pathlib import Path


def add_cli(sub) -> None:
    data = sub.add_parser("data", help="Artpedia-schema files: validate, download images, prepare a run")
    dsub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    p = dsub.add_parser("validate", help="check an artpedia.json-schema file; exit 1 listing every problem")
    p.add_argument("path")
    p.set_defaults(func=_validate)

    p = dsub.add_parser("download", help="download the images of an artpedia.json-schema file")
    p.add_argument("--artpedia", required=True, help="artpedia.json (or a file in its schema)")
    p.add_argument("--out", required=True, help="output folder: images/, artworks.json, excluded.json")
    p.add_argument("--workers", type=int, default=4, help="concurrent downloads (capped at 8)")
    p.add_argument("--max-side", type=int, default=1000)
    p.add_argument("--max-pixels", type=int, default=400_000_000)
    p.add_argument("--retries", type=int, default=4)
    p.add_argument("--retry-excluded", action="store_true", help="ask again for permanently excluded ids")
    p.set_defaults(func=_download)

    p = dsub.add_parser("prepare", help="step 01 of a profile into its run directory")
    p.add_argument("--profile", default="demo")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=_prepare)


def _validate(args) -> int:
    from artcap_lib.data.artpedia import validate_file
    problems = validate_file(args.path)
    for problem in problems:
        print(f"{args.path}: {problem}")
    errors = sum(p.severity == "error" for p in problems)
    warnings = len(problems) - errors
    print(f"{args.path}: {'INVALID' if errors else 'valid'} ({errors} error(s), {warnings} warning(s))")
    return 1 if errors else 0


def _download(args) -> int:
    from artcap_lib.data.artpedia import load_artworks, ArtpediaError
    from artcap_lib.data.download import download_images
    from artcap_lib.files import write_json
    try:
        artworks = load_artworks(args.artpedia)
    except ArtpediaError as err:
        print(f"artcap data download: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    report = download_images(artworks, out, workers=args.workers, retry_excluded=args.retry_excluded,
                             max_side=args.max_side, max_pixels=args.max_pixels, retries=args.retries)
    write_json(out / "artworks.json", report.kept)
    write_json(out / "excluded.json", report.excluded)
    c = report.counts
    print(f"{len(report.kept)} images ready ({c['ok']} downloaded, {c['cached']} already there); "
          f"{len(report.excluded)} excluded ({c['previously_excluded']} from earlier runs) -> {out / 'excluded.json'}")
    return 0


def _prepare(args) -> int:
    from artcap_lib.data.prepare import prepare_data
    from artcap_lib.config import RunPaths
    from artcap_lib.config import load_profile, parse_overrides
    cfg = load_profile(args.profile, parse_overrides(args.set))
    print(prepare_data(cfg, RunPaths.for_profile(cfg)))
    return 0
