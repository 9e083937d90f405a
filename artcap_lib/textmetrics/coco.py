"""Experiment 1's "coco" backend: the captioning community's pycocoevalcap.

Stanford PTB tokenization (lower-cased, punctuation dropped), BLEU-1..4, METEOR 1.5, ROUGE-L, CIDEr-D and SPICE.
Columns `coco_bleu1` ... `coco_spice`. BLEU and METEOR also have corpus-level values (not means of the per-image
ones), returned separately. SPICE needs the Stanford CoreNLP 3.6.0 jars, which pycocoevalcap downloads at run time
from a host that is often unreachable: it runs only when `spice_jars` names a directory holding them, and is
otherwise reported as skipped, with the reason, never as a number.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np


COCO_COLUMNS = ["coco_bleu1", "coco_bleu2", "coco_bleu3", "coco_bleu4", "coco_meteor", "coco_rougeL",
                "coco_cider", "coco_spice"]
SPICE_JARS = ("stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar")
# SPICE's cache (fst/lmdb) reflects into java.base internals, which Java 9+ refuses without these opens.
JAVA_ADD_OPENS = " ".join(f"--add-opens=java.base/{p}=ALL-UNNAMED" for p in (
    "java.lang", "java.util", "java.math", "java.util.concurrent", "java.net", "java.text", "java.io",
    "java.lang.reflect"))
SPICE_HOW_TO_ENABLE = ("put stanford-corenlp-3.6.0.jar and stanford-corenlp-3.6.0-models.jar (from "
                       "stanford-corenlp-full-2015-12-09.zip) in a directory and set metrics.spice_jars to it "
                       "(CLI: --spice-jars DIR); Java 8+ on PATH")


# ---------------------------------------------------------------------------------------------------------
# "coco" backend

class GuardedMeteor:
    """pycocoevalcap's METEOR 1.5 (one long-lived Java process: the paraphrase table loads once), made safe and
    pipelined.

    Same jar, same command line, same protocol (`SCORE ||| ref ||| hyp` -> a statistics line; then one
    `EVAL ||| stats ||| ...` line -> a score per pair and the corpus score), so the same scores as its
    `Meteor().compute_score`. Differences, none of which reaches a score:
    - its wrapper waits for each statistics line before sending the next pair (a round trip per pair, Java idle
      in between); here a thread writes every SCORE line while this one reads the answers;
    - Java runs with the serial garbage collector: the default collector's helper threads cost CPU time on a
      machine with few cores, and the results do not depend on the collector;
    - its line protocol desynchronises on a newline or '|||' inside a caption, and a dead Java process (e.g. no
      memory for -Xmx2G) surfaces as BrokenPipeError or a float() of an empty line; here texts are flattened
      first, and a dead process is an error carrying Java's stderr.
    """

    def __init__(self):
        import threading
        from pycocoevalcap.meteor import meteor
        home = Path(meteor.__file__).parent
        self._process = subprocess.Popen(["java", "-XX:+UseSerialGC", "-jar", "-Xmx2G", meteor.METEOR_JAR, "-", "-",
                                          "-stdio", "-l", "en", "-norm"], cwd=home, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._lock = threading.Lock()   # one conversation with Java at a time (real and control sets share it)

    @staticmethod
    def clean(text: str) -> str:
        return re.sub(r"\s+", " ", text.replace("|||", " ")).strip()

    def compute_score(self, gts: dict, res: dict) -> tuple[float, list[float]]:
        """(corpus METEOR, [METEOR per key in gts' order]), as pycocoevalcap's `Meteor().compute_score`."""
        import threading
        keys = list(gts)
        if keys != list(res):
            raise ValueError("METEOR: gts and res must have the same keys in the same order")
        lines = []
        for k in keys:
            if len(res[k]) != 1:
                raise ValueError(f"METEOR: key {k}: one candidate expected, got {len(res[k])}")
            hypothesis = self.clean(res[k][0]).replace("|||", "").replace("  ", " ")   # as pycocoevalcap's _stat
            lines.append(" ||| ".join(("SCORE", " ||| ".join(self.clean(t) for t in gts[k]), hypothesis)) + "\n")
        with self._lock:
            try:
                failed: list[BaseException] = []
                writer = threading.Thread(target=self._write, args=(lines, failed), daemon=True)
                writer.start()
                stats = [self._readline() for _ in keys]
                writer.join()
                if failed:
                    raise failed[0]
                self._process.stdin.write(("EVAL ||| " + " ||| ".join(stats) + "\n").encode())
                self._process.stdin.flush()
                scores = [float(self._readline()) for _ in keys]
                return float(self._readline()), scores
            except (BrokenPipeError, ValueError, OSError) as exc:
                process = self._process
                stderr = ""
                if process.poll() is not None:
                    stderr = process.stderr.read().decode(errors="replace")[-2000:]
                raise RuntimeError(f"METEOR 1.5 (Java) failed: {exc!r}; java exit code {process.poll()}; "
                                   f"stderr: {stderr or '(empty)'}") from exc

    def _write(self, lines: list[str], failed: list) -> None:
        try:
            stdin = self._process.stdin
            for line in lines:
                stdin.write(line.encode())
            stdin.flush()
        except OSError as exc:        # Java died: the reader sees an empty line and reports it with stderr
            failed.append(exc)

    def _readline(self) -> str:
        line = self._process.stdout.readline()
        if not line:
            raise ValueError("METEOR 1.5 closed its output")
        return line.decode().strip()

    def close(self) -> None:
        """End Java (closing its input ends it; killed if it lingers) and reap it, so its CPU time is counted."""
        process = self._process
        if process.poll() is None:
            try:
                process.stdin.close()
            except OSError:
                pass   # already gone: nothing to flush
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        process.wait()


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
    """pycocoevalcap's PTB tokenizer (Java; lower-cases, drops punctuation) over {key: text}.

    Its `PTBTokenizer.tokenize`, line for line, except where the sentences go: it writes them to a temporary file
    in its own package folder (the venv's site-packages, which may be read-only and is no place for data); here
    they go to the system's temporary folder."""
    from pycocoevalcap.tokenizer import ptbtokenizer as ptb
    keys = list(texts)
    sentences = "\n".join(texts[k].replace("\n", " ") for k in keys)
    jar = Path(ptb.__file__).with_name(ptb.STANFORD_CORENLP_3_4_1_JAR)
    with tempfile.TemporaryDirectory(prefix="artcap-ptb-") as tmp:
        source = Path(tmp) / "sentences.txt"
        source.write_bytes(sentences.encode())
        done = subprocess.run(["java", "-cp", str(jar), "edu.stanford.nlp.process.PTBTokenizer", "-preserveLines",
                               "-lowerCase", str(source)], stdout=subprocess.PIPE, check=True)
    lines = done.stdout.decode().split("\n")
    return {k: " ".join(w for w in line.rstrip().split(" ") if w not in ptb.PUNCTUATIONS)
            for k, line in zip(keys, lines)}


def coco_scores(gts: dict[str, list[str]], res: dict[str, list[str]], spice_jars: str = ""
                ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """pycocoevalcap's BLEU-1..4, ROUGE-L, CIDEr-D (and SPICE when ready) on PTB-tokenized {key: [text]}:
    (per-key columns in sorted-key order, corpus-level BLEU). METEOR 1.5 is `GuardedMeteor`, run beside."""
    from pycocoevalcap.bleu.bleu import Bleu
    from artcap_lib.textmetrics.cider import cider_d_scores
    keys = sorted(gts)
    gts = {k: gts[k] for k in keys}
    res = {k: res[k] for k in keys}
    per, corpus = {}, {}
    bleu_corpus, bleu_per = Bleu(4).compute_score(gts, res, verbose=0)
    for n in range(4):
        per[f"coco_bleu{n + 1}"] = np.asarray(bleu_per[n], dtype=np.float64)
        corpus[f"coco_bleu{n + 1}"] = float(bleu_corpus[n])
    per["coco_rougeL"] = rouge_l_scores(gts, res)
    per["coco_cider"] = cider_d_scores(gts, res)   # = pycocoevalcap's Cider, which is CIDEr-D (sigma 6, clipping)
    if spice_status(spice_jars)["status"] == "ready":
        spice = spice_scores(gts, res, spice_jars)
        per["coco_spice"] = np.array([spice[k] for k in keys])
    return per, corpus


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence of two token lists, bit-parallel (Allison & Dix 1986; Hyyro 2004).

    Bit i of `v` is 0 where the LCS table's column gains 1 at row i; each token of b updates all rows at once with
    one big-integer add, so a pair costs len(b) integer steps instead of pycocoevalcap's len(a) x len(b) list cells
    (its `my_lcs`: two thirds of the coco backend's Python time)."""
    masks: dict[str, int] = {}
    for i, token in enumerate(a):
        masks[token] = masks.get(token, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for token in b:
        match = masks.get(token)
        if match:
            u = v & match
            v = ((v + u) | (v - u)) & full
    return len(a) - v.bit_count()


def rouge_l_scores(gts: dict[str, list[str]], res: dict[str, list[str]]) -> np.ndarray:
    """pycocoevalcap's ROUGE-L (`Rouge().compute_score(gts, res)[1]`): its tokens (split on " "), its formula
    (F with beta 1.2 over the best precision and recall among the references), in its order of operations, so the
    same floats; only the LCS length comes from `lcs_length`."""
    beta = 1.2
    out = np.empty(len(gts), dtype=np.float64)
    for k, key in enumerate(gts):
        token_c = res[key][0].split(" ")
        prec, rec = [], []
        for reference in gts[key]:
            token_r = reference.split(" ")
            lcs = lcs_length(token_r, token_c)
            prec.append(lcs / float(len(token_c)))
            rec.append(lcs / float(len(token_r)))
        prec_max, rec_max = max(prec), max(rec)
        if prec_max != 0 and rec_max != 0:
            out[k] = ((1 + beta ** 2) * prec_max * rec_max) / float(rec_max + beta ** 2 * prec_max)
        else:
            out[k] = 0.0
    return out
