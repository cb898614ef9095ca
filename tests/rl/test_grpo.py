"""GRPO math against values worked by hand, and against a slow loop version."""

import math

import pytest
import torch

from nemotron_cascade.rl.grpo import EPS, group_advantages, policy_loss


def test_advantages_worked_by_hand():
    # group 0: rewards 1, 0, 0, 1 -> mean 0.5, population std 0.5 -> ±1 (up to eps)
    # group 1: rewards 1, 1, 1, 0 -> mean 0.75, std sqrt(0.1875) = 0.4330 -> 0.5774, -1.7321
    adv = group_advantages(torch.tensor([1.0, 0, 0, 1, 1, 1, 1, 0]), group_size=4)
    s = math.sqrt(0.1875)
    hi, lo = 0.5 / (0.5 + EPS), -0.5 / (0.5 + EPS)
    expected = [hi, lo, lo, hi] + [0.25 / (s + EPS)] * 3 + [-0.75 / (s + EPS)]
    assert torch.allclose(adv, torch.tensor(expected), atol=1e-6)


def test_zero_variance_group_gives_exactly_zero():
    adv = group_advantages(torch.tensor([1.0, 1.0, 0.0, 0.0, 0.3, 0.3]), group_size=2)
    assert adv.tolist()[:4] == [0.0, 0.0, 0.0, 0.0] and adv.tolist()[4:] == [0.0, 0.0]


def test_advantages_are_scale_and_shift_invariant_within_a_group():
    r = torch.tensor([0.2, 0.9, 0.4, 0.1])
    assert torch.allclose(group_advantages(r, 4), group_advantages(3 * r + 7, 4), atol=1e-5)


def test_advantages_match_a_slow_loop():
    torch.manual_seed(0)
    rewards, g = torch.rand(5 * 6), 6
    slow = []
    for i in range(0, len(rewards), g):
        grp = rewards[i:i + g].tolist()
        mean = sum(grp) / g
        std = (sum((x - mean) ** 2 for x in grp) / g) ** 0.5
        slow += [(x - mean) / (std + EPS) if std > 0 else 0.0 for x in grp]
    assert torch.allclose(group_advantages(rewards, g), torch.tensor(slow), atol=1e-5)


@pytest.mark.parametrize("rewards,g", [(torch.zeros(5), 2), (torch.zeros(2, 2), 2), (torch.zeros(4), 0)])
def test_bad_shapes_are_refused(rewards, g):
    with pytest.raises(ValueError):
        group_advantages(rewards, g)


def test_policy_loss_worked_by_hand():
    # two responses: A = +1 over tokens with logp -1, -2 (2 tokens); A = -0.5 over logp -3 (1 token,
    # the second position is padding). Sum A*logp = 1*(-1) + 1*(-2) + (-0.5)*(-3) = -1.5.
    # Token-level mean over 3 tokens: -1.5 / 3 = -0.5; the loss is its negative: +0.5.
    logprobs = torch.tensor([[-1.0, -2.0], [-3.0, -9.0]])
    mask = torch.tensor([[1, 1], [1, 0]])
    loss = policy_loss(logprobs, torch.tensor([1.0, -0.5]), mask)
    assert math.isclose(loss.item(), 0.5, rel_tol=1e-6)


def test_policy_loss_is_token_level_not_sequence_level():
    # a long response weighs in proportion to its tokens: per-sequence averaging would give
    # -(1*(-1) + 1*(-1)) / 2 = 1.0 for both cases; token-level gives the same only when lengths agree.
    logprobs = torch.full((2, 4), -1.0)
    long_short = torch.tensor([[1, 1, 1, 1], [1, 0, 0, 0]])
    loss = policy_loss(logprobs, torch.tensor([1.0, -1.0]), long_short)
    # sum A*logp = 4*(-1) + (-1)*(-1) = -3; over 5 tokens -> -0.6; loss 0.6
    assert math.isclose(loss.item(), 0.6, rel_tol=1e-6)


def test_policy_gradient_pushes_up_positive_advantage_tokens():
    logits = torch.zeros(2, 3, requires_grad=True)  # two one-token responses over a 3-word vocab
    logp = torch.log_softmax(logits, -1)[torch.arange(2), torch.tensor([0, 1])].unsqueeze(1)
    policy_loss(logp, torch.tensor([1.0, -1.0]), torch.ones(2, 1)).backward()
    assert logits.grad[0, 0] < 0 and logits.grad[1, 1] > 0  # descent raises token 0, lowers token 1


def test_policy_loss_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="shapes do not match"):
        policy_loss(torch.zeros(2, 3), torch.zeros(3), torch.ones(2, 3))
