"""Synthetic caption pairs at any scale for `artcap bench metrics --synthetic N`.

Each side is drawn from a word-bigram chain over the authors' own texts (references from the Artpedia human
captions, candidates from the LLaVA captions), with lengths drawn from theirs. So the vocabulary, punctuation,
capitals and lengths are the real ones, every text is new (no sentence repeats as a whole, so no cache of ours
gets an unfair hit), and a reference shares words, rarely 4-grams, with its candidate, as the real pairs do.
"""
from __future__ import annotations

import numpy as np

CHUNK = 10_000   # texts generated at a time: the token table is CHUNK x longest text, not N x longest


class BigramChain:
    """Successor table of whitespace words: each word's followers (with repeats, so drawn by frequency)."""

    def __init__(self, texts: list[str]):
        docs = [t.split() for t in texts if t.split()]
        vocab: dict[str, int] = {}
        coded = [np.array([vocab.setdefault(w, len(vocab)) for w in d], dtype=np.int64) for d in docs]
        self.words = np.array(list(vocab), dtype=object)
        self.lengths = np.array([len(d) for d in coded])
        self.starts = np.array([d[0] for d in coded])
        # a text's last word is followed by the next text's first word, so every word has a successor
        follow = np.concatenate(coded)
        after = np.concatenate([np.append(d[1:], coded[(k + 1) % len(coded)][0]) for k, d in enumerate(coded)])
        order = np.argsort(follow, kind="stable")
        self.successors = after[order]
        counts = np.bincount(follow, minlength=len(vocab))
        self.count = counts
        self.offset = np.concatenate([[0], np.cumsum(counts)[:-1]])

    def sample(self, n: int, rng: np.random.Generator) -> list[str]:
        out: list[str] = []
        for begin in range(0, n, CHUNK):
            m = min(CHUNK, n - begin)
            lengths = rng.choice(self.lengths, m)
            state = rng.choice(self.starts, m)
            table = np.empty((m, int(lengths.max())), dtype=np.int64)
            for t in range(table.shape[1]):   # one vectorised step of all m chains at a time
                table[:, t] = state
                pick = (rng.random(m) * self.count[state]).astype(np.int64)
                state = self.successors[self.offset[state] + pick]
            out.extend(" ".join(self.words[row[:k]]) for row, k in zip(table, lengths))
        return out


def synthetic_pairs(n: int, seed: int = 0) -> tuple[list[str], list[str], list[str]]:
    """(ids, references, candidates): n pairs, the same for the same (n, seed) on any machine."""
    from artcap_lib import reference
    rows = reference.experiment1_rows()
    captions = reference.llava_captions(["train"])
    rng = np.random.default_rng(seed)
    references = BigramChain([r["True_caption"] for r in rows]).sample(n, rng)
    candidates = BigramChain([captions[r["id"]] for r in rows]).sample(n, rng)
    return [f"s{i}" for i in range(n)], references, candidates
