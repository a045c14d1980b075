"""Values as plain JSON: bytes as 0x-hex, tuples as lists, numpy scalars as numbers, non-finite floats as
null (JSON has no NaN), recursively."""

from __future__ import annotations

import math
from typing import Any

#: Integers beyond this lose precision in JavaScript clients.
JS_SAFE_INTEGER = 2**53


def to_jsonable(value: Any, *, big_ints_as_str: bool = False) -> Any:
    """``value`` with bytes as ``0x…`` strings, NaN and infinities as None, numpy scalars as Python numbers;
    integers past 2^53 as strings when ``big_ints_as_str``."""
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, dict):
        return {k: to_jsonable(v, big_ints_as_str=big_ints_as_str) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, big_ints_as_str=big_ints_as_str) for v in value]
    if (
        big_ints_as_str
        and isinstance(value, int)
        and not isinstance(value, bool)
        and abs(value) >= JS_SAFE_INTEGER
    ):
        return str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if type(value).__module__ == "numpy" and callable(getattr(value, "item", None)):
        return to_jsonable(value.item(), big_ints_as_str=big_ints_as_str)
    return value
