#!/usr/bin/env python3
"""Fetches the authors' published artefacts once into the cache, so the parity tests run without a local mirror.

    .venv/bin/python scripts/fetch_reference.py          # scripts/test.sh runs this when no mirror is set

The files (34, ~21 MB) come from github.com/jcgohr/artwork-caption-gen at the commit pinned in
artcap_lib/reference.py and are checked against its SHA-256 sums; afterwards tests/conftest.py finds the complete
cache, and `artcap reproduce --profile reference` reads it, both offline. With ARTCAP_REFERENCE_DIR set, the
mirror is only verified. Exit status: 0 ready, 3 unreachable (offline: the parity tests will be reported as
skipped), 1 a file that does not match its pinned hash.
"""
from __future__ import annotations

import os
import sys
import urllib.request

from artcap_lib import reference

PROBE_TIMEOUT_S = 10   # an offline or firewalled machine answers within this, or never


def missing_from_cache() -> list[str]:
    return [rel for rel in reference.SHA256 if not (reference.cache_dir() / rel).is_file()]


def reachable() -> str | None:
    """None when the pinned commit's files can be downloaded, else why not (one short request)."""
    url = os.environ.get("ARTCAP_REFERENCE_URL", reference.BASE_URL).rstrip("/") + "/" + next(iter(reference.SHA256))
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "artcap (reference artefacts)"})
    try:
        with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT_S):
            return None
    except OSError as exc:
        return f"{url}: {exc}"


def main() -> int:
    mirror = reference.mirror_dir()
    where = f"ARTCAP_REFERENCE_DIR={mirror}" if mirror else f"the cache {reference.cache_dir()}"
    todo = [] if mirror else missing_from_cache()
    # A mirror may lack files (the code leaves out what it lacks): verify what it holds, name what it lacks.
    wanted = [rel for rel in reference.SHA256 if not mirror or (mirror / rel).is_file()]
    if mirror and len(wanted) < len(reference.SHA256):
        print(f"fetch_reference: note: the mirror lacks {sorted(set(reference.SHA256) - set(wanted))}", file=sys.stderr)
    if not mirror and todo:
        why = reachable()
        if why:
            print(f"fetch_reference: offline ({why}); the parity tests will be skipped and listed at the end of "
                  f"the test run", file=sys.stderr)
            return 3
        print(f"fetch_reference: downloading {len(todo)} of the authors' files (commit {reference.COMMIT[:7]}) "
              f"into {reference.cache_dir()}", file=sys.stderr)
    try:
        for relpath in wanted:      # verifies every file (downloading what the cache lacks)
            reference.reference_file(relpath)
    except reference.ReferenceArtefactError as exc:
        print(f"fetch_reference: {exc}", file=sys.stderr)
        return 1
    print(f"fetch_reference: {len(wanted)} reference artefacts verified in {where}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
