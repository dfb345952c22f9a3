"""Sticky canary assignment: the one routing function the server and the client share.

With a key, `sha256(f"{prompt}:{canary_digest}:{key}")` picks a bucket in 0..9999 and the
key is in the canary when its bucket is below the weight in basis points. Salting with
the canary digest gives each canary a fresh population; raising the weight only adds
keys. Without a key the choice is random per request.
"""

from __future__ import annotations

import hashlib
import random
from decimal import Decimal, InvalidOperation
from typing import Literal

from promptctl.registry.errors import InvalidWeight

Variant = Literal["stable", "canary"]
BUCKETS = 10_000


def bucket(prompt: str, canary_digest: str, key: str) -> int:
    """Return the key's bucket (0..9999) for this prompt's canary."""
    h = hashlib.sha256(f"{prompt}:{canary_digest}:{key}".encode()).digest()
    return int.from_bytes(h[:8], "big") % BUCKETS


def assign(
    prompt: str, canary_digest: str | None, weight_bp: int, key: str | None = None
) -> Variant:
    """Return the variant a request gets: sticky with a key, random without one."""
    if canary_digest is None or weight_bp <= 0:
        return "stable"
    if weight_bp >= BUCKETS:
        return "canary"
    if key is None:
        return "canary" if random.randrange(BUCKETS) < weight_bp else "stable"
    return "canary" if bucket(prompt, canary_digest, key) < weight_bp else "stable"


def parse_percent(text: str | float) -> int:
    """Turn a percentage (0-100, at most two decimals) into basis points."""
    try:
        value = Decimal(str(text).strip().rstrip("%"))
    except InvalidOperation as exc:
        raise InvalidWeight(text, "not a number") from exc
    if not value.is_finite() or value < 0 or value > 100:
        raise InvalidWeight(text, "out of range")
    basis_points = value * 100
    if basis_points != basis_points.to_integral_value():
        raise InvalidWeight(text, "too precise")
    return int(basis_points)


def format_percent(weight_bp: int) -> str:
    """Show basis points as a percentage without needless decimals (1250 -> '12.5%')."""
    text = f"{weight_bp / 100:.2f}".rstrip("0").rstrip(".")
    return f"{text}%"
