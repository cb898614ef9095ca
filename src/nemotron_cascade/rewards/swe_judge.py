"""LLM judge for the SWE reward: P("yes, same fix") read from the model's log-probabilities.

The judge renders one question per (predicted, gold) pair with the project's chat template in
non-thinking mode — "does this patch fix the same issue as the ground truth? Answer yes or no." —
and reads the next-token log-probs from any :class:`~nemotron_cascade.generation.base.Generator`
(``logprobs`` in :class:`SamplingParams`). The score is

    P(yes) = p(yes) / (p(yes) + p(no))

where p(yes) sums the probabilities of the spellings of "yes" ("yes", "Yes", "YES", with and without a
leading space) and p(no) those of "no". It is a proper probability in ``[0, 1]`` and deterministic.

Spellings are token sequences found with the tokenizer:

* when both answers have single-token spellings (real tokenizers), only those count: one step;
* otherwise (the tiny project tokenizer splits "yes" into "y" + "es") every spelling is scored by the
  chain rule, p(y) * p(es | y), querying the backend once per distinct prefix — all prompts and
  prefixes in one ``generate`` call. A spelling counts only when the prompt plus its prefix text
  tokenises to exactly the prompt's tokens plus the prefix, i.e. what the backend really conditions on.

A needed token outside the returned top-``top_logprobs`` is re-asked with the whole vocabulary (a
second call for those queries only), so the score is exact, never a truncated estimate. By default a
small vocabulary (at most ``FULL_VOCAB_UP_TO`` tokens, e.g. the tiny model's) is asked for whole at
once, a large one for the top 20 (vLLM's default ``max_logprobs``).

The judge runs where its generator runs: an :class:`~nemotron_cascade.generation.hf.HFGenerator`
moves its inputs to its model's device (place the model with
:func:`nemotron_cascade.training.placement.place`), vLLM on its own GPU.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from nemotron_cascade import chat
from nemotron_cascade.generation.base import Generator, SamplingParams

logger = logging.getLogger(__name__)

QUESTION = "Does this patch fix the same issue as the ground truth? Answer yes or no."
YES_WORDS = ("yes", "Yes", "YES")
NO_WORDS = ("no", "No", "NO")
FULL_VOCAB_UP_TO = 4096
DEFAULT_TOP_LOGPROBS = 20

TokenSeq = tuple[int, ...]


def judge_prompt(predicted_patch: str, gold_patch: str) -> str:
    """The judge's generation prompt: both patches and the yes/no question, non-thinking mode."""
    def block(patch: str) -> str:
        return f"```diff\n{patch if patch.endswith(chr(10)) else patch + chr(10)}```"

    content = f"Ground-truth patch:\n{block(gold_patch)}\n\nPredicted patch:\n{block(predicted_patch)}\n\n{QUESTION}"
    return chat.render([{"role": "user", "content": content}], add_generation_prompt=True, enable_thinking=False)


@dataclass(frozen=True)
class AnswerTokens:
    """Token sequences that spell "yes" and "no" (no sequence is a prefix of another)."""

    yes: tuple[TokenSeq, ...]
    no: tuple[TokenSeq, ...]

    @property
    def single_token(self) -> bool:
        """True when every spelling is one token: one step of log-probs decides."""
        return all(len(s) == 1 for s in self.yes + self.no)


def answer_tokens(tokenizer) -> AnswerTokens:
    """The yes/no spellings under ``tokenizer``; single-token ones only when both answers have one.

    Raises ``ValueError`` when the tokenizer cannot spell "yes" or "no" without unknown tokens.
    """
    unk = getattr(tokenizer, "unk_token_id", None)

    def spellings(words: Sequence[str]) -> list[TokenSeq]:
        out = []
        for text in [w for word in words for w in (word, " " + word)]:
            ids = tuple(tokenizer(text, add_special_tokens=False).input_ids)
            if ids and (unk is None or unk not in ids) and ids not in out:
                out.append(ids)
        return out

    yes, no = spellings(YES_WORDS), spellings(NO_WORDS)
    if not yes or not no:
        raise ValueError(f"tokenizer {type(tokenizer).__name__} has no token sequence for "
                         f"{'yes' if not yes else 'no'} (every spelling is empty or unknown)")
    if set(yes) & set(no):
        raise ValueError(f"tokenizer {type(tokenizer).__name__} spells yes and no alike: {set(yes) & set(no)}")
    single_yes, single_no = [s for s in yes if len(s) == 1], [s for s in no if len(s) == 1]
    if single_yes and single_no:
        yes, no = single_yes, single_no
    every = yes + no
    # A spelling that extends another one is the same event plus more tokens: counting it twice
    # would double its mass, so keep the shorter.
    keep = [s for s in every if not any(o != s and s[:len(o)] == o for o in every)]
    return AnswerTokens(tuple(s for s in yes if s in keep), tuple(s for s in no if s in keep))


def _logsumexp(values: Sequence[float]) -> float:
    finite = [v for v in values if v != -math.inf]
    if not finite:
        return -math.inf
    top = max(finite)
    return top + math.log(sum(math.exp(v - top) for v in finite))


def p_yes(yes_logprobs: Sequence[float], no_logprobs: Sequence[float]) -> float:
    """``p(yes) / (p(yes) + p(no))`` from per-spelling log-probs, stable in log space (0.5 if both 0)."""
    a, b = _logsumexp(yes_logprobs), _logsumexp(no_logprobs)
    if a == b == -math.inf:
        logger.warning("judge gives probability 0 to every yes and no spelling; scored 0.5")
        return 0.5
    return 1.0 / (1.0 + math.exp(b - a)) if b - a < 700 else 0.0


class LLMJudge:
    """A :class:`~nemotron_cascade.rewards.swe.Judge` backed by a generation backend's log-probs.

    ``generator`` is any backend honouring ``SamplingParams.logprobs``; ``tokenizer`` defaults to
    ``generator.tokenizer`` (the HF backend has one); ``render(predicted, gold) -> prompt`` builds the
    question (default :func:`judge_prompt`); ``top_logprobs`` is how many log-probs to ask first
    (``None``: the whole vocabulary up to ``FULL_VOCAB_UP_TO`` tokens, else ``DEFAULT_TOP_LOGPROBS``).
    """

    def __init__(self, generator: Generator, render: Callable[[str, str], str] = judge_prompt,
                 tokenizer=None, top_logprobs: int | None = None):
        tokenizer = tokenizer if tokenizer is not None else getattr(generator, "tokenizer", None)
        if tokenizer is None:
            raise ValueError("LLMJudge needs a tokenizer: pass tokenizer=, or a generator with .tokenizer")
        if top_logprobs is not None and top_logprobs < 1:
            raise ValueError(f"top_logprobs must be >= 1 or None, got {top_logprobs}")
        self.generator, self.render, self.tokenizer = generator, render, tokenizer
        self.vocab_size = len(tokenizer)
        if top_logprobs is None:
            top_logprobs = self.vocab_size if self.vocab_size <= FULL_VOCAB_UP_TO else DEFAULT_TOP_LOGPROBS
        self.top_logprobs = top_logprobs
        self.answers = answer_tokens(tokenizer)

    def __call__(self, predicted_patch: str, gold_patch: str) -> float:
        """P(yes) for one pair."""
        return self.batch([(predicted_patch, gold_patch)])[0]

    def batch(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """P(yes) for each (predicted, gold) pair, in order, from one ``generate`` call (plus one
        for queries whose needed tokens fell outside the top-k)."""
        prompts = [self.render(pred, gold) for pred, gold in pairs]
        spellings = [self._valid_spellings(i, p) for i, p in enumerate(prompts)]
        queries = sorted({(i, seq[:j]) for i, (yes, no) in enumerate(spellings) for seq in yes + no
                          for j in range(len(seq))})
        steps = self._query(prompts, queries, spellings)
        scores = []
        for i, (yes, no) in enumerate(spellings):
            def logprob(seq: TokenSeq) -> float:
                return sum(steps[(i, seq[:j])][seq[j]] for j in range(len(seq)))
            scores.append(p_yes([logprob(s) for s in yes], [logprob(s) for s in no]))
        return scores

    def _valid_spellings(self, index: int, prompt: str) -> tuple[list[TokenSeq], list[TokenSeq]]:
        """The spellings whose prefixes the backend would see as exactly those tokens after ``prompt``."""
        if self.answers.single_token:
            return list(self.answers.yes), list(self.answers.no)
        base = self.tokenizer(prompt, add_special_tokens=False).input_ids

        def ok(seq: TokenSeq) -> bool:
            for j in range(1, len(seq)):
                text = prompt + self.tokenizer.decode(list(seq[:j]))
                if self.tokenizer(text, add_special_tokens=False).input_ids != base + list(seq[:j]):
                    return False
            return True

        yes, no = [s for s in self.answers.yes if ok(s)], [s for s in self.answers.no if ok(s)]
        if not yes or not no:
            raise ValueError(f"judge pair {index}: no {'yes' if not yes else 'no'} spelling survives "
                             f"tokenisation after the prompt (prompt ends {prompt[-40:]!r})")
        return yes, no

    def _query(self, prompts: list[str], queries: list[tuple[int, TokenSeq]],
               spellings: list[tuple[list[TokenSeq], list[TokenSeq]]]) -> dict[tuple[int, TokenSeq], dict[int, float]]:
        """Next-token log-probs for every (pair, prefix) query; re-asks missing tokens with the full vocab."""
        def needed(i: int, prefix: TokenSeq) -> set[int]:
            yes, no = spellings[i]
            return {s[len(prefix)] for s in yes + no if len(s) > len(prefix) and s[:len(prefix)] == prefix}

        def ask(batch: list[tuple[int, TokenSeq]], k: int) -> dict[tuple[int, TokenSeq], dict[int, float]]:
            texts = [prompts[i] + self.tokenizer.decode(list(prefix)) for i, prefix in batch]
            params = SamplingParams(max_new_tokens=1, temperature=0.0, logprobs=k)
            out = self.generator.generate(texts, params)
            result = {}
            for query, (completion, *_) in zip(batch, out):
                if not completion.logprobs:
                    raise RuntimeError(f"judge pair {query[0]}: the backend returned no log-probs "
                                       f"(generated token ids {completion.token_ids})")
                result[query] = completion.logprobs[0]
            return result

        steps = ask(queries, self.top_logprobs)
        missing = [q for q in queries if not needed(*q) <= steps[q].keys()]
        if missing:
            logger.debug("judge: %d of %d queries re-asked with the full vocabulary", len(missing), len(queries))
            steps.update(ask(missing, self.vocab_size))
        for q in missing:
            if not needed(*q) <= steps[q].keys():
                raise RuntimeError(f"judge pair {q[0]}: the backend gave no log-prob for tokens "
                                   f"{sorted(needed(*q) - steps[q].keys())} even with logprobs={self.vocab_size}")
        return steps
