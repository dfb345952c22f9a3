"""What one call of a version costs, estimated from its rendered samples, and its budget.

Input tokens are the mean over the samples as rendered (the template text when none
renders), counted as lint counts them against a budget (`tokencount.count_rendered`: the
model's tokenizer, chat framing included). Output tokens cannot be counted before the
call, so they are assumed as lint's budget check assumes them: `params.max_tokens` (the
most it may write), else the version's `budget.output_tokens`; the report says which.
Prices come from the registry's price book (the team's PROMPTCTL_PRICES, then the
maintained data).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from promptctl.registry.prompts.tokencount import count_rendered, count_tokens, describe

if TYPE_CHECKING:
    from promptctl.registry.metrics.prices import PriceBook
    from promptctl.registry.prompts.budget import Budget
    from promptctl.registry.prompts.promptversion import PromptVersion
    from promptctl.registry.prompts.rendering import Rendered

CALLS = 1000  # costs are shown per this many calls: a per-call cost is a row of zeros


@dataclass(frozen=True)
class CallCost:
    """The estimated tokens and cost of one call of a version."""

    model: str | None
    tokenizer: str
    input_tokens: int  # the mean over `samples` rendered, or the template's
    samples: int  # how many rendered samples the mean is over (0: the template text)
    max_input_tokens: int
    max_input_sample: int | None  # the 1-based sample with the most input tokens
    output_tokens: int | None
    output_basis: str | None  # "budget.output_tokens", "params.max_tokens" or None
    cost_per_call: float | None  # USD; None when the model has no price
    max_cost_per_call: float | None  # the costliest sample's

    @property
    def cost_per_1k(self) -> float | None:
        return None if self.cost_per_call is None else self.cost_per_call * CALLS

    @property
    def input_basis(self) -> str:
        if self.samples == 0:
            return "template text: no sample renders"
        return "1 sample" if self.samples == 1 else f"mean of {self.samples} samples"

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "tokenizer": self.tokenizer,
            "input_tokens": self.input_tokens,
            "input_basis": self.input_basis,
            "samples": self.samples,
            "max_input_tokens": self.max_input_tokens,
            "output_tokens": self.output_tokens,
            "output_basis": self.output_basis,
            "cost_usd_per_call": self.cost_per_call,
            "cost_usd_per_1k_calls": self.cost_per_1k,
        }


def estimate(
    version: PromptVersion, rendered: list[tuple[int, Rendered]], prices: PriceBook | None
) -> CallCost:
    """Estimate a call of `version` from its rendered samples ((1-based index, rendering)),
    counted as lint counts them against a budget (chat framing included)."""
    model = version.prompt.model
    counts = [(index, count_rendered(r, model)) for index, r in rendered]
    if counts:
        mean = round(sum(n for _, n in counts) / len(counts))
        worst_sample, worst = max(counts, key=lambda c: c[1])
    else:
        template = version.prompt.body + "".join(t for t in version.partials.values() if t)
        mean = worst = count_tokens(template, model)
        worst_sample = None
    output, basis = assumed_output(version)

    def cost(tokens: int) -> float | None:
        if prices is None:
            return None
        return prices.cost(model, tokens, output or 0)

    return CallCost(
        model=model,
        tokenizer=describe(model),
        input_tokens=mean,
        samples=len(counts),
        max_input_tokens=worst,
        max_input_sample=worst_sample,
        output_tokens=output,
        output_basis=basis,
        cost_per_call=cost(mean),
        max_cost_per_call=cost(worst),
    )


def assumed_output(version: PromptVersion) -> tuple[int | None, str | None]:
    """The output tokens to assume for a call, and where the number comes from."""
    max_tokens = version.prompt.params.get("max_tokens")
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and max_tokens > 0:
        return max_tokens, "params.max_tokens"
    budget = budget_of(version)
    if budget is not None and budget.output_tokens is not None:
        return budget.output_tokens, "budget.output_tokens"
    return None, None


def budget_of(version: PromptVersion) -> Budget | None:
    """The version's declared budget (input_tokens, output_tokens, cost_usd), or None."""
    return version.prompt.budget


def budget_findings(before: CallCost | None, after: CallCost, budget: Budget | None) -> list[str]:
    """Say where the head version goes over its budget, and whether this change crossed it."""
    if budget is None:
        return []
    found: list[str] = []
    limit = budget.input_tokens
    if limit is not None and after.max_input_tokens > limit:
        where = f" (sample {after.max_input_sample})" if after.max_input_sample else ""
        found.append(
            f"input tokens {after.max_input_tokens:,}{where} exceed the budget of {limit:,}"
            + _crossing(
                before is not None and before.max_input_tokens <= limit,
                before.max_input_tokens if before else None,
                "{:,}",
            )
        )
    limit_usd = budget.cost_usd
    if (
        limit_usd is not None
        and after.max_cost_per_call is not None
        and after.max_cost_per_call > limit_usd
    ):
        was = before.max_cost_per_call if before else None
        found.append(
            f"cost per call {usd(after.max_cost_per_call)} exceeds the budget of "
            f"{usd(limit_usd)}" + _crossing(was is not None and was <= limit_usd, was, None)
        )
    return found


def _crossing(was_within: bool, was: float | None, fmt: str | None) -> str:
    if was is None:
        return ""
    shown = fmt.format(was) if fmt else usd(was)
    return f" (was {shown}: this change crosses it)" if was_within else f" (already over: {shown})"


def usd(amount: float) -> str:
    """Show dollars to three significant digits, cents at least: $0.247, $0.0042, $12.30."""
    if amount == 0:
        return "$0"
    if abs(amount) >= 100:
        return f"${amount:,.0f}"
    digits = max(2, 2 - math.floor(math.log10(abs(amount))))
    whole, _, cents = f"{amount:,.{digits}f}".partition(".")
    cents = cents.rstrip("0").ljust(2, "0")
    return f"${whole}.{cents}"
