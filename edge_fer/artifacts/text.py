"""Counts in messages: "1 image", "2 images" (users read these lines; "1 images" looks like a bug)."""

from __future__ import annotations


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and the noun in the right number; ``plural`` for irregular ones (default: noun + "s")."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
