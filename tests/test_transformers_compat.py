"""nemotron_cascade.compat under the installed transformers (5.24 in the CPU environment, 5.20 in the
GPU one: the suite runs under both, see tests/test_dependencies.py)."""

from __future__ import annotations

import warnings

import torch

from nemotron_cascade import compat, models


def _model(tokenizer):
    return models.build_tiny_model(tokenizer, models.TinyModelConfig(
        hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64, seed=0))


def test_activation_checkpointing_on_and_off_without_a_deprecation_warning(tokenizer):
    """On: every decoder layer checkpoints; off: none does; no FutureWarning from a deprecated name."""
    model = _model(tokenizer)
    assert not compat.is_activation_checkpointing(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        compat.activation_checkpointing_enable(model)
        assert compat.is_activation_checkpointing(model)
        assert all(layer.gradient_checkpointing for layer in model.model.layers)
        compat.activation_checkpointing_disable(model)
    assert not compat.is_activation_checkpointing(model)
    assert not any(layer.gradient_checkpointing for layer in model.model.layers)


def test_checkpointed_gradients_equal_the_plain_ones(tokenizer):
    """Recomputing in the backward pass gives the gradients the plain backward gives."""
    ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
    grads = []
    for on in (False, True):
        model = _model(tokenizer)
        model.train()
        if on:
            compat.activation_checkpointing_enable(model)
        model(input_ids=ids, labels=ids).loss.backward()
        grads.append(model.model.embed_tokens.weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-6)
