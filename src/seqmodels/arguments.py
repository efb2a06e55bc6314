"""argparse types for the command lines (``tune.py``, ``seqmodels-serve``): a number in its range, or the usage error
"expected ..., found '...'" in one line."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any


def number(kind: Callable[[str], float], allowed: Callable[[float], bool], expected: str) -> Callable[[str], Any]:
    """An argparse type: ``kind`` of the text when ``allowed``, else "expected EXPECTED, found 'TEXT'"."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = math.nan
        if not allowed(value):  # nan is never allowed
            raise argparse.ArgumentTypeError(f"expected {expected}, found {text!r}")
        return value

    return parse


POSITIVE_INT = number(int, lambda value: value > 0, "a whole number above 0")
NON_NEGATIVE_INT = number(int, lambda value: value >= 0, "a whole number, 0 or more")
POSITIVE = number(float, lambda value: value > 0, "a number above 0")
NON_NEGATIVE = number(float, lambda value: value >= 0, "a number, 0 or more")
