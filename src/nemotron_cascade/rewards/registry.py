"""Rewards by name, so an RL stage's config can say ``reward: math``.

Every registered reward has the batch contract ``fn(responses, rows) -> list[float]`` (TRL-like):
``responses[i]`` is the model's whole output for the task row ``rows[i]``, which carries the ground
truth fields the reward reads:

========================  ===========================================================
name                      fields of each row
========================  ===========================================================
math                      ``answer``
science                   ``answer``
instruction_following     ``instruction_id_list``, ``kwargs``
tool_calling              ``expected_calls``
swe                       ``gold_patch`` (the patch is read from the response, see ``swe.extract_patch``)
code                      ``tests``
reward_model              ``prompt`` (built around a reward model: :func:`make_reward`)
instruction_following_rm  as instruction_following, plus ``prompt`` (:func:`make_reward`)
========================  ===========================================================

A row without a field raises ``KeyError`` naming the reward, the row and the field; an unknown
reward name raises ``KeyError`` listing the known ones.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

logger = logging.getLogger(__name__)

RewardFn = Callable[[Sequence[str], Sequence[Mapping[str, Any]]], list[float]]

_REGISTRY: dict[str, RewardFn] = {}


def register(name: str) -> Callable[[RewardFn], RewardFn]:
    """Decorator that files a batch reward under ``name`` (a name is taken once)."""

    def decorate(fn: RewardFn) -> RewardFn:
        if name in _REGISTRY:
            raise ValueError(f"reward {name!r} is already registered")
        _REGISTRY[name] = fn
        return fn

    return decorate


def reward_names() -> list[str]:
    """Names of every registered reward (plain and model-based), sorted."""
    return sorted({*_REGISTRY, *_FACTORIES})


def get_reward(name: str) -> RewardFn:
    """The batch reward registered as ``name`` (model-based rewards: :func:`make_reward`)."""
    if name in _FACTORIES:
        raise KeyError(f"reward {name!r} needs a reward model: build it with make_reward({name!r}, reward_model=...)")
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown reward {name!r}; known rewards: {reward_names()}") from None


# Rewards built from resources a stage is given (the trained reward model), by name as well.
_FACTORIES: dict[str, Callable[..., RewardFn]] = {}


def _needs_reward_model(name: str, reward_model) -> None:
    if reward_model is None:
        raise ValueError(f"reward {name!r} scores with a reward model, but the stage was given none: wire "
                         f"'reward_model.model' into it (set `reward_model: true` in the stage's block "
                         f"of parameters_rl.yml)")


def _rm_factory(reward_model=None, group_size: int | None = None) -> RewardFn:
    from nemotron_cascade.rewards.reward_model import RewardModelReward

    _needs_reward_model("reward_model", reward_model)
    return RewardModelReward(reward_model)


def _if_rm_factory(reward_model=None, group_size: int | None = None) -> RewardFn:
    from nemotron_cascade.rewards.reward_model import IFWithRMReward, RewardModelReward

    _needs_reward_model("instruction_following_rm", reward_model)
    if not group_size:
        raise ValueError("reward 'instruction_following_rm' normalises RM scores per group: give group_size")
    return IFWithRMReward(_REGISTRY["instruction_following"], RewardModelReward(reward_model), group_size)


_FACTORIES.update({"reward_model": _rm_factory, "instruction_following_rm": _if_rm_factory})


def make_reward(name: str, reward_model=None, group_size: int | None = None) -> RewardFn:
    """The reward a stage trains on: a plain registered reward, or one built around ``reward_model``
    (``reward_model``: the RM's score; ``instruction_following_rm``: IF-RL's combined reward)."""
    if name in _FACTORIES:
        return _FACTORIES[name](reward_model=reward_model, group_size=group_size)
    return get_reward(name)


def column(reward: str, rows: Sequence[Mapping[str, Any]], field: str) -> list[Any]:
    """``row[field]`` for every row; a missing field names the reward, the row index and the field."""
    values = []
    for index, row in enumerate(rows):
        if field not in row:
            raise KeyError(f"reward {reward!r}: row {index} has no field {field!r} (fields: {sorted(row)})")
        values.append(row[field])
    return values


def _check_lengths(reward: str, responses: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> None:
    """Responses and rows pair up one to one."""
    if len(responses) != len(rows):
        raise ValueError(f"reward {reward!r}: {len(responses)} responses but {len(rows)} rows")


@register("math")
def math_batch(responses: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> list[float]:
    """Math-Verify against ``row["answer"]``, spread over the worker pool."""
    from nemotron_cascade.rewards.math import batch_math_reward

    _check_lengths("math", responses, rows)
    return batch_math_reward(list(responses), column("math", rows, "answer"))


@register("science")
def science_batch(responses: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> list[float]:
    """Multiple-choice letter against ``row["answer"]``."""
    from nemotron_cascade.rewards.science import science_reward

    _check_lengths("science", responses, rows)
    answers = column("science", rows, "answer")
    return [science_reward(r, a) for r, a in zip(responses, answers)]


@register("instruction_following")
def instruction_following_batch(responses: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> list[float]:
    """IFEval checkers with ``row["instruction_id_list"]`` and ``row["kwargs"]`` (strict)."""
    from nemotron_cascade.rewards.instruction_following import if_reward

    _check_lengths("instruction_following", responses, rows)
    ids = column("instruction_following", rows, "instruction_id_list")
    kwargs = column("instruction_following", rows, "kwargs")
    out = []
    for index, (r, i, k) in enumerate(zip(responses, ids, kwargs)):
        try:
            out.append(if_reward(r, i, k))
        except (TypeError, ValueError) as e:  # bad instruction ids/kwargs: name the row, never score 0
            raise type(e)(f"reward 'instruction_following': row {index} "
                          f"(id {rows[index].get('id', '?')!r}): {e}") from e
    return out


@register("tool_calling")
def tool_calling_batch(responses: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> list[float]:
    """Exact match of the parsed tool calls with ``row["expected_calls"]``."""
    from nemotron_cascade.rewards.tool_calling import tool_call_reward

    _check_lengths("tool_calling", responses, rows)
    expected = column("tool_calling", rows, "expected_calls")
    return [tool_call_reward(r, e) for r, e in zip(responses, expected)]


@register("swe")
def swe_batch(responses: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> list[float]:
    """The response's patch against ``row["gold_patch"]`` (lexical judge); an unclosed think earns -1."""
    from nemotron_cascade.rewards.swe import extract_patch, swe_reward

    _check_lengths("swe", responses, rows)
    golds = column("swe", rows, "gold_patch")
    rewards = []
    for response, gold in zip(responses, golds):
        patch = extract_patch(response)
        # no final answer (unclosed think) is as unusable as an unparsable patch: -1, so that
        # never closing the think block cannot beat a broken attempt
        rewards.append(-1.0 if patch is None else swe_reward(patch, gold))
    return rewards


@register("code")
def code_batch(responses: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> list[float]:
    """The response's program on ``row["tests"]`` in the sandbox."""
    from nemotron_cascade.rewards.code import batch_code_reward

    _check_lengths("code", responses, rows)
    return batch_code_reward(list(responses), column("code", rows, "tests"))
