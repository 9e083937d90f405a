"""The explorer on the reference profile, held to what the authors' own evaluation wrote: their per-query
reciprocal ranks (`*-individual.csv`, written by their ranx evaluation) must be 1 / the rank the explorer shows for
each painting's own query, for every model, query set and variant they published that way."""
import csv
import math
import os

import pytest

from artcap_lib import reference
from artcap_lib.config import RunPaths, load_profile
from artcap_lib.files import write_json
from artcap_lib.report import explore
from artcap_lib.retrieval import runs
from conftest import REFERENCE_SKIP

FILES = {"baseline": "baseline", "human": "true-ft", "synthetic": "llava-ft"}


def _individual(model: str, query_set: str, variant: str) -> dict[str, float] | None:
    where = (f"results/retrieval_experiment/{runs.REFERENCE_MODELS[model]}/{runs.REFERENCE_QUERY_SETS[query_set]}/"
             f"{FILES[variant]}-individual.csv")
    path = os.path.join(os.environ["ARTCAP_REFERENCE_DIR"], where)    # files the project itself never reads
    if not os.path.isfile(path):
        return None
    with open(path, newline="") as fh:
        rows = {row[0]: row[1:] for row in csv.reader(fh)}
    return {q: float(v) for q, v in zip(rows["metric"], rows["mrr"])}


@pytest.fixture(scope="module")
def view(tmp_path_factory):
    if not os.path.isdir(os.environ.get("ARTCAP_REFERENCE_DIR", "")):
        pytest.skip(REFERENCE_SKIP)
    root = tmp_path_factory.mktemp("reference")
    cfg = load_profile("reference", {"run_dir": str(root / "run"), "figures_dir": str(root / "figures")})
    paths = RunPaths.for_profile(cfg)
    write_json(paths.artworks, {})        # step 01 of this profile holds no test painting: the runs' queries are rows
    runs.reference_experiment2(paths, bootstrap=10, randomisation=10)
    return explore.load(cfg, paths)


def _tied_positions(run: dict, query: str, doc: str) -> range:
    """Where `doc` may stand in `query`'s ranking when tied documents may come in any order."""
    scores = sorted(run[query].values(), reverse=True)
    mine = run[query][doc]
    return range(scores.index(mine) + 1, len(scores) - scores[::-1].index(mine) + 1)


def test_each_paintings_rank_is_the_authors_reciprocal_rank(view):
    """Their CSVs come from ranx's per-query evaluation, whose sort may reorder documents of equal score (the stored
    means, which `runs` reproduces to 1e-9, keep the file's order): where the painting is tied with another
    document, their rank and ours (file order) must both lie within the tie; everywhere else they are equal."""
    checked, tied = 0, []
    for model in runs.REFERENCE_MODELS:
        for query_set in runs.REFERENCE_QUERY_SETS:
            for variant in FILES:
                theirs = _individual(model, query_set, variant)
                if theirs is None:
                    continue
                run = runs.load_run(reference.reference_file(
                    f"results/retrieval_experiment/{runs.REFERENCE_MODELS[model]}/"
                    f"{runs.REFERENCE_QUERY_SETS[query_set]}/{runs.REFERENCE_VARIANTS[variant]}_scores.json"))
                ranks = view.table[view.rank_column(model, variant, query_set)]
                assert set(theirs) <= set(ranks.index), (model, query_set, variant)
                for q, rr in theirs.items():
                    rank, where = ranks[q], (model, query_set, variant, q)
                    if rr == 0:       # below the run's depth, which the explorer shows as no rank
                        assert math.isnan(rank) and q not in run[q], where
                        continue
                    tie = _tied_positions(run, q, q)
                    if len(tie) > 1:
                        tied.append(where)
                        assert rank in tie and round(1 / rr) in tie, (where, rank, 1 / rr, tie)
                    else:
                        assert abs(1 / rank - rr) < 1e-12, (where, rank, 1 / rr)
                checked += 1
    assert checked == 9          # BLIP's Artpedia queries, Long-CLIP's two query sets: three variants each
    # the only ties at a relevant painting: two test paintings that every model scores identically for any query
    assert {where[3] for where in tied} == {"12136", "13181"}, tied


def test_the_query_view_lists_the_authors_run_head(view):
    run = runs.load_run(reference.reference_file(
        "results/retrieval_experiment/blip_results/Artpedia_queries/true_scores.json"))
    for q, docs in list(view.top[("blip", "human", "artpedia")].items())[:20]:
        ordered = [d for d, _ in sorted(run[q].items(), key=lambda kv: -kv[1])]
        assert docs == ordered[:len(docs)]
        if view.relevant["artpedia"][q][0] in docs:
            assert docs.index(view.relevant["artpedia"][q][0]) + 1 == view.table.loc[q, "rank_blip_human"]
