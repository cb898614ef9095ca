"""Typed configuration from parameters: one way to turn a YAML mapping into a frozen dataclass.

Every stage's hyper-parameters are a frozen dataclass (``SFTConfig``, ``RMConfig``, ``GRPOConfig``,
``LaunchConfig``, the stage configs of the pipelines). YAML gives lists where the dataclasses hold
tuples (hashable, frozen), so lists are turned into tuples, nested ones too, and a key the
dataclass does not have fails with the key's name and the valid ones, before any training starts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def to_tuples(value: Any) -> Any:
    """``value`` with every list, nested ones too, turned into a tuple."""
    return tuple(to_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def config_from_params(cls: type[T], params: Mapping[str, Any] | None, where: str = "") -> T:
    """``cls(**params)`` with YAML lists as tuples; an unknown key is a ``ValueError`` naming it.

    ``where`` names the parameters block in the error (``"params:math_rl.train"``).
    """
    params = dict(params or {})
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - fields)
    if unknown:
        raise ValueError(f"{where or cls.__name__}: unknown key(s) {unknown}; valid keys are {sorted(fields)}")
    return cls(**{k: to_tuples(v) for k, v in params.items()})
