"""Typed configuration from parameters: one way to turn a YAML mapping into a frozen dataclass.

Every stage's hyper-parameters are a frozen dataclass (``SFTConfig``, ``RMConfig``, ``GRPOConfig``,
``LaunchConfig``, the stage configs of the pipelines). YAML gives lists where the dataclasses hold
tuples (hashable, frozen), so lists are turned into tuples, nested ones too. A key the dataclass
does not have, or a value of the wrong type (``lr: abc``, ``group_size: 2.5``, ``dynamic_filter:
"yes"``), fails with the block, the key and what it expected, before any training starts.

Type checks follow the dataclass annotations: ``float`` takes an int or a float, ``int`` an
integer, ``bool`` only ``true``/``false``, ``str`` a string, ``tuple`` a YAML list, ``dict`` a
mapping, ``X | None`` also ``null``; anything else (a nested dataclass, ``Any``) is left to the
dataclass itself.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def to_tuples(value: Any) -> Any:
    """``value`` with every list, nested ones too, turned into a tuple."""
    return tuple(to_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def _accepts(kind: Any, value: Any) -> bool | None:
    """Whether ``value`` fits the annotation ``kind``; ``None`` when the annotation is not checked."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        verdicts = [_accepts(k, value) for k in typing.get_args(kind)]
        return None if None in verdicts and not any(verdicts) else any(v for v in verdicts)
    simple = {float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
              int: lambda v: isinstance(v, int) and not isinstance(v, bool),
              bool: lambda v: isinstance(v, bool), str: lambda v: isinstance(v, str),
              type(None): lambda v: v is None, tuple: lambda v: isinstance(v, (list, tuple)),
              dict: lambda v: isinstance(v, Mapping)}
    check = simple.get(origin or kind)
    return None if check is None else check(value)


def _describe(kind: Any) -> str:
    return (" | ".join(getattr(k, "__name__", str(k)) for k in typing.get_args(kind))
            or getattr(kind, "__name__", str(kind)))


def check_types(cls: type, params: Mapping[str, Any], where: str = "") -> None:
    """Raise ``ValueError`` naming the first key of ``params`` whose value does not fit ``cls``'s annotation."""
    hints = typing.get_type_hints(cls)
    for key, value in params.items():
        if key in hints and _accepts(hints[key], value) is False:
            raise ValueError(f"{where or cls.__name__}: {key} must be {_describe(hints[key])}, "
                             f"got {value!r} ({type(value).__name__})")


def check_fields(obj: Any, where: str = "") -> None:
    """:func:`check_types` over a dataclass instance's own init fields (a stage config's
    ``__post_init__``: Kedro builds it from the YAML block without looking at the types)."""
    values = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.init}
    check_types(type(obj), values, where or f"params ({type(obj).__name__})")


def config_from_params(cls: type[T], params: Mapping[str, Any] | None, where: str = "") -> T:
    """``cls(**params)`` with YAML lists as tuples; an unknown key or a value of the wrong type is a
    ``ValueError`` naming it. ``where`` names the parameters block (``"params:math_rl.train"``)."""
    params = dict(params or {})
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - fields)
    if unknown:
        raise ValueError(f"{where or cls.__name__}: unknown key(s) {unknown}; valid keys are {sorted(fields)}")
    check_types(cls, params, where)
    return cls(**{k: to_tuples(v) for k, v in params.items()})
