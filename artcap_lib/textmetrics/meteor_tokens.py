"""NLTK's `word_tokenize` (Punkt sentences, then NLTKWordTokenizer) for NLTK METEOR, with its regular expressions
called directly.

NLTK 3.10 routes every regular expression through `nltk.redos`: each match runs with a wall-clock timeout, a guard
against crafted patterns. These are NLTK's own fixed patterns, and under the timeout the `regex` engine runs ~3x
slower; tokenizing was two thirds of the paper backend's METEOR time. Here the same compiled `regex` patterns (the
guard's `_rx`) are called without the timeout, in the same tokenizer code: the same engine and patterns, so the
same tokens (a test holds this against NLTK's own objects)."""
from __future__ import annotations


def untimed(pattern):
    """The compiled `regex` pattern inside an `nltk.redos.TimedPattern` (anything else as it is)."""
    return getattr(pattern, "_rx", pattern)


def untimed_word_tokenizer():
    """An NLTKWordTokenizer whose substitution tables hold the untimed patterns."""
    from nltk.tokenize import NLTKWordTokenizer
    tables = {}
    for name in ("STARTING_QUOTES", "PUNCTUATION", "ENDING_QUOTES", "CONVERT_PARENTHESES"):
        tables[name] = [(untimed(p), repl) for p, repl in getattr(NLTKWordTokenizer, name)]
    for name in ("PARENS_BRACKETS", "DOUBLE_DASHES"):
        p, repl = getattr(NLTKWordTokenizer, name)
        tables[name] = (untimed(p), repl)
    for name in ("CONTRACTIONS2", "CONTRACTIONS3"):
        tables[name] = [untimed(p) for p in getattr(NLTKWordTokenizer, name)]
    return type("UntimedNLTKWordTokenizer", (NLTKWordTokenizer,), tables)()


def untimed_lang_vars():
    """Punkt's language variables with the untimed boundary, period-context and word patterns."""
    from nltk.tokenize.punkt import PunktLanguageVars

    class UntimedPunktLanguageVars(PunktLanguageVars):
        __slots__ = ()
        re_boundary_realignment = untimed(PunktLanguageVars.re_boundary_realignment)

        def period_context_re(self):
            return untimed(super().period_context_re())

        def _word_tokenizer_re(self):
            return untimed(super()._word_tokenizer_re())
    return UntimedPunktLanguageVars()
