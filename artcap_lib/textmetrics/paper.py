"""Experiment 1's "paper" backend: exactly what the authors' `src/calculate_captioning_metrics.py` computed,
library for library, per pair of MLLM caption (candidate) and human caption (reference).

ROUGE-1/2/L precision/recall/F1 from the `rouge` package, sentence BLEU-4 from torcheval (no smoothing: one missing
4-gram makes it 0), METEOR from NLTK as Hugging Face `evaluate` calls it (word_tokenize, WordNet, alpha 0.9, beta 3,
gamma 0.5). Columns `rouge1_p`, ..., `bleu4`, `meteor` (BERTScore, the fourth of their metrics, is `bertscore`).
The authors' own table labels ROUGE recall as `-p` and precision as `-r` (the `rouge` package returns r, p, f and
they zipped that with p, r, f): here P and R are what they say.

METEOR word tokenization: `nltk.word_tokenize` first splits sentences with the trained English Punkt model
(`punkt_tab`, a separate NLTK download). Where it is absent we use NLTK's untrained `PunktSentenceTokenizer`,
which splits a few sentences differently (abbreviations, initials); that only moves tokens such as a
sentence-final "." and changes METEOR on ~10% of the authors' pairs by a few 1e-3 (see notebook 03).
"""
from __future__ import annotations

import functools
from collections import Counter
from typing import Sequence

import numpy as np


ROUGE_COLUMNS = [f"rouge{n}_{k}" for n in ("1", "2", "L") for k in ("p", "r", "f")]


# ---------------------------------------------------------------------------------------------------------
# "paper" backend: the authors' libraries, called as they called them

def rouge_scores(candidates: Sequence[str], references: Sequence[str]) -> dict[str, np.ndarray]:
    """ROUGE-1/2/L P/R/F1 per pair from the `rouge` package (the authors' `Rouge().get_scores(cands, refs)`)."""
    from rouge import Rouge, rouge_score
    original = rouge_score._lcs, rouge_score._recon_lcs
    # the package's own table and reconstruction, replaced by equal ones: ~3x faster, and no recursion (its
    # `_recon` recursed once per word: "maximum recursion depth exceeded" from ~1,000-word captions)
    rouge_score._lcs, rouge_score._recon_lcs = _LcsTable, _recon_lcs
    try:
        rows = Rouge().get_scores(list(candidates), list(references))
    finally:
        rouge_score._lcs, rouge_score._recon_lcs = original
    out = {}
    for n, key in (("1", "rouge-1"), ("2", "rouge-2"), ("L", "rouge-l")):
        for k in ("p", "r", "f"):
            out[f"rouge{n}_{k}"] = np.array([row[key][k] for row in rows], dtype=np.float64)
    return out


class _LcsTable:
    """The `rouge` package's LCS table (`table[i, j]` = LCS length of x[:i] and y[:j]) held as rows of a list.

    Its own `_lcs` fills a dict keyed by (i, j) tuples and calls max() per cell: two thirds of ROUGE's time on
    the authors' pairs. Same recurrence, same values (so ROUGE-L's LCS reconstruction, which reads the table,
    picks the same tokens); the parity test against the authors' stored ROUGE scores guards this."""

    def __init__(self, x, y):
        previous = [0] * (len(y) + 1)
        self.rows = [previous]
        for xi in x:
            row = [0]
            left = 0
            for j, yj in enumerate(y):
                if xi == yj:
                    left = previous[j] + 1
                else:
                    up = previous[j + 1]
                    left = up if up > left else left
                row.append(left)
            self.rows.append(row)
            previous = row

    def __getitem__(self, ij):
        return self.rows[ij[0]][ij[1]]


def _recon_lcs(x, y, exclusive=True):
    """The `rouge` package's `_recon_lcs` walked as a loop: the same path through the same table (a match steps
    diagonally, else up when the cell above is strictly larger, else left), so the same LCS tokens."""
    from rouge.rouge_score import Ngrams
    table = _LcsTable(x, y)
    i, j, tokens = len(x), len(y), []
    while i > 0 and j > 0:
        if x[i - 1] == y[j - 1]:
            tokens.append(x[i - 1])
            i, j = i - 1, j - 1
        elif table[i - 1, j] > table[i, j - 1]:
            i -= 1
        else:
            j -= 1
    return Ngrams(tokens[::-1], exclusive=exclusive)


def bleu4_scores(candidates: Sequence[str], references: Sequence) -> np.ndarray:
    """Sentence BLEU-4 per pair as the authors' BleuMetric computed it: torcheval's `BLEUScore(n_gram=4)`,
    reset/update/compute per pair (whitespace tokens, case kept, uniform weights, no smoothing). A reference may be
    a list of texts: torcheval's multi-reference BLEU (n-gram counts clipped by their largest count in any one
    reference, the brevity penalty against the shortest reference).

    torcheval's update counts n-grams in a Python loop that adds into a tensor one n-gram at a time (~1.4 ms a pair);
    here the counts are exact integers from Counters, and torcheval's own `_bleu_score_compute` does the arithmetic
    on them, in the float64 of the metric's state, so every score is the library's to the last bit (and the
    authors' stored values, digit for digit on the CPU tried first; one unit in the last place on 4 of 88 on
    another, whose float64 log/exp kernels round differently). A pair with no shared 4-gram scores exactly 0 (log 0 in the geometric
    mean), which is most pairs: those are decided by the 4-grams alone."""
    return np.array([_bleu4(c.split(), [t.split() for t in ([r] if isinstance(r, str) else r)])
                     for c, r in zip(candidates, references)], dtype=np.float64)


def _ngrams(words: list[str], n: int) -> Counter:
    return Counter(zip(*(words[i:] for i in range(n))))


def _reference_ngrams(references: list[list[str]], n: int) -> Counter:
    """Each n-gram at its largest count in any one reference (torcheval's union of the references' counters)."""
    union = Counter()
    for reference in references:
        union |= _ngrams(reference, n)
    return union


def _bleu4(candidate: list[str], references: list[list[str]]) -> float:
    # torcheval refuses a candidate of fewer than 4 words (no 4-gram to count); unsmoothed BLEU-4 of a text
    # without a single 4-gram match is 0, which is what such a caption gets here (the authors' data had none)
    if len(candidate) < 4:
        return 0.0
    matches = [0, 0, 0, sum((_ngrams(candidate, 4) & _reference_ngrams(references, 4)).values())]
    if matches[3] == 0:
        return 0.0
    for n in (1, 2, 3):
        matches[n - 1] = sum((_ngrams(candidate, n) & _reference_ngrams(references, n)).values())
    import torch
    from torcheval.metrics.functional.text.bleu import _bleu_score_compute
    f64 = torch.float64   # BLEUScore's state dtype
    score = _bleu_score_compute(torch.tensor(float(len(candidate)), dtype=f64),
                                torch.tensor(float(min(len(r) for r in references)), dtype=f64),
                                torch.tensor(matches, dtype=f64),
                                torch.tensor([float(len(candidate) - i) for i in range(4)], dtype=f64), 4)
    return float(score)


@functools.lru_cache(maxsize=2)
def meteor_word_tokenizer(untimed: bool = True):
    """`nltk.word_tokenize` with the trained English Punkt when installed, else NLTK's untrained Punkt; by default
    with NLTK's patterns called without the ReDoS timeout (`meteor_tokens`: the same tokens, ~2x faster).

    Returns (tokenize, punkt_name)."""
    from nltk.tokenize import NLTKWordTokenizer
    from nltk.tokenize.punkt import PunktSentenceTokenizer
    from artcap_lib.textmetrics import meteor_tokens
    try:
        from nltk.tokenize import PunktTokenizer
        splitter, name = PunktTokenizer("english"), "english (trained punkt_tab)"
    except (LookupError, OSError, ImportError):
        splitter, name = PunktSentenceTokenizer(), "untrained PunktSentenceTokenizer (punkt_tab not installed)"
    words = NLTKWordTokenizer()   # the tokenizer word_tokenize applies to each sentence
    if untimed:
        splitter._lang_vars, words = meteor_tokens.untimed_lang_vars(), meteor_tokens.untimed_word_tokenizer()

    def tokenize(text: str) -> list[str]:
        return [token for sentence in splitter.tokenize(text) for token in words.tokenize(sentence)]
    return tokenize, name


class _MemoWordNet:
    """What NLTK's METEOR asks of WordNet, memoised: `synsets(word)`, of which it only reads the lemma names
    without "_" (the word's synonyms). Asked for the same words over and over, each word's synonyms are worked
    out once and handed back as one stand-in synset of distinct names: the same synonym set, so the same scores
    (the parity test with the authors' METEOR guards this), several times faster."""

    def __init__(self, wordnet):
        self._wordnet = wordnet
        self.synsets = functools.lru_cache(maxsize=None)(self._synonyms)

    def _synonyms(self, word: str) -> tuple:
        names = {lemma.name() for synset in self._wordnet.synsets(word) for lemma in synset.lemmas()}
        names = sorted(n for n in names if "_" not in n)
        return (_SynonymSet(names),) if names else ()


class _SynonymSet:
    __slots__ = ("_lemmas",)

    def __init__(self, names: list[str]):
        self._lemmas = tuple(_LemmaName(n) for n in names)

    def lemmas(self) -> tuple:
        return self._lemmas


class _LemmaName:
    __slots__ = ("_name",)

    def __init__(self, name: str):
        self._name = name

    def name(self) -> str:
        return self._name


class _MemoStemmer:
    def __init__(self, stemmer):
        self.stem = functools.lru_cache(maxsize=None)(stemmer.stem)


@functools.lru_cache(maxsize=1)
def _meteor_resources():
    import warnings
    from nltk.corpus.reader.wordnet import WordNetCorpusReader
    from nltk.data import find
    from nltk.stem.porter import PorterStemmer

    class EnglishWordNet(WordNetCorpusReader):
        # NLTK maps every WordNet it loads onto "wordnet" for the multilingual (OMW) functions, even
        # WordNet 3.0 onto itself: half of the load time, for a mapping English synsets() never reads
        def map_wn(self, version="wordnet"):
            return None

    try:
        root = find("corpora/wordnet")
    except LookupError as exc:
        raise RuntimeError("NLTK's METEOR needs WordNet: run `bash scripts/install_wordnet.sh .venv/nltk_data` "
                           "(or nltk.download('wordnet'))") from exc
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The multilingual functions")   # no OMW: English only
        wordnet = EnglishWordNet(root, None)
    return _MemoWordNet(wordnet), _MemoStemmer(PorterStemmer())


def meteor_nltk_scores(candidates: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """METEOR per pair as HF `evaluate.load("meteor")` computes one pair (its defaults alpha=0.9, beta=3,
    gamma=0.5): `single_meteor_score(word_tokenize(ref), word_tokenize(pred))`."""
    from nltk.translate.meteor_score import single_meteor_score
    tokenize, _ = meteor_word_tokenizer()
    tokenize = functools.lru_cache(maxsize=None)(tokenize)    # references recur (the shuffled control)
    wordnet, stemmer = _meteor_resources()
    return np.array([single_meteor_score(tokenize(r), tokenize(c), alpha=0.9, beta=3, gamma=0.5,
                                         wordnet=wordnet, stemmer=stemmer)
                     for c, r in zip(candidates, references)])
