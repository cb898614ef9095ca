"""General-domain sources (``task.general``): Llama-Nemotron's chat and safety SFT splits (SFT data and
RLHF prompts) and HelpSteer3's human preference pairs (the Bradley–Terry reward model's data).

A ``task.general`` row is ``prompt``, ``topic``, ``chosen`` and ``rejected``: ``rejected`` is empty
for SFT-only rows (one response, nothing to prefer it to), and a row with both gives the reward
model its own (chosen, rejected) pair (``data.world.general.pairs``).

A task holds one user prompt, so a conversation with earlier turns is rejected with the number of
its turns (the response, or the preference, was written for the whole conversation: cut to its
last user turn it would answer a question nobody asked).
"""

from __future__ import annotations

from collections.abc import Mapping

from nemotron_cascade import chat
from nemotron_cascade.data.sources.fields import (
    RowError,
    messages_of,
    references,
    text_of,
    value_of,
    with_references,
)
from nemotron_cascade.data.sources.science import nemotron_output, nemotron_turns


def _single_prompt(turns: list[dict], name: str) -> str:
    """The one user turn of a conversation (system turns aside); a RowError for more turns."""
    dialogue = [t for t in turns if t.get("role") != "system"]
    if not dialogue or dialogue[-1].get("role") != "user":
        raise RowError(name, "no final non-empty 'user' message")
    if len(dialogue) > 1:
        roles = ", ".join(str(t.get("role")) for t in dialogue)
        raise RowError(name, f"multi-turn conversation ({len(dialogue)} turns: {roles}): a task holds one user "
                             "prompt and the response was written for the whole conversation")
    return dialogue[0]["content"]


def _nemotron_general(raw: Mapping, split: str) -> dict:
    """A Llama-Nemotron SFT row of the ``chat`` or ``safety`` split as an SFT-only general task."""
    prompt = _single_prompt(nemotron_turns(raw), "input")
    output = nemotron_output(raw)
    answer = chat.final_answer(output)
    if not answer:
        raise RowError("output", "no final answer after the reasoning (an unclosed <think> block or an empty reply)")
    category = raw.get("category")
    topic = category.strip() if isinstance(category, str) and category.strip() else split
    task = {"prompt": prompt, "topic": topic, "chosen": answer, "rejected": "",
            "reasoning": raw.get("reasoning"), "origin": raw.get("generator")}
    return with_references(task, references(output))


def map_llama_nemotron_chat(raw: Mapping) -> dict:
    """nvidia/Llama-Nemotron-Post-Training-Dataset, config ``SFT``, split ``chat`` (``SFT/chat/*.jsonl``).

    Columns from the dataset card (the same as the ``science`` split's, :func:`map_llama_nemotron_science`):
    ``input`` (chat messages; v1 rows: Llama-3 template text), ``output`` (the response,
    ``<think>...</think>`` first when ``reasoning`` is ``on``), ``category`` (``chat``), ``license``,
    ``reasoning``, ``generator``, ``used_in_training``, ``version``, ``system_prompt`` (the mode
    switch, ``detailed thinking on/off``: not part of the task). ``topic`` is ``category`` (the split
    name when it is missing), ``chosen`` the response's final answer, ``rejected`` empty.
    ``reference_responses``: ``output``, ``thinking`` with a ``<think>`` trace, else ``plain``.
    Multi-turn conversations are rejected (see the module docstring).
    """
    return _nemotron_general(raw, "chat")


def map_llama_nemotron_safety(raw: Mapping) -> dict:
    """nvidia/Llama-Nemotron-Post-Training-Dataset, config ``SFT``, split ``safety``
    (``SFT/safety/*.jsonl``): the columns and mapping of :func:`map_llama_nemotron_chat`
    (``category``: ``safety``; the responses are Mixtral's safe answers, ``reasoning`` off)."""
    return _nemotron_general(raw, "safety")


def _preference(raw: Mapping) -> int:
    """``overall_preference``: an integer in -3..3, not 0 (a tie prefers nothing)."""
    value = value_of(raw, "overall_preference")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not -3 <= value <= 3:
        raise RowError("overall_preference", f"expected an integer in -3..3, got {value!r}")
    if value == 0:
        raise RowError("overall_preference", "a tie (0: the responses are about the same): no preferred response")
    return value


def map_helpsteer3_preference(raw: Mapping) -> dict:
    """nvidia/HelpSteer3, config ``preference``, split ``train`` (``preference/train.jsonl.gz``).

    Columns from the dataset card: ``domain`` (general, stem, code, multilingual), ``language``,
    ``context`` (list of ``{role, content}`` turns ending with the user's), ``response1``,
    ``response2``, ``overall_preference`` (-3..3: -3 "Response 1 is much better than Response 2",
    0 "about the same", 3 "Response 2 is much better than Response 1"), ``individual_preference``
    (up to 3 annotators' ``score`` and ``reasoning``). ``chosen`` is the
    response the sign of ``overall_preference`` prefers (negative: ``response1``), ``rejected`` the
    other; ``topic`` is ``domain``; ``preference_strength`` is ``|overall_preference|``. Rejected:
    ties (0), identical responses, and multi-turn contexts (the annotators judged the responses to
    the whole conversation; a task holds one user prompt). ``reference_responses``: ``chosen``,
    ``plain``. The task key is the prompt and both responses, so two pairs of one prompt stay two.
    """
    turns = [{"role": m.get("role"), "content": m["content"].strip()} for m in messages_of(raw, "context")
             if m["content"].strip()]
    prompt = _single_prompt(turns, "context")
    first, second = text_of(raw, "response1"), text_of(raw, "response2")
    preference = _preference(raw)
    if first.strip() == second.strip():
        raise RowError("response2", "identical to response1: the pair prefers nothing")
    chosen, rejected = (first, second) if preference < 0 else (second, first)
    task = {"prompt": prompt, "topic": text_of(raw, "domain").strip(), "chosen": chosen, "rejected": rejected,
            "preference_strength": abs(preference), "language": raw.get("language"),
            "key": f"{prompt}\x00{chosen}\x00{rejected}"}
    return with_references(task, {"plain": chosen.strip()})
