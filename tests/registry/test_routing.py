"""Sticky canary routing: conformance vectors, its statistical properties, and percentages.

The vectors in tests/routing_vectors.json are the contract a client in any language must
meet. They are checked three ways: against DESIGN.md's formula computed here with
hashlib alone, against the generator that wrote them, and against registry.releases.routing.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptctl.registry.errors import UsageError
from promptctl.registry.releases.routing import (
    BUCKETS,
    assign,
    bucket,
    format_percent,
    parse_percent,
)

TESTS = Path(__file__).resolve().parent.parent
VECTORS_FILE = TESTS / "routing_vectors.json"
VECTORS = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))["vectors"]

digests = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
prompts = st.from_regex(
    r"[a-z0-9][a-z0-9_.-]{0,20}(/[a-z0-9][a-z0-9_.-]{0,10}){0,2}", fullmatch=True
)
keys = st.text(max_size=40)
weights = st.integers(min_value=0, max_value=BUCKETS)
# These are pure functions: a slow example on a loaded machine is no failure.
NO_DEADLINE = settings(deadline=None)


def design_bucket(prompt: str, digest: str, key: str) -> int:
    """DESIGN.md's formula, written out independently of registry.releases.routing."""
    h = hashlib.sha256(f"{prompt}:{digest}:{key}".encode()).digest()
    return int.from_bytes(h[:8], "big") % 10000


def vector_id(v: dict) -> str:
    return f"{v['prompt']}|{v['key'][:12]!r}|{v['weight_bp']}"


# -- conformance vectors ---------------------------------------------------------------


def test_the_vectors_cover_the_edge_weights_unicode_keys_and_both_variants():
    weights_seen = {v["weight_bp"] for v in VECTORS}
    keys_seen = {v["key"] for v in VECTORS}

    assert 190 <= len(VECTORS) <= 250
    assert {0, 1, 5000, 9999, 10000} <= weights_seen
    assert any(not k.isascii() for k in keys_seen)
    assert "" in keys_seen
    assert {v["variant"] for v in VECTORS} == {"stable", "canary"}
    assert all(v["variant"] == "stable" for v in VECTORS if v["weight_bp"] == 0)
    assert all(v["variant"] == "canary" for v in VECTORS if v["weight_bp"] == 10000)
    # Weights equal to the bucket (stable) and one above it (canary) pin the boundary.
    assert any(v["weight_bp"] == v["bucket"] and v["variant"] == "stable" for v in VECTORS)
    assert any(v["weight_bp"] == v["bucket"] + 1 and v["variant"] == "canary" for v in VECTORS)


def test_every_vector_follows_the_design_formula():
    wrong = []
    for v in VECTORS:
        expected = design_bucket(v["prompt"], v["digest"], v["key"])
        variant = "canary" if expected < v["weight_bp"] else "stable"
        if (v["bucket"], v["variant"]) != (expected, variant):
            wrong.append(vector_id(v))

    assert wrong == []


def test_registry_routing_assigns_every_vector_as_the_file_says():
    wrong = []
    for v in VECTORS:
        got = (
            bucket(v["prompt"], v["digest"], v["key"]),
            assign(v["prompt"], v["digest"], v["weight_bp"], v["key"]),
        )
        if got != (v["bucket"], v["variant"]):
            wrong.append(vector_id(v))

    assert wrong == []


def test_the_generator_reproduces_the_vectors_file_exactly():
    spec = importlib.util.spec_from_file_location(
        "generate_routing_vectors", TESTS / "generate_routing_vectors.py"
    )
    assert spec is not None
    assert spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)

    assert generator.render(generator.vectors()) == VECTORS_FILE.read_text(encoding="utf-8")


# -- properties --------------------------------------------------------------------------


@NO_DEADLINE
@given(prompts, digests, keys)
def test_a_bucket_is_the_design_formula_and_lies_in_0_to_9999(prompt, digest, key):
    value = bucket(prompt, digest, key)

    assert value == design_bucket(prompt, digest, key)
    assert 0 <= value < BUCKETS


@NO_DEADLINE
@given(prompts, digests, keys, weights, weights)
def test_raising_the_weight_never_moves_a_key_out_of_the_canary(prompt, digest, key, a, b):
    low, high = sorted((a, b))

    if assign(prompt, digest, low, key) == "canary":
        assert assign(prompt, digest, high, key) == "canary"


@NO_DEADLINE
@given(prompts, digests, st.one_of(st.none(), keys))
def test_weight_0_always_serves_stable_and_weight_10000_always_canary(prompt, digest, key):
    assert assign(prompt, digest, 0, key) == "stable"
    assert assign(prompt, digest, BUCKETS, key) == "canary"
    assert assign(prompt, None, BUCKETS, key) == "stable"


def test_the_canary_share_of_100k_keys_is_within_one_percent_of_the_weight():
    digest = hashlib.sha256(b"share canary").hexdigest()
    keys_100k = [f"user-{i}" for i in range(100_000)]
    buckets = [bucket("support/triage", digest, k) for k in keys_100k]

    shares = {w: sum(b < w for b in buckets) / len(buckets) for w in (1, 100, 1250, 5000, 9900)}

    for weight_bp, share in shares.items():
        assert abs(share - weight_bp / BUCKETS) <= 0.01, (weight_bp, share)
    canary = sum(assign("support/triage", digest, 1250, k) == "canary" for k in keys_100k)
    assert canary == round(shares[1250] * len(keys_100k))


def test_a_new_canary_digest_reshuffles_which_keys_are_in_the_canary():
    keys_10k = [f"user-{i}" for i in range(10_000)]
    first, second = (hashlib.sha256(name).hexdigest() for name in (b"canary A", b"canary B"))

    in_first = {k for k in keys_10k if assign("greet", first, 5000, k) == "canary"}
    in_second = {k for k in keys_10k if assign("greet", second, 5000, k) == "canary"}

    # Independent halves share about a quarter of all keys, not (nearly) all of a half.
    assert 0.40 <= len(in_first & in_second) / len(in_first) <= 0.60
    assert len(in_first ^ in_second) >= 0.4 * len(keys_10k)


def test_without_a_key_the_choice_is_random_per_request_at_the_weight(monkeypatch):
    monkeypatch.setattr("promptctl.registry.releases.routing.random", random.Random(7))

    picks = [assign("greet", "ab" * 32, 2500) for _ in range(20_000)]

    assert {"stable", "canary"} == set(picks)
    assert abs(picks.count("canary") / len(picks) - 0.25) <= 0.02


# -- percentages -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "basis_points"),
    [
        ("0", 0),
        ("100", 10_000),
        ("12.5", 1250),
        ("12.50", 1250),
        ("0.01", 1),
        ("99.99", 9999),
        ("5%", 500),
        (" 7 ", 700),
        ("-0", 0),
        ("100.00", 10_000),
        ("1e1", 1000),
        (12.5, 1250),
        (0.1, 10),
        (3, 300),
    ],
)
def test_parse_percent_turns_a_percentage_into_basis_points(text, basis_points):
    assert parse_percent(text) == basis_points


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("100.01", "outside 0-100"),
        ("101", "outside 0-100"),
        ("-0.01", "outside 0-100"),
        ("nan", "outside 0-100"),
        ("inf", "outside 0-100"),
        ("12.345", "more than two decimals"),
        ("0.001", "more than two decimals"),
        (0.1 + 0.2, "more than two decimals"),
        ("", "not a number"),
        ("%", "not a number"),
        ("ten", "not a number"),
        ("0x10", "not a number"),
    ],
)
def test_parse_percent_refuses_what_is_not_a_percentage_of_0_01_resolution(text, message):
    with pytest.raises(UsageError, match=message):
        parse_percent(text)


@pytest.mark.parametrize(
    ("basis_points", "text"),
    [(0, "0%"), (1, "0.01%"), (10, "0.1%"), (1250, "12.5%"), (5000, "50%"), (10_000, "100%")],
)
def test_format_percent_drops_needless_decimals(basis_points, text):
    assert format_percent(basis_points) == text


@NO_DEADLINE
@given(weights)
def test_format_percent_and_parse_percent_round_trip(basis_points):
    assert parse_percent(format_percent(basis_points)) == basis_points
