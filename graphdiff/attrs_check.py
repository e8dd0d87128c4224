"""Checks compile makes on the attributes of nodes and edges, beyond their types.

* numbers a float64 array cannot hold: op attributes (``i``, ``axis``, ...) beyond
  int64 and parameter shapes beyond what numpy can allocate are refused naming the
  node, instead of failing later inside numpy;

>>> check_numbers("n", {"i": 10**40})
Traceback (most recent call last):
...
graphdiff.errors.GraphError: node 'n': attribute 'i' = (an int of 133 bits) does not fit in int64
"""

from __future__ import annotations

import math
import sys
from collections.abc import Hashable
from typing import Any

from .errors import GraphError

__all__ = ["check_numbers", "check_size", "show_number"]

INT_MAX = 2**63 - 1  # numpy's int64: indices, axes and sizes beyond it overflow


def show_number(x: Any) -> str:
    """``repr(x)``, or for an int too long to print usefully, its size in bits."""
    if isinstance(x, int) and abs(x) > 10**30:
        return f"{'-' if x < 0 else ''}(an int of {x.bit_length()} bits)"
    if isinstance(x, (tuple, list)) and len(x) <= 8:
        inner = ", ".join(map(show_number, x))
        return f"({inner},)" if isinstance(x, tuple) and len(x) == 1 else (
            f"({inner})" if isinstance(x, tuple) else f"[{inner}]")
    text = repr(x)
    return text if len(text) <= 80 else text[:77] + "..."


def _too_large(x: Any) -> bool:
    if isinstance(x, int):
        return abs(x) > INT_MAX
    if isinstance(x, (tuple, list)):
        return any(map(_too_large, x))
    return False


def check_numbers(node: Hashable, attrs: dict[str, Any]) -> dict[str, Any]:
    """``attrs`` (an op's validated attributes), refused if an int in them is beyond int64."""
    for k, x in attrs.items():
        if _too_large(x):
            raise GraphError(
                f"node {node!r}: attribute {k!r} = {show_number(x)} does not fit in int64"
            )
    return attrs


def check_size(node: Hashable, shape: tuple[int, ...]) -> None:
    """Refuse a parameter shape whose float64 array numpy could never allocate."""
    if shape and math.prod(shape) > sys.maxsize // 8:
        raise GraphError(
            f"node {node!r}: 'shape' {show_number(shape)} has more entries than a float64 "
            f"array can hold ({sys.maxsize // 8})"
        )
