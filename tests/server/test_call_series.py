"""/metrics per prompt version: events pushed over HTTP come back as Prometheus series,
scraped over a real socket and parsed from the text exposition format."""

from __future__ import annotations

import math
import re
import uuid
from collections import defaultdict

import httpx
import pytest
from support import serving

from promptctl.server.app import create_app
from promptctl.server.call_metrics import ERROR_TYPES_MAX, SEEN_FOR

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)')


@pytest.fixture
def repo(greet_repo):
    return greet_repo


def parse_exposition(text: str) -> tuple[dict[str, str], list[tuple[str, dict[str, str], float]]]:
    """Parse the text format strictly: every sample belongs to a family with a TYPE."""
    types: dict[str, str] = {}
    samples = []
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name not in types, f"TYPE of {name} given twice"
            types[name] = kind
            continue
        if line.startswith("#") or not line:
            continue
        found = _SAMPLE.match(line)
        assert found, f"not a sample line: {line!r}"
        name, raw_labels, value = found.groups()
        labels = dict(_LABEL.findall(raw_labels or ""))
        family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
        assert family in types, f"{name} has no TYPE"
        samples.append((name, labels, float(value)))
    return types, samples


def series(samples, name: str, **labels: str) -> dict[tuple, float]:
    """The samples of `name` matching `labels`, keyed by their other labels."""
    found = {}
    for sample_name, sample_labels, value in samples:
        if sample_name == name and all(sample_labels.get(k) == v for k, v in labels.items()):
            rest = tuple(sorted((k, v) for k, v in sample_labels.items() if k not in labels))
            found[rest] = value
    return found


def event(digest: str, **changes) -> dict:
    return {
        "event_id": uuid.uuid4().hex,
        "prompt": "greet",
        "env": "staging",
        "digest": digest,
        "latency_ms": 800.0,
        "input_tokens": 1000,
        "output_tokens": 100,
        **changes,
    }


def test_ingested_calls_are_series_per_version_and_variant(make_settings, monkeypatch):
    app = create_app(make_settings())
    registry = app.state.ctx.registry
    cache = app.state.ctx.cache
    v2 = registry.library.get("greet", "HEAD~1")
    v3 = registry.library.get("greet", "HEAD")
    registry.releases.promote(v2, "staging", actor="test", confirmed=True)
    registry.releases.promote(v3, "staging", actor="test", canary_bp=2000, confirmed=True)
    cache.refresh_release("greet", "staging")
    stable, canary = v2.digest, v3.digest

    with serving(app) as base, httpx.Client(base_url=base, timeout=10) as http:
        answer = http.post(
            "/v1/metrics",
            json={
                "events": [
                    event(stable, output_valid=True, finish_reason="stop"),
                    event(stable, latency_ms=3000.0, output_valid=True, finish_reason="stop"),
                    event(canary, output_valid=False, finish_reason="length", cost_usd=0.5),
                    event(canary, error_type="timeout", latency_ms=30000.0),
                    event(canary, error=True),
                    event(canary, error_type="x" * 65),  # rejected alone
                ]
            },
        ).json()
        assert answer["accepted"] == 5
        assert answer["results"][5]["reason"].startswith("error_type must be at most 64")
        scraped = http.get("/metrics")
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain; version=0.0.4")
    types, samples = parse_exposition(scraped.text)

    assert types["promptctl_llm_calls_total"] == "counter"
    assert types["promptctl_llm_latency_seconds"] == "histogram"
    base_labels = {"prompt": "greet", "environment": "staging"}
    calls = series(samples, "promptctl_llm_calls_total", **base_labels)
    assert calls == {
        (("digest", stable[:12]), ("variant", "stable"), ("version", f"v{v2.number}")): 2,
        (("digest", canary[:12]), ("variant", "canary"), ("version", f"v{v3.number}")): 3,
    }
    canary_labels = {**base_labels, "variant": "canary", "version": f"v{v3.number}"}
    stable_labels = {**base_labels, "variant": "stable", "version": f"v{v2.number}"}
    errors = series(samples, "promptctl_llm_errors_total", **canary_labels)
    assert errors == {
        (("digest", canary[:12]), ("error_type", "timeout")): 1,
        (("digest", canary[:12]), ("error_type", "unspecified")): 1,
    }
    assert series(samples, "promptctl_llm_errors_total", **stable_labels) == {}

    def one(name: str, labels: dict[str, str]) -> float:
        (value,) = series(samples, name, **labels).values()
        return value

    assert one("promptctl_llm_output_tokens_total", canary_labels) == 300
    assert one("promptctl_llm_input_tokens_total", stable_labels) == 2000
    # 0.5 sent; the other two priced from the tokens (the settings' gpt-4o-mini price).
    priced = (1000 * 0.15 + 100 * 0.60) / 1e6
    assert one("promptctl_llm_cost_usd_total", canary_labels) == pytest.approx(0.5 + 2 * priced)
    assert one("promptctl_llm_invalid_outputs_total", canary_labels) == 1
    assert one("promptctl_llm_outputs_checked_total", stable_labels) == 2
    assert one("promptctl_llm_truncations_total", canary_labels) == 1
    assert one("promptctl_llm_truncations_total", stable_labels) == 0

    buckets = series(samples, "promptctl_llm_latency_seconds_bucket", **stable_labels)
    by_bound = {float(dict(k)["le"]): v for k, v in buckets.items()}
    assert by_bound[1.0] == 1  # 0.8 s
    assert by_bound[2.5] == 1
    assert by_bound[5.0] == 2  # and 3 s
    assert by_bound[math.inf] == 2
    counts = sorted(by_bound.items())
    assert all(a[1] <= b[1] for a, b in zip(counts, counts[1:], strict=False))
    assert one("promptctl_llm_latency_seconds_sum", stable_labels) == pytest.approx(3.8)
    assert one("promptctl_llm_latency_seconds_count", stable_labels) == 2


def test_only_serving_or_recently_seen_versions_keep_series(make_settings):
    app = create_app(make_settings())
    ctx = app.state.ctx
    now = [1_900_000_000.0]
    ctx.telemetry.calls.clock = lambda: now[0]
    v2 = ctx.registry.library.get("greet", "HEAD~1")
    v3 = ctx.registry.library.get("greet", "HEAD")
    ctx.registry.releases.promote(v2, "staging", actor="test", confirmed=True)
    ctx.registry.releases.promote(v3, "staging", actor="test", canary_bp=5000, confirmed=True)
    ctx.cache.refresh_release("greet", "staging")

    with serving(app) as base, httpx.Client(base_url=base, timeout=10) as http:
        http.post("/v1/metrics", json={"events": [event(v2.digest), event(v3.digest)]})
        ctx.registry.releases.abort("greet", "staging", actor="test")
        ctx.cache.refresh_release("greet", "staging")

        def variants() -> set[str]:
            _, samples = parse_exposition(http.get("/metrics").text)
            return {dict(k)["variant"] for k in series(samples, "promptctl_llm_calls_total")}

        assert variants() == {"stable", "canary"}  # the aborted canary was seen just now
        now[0] += SEEN_FOR + 1
        # The stable version still serves: its series stay though idle; the canary's go.
        assert variants() == {"stable"}


def test_error_types_per_version_are_capped(make_settings):
    app = create_app(make_settings())
    ctx = app.state.ctx
    v3 = ctx.registry.library.get("greet", "HEAD")
    ctx.registry.releases.promote(v3, "staging", actor="test", confirmed=True)
    ctx.cache.refresh_release("greet", "staging")
    kinds = [f"kind_{i:02d}" for i in range(ERROR_TYPES_MAX + 5)]
    with serving(app) as base, httpx.Client(base_url=base, timeout=10) as http:
        http.post("/v1/metrics", json={"events": [event(v3.digest, error_type=k) for k in kinds]})
        _, samples = parse_exposition(http.get("/metrics").text)
    errors = series(samples, "promptctl_llm_errors_total", prompt="greet")
    by_type: dict[str, float] = defaultdict(float)
    for key, value in errors.items():
        by_type[dict(key)["error_type"]] += value
    assert len(by_type) == ERROR_TYPES_MAX + 1
    assert by_type["other"] == 5
    assert sum(by_type.values()) == len(kinds)
