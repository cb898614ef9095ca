"""Fixtures shared by the reliability tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def tiny():
    from nemotron_cascade import models

    tok = models.train_tokenizer(["the cat sat on the mat", "1 + 1 = 2", "def f(x): return x"], 300)
    model = models.build_tiny_model(tok, models.TinyModelConfig(
        hidden_size=16, num_layers=1, num_heads=1, num_kv_heads=1, intermediate_size=32, seed=0))
    return model, tok
