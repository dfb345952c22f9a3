"""Model prices: USD per million tokens, from maintained data, with the team's overrides.

The maintained data is the `genai-prices` package (pydantic's price tables for the
providers' models, shipped inside the package: nothing is fetched at run time). Its
`UpdatePrices` auto-update, which would download newer data, is never started here.
`PROMPTCTL_PRICES` (settings `prices`) wins for the models it names, so a team with a
negotiated rate, a self-hosted model or a fine-tune prices it without waiting for the
data.

A model is looked up as genai-prices matches it (`gpt-4o-mini`, `claude-sonnet-4-0`,
dated snapshots such as `gpt-4o-2024-08-06`), at today's prices. Tiered prices (a higher
rate for every token once a prompt passes a threshold, as for long-context calls) are
applied by input tokens, as the providers bill them. Cache reads and writes, audio and
images are not priced: events carry input and output tokens only.

`as_of` is the date of the newest price change up to today that the maintained data
records (genai-prices has no other date offline; changes it schedules ahead do not
count); `source` names the package and its version, and the
overrides when there are any.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from importlib import metadata
from typing import Any

OVERRIDES_SOURCE = "PROMPTCTL_PRICES"
MAINTAINED_PACKAGE = "genai-prices"
_LOOKUPS_MAX = 1024  # distinct model names remembered; events name models freely


@dataclass(frozen=True)
class ModelPrice:
    """USD per million input and output tokens of one model.

    `input_tiers` and `output_tiers` are (input tokens above which, price) pairs in
    ascending order: past a threshold the tier's price applies to every token of the call.
    """

    input: float
    output: float
    input_tiers: tuple[tuple[int, float], ...] = ()
    output_tiers: tuple[tuple[int, float], ...] = ()

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """Return the USD cost of one call with these token counts."""
        input_rate = _tiered(self.input, self.input_tiers, input_tokens)
        output_rate = _tiered(self.output, self.output_tiers, input_tokens)
        return (input_tokens * input_rate + output_tokens * output_rate) / 1e6


def _tiered(base: float, tiers: tuple[tuple[int, float], ...], input_tokens: int) -> float:
    rate = base
    for start, price in tiers:
        if input_tokens > start:
            rate = price
    return rate


class PriceBook:
    """Prices by model name: the overrides first, then the maintained data."""

    def __init__(self, overrides: Mapping[str, ModelPrice], maintained: _Maintained | None) -> None:
        self.overrides = dict(overrides)
        self._maintained = maintained
        self._lookups: dict[str, ModelPrice | None] = {}
        self._lock = threading.Lock()
        parts = [OVERRIDES_SOURCE] if self.overrides else []
        if maintained is not None:
            parts.append(f"{MAINTAINED_PACKAGE} {maintained.version}")
        self.source: str = ", then ".join(parts) if parts else "none"

    @property
    def as_of(self) -> str | None:
        """The maintained data's date (ISO 8601), when there is maintained data."""
        return self._maintained.as_of() if self._maintained is not None else None

    def price(self, model: str) -> ModelPrice | None:
        """Return the price of `model`, or None when neither source knows it."""
        if model in self.overrides:
            return self.overrides[model]
        if self._maintained is None:
            return None
        try:
            return self._lookups[model]
        except KeyError:
            pass
        found = self._maintained.price(model)
        with self._lock:
            if len(self._lookups) >= _LOOKUPS_MAX:
                self._lookups.clear()
            self._lookups[model] = found
        return found

    def source_of(self, model: str) -> str | None:
        """Name where the price of `model` comes from, or None when it has none."""
        if model in self.overrides:
            return OVERRIDES_SOURCE
        if self.price(model) is None:
            return None
        assert self._maintained is not None
        return f"{MAINTAINED_PACKAGE} {self._maintained.version}"

    def cost(self, model: str | None, input_tokens: int, output_tokens: int) -> float | None:
        """Return the USD cost of one call, or None when the model has no price."""
        if model is None:
            return None
        price = self.price(model)
        return None if price is None else price.cost(input_tokens, output_tokens)

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "as_of": self.as_of}


class _Maintained:
    """The genai-prices data, looked up lazily (importing it takes a fifth of a second)."""

    def __init__(self, version: str) -> None:
        self.version = version

    def price(self, model: str) -> ModelPrice | None:
        snapshot = _snapshot()
        try:
            _, info = snapshot.find_provider_model(model, None, None, None)
        except LookupError:
            return None
        prices = info.get_prices(datetime.now(UTC))
        input_price, input_tiers = _per_million(getattr(prices, "input_mtok", None))
        output_price, output_tiers = _per_million(getattr(prices, "output_mtok", None))
        if input_price is None and output_price is None:
            return None  # priced per image, second or request only: not from tokens
        return ModelPrice(input_price or 0.0, output_price or 0.0, input_tiers, output_tiers)

    def as_of(self) -> str | None:
        newest = _newest_price_date()
        return newest.isoformat() if newest else None


def _per_million(value: Any) -> tuple[float | None, tuple[tuple[int, float], ...]]:
    if value is None:
        return None, ()
    base = getattr(value, "base", None)
    if base is None:  # a plain Decimal
        return float(value), ()
    tiers = tuple((int(t.start), float(t.price)) for t in getattr(value, "tiers", ()))
    return float(base), tiers


def _snapshot() -> Any:
    from genai_prices import data_snapshot

    return data_snapshot.get_snapshot()


@cache
def _newest_price_date() -> date | None:
    # The data also schedules price changes ahead of time; a date to come is not the
    # data's date.
    today = datetime.now(UTC).date()
    newest: date | None = None
    for provider in _snapshot().providers:
        for model in provider.models:
            conditions = list(model.prices) if isinstance(model.prices, list) else []
            conditions += model.price_variants or []
            for condition in conditions:
                start = getattr(condition.constraint, "start_date", None)
                if isinstance(start, datetime):
                    start = start.date()
                if not isinstance(start, date) or start > today:
                    continue
                if newest is None or start > newest:
                    newest = start
    return newest


@cache
def _maintained_version() -> str | None:
    try:
        return metadata.version(MAINTAINED_PACKAGE)
    except metadata.PackageNotFoundError:
        return None


def _as_price(name: str, value: Any) -> ModelPrice:
    """Accept a ModelPrice, anything with `input` and `output`, or a mapping of them."""
    if isinstance(value, ModelPrice):
        return value
    if isinstance(value, Mapping):
        found_input, found_output = value.get("input"), value.get("output")
    else:
        found_input, found_output = getattr(value, "input", None), getattr(value, "output", None)
    for field, amount in (("input", found_input), ("output", found_output)):
        if isinstance(amount, bool) or not isinstance(amount, int | float) or amount < 0:
            raise ValueError(
                f"price of '{name}': '{field}' must be a number >= 0 (USD per million "
                f"tokens), got {amount!r}"
            )
    return ModelPrice(float(found_input), float(found_output))  # type: ignore[arg-type]


def price_book(overrides: Mapping[str, Any] | None = None) -> PriceBook:
    """Build the prices: `overrides` (model -> input/output USD per 1M tokens) win over
    the maintained data of genai-prices, when that package is installed."""
    checked = {name: _as_price(name, value) for name, value in (overrides or {}).items()}
    version = _maintained_version()
    return PriceBook(checked, _Maintained(version) if version else None)
