"""Budgets: what one call of a version may cost, declared in its front matter.

    budget: {input_tokens: 1200, output_tokens: 400, cost_usd: 0.002}

Every key is optional. Lint renders each sample and fails one whose input is over
`input_tokens`, and warns when `params.max_tokens` allows more than `output_tokens` or
when a sample's worst case (its input plus `max_tokens` of output) costs more than
`cost_usd` at the model's known price; review and metrics compare against it too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from promptctl.registry.errors import InvalidPromptFile

BUDGET_KEYS = ("input_tokens", "output_tokens", "cost_usd")


@dataclass(frozen=True)
class Budget:
    """Per-call limits: tokens sent, tokens answered, dollars. None: no limit."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in BUDGET_KEYS}


def parse_budget(path: str, raw: Any, lines: Mapping[str, int]) -> Budget | None:
    """Return the `budget` section as a Budget, or raise InvalidPromptFile at the field."""
    if raw is None:
        return None

    def fail(detail: str, where: str) -> InvalidPromptFile:
        return InvalidPromptFile(
            path, detail, line=lines.get(where, lines.get("budget")), field=where
        )

    if not isinstance(raw, dict):
        raise fail(
            "budget must be a mapping such as {input_tokens: 1000, output_tokens: 300, "
            "cost_usd: 0.01}",
            "budget",
        )
    unknown = sorted(str(k) for k in raw if k not in BUDGET_KEYS)
    if unknown:
        raise fail(
            f"unknown key '{unknown[0]}' in budget (allowed: {', '.join(BUDGET_KEYS)})",
            f"budget.{unknown[0]}",
        )
    values: dict[str, Any] = {}
    for key in ("input_tokens", "output_tokens"):
        value = raw.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise fail(
                f"budget.{key} must be a positive whole number of tokens, not {value!r}",
                f"budget.{key}",
            )
        values[key] = value
    cost = raw.get("cost_usd")
    if cost is not None:
        if (
            isinstance(cost, bool)
            or not isinstance(cost, int | float)
            or not math.isfinite(cost)
            or cost <= 0
        ):
            raise fail(
                f"budget.cost_usd must be a positive number of dollars, not {cost!r}",
                "budget.cost_usd",
            )
        values["cost_usd"] = float(cost)
    return Budget(**values)
