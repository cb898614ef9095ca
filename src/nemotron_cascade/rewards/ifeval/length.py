"""``length_constraints:*`` checkers: sentences, paragraphs, words and a paragraph's first word."""

from __future__ import annotations

import re

from nemotron_cascade.rewards.ifeval.text import compare, count_sentences, count_words, split_paragraphs
from nemotron_cascade.rewards.ifeval.text import first_word as paragraph_first_word


def number_sentences(text: str, *, num_sentences: int, relation: str) -> bool:
    """Punkt sentence count (IFEval's splitter) compared with ``num_sentences``."""
    return compare(count_sentences(text), relation, num_sentences)


def number_paragraphs(text: str, *, num_paragraphs: int) -> bool:
    """Exactly ``num_paragraphs`` paragraphs separated by ``***``; an empty inner one fails."""
    paragraphs = re.split(r"\s?\*\*\*\s?", text)
    count = len(paragraphs)
    for index, paragraph in enumerate(paragraphs):
        if not paragraph.strip():
            if index in (0, len(paragraphs) - 1):
                count -= 1
            else:
                return False
    return count == num_paragraphs


def number_words(text: str, *, num_words: int, relation: str) -> bool:
    """Word count compared with ``num_words``."""
    return compare(count_words(text), relation, num_words)


def nth_paragraph_first_word(text: str, *, num_paragraphs: int, nth_paragraph: int, first_word: str) -> bool:
    """Exactly ``num_paragraphs`` blank-line-separated paragraphs; the n-th one's first word (IFEval's
    rule, :func:`paragraph_first_word`) is ``first_word``."""
    paragraphs = split_paragraphs(text)
    if len(paragraphs) != num_paragraphs or nth_paragraph > len(paragraphs):
        return False
    return paragraph_first_word(paragraphs[nth_paragraph - 1]) == first_word.strip().lower()

