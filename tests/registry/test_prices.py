"""Model prices: the maintained data of genai-prices, and the overrides that win over it."""

from __future__ import annotations

import re

import pytest

from promptctl.registry.core import Registry, Settings
from promptctl.registry.metrics.prices import ModelPrice, price_book


def test_a_real_model_is_priced_without_configuration() -> None:
    book = price_book()
    price = book.price("gpt-4o-mini")
    assert price is not None
    assert price.input > 0
    assert price.output > price.input
    # 1,000 input and 500 output tokens at the data's own rates.
    assert book.cost("gpt-4o-mini", 1000, 500) == pytest.approx(
        (1000 * price.input + 500 * price.output) / 1e6
    )
    assert re.fullmatch(r"genai-prices \d+\.\d+\.\d+.*", book.source)
    assert book.as_of is not None
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", book.as_of)
    assert book.source_of("gpt-4o-mini") == book.source


def test_an_unknown_model_has_no_price() -> None:
    book = price_book()
    assert book.price("our-own-finetune-7") is None
    assert book.cost("our-own-finetune-7", 1000, 1000) is None
    assert book.cost(None, 1000, 1000) is None
    assert book.source_of("our-own-finetune-7") is None


def test_overrides_win_over_the_maintained_data() -> None:
    book = price_book({"gpt-4o-mini": {"input": 1.0, "output": 2.0}, "ours": ModelPrice(3, 4)})
    assert book.price("gpt-4o-mini") == ModelPrice(1.0, 2.0)
    assert book.cost("gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(3.0)
    assert book.cost("ours", 1_000_000, 0) == pytest.approx(3.0)
    assert book.source.startswith("PROMPTCTL_PRICES, then genai-prices ")
    assert book.source_of("gpt-4o-mini") == "PROMPTCTL_PRICES"
    assert book.price("gpt-4o") is not None  # the rest still comes from the data


def test_a_negative_override_names_the_model_and_field() -> None:
    with pytest.raises(ValueError, match=r"price of 'ours': 'output' must be a number >= 0"):
        price_book({"ours": {"input": 1.0, "output": -2}})


def test_tiers_apply_to_every_token_past_the_threshold() -> None:
    price = ModelPrice(1.0, 2.0, input_tiers=((200_000, 2.0),), output_tiers=((200_000, 4.0),))
    assert price.cost(200_000, 1000) == pytest.approx((200_000 * 1.0 + 1000 * 2.0) / 1e6)
    assert price.cost(200_001, 1000) == pytest.approx((200_001 * 2.0 + 1000 * 4.0) / 1e6)


def test_the_registry_reads_prices_from_its_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTCTL_PRICES", '{"house-model": {"input": 0.5, "output": 1.5}}')
    registry = Registry(Settings())
    book = registry.price_book()
    assert book is registry.price_book()
    assert book.price("house-model") == ModelPrice(0.5, 1.5)
    assert book.price("gpt-4o-mini") is not None
