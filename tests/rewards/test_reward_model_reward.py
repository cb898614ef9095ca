"""Rewards built around a reward model: RLHF's score and IF-RL's combined reward."""

import math

import pytest
import torch

from nemotron_cascade.datasets.checkpoint import Checkpoint
from nemotron_cascade.rewards import registry
from nemotron_cascade.rewards.reward_model import IFWithRMReward, RewardModelReward, group_normalise
from nemotron_cascade.training.reward_model import render_scored, reward_model_from_policy, score_texts


@pytest.fixture()
def rm_checkpoint(tiny_model, tokenizer):
    rm = reward_model_from_policy(tiny_model, tokenizer)
    torch.manual_seed(1)
    torch.nn.init.normal_(rm.score.weight)
    return Checkpoint(model=rm, tokenizer=tokenizer, lineage={"version": "v1"})


def test_rm_reward_scores_prompt_and_final_answer(rm_checkpoint, tokenizer):
    reward = RewardModelReward(rm_checkpoint)
    rows = [{"prompt": "Tell me about owls."}] * 3
    responses = ["Owls live near rivers.", "<think>I know this.</think>\nOwls live near rivers.", "<think>never closed"]
    scores = reward(responses, rows)
    direct = float(score_texts(rm_checkpoint.model, tokenizer, [render_scored(rows[0]["prompt"], responses[0])])[0])
    assert scores[0] == pytest.approx(direct, abs=1e-5)
    assert scores[1] == pytest.approx(scores[0], abs=1e-5)  # the thinking trace is not scored
    assert scores[2] == pytest.approx(min(scores[:2]) - 1.0)  # no answer ranks below every answer
    with pytest.raises(KeyError, match="row 0 has no field 'prompt'"):
        reward(["x"], [{"id": 1}])


@pytest.mark.parametrize("values, size, expected, reason", [
    ([1.0, 3.0], 2, [-1.0, 1.0], "mean 2, population std 1"),
    ([5.0, 5.0, 0.0, 2.0], 2, [0.0, 0.0, -1.0, 1.0], "a constant group normalises to 0; groups are independent"),
])
def test_group_normalise_by_hand(values, size, expected, reason):
    assert group_normalise(values, size) == pytest.approx(expected, abs=1e-5), reason


def test_group_normalise_rejects_ragged_batches():
    with pytest.raises(ValueError, match="groups of 2"):
        group_normalise([1.0, 2.0, 3.0], 2)


def test_if_with_rm_is_zero_unless_every_instruction_holds():
    class FakeRM:  # the combination rule is under test here; the RM itself is tested above
        def __call__(self, responses, rows):
            return [1.0, 3.0, 0.0, 0.0]

    r_if = lambda responses, rows: [1.0, 1.0, 0.0, 1.0]  # noqa: E731
    out = IFWithRMReward(r_if, FakeRM(), group_size=2)(["a", "b", "c", "d"], [{}] * 4)
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    # group 1: RM [1, 3] -> [-1, 1]; group 2: RM [0, 0] -> [0, 0]; the third fails an instruction
    assert out == pytest.approx([1 + sig(-1), 1 + sig(1), 0.0, 1 + sig(0)], abs=1e-5)


def test_make_reward_builds_model_rewards_and_explains_what_is_missing(rm_checkpoint):
    assert isinstance(registry.make_reward("reward_model", reward_model=rm_checkpoint), RewardModelReward)
    assert isinstance(registry.make_reward("instruction_following_rm", reward_model=rm_checkpoint, group_size=4),
                      IFWithRMReward)
    assert registry.make_reward("math") is registry.get_reward("math")
    assert {"reward_model", "instruction_following_rm"} <= set(registry.reward_names())
    with pytest.raises(ValueError, match="wire 'reward_model.model'"):
        registry.make_reward("reward_model")
    with pytest.raises(ValueError, match="give group_size"):
        registry.make_reward("instruction_following_rm", reward_model=rm_checkpoint)
    with pytest.raises(KeyError, match="needs a reward model"):
        registry.get_reward("reward_model")


@pytest.mark.parametrize("ids, kwargs, error, message, reason", [
    (["keywords:nonexistent"], [{}], ValueError, "unknown instruction id", "an id IFEval does not have"),
    (["length_constraints:number_words"], [{"num_words": "ten", "relation": "at least"}], TypeError,
     "expected an int", "a kwarg of the wrong type"),
])
def test_instruction_batch_names_the_row_of_bad_input(ids, kwargs, error, message, reason):
    rows = [{"id": "ok", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
            {"id": "bad-row", "instruction_id_list": ids, "kwargs": kwargs}]
    with pytest.raises(error, match=message) as err:
        registry.get_reward("instruction_following")(["fine", "fine"], rows)
    assert "row 1 (id 'bad-row')" in str(err.value), reason
