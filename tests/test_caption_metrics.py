"""Caption metrics: each paper metric against its definition, the coco backend end to end (Java), the CLI,
Experiment 1's outputs, and the statistics. One CaptionScorer (METEOR 1.5 + MiniLM BERTScore) serves the module."""
import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest

from artcap_lib.textmetrics import bertscore, coco, paper
from artcap_lib.textmetrics import scorer as scoring
from artcap_lib import stats as ms
from artcap_lib.cli import main as artcap_main
from artcap_lib.cli.metrics import PairsFileError, read_pairs_tsv

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="the coco backend needs Java on PATH")


# ---- paper backend, metric by metric -------------------------------------------------------------------

def test_rouge_precision_is_over_the_candidate_and_recall_over_the_reference():
    # candidate 4 words, reference 2, both reference words in the candidate: P = 2/4, R = 2/2
    out = paper.rouge_scores(["a red boat sails"], ["red boat"])
    assert out["rouge1_p"][0] == pytest.approx(0.5)
    assert out["rouge1_r"][0] == pytest.approx(1.0)
    assert out["rouge2_p"][0] == pytest.approx(1 / 3)        # "red boat" among 3 candidate bigrams
    assert out["rouge1_f"][0] == pytest.approx(2 * 0.5 / 1.5, abs=1e-6)   # the package's f has a 1e-8 epsilon


def test_bleu4_is_unsmoothed_sentence_bleu():
    same = "the old man sits by the river"
    scores = paper.bleu4_scores([same, "the old man sits by a lake", "a woman"], [same, same, same])
    assert scores[0] == pytest.approx(1.0)
    # p1 5/7, p2 4/6, p3 3/5, p4 2/4 ("the old man sits", "old man sits by"); equal lengths: no brevity penalty
    assert scores[1] == pytest.approx((5 / 7 * 4 / 6 * 3 / 5 * 2 / 4) ** 0.25)
    assert scores[2] == 0.0                                  # no 4-gram at all: 0, not smoothed


def test_meteor_tokenizer_splits_like_word_tokenize():
    tokenize, name = paper.meteor_word_tokenizer()
    assert tokenize("The man's coat, red. A \"blue\" sky!") == \
        ["The", "man", "'s", "coat", ",", "red", ".", "A", "``", "blue", "''", "sky", "!"]
    assert "Punkt" in name or "punkt" in name


def test_meteor_memoised_wordnet_gives_nltks_scores():
    from nltk.corpus import wordnet
    from nltk.translate.meteor_score import single_meteor_score
    tokenize, _ = paper.meteor_word_tokenizer()
    cands = ["A painting of a large boat on the sea.", "Two women dance in a field of flowers.", "a dog"]
    refs = ["A big ship sails on the ocean.", "Two ladies are dancing among blossoms.", "The Madonna and Child."]
    ours = paper.meteor_nltk_scores(cands, refs)
    plain = [single_meteor_score(tokenize(r), tokenize(c), wordnet=wordnet) for c, r in zip(cands, refs)]
    np.testing.assert_allclose(ours, plain, rtol=0, atol=1e-12)
    assert ours[0] > ours[2] and 0 < ours[0] < 1              # synonyms (big/large, ship/boat) count


def test_empty_texts_are_errors_naming_the_ids():
    with pytest.raises(scoring.MetricInputError, match=r"empty candidate for id\(s\) b, c"):
        scoring.check_pairs(["a", "b", "c"], ["x", "y", "z"], ["ok", " ", ""])
    with pytest.raises(scoring.MetricInputError, match="empty reference for id"):
        scoring.check_pairs(["a"], [""], ["ok"])
    with pytest.raises(scoring.MetricInputError, match="duplicate ids a"):
        scoring.check_pairs(["a", "a"], ["x", "y"], ["p", "q"])


def test_bertscore_model_resolution():
    minilm = bertscore.resolve_bertscore_model("minilm")
    assert minilm.num_layers == 6 and not minilm.is_paper_model and "NOT the paper" in minilm.label
    paper = bertscore.resolve_bertscore_model("distilbert-base-uncased")
    assert paper.num_layers == 5 and paper.is_paper_model
    with pytest.raises(ValueError, match="bertscore_num_layers"):
        bertscore.resolve_bertscore_model("some-org/unknown-model")


def test_spice_is_skipped_with_reason_unless_the_corenlp_jars_are_configured(tmp_path):
    status = coco.spice_status("")
    assert status["status"] == "skipped" and "spice_jars" in status["reason"] and status["how_to_enable"]
    assert "lacks stanford-corenlp-3.6.0.jar, stanford-corenlp-3.6.0-models.jar" in \
        coco.spice_status(str(tmp_path))["reason"]
    (tmp_path / "stanford-corenlp-3.6.0.jar").write_bytes(b"")
    assert "lacks stanford-corenlp-3.6.0-models.jar" in coco.spice_status(str(tmp_path))["reason"]
    command = coco.spice_command(str(tmp_path), "in.json", "out.json", "cache")
    classpath = command[command.index("-cp") + 1]
    assert str(tmp_path / "stanford-corenlp-3.6.0-models.jar") in classpath and "spice-1.0.jar" in classpath
    assert "edu.anu.spice.SpiceScorer" in command
    assert "--add-opens=java.base/java.lang=ALL-UNNAMED" in coco.JAVA_ADD_OPENS


# ---- statistics ----------------------------------------------------------------------------------------

def test_derangement_has_no_fixed_point():
    for n in (2, 3, 10, 501):
        perm = ms.derangement(n, seed=n)
        assert sorted(perm.tolist()) == list(range(n)) and not np.any(perm == np.arange(n))
    with pytest.raises(ValueError):
        ms.derangement(1)


def test_bootstrap_ci_brackets_the_mean_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    small, large = rng.random(50), rng.random(5000)
    lo, hi = ms.bootstrap_ci(small, 500, seed=1)
    assert lo < small.mean() < hi
    lo2, hi2 = ms.bootstrap_ci(large, 500, seed=1)
    assert hi2 - lo2 < (hi - lo) / 4                         # ~1/sqrt(100) as wide
    both = ms.bootstrap_ci(np.stack([small, 2 * small], axis=1), 500, seed=1)
    np.testing.assert_allclose(both[1], 2 * both[0])         # same resamples for every metric


def test_length_stats():
    stats = ms.length_stats(["one two", "one two three four", "a"])
    assert stats["mean"] == pytest.approx(7 / 3) and stats["median"] == 2 and stats["max"] == 4


# ---- the pairs TSV -------------------------------------------------------------------------------------

def test_pairs_tsv_is_read_without_csv_quoting(tmp_path):
    path = tmp_path / "p.tsv"
    path.write_text('id\treference\tcandidate\n7\tA "so-called" saint\t"Quoted start\n8\tx\ty\n', encoding="utf-8")
    ids, refs, cands = read_pairs_tsv(path)
    assert ids == ["7", "8"] and refs[0] == 'A "so-called" saint' and cands[0] == '"Quoted start'
    path.write_text("id\treference\n1\tx\n", encoding="utf-8")
    with pytest.raises(PairsFileError, match="lacks column.*candidate"):
        read_pairs_tsv(path)
    path.write_text("id\treference\tcandidate\n1\tx\ty\tz\n", encoding="utf-8")
    with pytest.raises(PairsFileError, match="line 2: 4 tab-separated fields"):
        read_pairs_tsv(path)


def test_cli_rejects_empty_texts_naming_the_ids(tmp_path, capsys):
    pairs = tmp_path / "p.tsv"
    pairs.write_text("id\treference\tcandidate\na\tx\t\nb\ty\tz\n", encoding="utf-8")
    assert artcap_main(["metrics", "score", "--pairs", str(pairs), "--backend", "paper",
                        "--out", str(tmp_path / "o.csv")]) == 2
    assert "empty candidate for id(s) a" in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists()


def test_cli_scores_paper_metrics(tmp_path, capsys):
    pairs = tmp_path / "p.tsv"
    pairs.write_text('id\treference\tcandidate\n'
                     'x1\tA woman in a "blue" dress sits by the window.\tA woman in a "blue" dress sits by the window.\n'
                     'x2\tThree men play cards at a table.\tA boat on rough water under a stormy sky.\n',
                     encoding="utf-8")
    out = tmp_path / "o.csv"
    assert artcap_main(["metrics", "score", "--pairs", str(pairs), "--backend", "paper", "--bertscore-model",
                        "none", "--out", str(out)]) == 0
    frame = pd.read_csv(out, dtype={"id": str}).set_index("id")
    assert list(frame.columns) == paper.ROUGE_COLUMNS + ["bleu4", "meteor"]
    assert frame.loc["x1", "bleu4"] == pytest.approx(1.0) and frame.loc["x1", "rougeL_f"] == pytest.approx(1.0)
    assert frame.loc["x2", "rouge2_f"] == 0 and frame.loc["x1", "meteor"] > 0.9 > frame.loc["x2", "meteor"]
    stdout = capsys.readouterr().out
    assert "2 pairs" in stdout and "meteor" in stdout and "METEOR sentence splitter" in stdout


# ---- both backends through one CaptionScorer (Java + MiniLM) -------------------------------------------

PAIRS = {
    "1": ("The painting shows a big purple triangle towards the right edge. It is set against a dark grey ground.",
          "A painting of a large purple triangle on the right, on a dark grey background."),
    "2": ("A small blue house appears at the centre, near the bottom.",
          "A small blue house appears at the centre, near the bottom."),
    "3": ("Saint Jerome reads in his study, a lion at his feet.",
          "An old man |||reads a book\nwhile a lion sleeps."),   # newline and METEOR's field separator
    "4": ("Two \"peasants\" rest in a wheat field at noon.", "Farmers lie in the grass beside sheaves of wheat."),
}


@pytest.fixture(scope="module")
def scorer():
    if shutil.which("java") is None:
        pytest.skip("the coco backend needs Java on PATH")
    with scoring.CaptionScorer(("paper", "coco"), bertscore_model="minilm") as s:
        yield s


@needs_java
def test_both_backends_with_control(scorer):
    ids = list(PAIRS)
    refs, cands = [PAIRS[i][0] for i in ids], [PAIRS[i][1] for i in ids]
    result = scorer.score(ids, refs, cands, control_permutation=ms.derangement(len(ids), seed=0))
    frame = result.per_image
    assert list(frame.columns) == scoring.PAPER_COLUMNS + coco.COCO_COLUMNS[:-1]      # no SPICE without the jars
    assert list(frame.index) == ids and frame.notna().all().all()
    assert frame.loc["2", "coco_bleu4"] == pytest.approx(1.0, abs=1e-6)
    assert frame.loc["2", "coco_meteor"] == pytest.approx(1.0, abs=1e-3)
    assert frame.loc["2", "bertscore_f"] == pytest.approx(1.0, abs=1e-5)
    assert frame.loc["1", "coco_meteor"] > frame.loc["4", "coco_meteor"]
    assert result.control is not None and (result.control.loc["2"] < frame.loc["2"] - 1e-3).all()
    assert {"coco_bleu4", "coco_meteor", "control_coco_meteor"} <= set(result.corpus)
    assert result.spice["status"] == "skipped"
    assert result.bertscore["num_layers"] == 6 and result.bertscore["hash"].startswith("minilm_L6_no-idf")
    # scoring again reuses the loaded resources and gives the same numbers
    again = scorer.score(ids, refs, cands)
    pd.testing.assert_frame_equal(again.per_image, frame)


@needs_java
def test_experiment1_run_writes_outputs(scorer, tmp_path):
    from artcap_lib.captioning.store import CaptionStore
    from artcap_lib.textmetrics.step import run_captioner as run
    from artcap_lib.config import RunPaths
    from artcap_lib.config import load_profile
    cfg = load_profile("demo", {"run_dir": str(tmp_path), "metrics.split": "test", "metrics.bootstrap": 50})
    paths = RunPaths.for_profile(cfg)
    paths.data.mkdir(parents=True)
    artworks = {i: {"title": f"t{i}", "img_url": "", "year": None, "visual_sentences": [ref],
                    "contextual_sentences": [], "split": "test"} for i, (ref, _) in PAIRS.items()}
    artworks["5"] = {**artworks["1"], "visual_sentences": ["No caption for this one."]}
    paths.artworks.write_text(json.dumps(artworks), encoding="utf-8")
    CaptionStore(paths.caption_file(cfg.captioning.name)).append(
        [{"id": i, "caption": cand, "model": "m", "prompt": "p", "decoding": "greedy", "new_tokens": 1,
          "seconds": 0.1} for i, (_, cand) in PAIRS.items()])
    summary = run(cfg, paths, scorer)
    per_image = pd.read_parquet(paths.metrics / "per_image.parquet")
    assert per_image.shape == (4, len(scoring.PAPER_COLUMNS) + len(coco.COCO_COLUMNS) - 1)
    assert pd.read_parquet(paths.metrics / "control_per_image.parquet").shape == per_image.shape
    written = json.loads((paths.metrics / "summary.json").read_text())
    assert written["n_pairs"] == 4 and written["n_missing_captions"] == 1 and written["parity"] is None
    for name, entry in written["metrics"].items():
        lo, hi = entry["ci95"]
        assert lo <= entry["mean"] <= hi and math.isfinite(entry["control_mean"]), name
    assert written["metrics"]["coco_bleu4"]["corpus"] is not None and written["metrics"]["bleu4"]["corpus"] is None
    assert written["spice"]["status"] == "skipped" and written["bertscore"]["hash"]
    assert set(written["lengths"]) == {"reference", "candidate"}
    assert summary["metrics"].keys() == written["metrics"].keys()


def test_fast_lcs_table_equals_the_rouge_packages_own_and_is_unpatched_after_use():
    import random
    from rouge import rouge_score
    from artcap_lib.textmetrics.paper import _LcsTable, rouge_scores
    rng = random.Random(0)
    for _ in range(200):
        x = [rng.choice("abcde") for _ in range(rng.randint(0, 12))]
        y = [rng.choice("abcde") for _ in range(rng.randint(0, 12))]
        theirs, ours = rouge_score._lcs(x, y), _LcsTable(x, y)
        assert all(theirs[i, j] == ours[i, j] for i in range(len(x) + 1) for j in range(len(y) + 1))
    original = rouge_score._lcs
    rouge_scores(["a cat sat on the mat."], ["the cat sat on a red mat."])
    assert rouge_score._lcs is original


def test_lcs_reconstruction_equals_the_rouge_packages_own_and_has_no_depth_limit():
    """The package's recursive `_recon_lcs` hit Python's recursion limit from ~1,000-word captions."""
    import random
    from rouge import rouge_score
    from artcap_lib.textmetrics.paper import _recon_lcs, rouge_scores
    rng = random.Random(1)
    for _ in range(300):
        x = [rng.choice("abcdef") for _ in range(rng.randint(0, 40))]
        y = [rng.choice("abcdef") for _ in range(rng.randint(0, 40))]
        for exclusive in (True, False):      # a set of tokens, or the token sequence
            assert _recon_lcs(x, y, exclusive)._ngrams == rouge_score._recon_lcs(x, y, exclusive)._ngrams
    original = rouge_score._recon_lcs
    words = " ".join(rng.choice(["the", "red", "boat", "sea", "a", "storm"]) for _ in range(10_000))
    long = rouge_scores([words + "."], ["A red boat on a stormy sea."])
    assert all(0 < long[f"rouge{n}_{k}"][0] <= 1 for n in "12L" for k in "prf")
    assert rouge_score._recon_lcs is original


def test_a_pairs_file_that_is_not_utf8_names_the_file_and_line(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_bytes("id\treference\tcandidate\n1\tA boat.\tA ship.\n2\tLa mer\xe9e.\tSea.\n".encode("latin-1"))
    with pytest.raises(PairsFileError, match=r"pairs.tsv: line 3: not UTF-8 \(byte \d+: b'\\xe9'\)"):
        read_pairs_tsv(path)


@needs_java
def test_ptb_tokenizer_writes_nothing_into_site_packages_and_tokenizes_as_pycocoevalcap():
    """pycocoevalcap's PTBTokenizer writes its input to a temporary file beside its jar, inside the venv (which may
    be read-only, and is no place for data); ours writes to the system's temporary folder, with the same tokens."""
    import os
    import sys
    from pathlib import Path

    from pycocoevalcap.tokenizer import ptbtokenizer
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    package = str(Path(ptbtokenizer.__file__).parent.parent)     # a namespace package: no __file__ of its own
    written, watching = [], []

    def on_open(event, args):             # every file opened for writing inside the package folder
        if watching and event == "open" and isinstance(args[0], str) and args[0].startswith(package) and (
                args[1] not in (None, "r", "rb") or (args[2] or 0) & (os.O_WRONLY | os.O_RDWR)):
            written.append(args[0])
    sys.addaudithook(on_open)
    texts = {"a": "A red circle, on the LEFT -- of a sky-blue background.", "b": 'It\'s "quoted" (and) ... odd?!',
             "c": "a line\nbreak and café", "d": "x"}
    watching.append(True)
    try:
        ours = coco.ptb_tokenize(texts)
        assert written == []
        theirs = PTBTokenizer().tokenize({k: [{"caption": t}] for k, t in texts.items()})
        assert written, "the audit hook saw pycocoevalcap's own temporary file"   # the check can fail
    finally:
        watching.clear()
    assert ours == {k: v[0] for k, v in theirs.items()}


# ---- our replacements of library computations: equal to the library's, value for value ---------------

EDGE_TEXTS = ["", "a", "word", "the the the the the", "a b c d", "a, b. c! d? (e) -- f's \"g\"",
              "A red boat. A red boat. A red boat.", "one two three", "x y z x y z x y z x"]


def _random_texts(rng, n, vocabulary="the a red boat sea . , ! man woman sits".split()):
    return [" ".join(rng.choice(vocabulary) for _ in range(rng.randint(1, 40))) for _ in range(n)]


def test_bleu4_equals_torcheval_bleuscore_as_the_authors_called_it():
    """paper.bleu4_scores counts n-grams itself; every value must be BLEUScore(n_gram=4)'s, reset per pair."""
    import random
    from torcheval.metrics import BLEUScore
    rng = random.Random(2)
    cands = _random_texts(rng, 300) + EDGE_TEXTS + EDGE_TEXTS[::-1]
    refs = _random_texts(rng, 300) + EDGE_TEXTS[::-1] + EDGE_TEXTS
    cands += ["the old man sits by the river", "the old man sits by a lake"]    # partial 4-gram overlap
    refs += ["the old man sits by the river"] * 2
    ours = paper.bleu4_scores(cands, refs)
    metric = BLEUScore(n_gram=4)
    for c, r, value in zip(cands, refs, ours):
        if len(c.split()) < 4:                    # torcheval refuses these; unsmoothed BLEU-4 has no 4-gram: 0
            assert value == 0.0
            continue
        metric.reset()
        metric.update([c], [[r]])
        assert value == float(metric.compute()), (c, r)
    assert (ours > 0).sum() >= 5                  # the check reached the library's arithmetic, not only zeros


def test_coco_rouge_l_equals_pycocoevalcaps():
    import random
    from pycocoevalcap.rouge.rouge import Rouge, my_lcs
    rng = random.Random(3)
    for _ in range(3000):
        a = [rng.choice("abcdef") for _ in range(rng.randint(0, 70))]
        b = [rng.choice("abcdef") for _ in range(rng.randint(0, 70))]
        assert coco.lcs_length(a, b) == my_lcs(a, b)
    texts = _random_texts(rng, 400) + EDGE_TEXTS
    gts = {f"{i:04d}": [t] for i, t in enumerate(texts)}
    res = {f"{i:04d}": [t] for i, t in enumerate(_random_texts(rng, 400) + EDGE_TEXTS[::-1])}
    gts["multi"], res["multi"] = ["a b c", "b c d e", "e"], ["c d e a"]     # several references: best P and R
    np.testing.assert_array_equal(coco.rouge_l_scores(gts, res), Rouge().compute_score(gts, res)[1])


@needs_java
def test_pipelined_meteor_equals_pycocoevalcaps(scorer):
    """GuardedMeteor sends every pair before reading (pycocoevalcap waits for each): same per-pair and corpus scores."""
    import random
    from pycocoevalcap.meteor.meteor import Meteor
    rng = random.Random(4)
    texts = {f"r{i}": t for i, t in enumerate(_random_texts(rng, 150) + [p[0] for p in PAIRS.values()])}
    texts.update({f"c{i}": t for i, t in enumerate(_random_texts(rng, 150) + [p[1] for p in PAIRS.values()])})
    tokens = coco.ptb_tokenize(texts)
    keys = [f"{i:04d}" for i in range(len(texts) // 2)]
    gts = {k: [tokens[f"r{i}"]] for i, k in enumerate(keys)}
    res = {k: [tokens[f"c{i}"]] for i, k in enumerate(keys)}
    gts["two"], res["two"] = ["a red boat", "the sea"], ["a boat at sea"]
    ours = scorer._meteor.result().compute_score(gts, res)
    plain = Meteor()
    try:
        assert ours == plain.compute_score(gts, res)
    finally:
        plain.meteor_p.stdin.close()
        plain.meteor_p.wait()


def test_cider_d_equals_pycocoevalcaps_float_for_float():
    """textmetrics.cider lays the n-grams out in arrays; every score must be pycocoevalcap Cider's, bit for bit
    (random texts with repeats, empty and one-word texts, real-length synthetic captions, several references)."""
    import random
    from pycocoevalcap.cider.cider import Cider
    from artcap_lib.textmetrics.cider import cider_d_scores
    from artcap_lib.bench.synthetic_captions import BigramChain
    rng = random.Random(5)
    refs = _random_texts(rng, 500) + [t.lower() for t in EDGE_TEXTS] + ["a a a a a a a a"]
    cands = _random_texts(rng, 500) + [t.lower() for t in EDGE_TEXTS[::-1]] + ["a a a"]
    chain = BigramChain([p[0] for p in PAIRS.values()] + [p[1] for p in PAIRS.values()] + refs[:50])
    np_rng = np.random.default_rng(0)
    refs += chain.sample(300, np_rng)
    cands += chain.sample(300, np_rng)
    gts = {f"{i:05d}": [t] for i, t in enumerate(refs)}
    res = {f"{i:05d}": [t] for i, t in enumerate(cands)}
    np.testing.assert_array_equal(cider_d_scores(gts, res), Cider().compute_score(gts, res)[1])
    gts["multi"], res["multi"] = ["a red boat", "the sea"], ["a red sea"]           # the library's own path
    np.testing.assert_array_equal(cider_d_scores(gts, res), Cider().compute_score(gts, res)[1])
    assert cider_d_scores({"a": ["x y"]}, {"a": ["x y"]})[0] == Cider().compute_score({"a": ["x y"]}, {"a": ["x y"]})[1][0]


def test_untimed_meteor_tokenizer_gives_nltks_tokens():
    """meteor_tokens calls NLTK's own compiled patterns without the ReDoS timeout: token for token the same."""
    import random
    fast, name = paper.meteor_word_tokenizer()
    slow, same_name = paper.meteor_word_tokenizer(untimed=False)
    assert name == same_name
    rng = random.Random(6)
    pieces = ["Dr.", "J.", "Smith", "paid", "$3.88", "(roughly)", "--", "N.Y.", "...", "ok?!", "«Quoted»", "‘x’",
              "“y”", "don't", "can't", "I'm", "U.S.A.", "e.g.", "St.", "Mark's", "[a]", "{b}", "<c>", "x;y", "1,000",
              "'tis", "''", '"', "``", "wanna", "gonna", "cannot", ".", ",", ":", "A", "the", "painting", "\n"]
    texts = EDGE_TEXTS + [p[0] for p in PAIRS.values()] + [p[1] for p in PAIRS.values()]
    texts += [" ".join(rng.choice(pieces) for _ in range(rng.randint(1, 60))) for _ in range(500)]
    assert [fast(t) for t in texts] == [slow(t) for t in texts]
    assert fast("The man's coat, red. A \"blue\" sky!") == \
        ["The", "man", "'s", "coat", ",", "red", ".", "A", "``", "blue", "''", "sky", "!"]


def test_untimed_meteor_tokenizer_on_the_authors_captions():
    from artcap_lib import reference
    mirror = reference.mirror_dir()
    if mirror is None or not mirror.is_dir():
        pytest.skip("ARTCAP_REFERENCE_DIR is not set to a local mirror of the authors' artefacts")
    texts = [r["True_caption"] for r in reference.experiment1_rows()] + list(reference.llava_captions().values())
    fast, slow = paper.meteor_word_tokenizer()[0], paper.meteor_word_tokenizer(untimed=False)[0]
    assert [fast(t) for t in texts] == [slow(t) for t in texts]


def test_cider_d_with_orders_no_reference_reaches():
    from pycocoevalcap.cider.cider import Cider
    from artcap_lib.textmetrics.cider import cider_d_scores
    gts = {"a": ["boat"], "b": ["red sea"], "c": ["x"]}
    res = {"a": ["a red boat on the sea"], "b": ["red"], "c": ["x y z w v"]}
    np.testing.assert_array_equal(cider_d_scores(gts, res), Cider().compute_score(gts, res)[1])
